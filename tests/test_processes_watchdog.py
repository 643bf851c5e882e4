"""The stall watchdog: a process that stops working is stopped; one that works is not."""

from __future__ import annotations

import sys

import pytest

from videoarchiver.errors import ProcessError
from videoarchiver.processes import Watchdog, run_process

pytestmark = pytest.mark.anyio


def test_watchdog_counts_progress_and_cpu_as_movement() -> None:
    now = [0.0]
    dog = Watchdog(10, clock=lambda: now[0])
    now[0] = 9.0
    dog.spent(1)  # the odd wake-up: not work
    assert not dog.stalled
    now[0] = 10.5
    assert dog.stalled
    dog.spent(2)  # a starved decoder's few ticks since the last movement add up
    assert not dog.stalled
    now[0] = 30.0
    dog.moved()
    assert not dog.stalled


async def test_a_process_that_ignores_sigterm_and_never_moves_is_killed() -> None:
    script = "trap '' TERM; exec sleep 60"
    result = await run_process(["sh", "-c", script], lambda _chunk: False, watchdog=Watchdog(1))
    assert result.stalled_after == 1
    with pytest.raises(ProcessError, match="stalled: no progress for 1 s"):
        result.check("preview encode")


async def test_a_busy_process_is_not_stalled() -> None:
    busy = "import time\nstart = time.monotonic()\nwhile time.monotonic() - start < 3: pass"
    result = await run_process(
        [sys.executable, "-c", busy], lambda _chunk: False, watchdog=Watchdog(1)
    )
    assert result.stalled_after is None and result.returncode == 0
