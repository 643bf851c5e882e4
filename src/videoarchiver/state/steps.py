"""What a file's history says of a step (`Event.text`), and what a stop asked from the web
page makes of a file given back: the same for every backend."""

from __future__ import annotations

from typing import Any

from videoarchiver.planning.claim_order import Rank
from videoarchiver.state.records import (
    SET_ASIDE_REASON,
    EventKind,
    Figures,
    FileState,
    JobState,
    StopAsked,
)
from videoarchiver.state.transitions import IllegalMove

FROM_THE_PAGE = "web page"  # who asks a stop, a move to the front or a retry from the page


def job_ended(
    output: str, index: int, stream_type: str, decision: str, state: JobState, figures: Figures
) -> str:
    """A stream job recorded done or failed, with its decision (and its size, or error)."""
    said = f"{output} stream {index} ({stream_type}): {decision}, {state}"
    shown = figures.shown()
    if state is JobState.DONE and isinstance(ratio := shown.get("ratio"), float):
        return f"{said}, {100 * ratio:.0f}% of raw"
    if state is JobState.FAILED and (error := shown.get("error")):
        return f"{said}: {error}"
    return said


def given_back(verb: str, worker: str | None, stop: str | None) -> tuple[EventKind, str]:
    """A running file given back by `verb` (`release`, `expire`), and what was asked of it."""
    if stop == StopAsked.SET_ASIDE:
        return EventKind.SET_ASIDE, "stopped as asked from the web page; held until retried"
    if stop == StopAsked.RELEASE:
        return EventKind.RELEASED, "stopped as asked from the web page; back in the queue"
    if verb == "expire":
        return EventKind.EXPIRED, f"the lease of worker {worker} ran out; back to pending"
    return EventKind.RELEASED, "given back by its worker; back to pending"


def given_back_by(verb: str, asked: str | None) -> tuple[str, dict[str, Any]]:
    """The verb a file given back by `verb` moves by, and the columns it sets, after what a
    user asked of it (`ask_stop`): set aside as failed, or stopped: claimed after the files
    it waited with (`claim_rank`)."""
    if asked == StopAsked.SET_ASIDE:
        return "set_aside", {"error": SET_ASIDE_REASON}
    return verb, {"claim_rank": Rank.STOPPED} if asked == StopAsked.RELEASE else {}


def stop_asked(asked: StopAsked) -> str:
    return "to set aside" if asked is StopAsked.SET_ASIDE else "back to pending"


def not_now(file_id: int, state: str, what: str, needed: FileState) -> IllegalMove:
    """Why a file cannot be asked `what` (to stop, to move to the front) in `state`."""
    return IllegalMove(f"file {file_id} is {state}: only a {needed} file can {what}")
