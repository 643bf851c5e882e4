"""Waiting for disk space: after work fails for want of space, new work waits and is tried
again, first after `base` seconds, then twice as long each time space runs out again (up to
an hour); work that completes ends the waiting. And keeping room: no new work starts while a
disk the root writes to has less free than `min_free_space` (at most 5 % of that disk), so
that the work already running, the state and the logs still have room to finish."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from videoarchiver.errors import StoreUnavailable

log = logging.getLogger(__name__)
MAX_WAIT_SECONDS = 3600.0
SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SPACE_MESSAGES = ("No space left on device", "Disk quota exceeded")
HEADROOM_SHARE = 0.05  # the most of a disk kept free, however large `min_free_space`


def space_message(text: str) -> bool:
    """True when a recorded reason says a disk (or quota) was full."""
    return any(message in text for message in SPACE_MESSAGES)


def short_of_space(exc: BaseException) -> bool:
    """True when `exc` says a disk (or quota) is full, as an OSError or in ffmpeg's words."""
    if isinstance(exc, BaseExceptionGroup):
        return any(short_of_space(inner) for inner in exc.exceptions)
    if isinstance(exc, OSError) and exc.errno in SPACE_ERRNOS:
        return True
    return space_message(str(exc))


def passing(exc: BaseException) -> bool:
    """True when the state cannot be written for now (its server is away, or its disk is
    full): what wanted to write tries again later, nothing fails for it."""
    return isinstance(exc, StoreUnavailable) or short_of_space(exc)


class SpaceBackoff:
    def __init__(self, base: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self._clock = clock
        self._wait = 0.0
        self._until = 0.0

    def short(self) -> float:
        """Space ran out: returns how long new work now waits. Within a wait, more work
        failing for the same full disk does not make it longer."""
        if self.remaining:
            return self.remaining
        self._wait = min(MAX_WAIT_SECONDS, max(self.base, 2 * self._wait))
        self._until = self._clock() + self._wait
        return self._wait

    def ran_out(self, what: str) -> None:
        """`short`, said in the log for `what` (a file's name, or the step that failed)."""
        wait = self.short()
        log.warning("%s: the disk is full; new work waits %g s, then it is tried again", what, wait)

    def recovered(self) -> None:
        self._wait = self._until = 0.0

    @property
    def remaining(self) -> float:
        """Seconds until new work may start (0: now)."""
        return max(0.0, self._until - self._clock())


def headroom(minimum: int, total: int) -> int:
    """The free bytes kept on a disk of `total` bytes: `minimum`, at most 5 % of it."""
    return min(minimum, int(total * HEADROOM_SHARE))


def short_of_room(folders: Iterable[Path], minimum: int) -> tuple[Path, int, int] | None:
    """The first of `folders` whose disk has less free than its headroom, with its free
    bytes and headroom; None when each has room (a folder not there is not asked)."""
    for folder in folders:
        try:
            disk = os.statvfs(folder)
        except OSError:
            continue
        free, kept = disk.f_bavail * disk.f_frsize, headroom(minimum, disk.f_blocks * disk.f_frsize)
        if free < kept:
            return folder, free, kept
    return None
