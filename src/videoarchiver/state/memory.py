"""The store in memory: the `Store` contract in plain Python, for tests and for a daemon
that keeps nothing (`open_store(root, "memory:")`).

Every table is a dict of frozen records, so a change replaces a record and a transaction's
snapshot is a copy of the dicts, not of the records (copy on write): whatever raises inside
`transaction()`, or inside any one call, leaves the tables as they were. One task at a time
holds the store (an anyio lock, taken again freely by the task holding it), as one SQLite
connection serves a process. Every state move is a verb of `transitions.MOVES`, from the
states the table names, with the same fencing (`by=`), leases, claim numbers and claim order
(`planning.claim_order`) as `state.sql`; the clock that leases, heartbeats, estimates and
progress are read by can be injected.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

import anyio

from videoarchiver.errors import ClaimLost, StateError
from videoarchiver.planning.claim_order import Estimate, Rank, claim_key
from videoarchiver.state.records import (
    CLEARED,
    NO_FIGURES,
    Day,
    Event,
    EventKind,
    Figures,
    FileQuery,
    FileRow,
    FileState,
    Intent,
    JobState,
    Listed,
    NoSuchFile,
    OutputRow,
    OutputState,
    Progress,
    StopAsked,
    StreamJobRow,
    Summary,
    Worker,
)
from videoarchiver.state.sql import ESTIMATE_SECONDS, REPLACED, SKIP_MAX
from videoarchiver.state.steps import (
    FROM_THE_PAGE,
    given_back,
    given_back_by,
    job_ended,
    not_now,
    stop_asked,
)
from videoarchiver.state.transitions import MOVES, Entity, refuse, verb_to

P = ParamSpec("P")
T = TypeVar("T")
OutputKey = tuple[int, str]  # file id, output
JobKey = tuple[int, str, int]  # file id, output, stream index
IntentKey = tuple[int, str, int]  # file id, path, claim


@dataclass(frozen=True)
class _File:
    """A file's record with what only the store reads."""

    row: FileRow
    estimate: Estimate | None  # its place in the claim order (None: not estimated)
    probe: str | None
    updated_at: float
    lease_until: float | None = None
    estimating_until: float | None = None  # taken by a worker to estimate, until then
    stop_asked: StopAsked | None = None  # what a user asked of it while it runs


@dataclass(frozen=True)
class _Output:
    row: OutputRow
    updated_at: float


@dataclass(frozen=True)
class _Intent:
    output: str
    intent: Intent


@dataclass
class _Tables:
    files: dict[int, _File] = field(default_factory=dict)
    outputs: dict[OutputKey, _Output] = field(default_factory=dict)
    jobs: dict[JobKey, StreamJobRow] = field(default_factory=dict)
    intents: dict[IntentKey, _Intent] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    progress: dict[tuple[int, str], Progress] = field(default_factory=dict)
    controls: dict[str, str] = field(default_factory=dict)
    last_id: int = 0  # ids are never given out twice, also those of forgotten files
    events: list[Event] = field(default_factory=list)  # every file's history, in order

    def copy(self) -> _Tables:
        """A snapshot: the dicts copied, their (frozen) records shared."""
        return _Tables(
            dict(self.files), dict(self.outputs), dict(self.jobs), dict(self.intents),
            dict(self.workers), dict(self.progress), dict(self.controls), self.last_id,
            list(self.events),
        )  # fmt: skip


def _claim_order(file: _File) -> tuple[float, float, int]:
    return claim_key(file.estimate, file.row.id)


def _latest_first(file: _File) -> tuple[float, int]:
    return -file.updated_at, -file.row.id


def _within(value: float | None, bounds: tuple[float | None, float | None]) -> bool:
    """`value` in [low, high) (a bound None is none; no value is in no range), as SQL compares."""
    low, high = bounds
    if low is None and high is None:
        return True
    return value is not None and (low is None or value >= low) and (high is None or value < high)


def _number(value: object, kind: type[int] | type[float]) -> float | None:
    """A probe's figure as SQL's CAST reads it (`"12.5"` → 12.5), or None."""
    try:
        return kind(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None


def _figures(old: Figures, new: Figures) -> Figures:
    """`old` with the figures `new` sets (a CLEARED one set to none; no parts: none)."""
    given: dict[str, Any] = {
        name: None if value is CLEARED else value for name, value in new.given().items()
    }
    merged = replace(old, **given)
    return replace(merged, parts=merged.parts or None)


def _locked(
    method: Callable[Concatenate[MemoryStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[MemoryStore, P], Coroutine[Any, Any, T]]:
    """The call holds the store, and changes nothing if it raises (`MemoryStore._held`)."""

    @functools.wraps(method)
    async def locked(store: MemoryStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with store._held():
            return await method(store, *args, **kwargs)

    return locked


class MemoryStore:
    """Every method of `state.Store`, on dicts."""

    POLL_SECONDS = 1.0
    _OF_ROOTS: ClassVar[dict[Path, MemoryStore]] = {}

    @classmethod
    def of(cls, root: Path) -> MemoryStore:
        """The store of the root at `root` in this process: every opening of it shares one,
        as workers share a database, until the process ends."""
        return cls._OF_ROOTS.setdefault(root.resolve(), cls())

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """`clock`: the store's time in Unix seconds (leases, heartbeats, progress)."""
        self._now = clock
        self._tables = _Tables()
        self._lock = anyio.Lock()
        self._owner: object = None  # the task holding the store
        self._watchers: list[Callable[[], None]] = []

    # -- holding, transactions and waking ------------------------------------------------------

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        """The store for this task; the outermost hold puts the tables back as they were
        when what it holds raises."""
        me = anyio.get_current_task().id
        if self._owner == me:
            yield
            return
        async with self._lock:
            self._owner = me
            snapshot = self._tables.copy()
            try:
                yield
            except BaseException:
                self._tables = snapshot
                raise
            finally:
                self._owner = None

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Everything inside happens together or not at all; nested calls join the outer one."""
        return self._held()

    def registering(self) -> AbstractAsyncContextManager[None]:
        return self._held()  # one task at a time holds the store

    def ensure_in_place(self) -> None:
        """Memory cannot be deleted under a running worker."""

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever work changes, until cancelled."""
        self._watchers.append(wake)
        try:
            await anyio.sleep_forever()
        finally:
            self._watchers.remove(wake)

    def _work_changed(self) -> None:
        for wake in list(self._watchers):
            wake()

    # -- moves -----------------------------------------------------------------------------

    def _holds(self, file_id: int, by: str) -> bool:
        file = self._tables.files.get(file_id)
        return file is not None and file.row.worker == by

    def _check_claim(self, file_id: int, by: str) -> None:
        if not self._holds(file_id, by):
            raise ClaimLost(f"worker {by} no longer holds file {file_id}")

    def _move_file(self, file_id: int, verb: str, by: str | None = None, **columns: Any) -> bool:
        """Move a file by `verb` if the table allows (or again); with `by`, only while that
        worker holds its claim (ClaimLost otherwise; this very move made before is no error).
        False: there was nothing to move. Any move ends what a user asked of it running."""
        file = self._tables.files.get(file_id)
        if file is None:
            return False
        row, move = file.row, MOVES["file"][verb]
        new = move.target
        assert new is not None, f"{verb} forgets: no move to make"
        if row.state in move.starts(again=True) and (by is None or row.worker == by):
            lease = columns.pop("lease_until", file.lease_until)
            changed = replace(row, state=FileState(new), **columns)
            self._tables.files[file_id] = replace(
                file, row=changed, lease_until=lease, updated_at=self._now(), stop_asked=None
            )
            return True
        if by is not None and (row.state, row.worker) == (new, None):
            return False
        if by is not None and row.worker != by:
            raise ClaimLost(f"worker {by} no longer holds file {file_id}")
        raise refuse("file", str(file_id), verb, row.state, new)

    def _allowed(
        self,
        entity: Entity,
        key: Sequence[object],
        old: StrEnum | None,
        new: StrEnum,
        by: str | None,
    ) -> None:
        """Raise unless a row at `key` may be written in state `new` by the verb that ends
        there, from `old` (None: there is none yet) or again: ClaimLost when `by` does not
        hold the file, IllegalMove when the table forbids it."""
        verb = verb_to(entity, new)
        file_id = key[0]
        assert isinstance(file_id, int)
        if by is not None:
            self._check_claim(file_id, by)
        if old is not None and old not in MOVES[entity][verb].starts(again=True):
            raise refuse(entity, " ".join(map(str, key)), verb, old, new)

    def _one(self, entity: Entity, key: tuple[Any, ...], verb: str) -> str:
        """Where the row at `key` moves by `verb`, from its starting states only
        (IllegalMove from another, StateError when there is no such row)."""
        tables = self._tables
        found: _File | _Output | StreamJobRow | None = (
            tables.files.get(key[0]) if entity == "file"
            else tables.outputs.get(key) if entity == "output"
            else tables.jobs.get(key)
        )  # fmt: skip
        what = " ".join(map(str, key))
        if found is None:
            raise StateError(f"there is no {entity} {what} to {verb}")
        state = found.state if isinstance(found, StreamJobRow) else found.row.state
        move = MOVES[entity][verb]
        assert move.target is not None
        if state not in move.starts():
            raise refuse(entity, what, verb, state, move.target)
        return str(move.target)

    def _move_children(self, verb: str, file_ids: Iterable[int], clear_error: bool = False) -> None:
        """The outputs and stream jobs of `file_ids` in a state `verb` starts from move by it
        (their error cleared, when asked)."""
        ids, tables, now = set(file_ids), self._tables, self._now()
        output_move, job_move = MOVES["output"][verb], MOVES["job"][verb]
        for key, output in list(tables.outputs.items()):
            if key[0] in ids and output.row.state in output_move.starts():
                error = None if clear_error else output.row.error
                moved = replace(output.row, state=OutputState(str(output_move.target)), error=error)
                tables.outputs[key] = _Output(moved, now)
        for job_key, job in list(tables.jobs.items()):
            if job_key[0] in ids and job.state in job_move.starts():
                figures = replace(job.figures, error=None) if clear_error else job.figures
                state = JobState(str(job_move.target))
                tables.jobs[job_key] = replace(job, state=state, figures=figures)

    def _move_output(
        self, key: OutputKey, new: OutputState, by: str | None, **columns: Any
    ) -> None:
        """Insert the output at `key` in state `new`, or move it there if the table allows."""
        found = self._tables.outputs.get(key)
        self._allowed("output", key, None if found is None else found.row.state, new, by)
        row = found.row if found else OutputRow(*key, new, None, None, None, None)
        changed = replace(row, state=new, **columns)
        self._tables.outputs[key] = _Output(changed, self._now())

    def _files(self, *states: str) -> list[_File]:
        return [file for file in self._tables.files.values() if file.row.state in states]

    def _movable(self, verb: str) -> list[_File]:
        """The files in a state `verb` starts from, by id."""
        starts = MOVES["file"][verb].starts()
        return sorted(self._files(*starts), key=lambda file: file.row.id)

    # -- a file's history ----------------------------------------------------------------------

    def _event(
        self, file_ids: Iterable[int], kind: EventKind, text: str, by: str | None = None
    ) -> None:
        """One step of the history of each of `file_ids` (those that exist), at the store's
        time, made by `by` (None: the worker holding the file, if any)."""
        now = self._now()
        for file_id in file_ids:
            if (file := self._tables.files.get(file_id)) is not None:
                self._tables.events.append(Event(file_id, now, kind, by or file.row.worker, text))

    @_locked
    async def note(self, file_id: int, kind: EventKind, text: str, by: str | None = None) -> None:
        self._event([file_id], kind, text, by)

    @_locked
    async def history(self, file_id: int) -> list[Event]:
        return [event for event in self._tables.events if event.file_id == file_id]

    # -- files -------------------------------------------------------------------------------

    @_locked
    async def find_files(self, rel_paths: Sequence[str]) -> dict[str, list[FileRow]]:
        wanted = set(rel_paths)
        found: dict[str, list[FileRow]] = {}
        for file_id in sorted(self._tables.files):
            row = self._tables.files[file_id].row
            if row.rel_path in wanted:
                found.setdefault(row.rel_path, []).append(row)
        return found

    @_locked
    async def get_file(self, file_id: int) -> FileRow:
        if file_id not in self._tables.files:
            raise NoSuchFile(f"no file {file_id}")
        return self._tables.files[file_id].row

    @_locked
    async def stem_taken(self, stem: str) -> bool:
        return any(file.row.stem == stem for file in self._tables.files.values())

    @_locked
    async def add_file(
        self,
        rel_path: str,
        size: int,
        mtime_ns: int,
        fingerprint: str,
        stem: str,
        cost: Estimate | None = None,
        probe: str | None = None,
    ) -> FileRow:
        tables = self._tables
        tables.last_id += 1
        row = FileRow(
            tables.last_id, rel_path, size, mtime_ns, fingerprint, stem, FileState.PENDING,
            None, None, (), None,
        )  # fmt: skip
        tables.files[row.id] = _File(row, cost, probe, self._now())
        self._event([row.id], EventKind.FOUND, "in raw/")
        self._work_changed()
        return row

    def _update(self, file_id: int, **columns: Any) -> None:
        """Change a file's columns (no state move); nothing when it is not there."""
        file = self._tables.files.get(file_id)
        if file is not None:
            self._tables.files[file_id] = replace(file, row=replace(file.row, **columns))

    @_locked
    async def set_identity(self, file_id: int, mtime_ns: int, fingerprint: str) -> None:
        self._update(file_id, mtime_ns=mtime_ns, fingerprint=fingerprint)

    def _published_any(self, file_id: int) -> bool:
        tables = self._tables
        published = (OutputState.DONE, OutputState.PUBLISHING)
        return any(
            key[0] == file_id and output.row.state in published
            for key, output in tables.outputs.items()
        ) or any(key[0] == file_id and job.figures.path for key, job in tables.jobs.items())

    def _forget(self, file_id: int) -> None:
        """The file and everything of it (as the tables' ON DELETE CASCADE)."""
        tables = self._tables
        del tables.files[file_id]
        tables.outputs = {k: v for k, v in tables.outputs.items() if k[0] != file_id}
        tables.jobs = {k: v for k, v in tables.jobs.items() if k[0] != file_id}
        tables.intents = {k: v for k, v in tables.intents.items() if k[0] != file_id}
        tables.progress = {k: v for k, v in tables.progress.items() if k[0] != file_id}
        tables.events = [event for event in tables.events if event.file_id != file_id]

    @_locked
    async def forget_replaced(self, rel_path: str, keep: int) -> list[int]:
        older = [
            file.row
            for file in self._tables.files.values()
            if file.row.rel_path == rel_path and file.row.id != keep
        ]
        forget = MOVES["file"]["forget"].starts()
        forgotten = [
            row.id for row in older if row.state in forget and not self._published_any(row.id)
        ]
        for file_id in forgotten:
            self._forget(file_id)
        kept = MOVES["file"]["replace"].starts()
        replaced = [row.id for row in older if row.state in kept and row.id not in forgotten]
        for file_id in replaced:
            self._move_file(file_id, "replace", error=REPLACED)
        return forgotten + replaced

    @_locked
    async def fail_file(
        self, file_id: int, error: str, detail: str | None = None, by: str | None = None
    ) -> None:
        if self._move_file(
            file_id, "fail", by, error=error, error_detail=detail, worker=None,
            lease_until=None,
        ):  # fmt: skip
            self._event([file_id], EventKind.FAILED, error, by)

    @_locked
    async def finish_file(
        self, file_id: int, raw_action: str | None, by: str | None = None
    ) -> None:
        if self._move_file(
            file_id, "finish", by, error=None, error_detail=None, raw_action=raw_action,
            worker=None, lease_until=None,
        ):  # fmt: skip
            self._event([file_id], EventKind.DONE, "every output done", by)

    @_locked
    async def with_pending_raw_action(self, suffix: str) -> list[FileRow]:
        return [
            file.row
            for file in self._files(FileState.DONE)
            if (file.row.raw_action or "").endswith(suffix)
        ]

    @_locked
    async def to_estimate(self, limit: int) -> list[FileRow]:
        now = self._now()
        taken = [
            file
            for file in self._movable("claim")
            if file.estimate is None
            and (file.estimating_until is None or file.estimating_until < now)
        ][:limit]
        for file in taken:
            until = now + ESTIMATE_SECONDS
            self._tables.files[file.row.id] = replace(file, estimating_until=until)
        return [file.row for file in taken]

    @_locked
    async def set_cost(self, file_id: int, cost: Estimate) -> None:
        file = self._tables.files.get(file_id)
        if file is not None:
            if file.estimate is not None and file.estimate.rank is Rank.FRONT:
                cost = Estimate(Rank.FRONT, cost.cpu_seconds)  # where a user put it
            self._tables.files[file_id] = replace(file, estimate=cost, estimating_until=None)

    @_locked
    async def probe_of(self, file_id: int) -> str | None:
        file = self._tables.files.get(file_id)
        return None if file is None else file.probe

    @_locked
    async def set_probe(self, file_id: int, probe_json: str) -> None:
        if file_id in self._tables.files:
            self._tables.files[file_id] = replace(self._tables.files[file_id], probe=probe_json)

    @_locked
    async def set_sha256(self, file_id: int, sha256: str) -> None:
        file = self._tables.files.get(file_id)
        if file is not None and file.row.sha256 is None:
            self._update(file_id, sha256=sha256)

    @_locked
    async def set_raw_action(self, file_id: int, action: str) -> None:
        self._update(file_id, raw_action=action)

    @_locked
    async def set_warnings(self, file_id: int, warnings: Iterable[str]) -> None:
        self._update(file_id, warnings=tuple(warnings))

    @_locked
    async def files(self, states: Iterable[FileState] | None = None) -> list[FileRow]:
        if states is None:
            rows = [file.row for file in self._tables.files.values()]
            return sorted(rows, key=lambda row: (row.rel_path, row.id))
        return [file.row for file in sorted(self._files(*states), key=lambda f: f.row.id)]

    @_locked
    async def retry(
        self, rel_paths: Iterable[str] | None = None, by: str | None = None
    ) -> list[str]:
        wanted = None if rel_paths is None else set(rel_paths)
        failed = [
            file.row
            for file in self._movable("retry")
            if wanted is None or file.row.rel_path in wanted
        ]
        for row in failed:
            self._move_file(row.id, "retry", error=None, error_detail=None)
        self._move_children("retry", [row.id for row in failed], clear_error=True)
        self._event([row.id for row in failed], EventKind.RETRIED, "back to pending", by)
        if failed:
            self._work_changed()
        return [row.rel_path for row in failed]

    @_locked
    async def reopen(self, file_id: int, outputs: Iterable[tuple[str, int | None]]) -> None:
        wanted, tables, now = list(outputs), self._tables, self._now()
        state = FileState(self._one("file", (file_id,), "reopen"))
        file = tables.files[file_id]
        tables.files[file_id] = replace(file, row=replace(file.row, state=state), updated_at=now)
        for output in dict.fromkeys(output for output, _stream in wanted):
            moved = OutputState(self._one("output", (file_id, output), "reopen"))
            found = tables.outputs[(file_id, output)]
            tables.outputs[(file_id, output)] = _Output(replace(found.row, state=moved), now)
        for output, stream in wanted:
            if stream is not None:
                key = (file_id, output, stream)
                job = JobState(self._one("job", key, "reopen"))
                tables.jobs[key] = replace(tables.jobs[key], state=job)
        made = ", ".join(dict.fromkeys(output for output, _stream in wanted))
        self._event([file_id], EventKind.REOPENED, f"to make again: {made}")
        self._work_changed()

    @_locked
    async def attention_and_recent(self, recent: int) -> list[FileRow]:
        files = self._tables.files.values()
        waiting = [file.row for file in files if file.row.state is not FileState.DONE]
        latest = sorted(self._files(FileState.DONE), key=_latest_first)[:recent]
        return sorted(waiting, key=lambda row: (row.rel_path, row.id)) + [
            file.row for file in reversed(latest)
        ]

    def _archived(self) -> Iterator[tuple[_File, _Output]]:
        """Every file whose archive is done, with its archive."""
        for (file_id, kind), output in self._tables.outputs.items():
            if kind == "archive" and output.row.state is OutputState.DONE:
                yield self._tables.files[file_id], output

    @_locked
    async def summary(self) -> Summary:
        counts: dict[str, int] = {}
        for file in self._tables.files.values():
            counts[str(file.row.state)] = counts.get(str(file.row.state), 0) + 1
        archived = list(self._archived())
        waiting = self._files(FileState.PENDING, FileState.RUNNING)

        def cost(files: list[_File]) -> float:
            return float(sum(f.estimate.cpu_seconds or 0.0 for f in files if f.estimate))

        return Summary(
            counts, sum(file.row.size for file, _ in archived),
            sum(output.row.size or 0 for _, output in archived),
            sum(file.row.size for file in waiting), cost(waiting),
            cost(self._files(FileState.DONE)),
        )  # fmt: skip

    @_locked
    async def queue(self, limit: int) -> list[FileRow]:
        return [file.row for file in sorted(self._files(FileState.PENDING), key=_claim_order)][
            :limit
        ]

    @_locked
    async def failures(self, limit: int) -> list[FileRow]:
        return [file.row for file in sorted(self._files(FileState.FAILED), key=_latest_first)][
            :limit
        ]

    @_locked
    async def finished(self, search: str, limit: int, offset: int) -> list[FileRow]:
        folded = search.casefold()
        done = sorted(self._files(FileState.DONE), key=_latest_first)
        found = [file.row for file in done if folded in file.row.rel_path.casefold()]
        return found[offset : offset + limit]

    @_locked
    async def days(self) -> list[Day]:
        days: dict[int, Day] = {}
        for file, output in self._archived():
            day = int(output.updated_at // 86400)
            was = days.get(day, Day(day, 0, 0, 0))
            days[day] = Day(
                day, was.files + 1, was.raw_bytes + file.row.size,
                was.archive_bytes + (output.row.size or 0),
            )  # fmt: skip
        return [days[day] for day in sorted(days)]

    @_locked
    async def encode_seconds(self) -> float:
        return float(sum(job.figures.wall_seconds or 0.0 for job in self._tables.jobs.values()))

    async def clock(self) -> float:
        return self._now()

    def _listed(self, file: _File, main: int | None) -> Listed:
        """A file with the facts `SQLStore.listing` reads: from its probe (the duration, the
        stream `main` of it), and its archive's size once done."""
        probe = json.loads(file.probe) if file.probe else {}
        streams = probe.get("streams", [])
        video = streams[main] if main is not None and 0 <= main < len(streams) else {}
        archive = self._tables.outputs.get((file.row.id, "archive"))
        done = archive is not None and archive.row.state is OutputState.DONE
        width, height = _number(video.get("width"), int), _number(video.get("height"), int)
        return Listed(
            file.row, _number(probe.get("format", {}).get("duration"), float),
            video.get("codec_name"), None if width is None else int(width),
            None if height is None else int(height), archive.row.size if done and archive else None,
        )  # fmt: skip

    @_locked
    async def listing(self, query: FileQuery, limit: int, offset: int) -> list[Listed]:
        mains: dict[int, int] = {}  # the archive's first video stream of each file
        for (file_id, output, index), job in self._tables.jobs.items():
            if output == "archive" and job.stream_type == "video":
                mains[file_id] = min(index, mains.get(file_id, index))
        folded, prefix = query.search.casefold(), query.folder.strip("/") + "/"
        chosen: list[tuple[_File, Listed]] = []
        for file in self._tables.files.values():
            row = file.row
            if (query.states and row.state not in query.states) or folded not in (
                row.rel_path.casefold()
            ) or (query.folder and not row.rel_path.startswith(prefix)):  # fmt: skip
                continue
            listed = self._listed(file, mains.get(row.id))
            sides = (listed.width, listed.height)
            side = None if None in sides else min(listed.width or 0, listed.height or 0)
            if (query.codec and listed.codec != query.codec) or not (
                _within(file.updated_at, query.changed) and _within(listed.seconds, query.seconds)
                and _within(side, query.side)
            ):  # fmt: skip
                continue
            chosen.append((file, listed))

        def first(listed: Listed) -> float | None:
            if query.order == "saving" and listed.archive_bytes is not None:
                return listed.file.size - listed.archive_bytes
            return listed.seconds if query.order == "longest" else None

        chosen.sort(key=lambda pair: (first(pair[1]) is None, -(first(pair[1]) or 0),
                                      *_latest_first(pair[0])))  # fmt: skip
        return [listed for _file, listed in chosen][offset : offset + limit]

    # -- controls ----------------------------------------------------------------------------

    @_locked
    async def control(self, name: str) -> str | None:
        return self._tables.controls.get(name)

    @_locked
    async def set_control(self, name: str, value: str | None) -> None:
        self._work_changed()
        if value is None:
            self._tables.controls.pop(name, None)
        else:
            self._tables.controls[name] = value

    # -- claims, leases and workers ------------------------------------------------------------

    @_locked
    async def workers(self) -> list[Worker]:
        return sorted(self._tables.workers.values(), key=lambda worker: worker.started_at)

    @_locked
    async def claim(self, worker: str, lease: float, skip: Sequence[int] = ()) -> FileRow | None:
        skipped = set(list(skip)[:SKIP_MAX])
        pending = [f for f in self._movable("claim") if f.row.id not in skipped]
        if not pending:
            return None
        file = min(pending, key=_claim_order)
        claims = file.row.claims + 1
        self._move_file(
            file.row.id, "claim", worker=worker, claims=claims,
            lease_until=self._now() + lease,
        )  # fmt: skip
        self._event([file.row.id], EventKind.CLAIMED, f"claim {claims}", worker)
        return self._tables.files[file.row.id].row

    @_locked
    async def heartbeat(self, worker: Worker, lease: float) -> set[int]:
        now = self._now()
        known = self._tables.workers.get(worker.id, worker)
        self._tables.workers[worker.id] = replace(known, heartbeat_at=now)
        held = [
            file for file in self._files(FileState.RUNNING)
            if file.row.worker == worker.id and file.stop_asked is None
        ]  # fmt: skip
        for file in held:
            self._tables.files[file.row.id] = replace(file, lease_until=now + lease)
        return {file.row.id for file in held}

    @_locked
    async def check_claim(self, file_id: int, by: str) -> None:
        self._check_claim(file_id, by)

    def _release(
        self, verb: str, which: Callable[[_File], bool], file_ids: Iterable[int] | None
    ) -> list[int]:
        """The running files that `which` picks (of `file_ids`, when given) go back to
        pending by `verb` (`release` or `expire`), their running outputs and stream jobs with
        them; their progress goes."""
        only = None if file_ids is None else set(file_ids)
        files = [
            file
            for file in self._movable(verb)
            if which(file) and (only is None or file.row.id in only)
        ]
        released = [file.row.id for file in files]
        tables = self._tables
        for file in files:
            file_id, asked = file.row.id, file.stop_asked
            kind, text = given_back(verb, file.row.worker, asked)
            self._event([file_id], kind, text)
            moved, columns = given_back_by(verb, asked)
            rank = columns.pop("claim_rank", None)
            self._move_file(file_id, moved, worker=None, lease_until=None, **columns)
            if isinstance(rank, Rank):
                cost = file.estimate.cpu_seconds if file.estimate else None
                estimate = Estimate(rank, cost)
                tables.files[file_id] = replace(tables.files[file_id], estimate=estimate)
            for key in [key for key in tables.progress if key[0] == file_id]:
                del tables.progress[key]
        self._move_children("release", released)
        if released:
            self._work_changed()
        return released

    @_locked
    async def release(self, worker: str, file_ids: Iterable[int] | None = None) -> list[int]:
        return self._release("release", lambda file: file.row.worker == worker, file_ids)

    @_locked
    async def release_expired(self, keep: str) -> list[int]:
        now = self._now()

        def expired(file: _File) -> bool:
            ran_out = file.lease_until is None or file.lease_until < now
            return ran_out and (file.row.worker != keep or file.stop_asked is not None)

        return self._release("expire", expired, None)

    @_locked
    async def silent_workers(self, lease: float) -> list[str]:
        since = self._now() - lease
        return [w.id for w in self._tables.workers.values() if w.heartbeat_at < since]

    @_locked
    async def ask_stop(self, file_id: int, asked: StopAsked, by: str = FROM_THE_PAGE) -> None:
        file = self._not_now(file_id, "stop", FileState.RUNNING)
        self._tables.files[file_id] = replace(file, stop_asked=asked)
        self._event([file_id], EventKind.STOP_ASKED, stop_asked(asked), by)

    @_locked
    async def move_to_front(self, file_id: int, by: str = FROM_THE_PAGE) -> None:
        file = self._not_now(file_id, "move to the front", FileState.PENDING)
        cost = file.estimate.cpu_seconds if file.estimate else None
        self._tables.files[file_id] = replace(file, estimate=Estimate(Rank.FRONT, cost))
        self._event([file_id], EventKind.FRONT, "first in the queue", by)
        self._work_changed()

    def _not_now(self, file_id: int, what: str, needed: FileState) -> _File:
        """The file, if it is `needed` (NoSuchFile, or IllegalMove: it cannot be asked `what`)."""
        file = self._tables.files.get(file_id)
        if file is None:
            raise NoSuchFile(f"no file {file_id}")
        if file.row.state is not needed:
            raise not_now(file_id, file.row.state, what, needed)
        return file

    @_locked
    async def remove_worker(self, worker: str) -> list[int]:
        released = self._release("release", lambda file: file.row.worker == worker, None)
        tables = self._tables
        for key in [key for key, task in tables.progress.items() if task.worker == worker]:
            del tables.progress[key]
        tables.workers.pop(worker, None)
        return released

    # -- progress ----------------------------------------------------------------------------

    @_locked
    async def write_progress(self, worker: str, tasks: Sequence[Progress]) -> None:
        tables, now = self._tables, self._now()
        for key in [key for key, task in tables.progress.items() if task.worker == worker]:
            del tables.progress[key]
        for task in tasks:
            key = (task.file_id, task.label)
            if self._holds(task.file_id, worker) and key not in tables.progress:
                tables.progress[key] = replace(task, updated_at=now, lost_since=None)

    @_locked
    async def progress(self) -> list[Progress]:
        now, tables = self._now(), self._tables
        read = []
        for key in sorted(tables.progress):
            task = tables.progress[key]
            file = tables.files.get(task.file_id)
            lease = file.lease_until if file and file.row.worker == task.worker else None
            worker = tables.workers.get(task.worker)
            read.append(task.read_at(now, lease, worker.heartbeat_at if worker else None))
        return read

    # -- outputs -----------------------------------------------------------------------------

    @_locked
    async def set_output(
        self,
        file_id: int,
        output: str,
        state: OutputState,
        *,
        path: str | None = None,
        size: int | None = None,
        sha256: str | None = None,
        error: str | None = None,
        by: str | None = None,
    ) -> None:
        given = {"path": path, "size": size, "sha256": sha256}
        columns = {name: value for name, value in given.items() if value is not None}
        self._move_output((file_id, output), state, by, **columns, error=error)
        if state is OutputState.DONE:
            where = self._tables.outputs[(file_id, output)].row.path
            self._event([file_id], EventKind.PUBLISHED, output + (f" → {where}" if where else ""),
                        by)  # fmt: skip

    @_locked
    async def outputs(self, file_id: int) -> dict[str, OutputRow]:
        return {
            kind: output.row
            for (owner, kind), output in self._tables.outputs.items()
            if owner == file_id
        }

    @_locked
    async def publishing(self) -> list[OutputRow]:
        return [
            output.row
            for output in self._tables.outputs.values()
            if output.row.state is OutputState.PUBLISHING
        ]

    @_locked
    async def remember_intent(
        self, file_id: int, output: str, path: str, size: int, sha256: str, by: str
    ) -> None:
        self._check_claim(file_id, by)
        claim = self._tables.files[file_id].row.claims
        self._tables.intents[(file_id, path, claim)] = _Intent(output, Intent(claim, size, sha256))

    @_locked
    async def intents(self, file_id: int, output: str, path: str) -> list[Intent]:
        return [
            kept.intent
            for (owner, where, _claim), kept in sorted(self._tables.intents.items())
            if (owner, where, kept.output) == (file_id, path, output)
        ]

    @_locked
    async def all_outputs(self, file_ids: Sequence[int] | None = None) -> list[OutputRow]:
        wanted = None if file_ids is None else set(file_ids)
        return [
            output.row
            for (owner, _kind), output in self._tables.outputs.items()
            if wanted is None or owner in wanted
        ]

    # -- stream jobs -------------------------------------------------------------------------

    @_locked
    async def save_job(
        self,
        file_id: int,
        output: str,
        stream_index: int,
        *,
        stream_type: str,
        decision: str,
        state: JobState,
        notes: Iterable[str] = (),
        figures: Figures = NO_FIGURES,
        by: str | None = None,
    ) -> None:
        key = (file_id, output, stream_index)
        found = self._tables.jobs.get(key)
        self._allowed("job", key, None if found is None else found.state, state, by)
        self._tables.jobs[key] = StreamJobRow(
            stream_index, stream_type, decision, state, tuple(notes),
            _figures(found.figures if found else NO_FIGURES, figures),
        )  # fmt: skip
        if state in (JobState.DONE, JobState.FAILED) and (found is None or found.state != state):
            text = job_ended(output, stream_index, stream_type, decision, state, figures)
            self._event([file_id], EventKind.STREAM, text, by)

    @_locked
    async def jobs(self, file_id: int, output: str) -> dict[int, StreamJobRow]:
        return {
            index: self._tables.jobs[(owner, kind, index)]
            for owner, kind, index in sorted(self._tables.jobs)
            if (owner, kind) == (file_id, output)
        }

    @_locked
    async def all_jobs(
        self, file_ids: Sequence[int] | None = None
    ) -> dict[int, list[tuple[str, StreamJobRow]]]:
        wanted = None if file_ids is None else set(file_ids)
        jobs: dict[int, list[tuple[str, StreamJobRow]]] = {}
        for owner, kind, index in sorted(self._tables.jobs):
            if wanted is None or owner in wanted:
                jobs.setdefault(owner, []).append((kind, self._tables.jobs[(owner, kind, index)]))
        return jobs
