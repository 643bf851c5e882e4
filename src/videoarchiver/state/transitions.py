"""The one table of legal state moves (h11's `_state.py` is the model): every backend checks a
move against it in the same statement that makes it, and refuses any other.

Staying in a state is always legal (a repeat after a kill writes what is already there).
"""

from __future__ import annotations

from enum import StrEnum

from videoarchiver.errors import StateError
from videoarchiver.state.records import FileState, JobState, OutputState

# entity → {new state: the states it may come from}
MOVES: dict[str, dict[StrEnum, frozenset[StrEnum]]] = {
    "file": {
        FileState.RUNNING: frozenset({FileState.PENDING}),  # claimed
        FileState.DONE: frozenset({FileState.RUNNING}),
        # failed while running, unreadable when found, or its content replaced
        FileState.FAILED: frozenset({FileState.PENDING, FileState.RUNNING}),
        # released (stop, pause, lease expired), retried, or outputs to be made again
        FileState.PENDING: frozenset({FileState.RUNNING, FileState.FAILED, FileState.DONE}),
    },
    "output": {
        # made again: failed, or its publishing was interrupted before the file was in place
        OutputState.RUNNING: frozenset(
            {OutputState.PENDING, OutputState.FAILED, OutputState.PUBLISHING}
        ),
        OutputState.PUBLISHING: frozenset({OutputState.RUNNING}),
        OutputState.DONE: frozenset({OutputState.RUNNING, OutputState.PUBLISHING}),
        OutputState.FAILED: frozenset(
            {OutputState.PENDING, OutputState.RUNNING, OutputState.PUBLISHING}
        ),
        OutputState.SKIPPED: frozenset(
            {OutputState.PENDING, OutputState.RUNNING, OutputState.FAILED}
        ),
        OutputState.PENDING: frozenset({OutputState.RUNNING, OutputState.FAILED, OutputState.DONE}),
    },
    "job": {
        # a finished part that is gone from work/ is made again
        JobState.RUNNING: frozenset({JobState.PENDING, JobState.FAILED, JobState.DONE}),
        JobState.DONE: frozenset({JobState.PENDING, JobState.RUNNING}),
        JobState.FAILED: frozenset({JobState.PENDING, JobState.RUNNING}),
        JobState.PENDING: frozenset({JobState.RUNNING, JobState.FAILED, JobState.DONE}),
    },
}


class IllegalMove(StateError):
    """A move the table does not allow: a bug of ours, named with both states."""


def sources(entity: str, new: StrEnum) -> list[str]:
    """The states a move to `new` may start from, itself included."""
    return sorted({new, *MOVES[entity][new]})


def refuse(entity: str, what: str, old: str, new: StrEnum) -> IllegalMove:
    return IllegalMove(f"{entity} {what}: {old} → {new} is not a legal move")
