"""Working hours and the gate that holds work (pure, with a fake clock)."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from videoarchiver.display import queue_text
from videoarchiver.pausing import NOW, PAUSED, Gate, apply_hours, apply_pause, pause_value
from videoarchiver.planning.hours import within
from videoarchiver.progress import Outcome, ProgressHub, TaskInfo
from videoarchiver.state import open_store


@pytest.mark.parametrize(
    ("window", "at", "inside"),
    [("22:00-07:00", time(23, 30), True), ("22:00-07:00", time(6, 59), True),
     ("22:00-07:00", time(7, 0), False), ("22:00-07:00", time(12, 0), False),
     ("09:00-17:00", time(9, 0), True), ("09:00-17:00", time(17, 0), False),
     ("00:00-00:00", time(3, 0), True)],
)  # fmt: skip
def test_within_the_window_also_across_midnight(window: str, at: time, inside: bool) -> None:
    assert within(window, at) is inside


@pytest.mark.anyio
async def test_leaving_the_hours_stops_running_work_and_holds_the_rest() -> None:
    gate = Gate()
    stopped = []
    started = anyio.Event()

    async def work() -> None:
        with gate.stoppable() as scope:
            started.set()
            await anyio.sleep(60)
        stopped.append(scope.cancelled_caught)

    async with anyio.create_task_group() as group:
        group.start_soon(work)
        await started.wait()
        apply_hours("22:00-07:00", gate, datetime(2026, 11, 26, 7, 0))
    assert stopped == [True] and gate.paused
    with anyio.move_on_after(0.05) as waited:
        await gate.wait()
    assert waited.cancelled_caught, "new work waits outside the hours"
    apply_hours("22:00-07:00", gate, datetime(2026, 11, 26, 22, 0))
    assert not gate.paused
    gate.hold("paused")
    apply_hours("22:00-07:00", gate, datetime(2026, 11, 26, 23, 0))
    assert gate.paused, "a user's pause is not lifted by the hours"


@pytest.mark.anyio
async def test_pause_now_after_a_plain_pause_stops_what_runs(tmp_path: Path) -> None:
    """`pause` then `pause --now`: the second said "running work stops now" and stopped
    nothing (the next file's archive finished 48 s later); `pause` again lets work run."""
    gate = Gate()
    stopped = []
    started = anyio.Event()

    async def work() -> None:
        with gate.stoppable() as scope:
            started.set()
            await anyio.sleep(60)
        stopped.append(scope.cancelled_caught)

    (tmp_path / "work").mkdir()
    async with open_store(tmp_path) as store:
        async with anyio.create_task_group() as group:
            group.start_soon(work)
            await started.wait()
            await store.set_control(PAUSED, pause_value(""))
            await apply_pause(store, gate)
            await anyio.lowlevel.checkpoint()
            assert gate.paused and not stopped, "a plain pause lets running work finish"
            await store.set_control(PAUSED, pause_value(NOW))
            await apply_pause(store, gate)
        assert stopped == [True]
        await store.set_control(PAUSED, pause_value(""))
        await apply_pause(store, gate)
    with gate.stoppable() as scope:
        await anyio.lowlevel.checkpoint()
    assert gate.paused and not scope.cancelled_caught, "work claimed from then on runs"


def test_a_stopped_task_is_shown_interrupted_and_the_queue_says_it_is_stopping() -> None:
    hub = ProgressHub(clock=lambda: 0.0)
    ended: list[Outcome | None] = []

    async def counted() -> None:
        with (
            anyio.CancelScope() as scope,
            hub.counting(TaskInfo(1, "a.mp4", "montage", "m")) as task,
        ):
            scope.cancel()
            await anyio.sleep(1)
        ended.append(task.outcome)

    anyio.run(counted)
    assert ended == [Outcome.INTERRUPTED], "never shown as failed"
    hub.announce("stopping: waiting for 2 ffmpeg to close their parts")
    assert queue_text(hub.queue).startswith("stopping: waiting for 2 ffmpeg to close their parts")
