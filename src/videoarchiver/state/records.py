"""What the store holds, as typed records: the same for every backend.

States are enums (their values are what the store writes); figures are a record, not keyword
arguments; a stream job's parts are a list of `Part`; paths are relative to the root.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

from videoarchiver.planning.resume import Part


class NoSuchFile(LookupError):
    """No file has this id (it was never given out, or its row was forgotten)."""


class FileState(StrEnum):
    PENDING = "pending"  # waiting to be claimed
    RUNNING = "running"  # claimed by a worker, under its lease
    DONE = "done"
    FAILED = "failed"


class OutputState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PUBLISHING = "publishing"  # the intent is recorded: the file may be in place already
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # the file has nothing for it (no montage without video)


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINISHED = (OutputState.DONE, OutputState.SKIPPED)


class EventKind(StrEnum):
    """What a step of a file's history was (`Event.kind`)."""

    FOUND = "found"  # registered from raw/
    CLAIMED = "claimed"  # by a worker
    STREAM = "stream"  # a stream job ended, done or failed, with its decision
    RESUMED = "resumed"  # an encode goes on from salvaged parts
    PUBLISHED = "published"  # an output is in place
    DONE = "done"
    FAILED = "failed"
    RAW = "raw"  # what became of the raw file once done
    RELEASED = "released"  # given back to pending (a stop, a pause, its worker gone)
    EXPIRED = "expired"  # its worker's lease ran out: back to pending for another
    SET_ASIDE = "set aside"  # stopped and held as failed until retried
    STOP_ASKED = "stop asked"  # from the web page, for its worker to carry out
    FRONT = "moved to front"  # of the queue, by a user
    RETRIED = "retried"
    REOPENED = "reopened"  # some published outputs are to be made again


class StopAsked(StrEnum):
    """What a user asked of a running file (`Store.ask_stop`), carried out by its worker."""

    RELEASE = "release"  # back to pending with its parts
    SET_ASIDE = "set aside"  # failed, until retried


SET_ASIDE_REASON = "set aside from the web page"


@dataclass(frozen=True, slots=True)
class FileRow:
    id: int
    rel_path: str  # relative to raw/ (a non-UTF-8 name as `/` + escapes: planning.paths)
    size: int
    mtime_ns: int  # a hint only: the identity is (rel_path, size, fingerprint)
    fingerprint: str | None  # None for rows recorded before fingerprints: read on next sight
    stem: str
    state: FileState
    error: str | None  # one line for `status`
    error_detail: str | None  # the whole text (ffmpeg's stderr), for `status --json`
    warnings: tuple[str, ...]
    raw_action: str | None
    worker: str | None = None  # the worker holding its claim while running
    sha256: str | None = None  # of its whole content, taken while it was first processed
    claims: int = 0  # how many times it was claimed: the latest claim's number


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a file's history, at the store's time (Unix seconds)."""

    file_id: int
    at: float
    kind: EventKind
    worker: str | None  # the worker (or "web page") that made it, if any
    text: str


@dataclass(frozen=True, slots=True)
class OutputRow:
    file_id: int
    kind: str  # one of outputs.KINDS
    state: OutputState
    path: str | None  # relative to the root
    size: int | None
    sha256: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Intent:
    """What a claim of a file recorded it was about to publish at a destination."""

    claim: int  # the claim's number (`FileRow.claims` while it held the file)
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Figures:
    """What a stream job measured or made; a field left None is left as recorded."""

    raw_bytes: int | None = None
    raw_seconds: float | None = None
    out_bytes: int | None = None
    out_seconds: float | None = None
    ratio: float | None = None
    wall_seconds: float | None = None
    error: str | None = None
    path: str | None = None  # a published sheet, relative to the root
    sha256: str | None = None
    parts: tuple[Part, ...] | None = None
    # A re-encoded video stream's SSIM against the raw on sampled frames (`planning.quality`):
    # the mean and the worst frame's; the note says why there are none (or how they came).
    ssim_mean: float | None = None
    ssim_worst: float | None = None
    ssim_note: str | None = None

    def given(self) -> dict[str, object]:
        """The figures that are set (CLEARED ones too)."""
        return {name: value for name in FIGURE_NAMES if (value := getattr(self, name)) is not None}

    def shown(self) -> dict[str, object]:
        """The figures that are set, for a log line."""
        return {name: value for name, value in self.given().items() if value not in (CLEARED, "")}


FIGURE_NAMES = tuple(Figures.__dataclass_fields__)
NO_FIGURES = Figures()
# A figure given as CLEARED is recorded as none (a None figure keeps what is recorded): what
# an earlier encode of the same stream measured goes with it.
CLEARED = math.nan


@dataclass(frozen=True, slots=True)
class StreamJobRow:
    stream_index: int
    stream_type: str  # video, audio, subtitle …
    decision: str
    state: JobState
    notes: tuple[str, ...]
    figures: Figures = field(default_factory=Figures)

    @property
    def parts(self) -> tuple[Part, ...]:
        return self.figures.parts or ()


@dataclass(frozen=True)
class Summary:
    """Files per state, and raw and archive bytes of the files whose archive is done."""

    files: dict[str, int]
    raw_bytes: int
    archive_bytes: int
    waiting_bytes: int = 0  # raw bytes of the files pending or running
    # Estimated CPU seconds (`cpu_cost`) of the files pending or running, and of those done.
    waiting_cost: float = 0.0
    done_cost: float = 0.0

    def count(self, state: FileState) -> int:
        return self.files.get(state, 0)


@dataclass(frozen=True, slots=True)
class Day:
    """The archives finished on one day (UTC): how many, raw bytes in, archive bytes out."""

    day: int  # days since 1970-01-01
    files: int
    raw_bytes: int
    archive_bytes: int


@dataclass(frozen=True, slots=True)
class Progress:
    """One running task of a worker, as last written to the store (about every 2 s)."""

    file_id: int
    label: str  # what runs: `s0 archive video`, `preview mux` …
    output: str
    worker: str
    done: float  # media seconds done
    total: float | None
    speed: float | None
    remaining: float | None  # seconds, estimated by the worker
    updated_at: float
    # When read: the last heartbeat of a worker whose lease on the file ran out (it is lost:
    # the task is stalled, not running, until another worker takes the file over).
    lost_since: float | None = None

    def read_at(self, now: float, lease_until: float | None, heartbeat: float | None) -> Progress:
        """The task as it stands `now`: its time left less the time since it was written
        (every reader shows the same figure), and lost if its worker's lease ran out."""
        if lease_until is None or lease_until < now:
            return replace(self, remaining=None, lost_since=heartbeat or self.updated_at)
        if self.remaining is None:
            return self
        return replace(self, remaining=max(0.0, self.remaining - max(0.0, now - self.updated_at)))


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float


ORDERS = ("newest", "saving", "longest")  # how a listing is ordered (`FileQuery.order`)


@dataclass(frozen=True, slots=True)
class FileQuery:
    """Which files `Store.listing` lists, and in which order. A range is (from, to), either
    bound None for none; the main video is the archive's first video stream."""

    search: str = ""  # a part of the path, in any case
    states: tuple[FileState, ...] = (FileState.DONE,)  # () for any
    changed: tuple[float | None, float | None] = (None, None)  # last change, Unix seconds
    seconds: tuple[float | None, float | None] = (None, None)  # duration
    side: tuple[int | None, int | None] = (None, None)  # the main video's shorter side, px
    codec: str = ""  # the main video's, as ffprobe names it (`h264`)
    folder: str = ""  # under `raw/<folder>/`
    order: str = "newest"  # of ORDERS: the last changed first, the most bytes saved, the longest


@dataclass(frozen=True, slots=True)
class Listed:
    """A file as a listing shows it, with the facts its probe and outputs hold (None: not
    known yet)."""

    file: FileRow
    seconds: float | None
    codec: str | None  # of the main video
    width: int | None
    height: int | None
    archive_bytes: int | None  # of its archive, once done
