"""The one table of legal state moves (h11's `_state.py` is the model): every move has a
name (its verb), the states it starts from and the state it ends in, and every statement of
a backend that changes a state takes them from here, in the same statement that makes it.

Two kinds of verbs: those that pick their rows by state (`claim` takes a pending file,
`release` the running ones of a worker, `retry` the failed ones) leave a row in any other
state as it is; those that name their row (`finish` file 3) refuse any other state with
IllegalMove, naming both. A named row may be moved again to where it is already (a statement
sent again after a lost connection writes what is there), but by `reopen`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, NamedTuple

from videoarchiver.errors import StateError
from videoarchiver.state.records import FileState, JobState, OutputState

Entity = Literal["file", "output", "job"]


class Move(NamedTuple):
    sources: frozenset[StrEnum]  # the states it starts from
    target: StrEnum | None  # where it ends (None: the row is forgotten)

    def starts(self, again: bool = False) -> list[str]:
        """Its starting states (sorted, for a statement's `IN`); `again`: its target too."""
        return sorted({*self.sources, *([self.target] if again and self.target else [])})


def _move(sources: set[StrEnum], target: StrEnum | None) -> Move:
    return Move(frozenset(sources), target)


# entity → verb → its move; the comment says which store methods make it, and why.
MOVES: dict[Entity, dict[str, Move]] = {
    "file": {
        # `claim`: the next pending file, now under a worker's lease
        "claim": _move({FileState.PENDING}, FileState.RUNNING),
        # `release`, `remove_worker`: a worker gives its claim back (stop, pause, not in raw/)
        "release": _move({FileState.RUNNING}, FileState.PENDING),
        # `release_expired`: its worker's lease ran out (it died, or lost the store)
        "expire": _move({FileState.RUNNING}, FileState.PENDING),
        # `release`, `release_expired`: given back as a user asked (`ask_stop`): held as
        # failed until retried
        "set_aside": _move({FileState.RUNNING}, FileState.FAILED),
        # `finish_file`
        "finish": _move({FileState.RUNNING}, FileState.DONE),
        # `fail_file`: failed while running, or unreadable when found
        "fail": _move({FileState.PENDING, FileState.RUNNING}, FileState.FAILED),
        # `forget_replaced`: new content at its path, after it published something: kept
        "replace": _move({FileState.PENDING}, FileState.FAILED),
        # `forget_replaced`: new content at its path, and nothing of it published: it goes
        "forget": _move({FileState.PENDING, FileState.FAILED}, None),
        # `retry`: a user (or the end of a wait for space) tries it again
        "retry": _move({FileState.FAILED}, FileState.PENDING),
        # `reopen`: some of its published outputs are to be made again (`retry --missing`)
        "reopen": _move({FileState.DONE}, FileState.PENDING),
    },
    "output": {
        # `set_output(running)`: made, or made again: it failed, or its publishing was
        # interrupted before the file was in place
        "start": _move(
            {OutputState.PENDING, OutputState.FAILED, OutputState.PUBLISHING}, OutputState.RUNNING
        ),
        # `set_output(publishing)`: the intent is recorded; the file may be in place next
        "publish": _move({OutputState.RUNNING}, OutputState.PUBLISHING),
        # `set_output(done)`: published (or a published file adopted)
        "finish": _move({OutputState.RUNNING, OutputState.PUBLISHING}, OutputState.DONE),
        # `set_output(failed)`
        "fail": _move(
            {OutputState.PENDING, OutputState.RUNNING, OutputState.PUBLISHING}, OutputState.FAILED
        ),
        # `set_output(skipped)`: the file has nothing for it (no montage without video)
        "skip": _move(
            {OutputState.PENDING, OutputState.RUNNING, OutputState.FAILED}, OutputState.SKIPPED
        ),
        # with its file's: `release`, `release_expired`, `remove_worker` …
        "release": _move({OutputState.RUNNING}, OutputState.PENDING),
        # … `retry` …
        "retry": _move({OutputState.FAILED}, OutputState.PENDING),
        # … and `reopen`
        "reopen": _move({OutputState.DONE}, OutputState.PENDING),
    },
    "job": {
        # `save_job(running)`: begun, or begun again (a finished part gone from work/)
        "start": _move({JobState.PENDING, JobState.FAILED, JobState.DONE}, JobState.RUNNING),
        # `save_job(done)`: also at once (a stream copied whole)
        "finish": _move({JobState.PENDING, JobState.RUNNING}, JobState.DONE),
        # `save_job(failed)`
        "fail": _move({JobState.PENDING, JobState.RUNNING}, JobState.FAILED),
        # with its file's: `release` …, `retry` and `reopen` (a montage sheet made again)
        "release": _move({JobState.RUNNING}, JobState.PENDING),
        "retry": _move({JobState.FAILED}, JobState.PENDING),
        "reopen": _move({JobState.DONE}, JobState.PENDING),
    },
}


class IllegalMove(StateError):
    """A move the table does not allow: a bug of ours, named with both states."""


def verb_to(entity: Entity, target: StrEnum) -> str:
    """The verb a worker's write of state `target` makes (`set_output`, `save_job`): the one
    move of `entity` that ends there. A state that several verbs end in (pending: released,
    retried or reopened) is only reached through them."""
    verbs = [verb for verb, move in MOVES[entity].items() if move.target == target]
    if len(verbs) != 1:
        raise IllegalMove(f"{entity}: {target} is reached only by {' or '.join(verbs)}")
    return verbs[0]


def refuse(entity: Entity, what: str, verb: str, old: str, new: StrEnum | None) -> IllegalMove:
    return IllegalMove(f"{entity} {what} cannot {verb}: {old} → {new} is not a legal move")
