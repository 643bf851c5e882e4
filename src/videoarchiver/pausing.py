"""`videoarchiver pause` / `resume`: while paused no new ffmpeg starts; those running finish.

The pause lives in the state, so a restarted daemon stays paused and any command sees it; the
daemon reads it every few seconds and holds the gate that every ffmpeg passes before it starts.
"""

from __future__ import annotations

import logging

import anyio

from videoarchiver.state import StateDB

log = logging.getLogger(__name__)
PAUSED = "paused"  # the control's name; its value says since when
POLL_SECONDS = 2.0


class Gate:
    """Open unless paused; `wait` returns once it is open."""

    def __init__(self) -> None:
        self._open = anyio.Event()
        self._open.set()

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    def pause(self) -> None:
        if not self.paused:
            self._open = anyio.Event()

    def resume(self) -> None:
        self._open.set()

    async def wait(self) -> None:
        await self._open.wait()


async def apply_pause(state: StateDB, gate: Gate) -> None:
    """Set `gate` as the state says now."""
    since = await state.control(PAUSED)
    if since is not None and not gate.paused:
        log.info("paused (since %s): no new ffmpeg starts until `videoarchiver resume`", since)
        gate.pause()
    elif since is None and gate.paused:
        log.info("resumed")
        gate.resume()


async def follow_pause(state: StateDB, gate: Gate) -> None:
    """Keep `gate` as the state says, for as long as the daemon runs."""
    while True:
        await anyio.sleep(POLL_SECONDS)
        await apply_pause(state, gate)
