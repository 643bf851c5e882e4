"""A lock another process holds on the SQLite state is waited out, and said: never an exit
of a worker (a command gives up after its patience)."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import anyio
import pytest

from sqlite_locks import write_lock_held
from videoarchiver.errors import StoreUnavailable
from videoarchiver.state import lock_wait as lock_wait_module
from videoarchiver.state import open_store
from videoarchiver.state.lock_holder import LockProbe
from videoarchiver.state.lock_wait import LockWait

pytestmark = pytest.mark.anyio


def _busy() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database is locked")
    exc.sqlite_errorcode = sqlite3.SQLITE_BUSY
    return exc


class _Locked:
    """Statements that find the database locked until `until` on the clock it moves (each
    attempt takes one second: SQLite's busy handler waiting)."""

    def __init__(self, until: float) -> None:
        self.now, self.until = 0.0, until
        self.cancel_at: tuple[float, anyio.CancelScope] | None = None

    def clock(self) -> float:
        return self.now

    async def step(self) -> str:
        if self.now >= self.until:
            return "ran"
        self.now += 1.0
        if self.cancel_at is not None and self.now >= self.cancel_at[0]:
            self.cancel_at[1].cancel()  # its task is cancelled (a stop, a claim lost)
        raise _busy()


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("videoarchiver.state")]


async def test_a_wait_is_said_once_then_at_doubling_intervals_and_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock_wait_module, "PAUSE_SECONDS", 0)
    locked, told = _Locked(until=100), list[str | None]()
    waits = LockWait(tmp_path / "state.sqlite3", LockProbe(tmp_path / "none"), say_after=10,
                     trouble=told.append, clock=locked.clock)  # fmt: skip
    with anyio.CancelScope() as cancelled:
        locked.cancel_at = (15, cancelled)
        await waits.run(locked.step)
    assert cancelled.cancelled_caught
    # The next statement meets the same hold-up: one wait, said on the same schedule.
    assert await waits.run(locked.step) == "ran"
    said = _said(caplog)
    assert [re.search(r"for (\d+) s", line)[1] for line in said[:-1]] == ["10", "20", "40", "80"]  # type: ignore[index]
    assert all("held by another process" in line for line in said[:-1]), "none found"
    assert said[-1] == "the state database is free again after 100 s: going on"
    assert len(told) == 5 and told[-1] is None, "systemd's status says it, then not"


async def test_only_a_lock_is_waited_for_and_only_outside_a_transaction(tmp_path: Path) -> None:
    waits = LockWait(tmp_path / "state.sqlite3", LockProbe(tmp_path / "none"))

    async def damaged() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        await waits.run(damaged)
    with pytest.raises(StoreUnavailable, match="locked in the middle of a change"):
        await waits.run(_Locked(until=1).step, again=False)  # it is rolled back, not sent again


async def test_a_command_gives_up_after_its_patience_naming_the_holder(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    async with open_store(tmp_path, patience=0.5) as store:
        with write_lock_held(tmp_path / "work" / "state.sqlite3") as holder:
            assert await store.control("paused") is None, "reading is not held up (WAL)"
            with pytest.raises(StoreUnavailable, match=rf"is locked, held by pid {holder.pid} \("):
                await store.set_control("paused", "now")


async def test_a_write_waits_for_another_process_s_lock_for_as_long_as_it_takes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "work").mkdir()
    told: list[str | None] = []
    said = anyio.Event()

    def trouble(what: str | None) -> None:  # what systemd's status line shows
        told.append(what)
        said.set()

    async with open_store(tmp_path, trouble=trouble, say_after=0.3) as store:
        async with anyio.create_task_group() as group:
            with write_lock_held(tmp_path / "work" / "state.sqlite3") as holder:
                group.start_soon(store.set_control, "paused", "now")
                await said.wait()  # its attempts (0.3 s each) timed out: it waits on
                held = f"held by pid {holder.pid} ("
                assert told[0] is not None and held in told[0]
                assert held in _said(caplog)[0]
        # Let go: the write went through, and a line says so.
        assert await store.control("paused") == "now"
        assert re.fullmatch(r"the state database is free again after \d+ s: going on",
                            _said(caplog)[-1])  # fmt: skip
        assert told[-1] is None
