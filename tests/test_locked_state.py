"""A write lock held on the SQLite state for longer than SQLite's busy timeout — a `sqlite3`
shell left in `BEGIN IMMEDIATE`, a worker stopped mid-write — stops no worker: each waits,
says who holds it, keeps what runs running, and goes on by itself once it is let go."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from media import (
    FAST_CONFIG,
    LEASE_SECONDS,
    WORKER_CONFIG,
    ffmpeg,
    poll_rows,
    run_cli,
    wait_until,
)
from videoarchiver.state.lock_holder import LockProbe

_wait = partial(wait_until, timeout=240)
NOW = "(julianday('now') - 2440587.5) * 86400.0"  # the database's clock


def _worker(root: Path, name: str) -> subprocess.Popen[str]:
    """`videoarchiver run` on `root`, its stderr in `<root>/../<name>.err`."""
    with (root.parent / f"{name}.err").open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "videoarchiver", "run", "--root", str(root)],
            stdout=subprocess.DEVNULL, stderr=stderr, text=True,
        )  # fmt: skip


def _said(root: Path, name: str) -> str:
    return (root.parent / f"{name}.err").read_text()


@contextlib.contextmanager
def _stopped_at_the_end(*workers: subprocess.Popen[str]) -> Iterator[None]:
    """Each worker is still running when the block ends, and stops cleanly on SIGTERM."""
    try:
        yield
        assert [worker.poll() for worker in workers] == [None] * len(workers), "none exited"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGCONT)
                worker.send_signal(signal.SIGTERM)
    assert [worker.wait(timeout=120) for worker in workers] == [0] * len(workers)


def _states(root: Path) -> list[str]:
    return [state for (state,) in poll_rows(root, "SELECT state FROM files ORDER BY id")]


def test_a_sqlite3_shell_holding_the_lock_is_waited_out_and_named(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "videoarchiver.toml").write_text("lock_warning_seconds = 0.5\n" + FAST_CONFIG)
    assert run_cli(root, "run", "--once").returncode == 0  # the state, empty
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-c:v", "mpeg4",
           root / "raw" / "a.mp4")  # fmt: skip
    database = root / "work" / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as shell:
        shell.execute("BEGIN IMMEDIATE")  # held from before the worker starts
        worker = _worker(root, "worker")
        with _stopped_at_the_end(worker):
            held = f"is locked, held by pid {os.getpid()} ("
            _wait(lambda: worker.poll() is not None or held in _said(root, "worker"))
            assert worker.poll() is None, _said(root, "worker")
            # It waited past its attempts (0.5 s each, SQLite's busy timeout) and says so.
            assert re.search(rf"{re.escape(held)}.*\) for \d+ s: waiting", _said(root, "worker"))
            shell.execute("ROLLBACK")
            _wait(lambda: worker.poll() is not None or _states(root) == ["done"])
            said = _said(root, "worker")
            assert re.search(r"the state database is free again after \d+ s: going on", said)
            assert said.count("is locked, held by") < 10, "said at growing intervals"


def _stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] in "tT"


def _stop_one_holding_the_lock(database: Path, workers: list[subprocess.Popen[str]]) -> int:
    """SIGSTOP whichever worker is caught holding the write lock, once it is stopped with
    the lock still held (it may have let go between the look and the signal: it goes on, and
    is caught at a later write). Returns its pid."""
    probe, pids = LockProbe(database), {worker.pid for worker in workers}
    caught: list[int] = []

    def caught_one() -> bool:
        holder = probe.holder()
        pid = None if holder is None else holder.pid
        if pid is None or pid not in pids:
            return False
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: _stopped(pid), timeout=30, every=0.001)
        again = probe.holder()
        if again is not None and again.pid == pid:
            caught.append(pid)
            return True
        os.kill(pid, signal.SIGCONT)
        return False

    try:
        wait_until(caught_one, timeout=120, every=0)
    finally:
        probe.close()
    return caught[0]


def test_a_worker_stopped_mid_write_holds_the_others_up_and_takes_no_file_from_them(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "videoarchiver.toml").write_text(
        "lock_warning_seconds = 0.5\n" + WORKER_CONFIG.format(preset="fast")
    )
    for number in range(4):
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=6", "-c:v", "mpeg4",
               root / "raw" / f"clip{number}.mkv")  # fmt: skip
    names = ["one", "two"]
    workers = [_worker(root, name) for name in names]
    with _stopped_at_the_end(*workers):
        running = "SELECT COUNT(DISTINCT worker) FROM files WHERE state = 'running'"
        _wait(lambda: poll_rows(root, running) == [(2,)])  # each holds a file
        database = root / "work" / "state.sqlite3"
        frozen = _stop_one_holding_the_lock(database, workers)
        other = next(name for name, w in zip(names, workers, strict=True) if w.pid != frozen)
        held = f"is locked, held by pid {frozen} ({sys.executable} -m videoarchiver run"
        _wait(lambda: held in _said(root, other))
        # Frozen past the lease by the database's clock: every heartbeat and lease looks old.
        ages = f"SELECT MIN({NOW} - heartbeat_at) > {2 * LEASE_SECONDS} FROM workers"
        _wait(lambda: poll_rows(root, ages) == [(1,)])
        os.kill(frozen, signal.SIGCONT)
        _wait(lambda: any(w.poll() is not None for w in workers) or _states(root) == ["done"] * 4)
        assert "free again" in _said(root, other)
    log = (root / "log" / "videoarchiver.log").read_text()
    assert " is gone" not in log and "lost its claim" not in log, "nobody was taken for dead"
    claims = re.findall(r"(clip\d\.mkv): claimed by worker", log)
    assert sorted(claims) == [f"clip{number}.mkv" for number in range(4)], "each claimed once"
