"""One flat error hierarchy: callers catch `VideoArchiverError` to record a failure and go on.

Every error carries a message written for the user who reads `videoarchiver status`, because
that message is what ends up in the state database and the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from videoarchiver.planning.messages import one_line, printable


class VideoArchiverError(Exception):
    """Root of every error this package raises on purpose: its message is one line for
    `status`; `detail`, when there is more to say (ffmpeg's stderr), the whole text, message
    included."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class ConfigError(VideoArchiverError):
    """The configuration file or environment holds an unknown key or a wrong value."""


class ToolError(VideoArchiverError):
    """ffmpeg or ffprobe is missing, or lacks an encoder the configuration names."""


class ProbeError(VideoArchiverError):
    """ffprobe cannot read the file, or it holds no audio or video stream."""


class ProcessError(VideoArchiverError):
    """An ffmpeg/ffprobe process exited with an error: the message names its decisive line,
    `detail` holds its whole stderr tail."""


class VerifyError(VideoArchiverError):
    """A finished output does not match its raw file; it is not published."""


class PublishError(VideoArchiverError):
    """An output could not be put in place without overwriting something that is not ours."""


class SourceChangedError(VideoArchiverError):
    """The raw file was replaced or removed while its outputs were being made."""


class SourceUnreadableError(SourceChangedError):
    """The raw file can no longer be read (its permissions changed): it may be the same."""


class StateError(VideoArchiverError):
    """The state database is missing, damaged or replaced: the daemon cannot go on safely."""


class StoreRefused(StateError):
    """The state's server refused one change (a value it cannot take): that file's, not
    every file's, problem."""


class StoreUnavailable(VideoArchiverError):
    """The state's server cannot be reached now: no failure of any file; what was being done
    is done again once it answers (by this worker, or another after the lease)."""


class StreamFailures(ExceptionGroup[Exception]):
    """The stream jobs of one output that failed, each error as raised (its type kept) with
    the stream it belongs to as its note."""

    @classmethod
    def of(cls, failures: list[tuple[int, Exception]]) -> StreamFailures:
        for index, exc in failures:
            exc.add_note(f"stream {index}")
        return cls("stream jobs failed", [exc for _index, exc in failures])

    def lines(self, say: Callable[[BaseException], str]) -> str:
        """`stream 0: <what say() says of its error>; stream 1: …`"""
        return "; ".join(
            f"{' '.join(getattr(exc, '__notes__', []))}: {say(exc)}" for exc in self.exceptions
        )


class ClaimLost(Exception):
    """This worker's claim on a file ended (its lease ran out and another worker took it):
    no failure of the file, so not a VideoArchiverError; the work on it stops."""


def describe_error(exc: BaseException) -> str:
    """The whole reason, for the log and `status --json`."""
    if isinstance(exc, StreamFailures):
        return exc.lines(describe_error)
    if isinstance(exc, OSError):
        where = f" ({printable(str(exc.filename))})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    if isinstance(exc, VideoArchiverError) and exc.detail:
        return exc.detail
    return str(exc)


def short_reason(exc: BaseException) -> str:
    """One line of at most ~200 characters for `status`: what failed and why."""
    if isinstance(exc, StreamFailures):
        return one_line(exc.lines(short_reason))
    text = str(exc) if isinstance(exc, VideoArchiverError) else describe_error(exc)
    return one_line(text)


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside `exc`, looking through exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def first_of(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of `kinds` in `exc`, looking inside exception groups."""
    return next((leaf for leaf in leaves(exc) if isinstance(leaf, kinds)), None)
