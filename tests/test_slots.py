"""The ffmpeg slots: a capacity limiter serving short steps first, then files in turn."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from videoarchiver.slots import Place, Slots

pytestmark = pytest.mark.anyio


async def _waiting(slots: Slots, count: int) -> None:
    """Return once `count` steps wait for a slot (each queued in the order started)."""
    with anyio.fail_after(10):
        while slots.waiting < count:
            await anyio.lowlevel.checkpoint()


async def test_short_steps_go_first_then_long_ones_file_by_file_costliest_first() -> None:
    slots = Slots(1)
    order: list[str] = []

    async def step(name: str, place: Place | None) -> None:
        async with slots.slot(place):
            order.append(name)
            await anyio.sleep(0.01)

    # The one slot is busy: the rest queue, in this order.
    queued: list[tuple[str, Place | None]] = [
        ("file 2", (2, 0)), ("mux", None), ("file 1 audio", (1, -10)), ("join", None),
        ("file 1 video", (1, -99)), ("file 1 audio again", (1, -10)),
    ]  # fmt: skip
    async with anyio.create_task_group() as group, slots.slot((0,)):
        for number, (name, place) in enumerate(queued, 1):
            group.start_soon(step, name, place)
            await _waiting(slots, number)
        assert slots.waiting == len(queued)
    assert order == [
        "mux", "join", "file 1 video", "file 1 audio", "file 1 audio again", "file 2"
    ]  # fmt: skip
    assert slots.waiting == 0


async def test_never_more_than_its_slots_at_once() -> None:
    slots = Slots(2)
    running, most = 0, 0

    async def step(place: Place | None) -> None:
        nonlocal running, most
        async with slots.slot(place):
            running += 1
            most = max(most, running)
            await anyio.sleep(0.005)
            running -= 1

    async with anyio.create_task_group() as group:
        for number in range(12):
            group.start_soon(step, (number,) if number % 3 else None)
    assert most == 2


async def test_a_step_cancelled_while_waiting_leaves_its_place() -> None:
    slots = Slots(1)
    async with slots.slot():
        with anyio.move_on_after(0.01):
            async with slots.slot():
                pytest.fail("the one slot is held")
        assert slots.waiting == 0
    with anyio.fail_after(1):  # free again
        async with slots.slot((1,)):
            pass


async def test_a_slot_handed_to_a_step_cancelled_meanwhile_passes_on() -> None:
    # anyio lets a task whose wait just ended run on to its next checkpoint; a plain asyncio
    # cancellation (a task cancelled from outside) still lands there.
    slots = Slots(1)
    got: list[str] = []

    async def step(name: str) -> None:
        async with slots.slot():
            got.append(name)

    async with slots.slot():
        cancelled = asyncio.ensure_future(step("cancelled"))
        await _waiting(slots, 1)
        following = asyncio.ensure_future(step("next"))
        await _waiting(slots, 2)  # both wait, in this order
    cancelled.cancel()  # handed the slot just now, cancelled before it ran
    await asyncio.gather(cancelled, following, return_exceptions=True)
    assert got == ["next"]
    assert slots.waiting == 0
    with anyio.fail_after(1):
        async with slots.slot():
            pass
