"""The order in which workers claim pending files, said once: by rank (the lowest first), then
the costliest (estimated CPU seconds, `planning.cost`), then the first registered (id). The
store keeps a file's rank and cost in columns of their own and sorts by them in this order.

Files ffprobe cannot read come first: they fail at once, and a user hears of them at the start
of a batch, not at its end. Files without video next: an audio encode runs on one thread, so it
is best run beside encodes that take up the other cores, never left alone at the end of a
batch. A file not yet estimated has no rank and comes after all the others (workers estimate
pending files before they claim any).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum


class Rank(IntEnum):
    """A pending file's place in the claim order, before its cost. The store keeps these
    numbers: never change one; the gaps leave room for new ranks (a file a user moves to
    the front of the queue ranks below UNREADABLE)."""

    FRONT = 5  # a user moved it to the front of the queue
    UNREADABLE = 10  # ffprobe cannot read its header
    AUDIO_ONLY = 20  # it has no video stream
    VIDEO = 30
    STOPPED = 35  # stopped by a user from the web page: after the others it waited with
    ABSENT = 40  # not in raw/ as recorded when it was claimed: after all the others


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a file's claim order is estimated from: its rank and its cost."""

    rank: Rank
    cpu_seconds: float | None = None  # its encodes' estimated CPU seconds (None: unknown)


UNREADABLE = Estimate(Rank.UNREADABLE)
ABSENT = Estimate(Rank.ABSENT)


def claim_key(estimate: Estimate | None, file_id: int) -> tuple[float, float, int]:
    """The claim order as a sort key, the smallest first (the SQL stores' `ORDER BY` says the
    same): the rank, none last; the costliest, an unknown cost last; the first registered."""
    if estimate is None:
        return math.inf, math.inf, file_id
    cost = estimate.cpu_seconds
    return estimate.rank, math.inf if cost is None else -cost, file_id
