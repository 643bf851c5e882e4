"""Holding work: `videoarchiver pause` / `resume` and the working hours (`active_hours`).

While anything holds the gate no new ffmpeg starts; `pause --now` and the end of the working
hours also stop what runs, cleanly (ffmpeg closes its part, which is salvaged when work goes on).
The pause lives in the state, so a restarted daemon stays paused and any command sees it; the
daemon reads it every few seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import anyio

from videoarchiver.planning.hours import within
from videoarchiver.state import Store

log = logging.getLogger(__name__)
PAUSED = "paused"  # the control's name; its value says since when (NOW first: stop what runs)
NOW = "now "


def pause_value(how: str) -> str:
    """The PAUSED control's value: `how` ("" to let running work finish, NOW to stop it),
    then since when."""
    return how + datetime.now().astimezone().isoformat(timespec="seconds")


POLL_SECONDS = 2.0
HOURS_POLL_SECONDS = 30.0


class Gate:
    """Open while nothing holds it; `wait` returns once it is open. Work that a hold may stop
    at once runs inside `stoppable`."""

    def __init__(self) -> None:
        self._holds: set[str] = set()
        self._stopping: set[str] = set()  # holds that also stop what runs
        self._open = anyio.Event()
        self._open.set()
        self._running: set[anyio.CancelScope] = set()

    @property
    def paused(self) -> bool:
        return bool(self._holds)

    def holds(self, reason: str) -> bool:
        return reason in self._holds

    def stops(self, reason: str) -> bool:
        """Whether the hold `reason` also stops what runs."""
        return reason in self._stopping

    def hold(self, reason: str, stop_running: bool = False) -> None:
        """Hold the gate for `reason`; held again, its stop mode is the new one (a plain
        pause made `--now` stops what runs, and the other way round)."""
        if not self._holds:
            self._open = anyio.Event()
        self._holds.add(reason)
        if not stop_running:
            self._stopping.discard(reason)
            return
        self._stopping.add(reason)
        for scope in list(self._running):
            scope.cancel()

    def release(self, reason: str) -> None:
        self._holds.discard(reason)
        self._stopping.discard(reason)
        if not self._holds:
            self._open.set()

    async def wait(self) -> None:
        await self._open.wait()

    @contextmanager
    def stoppable(self) -> Iterator[anyio.CancelScope]:
        """A scope a stopping hold cancels: at once if one is on when it is entered (work
        claimed at the moment of `pause --now`)."""
        with anyio.CancelScope() as scope:
            if self._stopping:
                scope.cancel()
            self._running.add(scope)
            try:
                yield scope
            finally:
                self._running.discard(scope)


async def apply_pause(state: Store, gate: Gate) -> None:
    """Set `gate` as the user's pause in the state says now."""
    since = await state.control(PAUSED)
    now = since is not None and since.startswith(NOW)
    if since is not None and (not gate.holds(PAUSED) or gate.stops(PAUSED) != now):
        log.info("paused (since %s)%s: no new ffmpeg starts until `videoarchiver resume`",
                 since.removeprefix(NOW), "; running work stops" if now else "")  # fmt: skip
        gate.hold(PAUSED, stop_running=now)
    elif since is None and gate.holds(PAUSED):
        log.info("resumed")
        gate.release(PAUSED)


async def follow_pause(state: Store, gate: Gate) -> None:
    """Keep `gate` as the state says, for as long as the daemon runs."""
    while True:
        await anyio.sleep(POLL_SECONDS)
        await apply_pause(state, gate)


def apply_hours(window: str, gate: Gate, now: datetime) -> None:
    """Inside the working hours work goes on; outside, it stops and waits."""
    inside = within(window, now.time())
    if not inside and not gate.holds("hours"):
        log.info("outside active hours %s: running work stops, the rest waits", window)
        gate.hold("hours", stop_running=True)
    elif inside and gate.holds("hours"):
        log.info("inside active hours %s: work goes on", window)
        gate.release("hours")


async def follow_hours(
    window: str, gate: Gate, clock: Callable[[], datetime] = datetime.now
) -> None:
    while True:
        apply_hours(window, gate, clock())
        await anyio.sleep(HOURS_POLL_SECONDS)
