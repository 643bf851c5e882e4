"""What a file's history says of a step (`Event.text`), the same for every backend."""

from __future__ import annotations

from videoarchiver.state.records import EventKind, Figures, FileState, JobState, StopAsked
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
        return EventKind.RELEASED, "stopped as asked from the web page; back to pending"
    if verb == "expire":
        return EventKind.EXPIRED, f"the lease of worker {worker} ran out; back to pending"
    return EventKind.RELEASED, "given back by its worker; back to pending"


def stop_asked(asked: StopAsked) -> str:
    return "stop asked: " + ("to set aside" if asked is StopAsked.SET_ASIDE else "back to pending")


def not_now(file_id: int, state: str, what: str, needed: FileState) -> IllegalMove:
    """Why a file cannot be asked `what` (to stop, to move to the front) in `state`."""
    return IllegalMove(f"file {file_id} is {state}: only a {needed} file can {what}")
