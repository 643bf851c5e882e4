"""Working hours and the gate that holds work (pure, with a fake clock)."""

from __future__ import annotations

from datetime import datetime, time

import anyio
import pytest

from videoarchiver.pausing import Gate, apply_hours
from videoarchiver.planning.hours import within


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

    async def work() -> None:
        with gate.stoppable() as scope:
            await anyio.sleep(60)
        stopped.append(scope.cancelled_caught)

    async with anyio.create_task_group() as group:
        group.start_soon(work)
        await anyio.sleep(0.01)
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
