"""The ffmpeg slots: a capacity limiter (anyio's, but for its order) that serves the short
steps that end a file (a mux, a join, a salvage) first, then the long ones (encodes, a
montage) by their place: file by file in the order the files were claimed (the costliest
first), and within a file its costliest encodes first; first come, first served among
equals.

A file's last steps run as soon as a slot frees, between the encodes, rather than behind
every encode queued meanwhile; and the costliest file's encodes start first, whichever file
was read first: a batch does not end with every file's mux in a row, or one long encode,
on one core while the others idle."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled

Place = tuple[float, ...]  # where a long step waits: compared item by item


class Slots:
    def __init__(self, total: int) -> None:
        self._total = total
        self._taken = 0
        # A heap of (rank, place, arrival, wake-up): the smallest is served next.
        self._waiting: list[tuple[int, Place, int, anyio.Event]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        """How many steps wait for a slot."""
        return len(self._waiting)

    @asynccontextmanager
    async def slot(self, place: Place | None = None) -> AsyncIterator[None]:
        """Hold a slot, once one is free and no step to be served before waits: a short
        step (no `place`), or a long one at `place` (the smaller, the sooner)."""
        await self._acquire((0, ()) if place is None else (1, place))
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: tuple[int, Place]) -> None:
        await checkpoint_if_cancelled()
        if self._taken < self._total and not self._waiting:
            self._taken += 1
            await cancel_shielded_checkpoint()
            return
        wake = anyio.Event()
        entry = (*rank, next(self._order), wake)
        heapq.heappush(self._waiting, entry)
        try:
            await wake.wait()
        except BaseException:
            if wake.is_set():  # handed the slot as it was cancelled: pass it on
                self._release()
            else:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
            raise

    def _release(self) -> None:
        if self._waiting:  # the slot passes straight to the first in line
            heapq.heappop(self._waiting)[-1].set()
        else:
            self._taken -= 1
