"""The store's logic in SQL, shared by every backend (SQLite, PostgreSQL): each backend
brings its connection, transactions and migrations, and runs these statements (written with
`?` marks, in the SQL both understand).
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from enum import StrEnum
from typing import Any, TypeVar

import anyio
from pydantic import TypeAdapter

from videoarchiver.errors import ClaimLost, StateError
from videoarchiver.planning.claim_order import Estimate, Rank
from videoarchiver.planning.resume import Part
from videoarchiver.state.records import (
    CLEARED,
    FIGURE_NAMES,
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
from videoarchiver.state.steps import (
    FROM_THE_PAGE,
    given_back,
    given_back_by,
    job_ended,
    not_now,
    stop_asked,
)
from videoarchiver.state.transitions import MOVES, Entity, Move, refuse, verb_to

Row = dict[str, Any]
T = TypeVar("T")
REPLACED = (
    "its raw file was replaced by new content before it was finished (what it published stays)"
)
CHUNK = 500  # values per `IN (...)`: SQLite limits the number of ? marks
ESTIMATE_SECONDS = 600.0  # a file a worker took to estimate is taken back after this
SKIP_MAX = 10_000  # ids a claim skips at most (SQLite takes up to 32,766 marks)
PARTS = TypeAdapter(list[Part])
# `planning.claim_order` (`claim_key`): by rank, the unestimated last; the costliest; the first.
CLAIM_ORDER = "claim_rank NULLS LAST, cpu_cost DESC NULLS LAST, id"

_FILE_COLUMNS = (
    "id, rel_path, size, mtime_ns, fingerprint, stem, state, error, error_detail, warnings,"
    " raw_action, worker, sha256, claims"
)
_OUTPUT_COLUMNS = "file_id, output, state, path, size, sha256, error"
_JOB_COLUMNS = "stream_index, stream_type, decision, state, notes, " + ", ".join(FIGURE_NAMES)
TABLES: dict[Entity, str] = {"file": "files", "output": "outputs", "job": "stream_jobs"}
CHILDREN: tuple[Entity, ...] = ("output", "job")  # what a file's moves carry along
_PROGRESS_COLUMNS = "file_id, label, output, worker, done, total, speed, remaining, updated_at"
_EVENT_COLUMNS = "file_id, at, kind, worker, text"


def _file(row: Row) -> FileRow:
    values = dict(row)
    warnings = values["warnings"]
    values["warnings"] = () if warnings == "[]" else tuple(json.loads(warnings))
    values["state"] = FileState(values["state"])
    return FileRow(**values)


def _output(row: Row) -> OutputRow:
    values = dict(row)
    values["kind"] = values.pop("output")
    values["state"] = OutputState(values["state"])
    return OutputRow(**values)


def _job(values: dict[str, Any]) -> StreamJobRow:
    figures = {name: values.pop(name) for name in FIGURE_NAMES}
    parts = figures["parts"]
    figures["parts"] = tuple(PARTS.validate_json(parts)) if parts != "[]" else None
    return StreamJobRow(
        stream_index=values["stream_index"],
        stream_type=values["stream_type"],
        decision=values["decision"],
        state=JobState(values["state"]),
        notes=tuple(json.loads(values["notes"])),
        figures=Figures(**figures),
    )


def _figure_columns(figures: Figures) -> dict[str, Any]:
    """The columns a job's figures set: those given (a None figure keeps what is recorded,
    a CLEARED one records none)."""
    values = {name: None if value is CLEARED else value for name, value in figures.given().items()}
    if "parts" in values:
        values["parts"] = json.dumps([part.model_dump() for part in figures.parts or ()])
    return values


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _from(move: Move, again: bool = False) -> tuple[str, list[str]]:
    """The condition that a row is in a state `move` starts from (`again`: or ends in), and
    its parameters."""
    states = move.starts(again)
    return f"state IN ({_marks(states)})", states


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


class SQLStore(ABC):
    """Every method of `state.Store` but the connection's: a backend subclasses it."""

    SKIP_LOCKED = ""  # what a claim's SELECT adds so that workers skip each other's rows
    ROW_LOCK = ""  # what a SELECT adds to keep its row as read until the transaction ends
    NOW = "(julianday('now') - 2440587.5) * 86400.0"  # the database's clock, in Unix seconds
    POLL_SECONDS = 1.0  # how often an idle worker looks for work nobody woke it for
    LIKE = "LIKE"  # a comparison that ignores case (SQLite's LIKE does, for ASCII) …
    FOLD = "casefold({})"  # … of both sides folded to one case (`casefold`, Python's)
    DAY = "CAST({} / 86400 AS INTEGER)"  # the day (UTC) of a time in Unix seconds

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Everything inside commits together or not at all; nested calls join the outer one."""

    @abstractmethod
    def registering(self) -> AbstractAsyncContextManager[None]:
        """A transaction that no other worker's registering runs beside: two scanners that
        find the same new file make one row for it."""

    @abstractmethod
    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""

    @abstractmethod
    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Run one statement; returns its rows."""

    async def _atomically(self, body: Callable[[], Awaitable[T]]) -> T:
        """Run `body` in a transaction; a backend whose server can go away runs it again,
        whole, when the connection breaks (the body holds all the transaction does)."""
        async with self.transaction():
            return await body()

    @abstractmethod
    async def _work_changed(self) -> None:
        """Work was registered or given back, or the pause changed: backends that can wake
        idle workers (PostgreSQL's NOTIFY) do it here; the others' workers poll."""

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever another worker says work changed, until cancelled."""
        await anyio.sleep_forever()

    async def _refused(self, entity: Entity, key: dict[str, Any], verb: str) -> None:
        """Raise the IllegalMove for a move that changed no row because it was not legal
        (StateError: there is no such row)."""
        where = " AND ".join(f"{name}=?" for name in key)
        rows = await self._rows(
            f"SELECT state FROM {TABLES[entity]} WHERE {where}", list(key.values())
        )
        what = " ".join(map(str, key.values()))
        if not rows:
            raise StateError(f"there is no {entity} {what} to {verb}")
        raise refuse(entity, what, verb, rows[0]["state"], MOVES[entity][verb].target)

    async def check_claim(self, file_id: int, by: str) -> None:
        """Raise ClaimLost unless worker `by` holds file `file_id`'s claim now (why a fenced
        write changed nothing; or that what it did before is older than any later claim)."""
        rows = await self._rows("SELECT worker FROM files WHERE id=?", (file_id,))
        if not rows or rows[0]["worker"] != by:
            raise ClaimLost(f"worker {by} no longer holds file {file_id}")

    async def _move(
        self,
        entity: Entity,
        key: dict[str, Any],
        new: StrEnum,
        columns: dict[str, Any],
        by: str | None,
    ) -> None:
        """Insert the row at `key` in state `new`, or move it there by the verb that ends
        in it if the table allows; with `by`, only while that worker holds the file's claim.
        One statement, so a backend may send it again after a lost connection."""
        table, verb = TABLES[entity], verb_to(entity, new)
        values = {**key, "state": str(new), **columns, "updated_at": time.time()}
        legal, allowed = _from(MOVES[entity][verb], again=True)
        updates = ", ".join(f"{name}=excluded.{name}" for name in values if name not in key)
        claimed, claim = "", []
        if by is not None:
            claimed = f" AND EXISTS (SELECT 1 FROM files WHERE id=? AND worker=?{self.ROW_LOCK})"
            claim = [key["file_id"], by]
        changed = await self._write(
            f"INSERT INTO {table} ({', '.join(values)}) SELECT {_marks(list(values))}"
            f" WHERE true{claimed}"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
            f" WHERE {table}.{legal}{claimed}",
            [*values.values(), *claim, *allowed, *claim],
        )
        if not changed:
            if by is not None:
                await self.check_claim(key["file_id"], by)
            await self._refused(entity, key, verb)

    async def _move_file(
        self, file_id: int, verb: str, by: str | None = None, **columns: Any
    ) -> bool:
        """Move a file by `verb` if the table allows (or again); with `by`, only while that
        worker holds its claim (ClaimLost otherwise). False: there was nothing to move (no
        such file, or this very move was made before)."""
        new = MOVES["file"][verb].target
        values = {"state": str(new), **columns, "updated_at": time.time()}
        legal, allowed = _from(MOVES["file"][verb], again=True)
        claimed = "" if by is None else " AND worker=?"
        changed = await self._write(
            f"UPDATE files SET {', '.join(f'{name}=?' for name in values)}"
            f" WHERE id=? AND {legal}{claimed}",
            [*values.values(), file_id, *allowed, *([] if by is None else [by])],
        )
        if changed:
            return True
        rows = await self._rows("SELECT state, worker FROM files WHERE id=?", (file_id,))
        if not rows:
            return False
        state, holder = rows[0]["state"], rows[0]["worker"]
        if by is not None and (state, holder) == (new, None):
            return False  # this very move, made before (a statement sent again after it was)
        if by is not None and holder != by:
            raise ClaimLost(f"worker {by} no longer holds file {file_id}")
        raise refuse("file", str(file_id), verb, state, new)

    async def _move_one(self, entity: Entity, key: dict[str, Any], verb: str) -> None:
        """Move the row at `key` by `verb`, from its starting states only (IllegalMove
        otherwise)."""
        move = MOVES[entity][verb]
        legal, allowed = _from(move)
        where = " AND ".join(f"{name}=?" for name in key)
        changed = await self._write(
            f"UPDATE {TABLES[entity]} SET state=?, updated_at=? WHERE {where} AND {legal}",
            [move.target, time.time(), *key.values(), *allowed],
        )
        if not changed:
            await self._refused(entity, key, verb)

    async def _move_children(self, verb: str, file_ids: Sequence[int], also: str = "") -> None:
        """Move the outputs and stream jobs of `file_ids` by `verb`, those in a state it
        starts from (setting `also` too, a column's SQL)."""
        for entity in CHILDREN:
            move = MOVES[entity][verb]
            legal, allowed = _from(move)
            for chunk in _chunks(file_ids):
                await self._write(
                    f"UPDATE {TABLES[entity]} SET state=?, updated_at=?{also}"
                    f" WHERE {legal} AND file_id IN ({_marks(chunk)})",
                    (move.target, time.time(), *allowed, *chunk),
                )

    # -- a file's history ----------------------------------------------------------------------

    async def _event(
        self, file_ids: Sequence[int], kind: EventKind, text: str, by: str | None = None
    ) -> None:
        """One step of the history of each of `file_ids` (those that exist), at the store's
        time, made by worker `by` (None: the worker holding the file, if any)."""
        for chunk in _chunks(file_ids):
            await self._write(
                f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT id, {self.NOW}, ?,"
                f" COALESCE(?, worker), ? FROM files WHERE id IN ({_marks(chunk)})",
                [kind, by, text, *chunk],
            )

    async def note(self, file_id: int, kind: EventKind, text: str, by: str | None = None) -> None:
        """A step of the file's history that no other store call makes (a resume, the raw
        file's end)."""
        await self._event([file_id], kind, text, by)

    async def history(self, file_id: int) -> list[Event]:
        """What happened to the file, the first step first."""
        rows = await self._rows(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE file_id=? ORDER BY id", (file_id,)
        )
        return [Event(**row | {"kind": EventKind(row["kind"])}) for row in rows]

    # -- files -------------------------------------------------------------------------------

    async def find_files(self, rel_paths: Sequence[str]) -> dict[str, list[FileRow]]:
        """Every recorded row at these paths (old contents included), newest last."""
        found: dict[str, list[FileRow]] = {}
        for chunk in _chunks(rel_paths):
            for row in await self._rows(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE rel_path IN ({_marks(chunk)})"
                " ORDER BY id",
                chunk,
            ):
                file = _file(row)
                found.setdefault(file.rel_path, []).append(file)
        return found

    async def get_file(self, file_id: int) -> FileRow:
        rows = await self._rows(f"SELECT {_FILE_COLUMNS} FROM files WHERE id=?", (file_id,))
        if not rows:
            raise NoSuchFile(f"no file {file_id}")
        return _file(rows[0])

    async def stem_taken(self, stem: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM files WHERE stem=?", (stem,)))

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
        """A new source, under an id no other file ever had (with its claim order's estimate
        and ffprobe's JSON when already read)."""
        now = time.time()
        rank, seconds = (None, None) if cost is None else (cost.rank, cost.cpu_seconds)

        async def add() -> FileRow:
            [row] = await self._rows(
                f"INSERT INTO files (rel_path, size, mtime_ns, fingerprint, stem, claim_rank,"
                f" cpu_cost, probe, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                f" RETURNING {_FILE_COLUMNS}",
                (rel_path, size, mtime_ns, fingerprint, stem, rank, seconds, probe, now, now),
            )
            await self._event([row["id"]], EventKind.FOUND, "in raw/")
            return _file(row)

        added = await self._atomically(add)
        await self._work_changed()
        return added

    async def set_identity(self, file_id: int, mtime_ns: int, fingerprint: str) -> None:
        """The same content seen with a new mtime (`touch`), or first fingerprinted."""
        await self._write(
            "UPDATE files SET mtime_ns=?, fingerprint=? WHERE id=?",
            (mtime_ns, fingerprint, file_id),
        )

    async def forget_replaced(self, rel_path: str, keep: int) -> list[int]:
        """Rows of older content at `rel_path` that never finished nor published anything
        are forgotten (their ids are never given out again); pending ones that published
        something stay, failed as replaced. Returns the ids of both: nothing of theirs is to
        be resumed, their work folders go. A claimed row is running, so no worker's file is
        forgotten under it."""

        forget, replace = MOVES["file"]["forget"], MOVES["file"]["replace"]

        async def forget_them() -> list[Row]:
            legal, allowed = _from(forget)
            rows = await self._rows(
                f"DELETE FROM files WHERE rel_path=? AND id!=? AND {legal}"
                " AND NOT EXISTS (SELECT 1 FROM outputs o WHERE o.file_id=files.id AND o.state"
                " IN (?, ?)) AND NOT EXISTS (SELECT 1 FROM stream_jobs j WHERE"
                " j.file_id=files.id AND j.path IS NOT NULL) RETURNING id",
                (rel_path, keep, *allowed, OutputState.DONE, OutputState.PUBLISHING),
            )
            # Those that published something stay, to keep it recorded, but wait for nothing.
            legal, allowed = _from(replace)
            return rows + await self._rows(
                "UPDATE files SET state=?, error=?, updated_at=? WHERE rel_path=? AND id!=?"
                f" AND {legal} RETURNING id",
                (replace.target, REPLACED, time.time(), rel_path, keep, *allowed),
            )

        return [row["id"] for row in await self._atomically(forget_them)]

    async def fail_file(
        self, file_id: int, error: str, detail: str | None = None, by: str | None = None
    ) -> None:
        """The file failed: its one-line reason and whole text; its claim (held by `by`,
        when given) ends."""

        async def fail() -> None:
            if await self._move_file(
                file_id, "fail", by, error=error, error_detail=detail, worker=None,
                lease_until=None, stop_asked=None,
            ):  # fmt: skip
                await self._event([file_id], EventKind.FAILED, error, by)

        await self._atomically(fail)

    async def finish_file(
        self, file_id: int, raw_action: str | None, by: str | None = None
    ) -> None:
        """The file is done; `raw_action` (the pending `after_done`) in the same write; its
        claim (held by `by`, when given) ends."""

        async def finish() -> None:
            if await self._move_file(
                file_id, "finish", by, error=None, error_detail=None, raw_action=raw_action,
                worker=None, lease_until=None, stop_asked=None,
            ):  # fmt: skip
                await self._event([file_id], EventKind.DONE, "every output done", by)

        await self._atomically(finish)

    async def with_pending_raw_action(self, suffix: str) -> list[FileRow]:
        """Done files whose raw action (recorded as `<action><suffix>`) was interrupted."""
        rows = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state=? AND raw_action LIKE ?",
            (FileState.DONE, f"%{suffix}"),
        )
        return [_file(row) for row in rows]

    async def control(self, name: str) -> str | None:
        """A setting a user made for the workers (None when unset)."""
        rows = await self._rows("SELECT value FROM controls WHERE name=?", (name,))
        return str(rows[0]["value"]) if rows else None

    async def set_control(self, name: str, value: str | None) -> None:
        await self._work_changed()
        if value is None:
            await self._write("DELETE FROM controls WHERE name=?", (name,))
        else:
            await self._write(
                "INSERT INTO controls (name, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value=excluded.value,"
                " updated_at=excluded.updated_at",
                (name, value, time.time()),
            )

    async def to_estimate(self, limit: int) -> list[FileRow]:
        """Up to `limit` pending files not estimated yet (the oldest first), taken for this
        worker to estimate for ESTIMATE_SECONDS: no other worker estimates them meanwhile
        (they are claimed last until their estimate is set)."""
        claimable, states = _from(MOVES["file"]["claim"])
        rows = await self._rows(
            f"UPDATE files SET estimating_until={self.NOW} + ? WHERE id IN (SELECT id FROM files"
            f" WHERE {claimable} AND claim_rank IS NULL AND (estimating_until IS NULL"
            f" OR estimating_until < {self.NOW}) ORDER BY id LIMIT ?{self.SKIP_LOCKED})"
            f" RETURNING {_FILE_COLUMNS}",
            (ESTIMATE_SECONDS, *states, limit),
        )
        return [_file(row) for row in rows]

    async def set_cost(self, file_id: int, cost: Estimate) -> None:
        """The file's place in the claim order: its rank and cost (a file a user moved to the
        front stays there)."""
        await self._write(
            "UPDATE files SET claim_rank=CASE WHEN claim_rank=? THEN claim_rank ELSE ? END,"
            " cpu_cost=?, estimating_until=NULL WHERE id=?",
            (Rank.FRONT, cost.rank, cost.cpu_seconds, file_id),
        )

    async def probe_of(self, file_id: int) -> str | None:
        """ffprobe's JSON of the file, as recorded (None: not read yet)."""
        rows = await self._rows("SELECT probe FROM files WHERE id=?", (file_id,))
        return rows[0]["probe"] if rows else None

    async def set_probe(self, file_id: int, probe_json: str) -> None:
        await self._write("UPDATE files SET probe=? WHERE id=?", (probe_json, file_id))

    async def set_sha256(self, file_id: int, sha256: str) -> None:
        """The SHA-256 of the file's whole content, recorded once (parts made before it was
        recorded are not kept: `Scheduler.process`)."""
        await self._write(
            "UPDATE files SET sha256=? WHERE id=? AND sha256 IS NULL", (sha256, file_id)
        )

    async def set_raw_action(self, file_id: int, action: str) -> None:
        await self._write("UPDATE files SET raw_action=? WHERE id=?", (action, file_id))

    async def set_warnings(self, file_id: int, warnings: Iterable[str]) -> None:
        await self._write(
            "UPDATE files SET warnings=? WHERE id=?", (json.dumps(list(warnings)), file_id)
        )

    async def files(self, states: Iterable[FileState] | None = None) -> list[FileRow]:
        if states is None:
            rows = await self._rows(f"SELECT {_FILE_COLUMNS} FROM files ORDER BY rel_path, id")
        else:
            wanted = [str(state) for state in states]
            rows = await self._rows(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE state IN ({_marks(wanted)}) ORDER BY id",
                wanted,
            )
        return [_file(row) for row in rows]

    async def retry(
        self, rel_paths: Iterable[str] | None = None, by: str | None = None
    ) -> list[str]:
        """Failed files (all, or those at `rel_paths`) become pending, with their failed
        outputs and stream jobs; returns the paths made pending. `by`: who asked."""
        wanted = None if rel_paths is None else set(rel_paths)

        async def make_pending() -> list[FileRow]:
            legal, allowed = _from(MOVES["file"]["retry"])
            rows = await self._rows(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE {legal} ORDER BY id", allowed
            )
            failed = [row for row in map(_file, rows) if wanted is None or row.rel_path in wanted]
            for row in failed:
                await self._move_file(row.id, "retry", error=None, error_detail=None)
            ids = [row.id for row in failed]
            await self._move_children("retry", ids, ", error=NULL")
            await self._event(ids, EventKind.RETRIED, "back to pending", by)
            if failed:
                await self._work_changed()
            return failed

        return [row.rel_path for row in await self._atomically(make_pending)]

    async def reopen(self, file_id: int, outputs: Iterable[tuple[str, int | None]]) -> None:
        """A done file's outputs (kind, and the stream of a montage sheet) are to be made
        again: they and the file become pending. IllegalMove (a StateError) if the file is
        not done (a worker may have it) or an output or sheet is not; StateError if one is
        not recorded."""
        wanted = list(outputs)

        async def make_pending() -> None:
            await self._move_one("file", {"id": file_id}, "reopen")
            for output in dict.fromkeys(output for output, _stream in wanted):
                await self._move_one("output", {"file_id": file_id, "output": output}, "reopen")
            for output, stream in wanted:
                if stream is not None:
                    key = {"file_id": file_id, "output": output, "stream_index": stream}
                    await self._move_one("job", key, "reopen")
            made = ", ".join(dict.fromkeys(output for output, _stream in wanted))
            await self._event([file_id], EventKind.REOPENED, f"to make again: {made}")
            await self._work_changed()

        await self._atomically(make_pending)

    async def attention_and_recent(self, recent: int) -> list[FileRow]:
        """Files that are not done, then the `recent` last finished ones: what `status`
        shows of a large state without listing every file."""
        rows = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state != ? ORDER BY rel_path, id",
            (FileState.DONE,),
        )
        latest = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state = ? ORDER BY updated_at DESC, id DESC"
            " LIMIT ?",
            (FileState.DONE, recent),
        )
        return [_file(row) for row in rows] + [_file(row) for row in reversed(latest)]

    async def summary(self) -> Summary:
        """Files per state, and raw and archive bytes of the files whose archive is done."""
        states = await self._rows("SELECT state, COUNT(*) AS n FROM files GROUP BY state")
        [totals] = await self._rows(
            "SELECT COALESCE(SUM(f.size), 0) AS raw, COALESCE(SUM(o.size), 0) AS archived"
            " FROM outputs o"
            " JOIN files f ON f.id = o.file_id WHERE o.output = 'archive' AND o.state = ?",
            (OutputState.DONE,),
        )
        known = "COALESCE(SUM(cpu_cost), 0)"
        [waiting] = await self._rows(
            f"SELECT COALESCE(SUM(size), 0) AS raw, {known} AS cost FROM files"
            " WHERE state IN (?, ?)",
            (FileState.PENDING, FileState.RUNNING),
        )
        [done] = await self._rows(
            f"SELECT {known} AS cost FROM files WHERE state = ?", (FileState.DONE,)
        )
        return Summary(
            {row["state"]: int(row["n"]) for row in states}, int(totals["raw"]),
            int(totals["archived"]), int(waiting["raw"]), float(waiting["cost"]),
            float(done["cost"]),
        )  # fmt: skip

    # -- what the web page reads ---------------------------------------------------------------

    async def _first(self, state: FileState, order: str, limit: int) -> list[FileRow]:
        rows = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state=? ORDER BY {order} LIMIT ?",
            (state, limit),
        )
        return [_file(row) for row in rows]

    async def queue(self, limit: int) -> list[FileRow]:
        """The first `limit` pending files, in the order workers claim them."""
        return await self._first(FileState.PENDING, CLAIM_ORDER, limit)

    async def failures(self, limit: int) -> list[FileRow]:
        """The last `limit` files that failed, the latest first."""
        return await self._first(FileState.FAILED, "updated_at DESC, id DESC", limit)

    async def finished(self, search: str, limit: int, offset: int) -> list[FileRow]:
        """Done files, the last finished first, whose path holds `search` in any case."""
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", search) + "%"
        path, like = self.FOLD.format("rel_path"), self.FOLD.format("?")
        rows = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state=?"
            f" AND {path} {self.LIKE} {like} ESCAPE '\\'"
            " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
            (FileState.DONE, pattern, limit, offset),
        )
        return [_file(row) for row in rows]

    async def days(self) -> list[Day]:
        """Archives finished per day (UTC), the oldest day first."""
        day = self.DAY.format("o.updated_at")
        rows = await self._rows(
            f"SELECT {day} AS day, COUNT(*) AS files, SUM(f.size) AS raw, SUM(o.size) AS archived"
            " FROM outputs o JOIN files f ON f.id = o.file_id"
            f" WHERE o.output = 'archive' AND o.state = ? GROUP BY {day} ORDER BY day",
            (OutputState.DONE,),
        )
        return [
            Day(int(row["day"]), int(row["files"]), int(row["raw"]), int(row["archived"]))
            for row in rows
        ]

    async def clock(self) -> float:
        """The database's time, in Unix seconds: the clock heartbeats and progress are
        written by, the same for every machine."""
        [row] = await self._rows(f"SELECT {self.NOW} AS now")
        return float(row["now"])

    async def encode_seconds(self) -> float:
        """Wall seconds every stream job recorded took."""
        [row] = await self._rows("SELECT COALESCE(SUM(wall_seconds), 0) AS spent FROM stream_jobs")
        return float(row["spent"])

    async def listing(self, query: FileQuery, limit: int, offset: int) -> list[Listed]:
        """Files as `query` picks and orders them (the web page's gallery), with their
        facts: the duration and main video the probe read (JSON, read by `json()`, which
        both databases know), the archive's size."""
        probe = "json(f.probe)"
        main = ("(SELECT MIN(j.stream_index) FROM stream_jobs j WHERE j.file_id = f.id"
                " AND j.output = 'archive' AND j.stream_type = 'video')")  # fmt: skip
        width = f"CAST({probe} -> 'streams' -> {main} ->> 'width' AS INTEGER)"
        height = f"CAST({probe} -> 'streams' -> {main} ->> 'height' AS INTEGER)"
        facts = {
            "seconds": f"CAST({probe} -> 'format' ->> 'duration' AS DOUBLE PRECISION)",
            "codec": f"{probe} -> 'streams' -> {main} ->> 'codec_name'",
            "width": width,
            "height": height,
            "archived": "(SELECT o.size FROM outputs o WHERE o.file_id = f.id"
            f" AND o.output = 'archive' AND o.state = '{OutputState.DONE}')",
        }
        where: list[str] = []
        values: list[Any] = []
        if query.search:
            where.append(f"{self.FOLD.format('f.rel_path')} {self.LIKE}"
                         f" {self.FOLD.format('?')} ESCAPE '\\'")  # fmt: skip
            values.append("%" + re.sub(r"([\\%_])", r"\\\1", query.search) + "%")
        if query.states:
            where.append(f"f.state IN ({_marks(query.states)})")
            values += query.states
        if query.codec:
            where.append(f"{facts['codec']} = ?")
            values.append(query.codec)
        if query.folder:
            prefix = query.folder.strip("/") + "/"
            where.append("substr(f.rel_path, 1, ?) = ?")
            values += [len(prefix), prefix]
        side = f"CASE WHEN {width} < {height} THEN {width} ELSE {height} END"
        ranges = (("f.updated_at", query.changed), (facts["seconds"], query.seconds),
                  (side, query.side))  # fmt: skip
        for column, (low, high) in ranges:
            if low is not None:
                where.append(f"{column} >= ?")
                values.append(low)
            if high is not None:
                where.append(f"{column} < ?")
                values.append(high)
        first = {"saving": f"f.size - {facts['archived']}", "longest": facts["seconds"]}
        order = f"{first[query.order]} DESC NULLS LAST, " if query.order in first else ""
        columns = ", ".join(f"f.{name.strip()}" for name in _FILE_COLUMNS.split(","))
        rows = await self._rows(
            f"SELECT {columns}, {', '.join(f'{sql} AS {name}' for name, sql in facts.items())}"
            f" FROM files f{' WHERE ' + ' AND '.join(where) if where else ''}"
            f" ORDER BY {order}f.updated_at DESC, f.id DESC LIMIT ? OFFSET ?",
            [*values, limit, offset],
        )
        listed = []
        for row in rows:
            seconds, codec, across, down, archived = [row.pop(name) for name in facts]
            listed.append(Listed(_file(row), seconds, codec, across, down, archived))
        return listed

    # -- claims, leases and workers ------------------------------------------------------------

    async def workers(self) -> list[Worker]:
        rows = await self._rows(
            "SELECT id, host, pid, started_at, heartbeat_at FROM workers ORDER BY started_at"
        )
        return [Worker(**row) for row in rows]

    async def claim(self, worker: str, lease: float, skip: Sequence[int] = ()) -> FileRow | None:
        """The next pending file in the claim order (`CLAIM_ORDER`), now running under
        `worker`'s lease and its claim's number (`claims`, one more than the claim before);
        None when none is pending (but those in `skip`)."""
        skip = list(skip)[:SKIP_MAX]
        skipped = f" AND id NOT IN ({_marks(skip)})" if skip else ""
        claim = MOVES["file"]["claim"]
        legal, allowed = _from(claim)

        async def take() -> FileRow | None:
            rows = await self._rows(
                f"UPDATE files SET state=?, worker=?, lease_until={self.NOW} + ?, updated_at=?,"
                f" claims=claims + 1, stop_asked=NULL"
                f" WHERE id=("
                f"SELECT id FROM files WHERE {legal}{skipped}"
                f" ORDER BY {CLAIM_ORDER} LIMIT 1{self.SKIP_LOCKED})"
                f" RETURNING {_FILE_COLUMNS}",
                (claim.target, worker, lease, time.time(), *allowed, *skip),
            )
            if not rows:
                return None
            row = _file(rows[0])
            await self._event([row.id], EventKind.CLAIMED, f"claim {row.claims}", worker)
            return row

        return await self._atomically(take)

    async def heartbeat(self, worker: Worker, lease: float) -> set[int]:
        """Record `worker` alive (registering it the first time) and renew its leases;
        returns the ids of the files it still holds and is to go on with. Not those a user
        asked it to stop (`ask_stop`): it stops them, then gives them back, and their leases
        are not renewed, so that a give-back that fails still ends (`release_expired`, by
        this worker too). Times are the
        database's own clock: the same for every machine, and taken when the statement runs
        (also when it is sent again after a lost connection)."""
        await self._write(
            f"INSERT INTO workers (id, host, pid, started_at, heartbeat_at) VALUES"
            f" (?, ?, ?, ?, {self.NOW})"
            f" ON CONFLICT (id) DO UPDATE SET heartbeat_at=excluded.heartbeat_at",
            (worker.id, worker.host, worker.pid, worker.started_at),
        )
        rows = await self._rows(
            f"UPDATE files SET lease_until={self.NOW} + ? WHERE worker=? AND state=?"
            " AND stop_asked IS NULL RETURNING id",
            (lease, worker.id, FileState.RUNNING),
        )
        return {row["id"] for row in rows}

    async def silent_workers(self, lease: float) -> list[str]:
        """Workers whose last heartbeat is older than `lease` (by the database's clock)."""
        rows = await self._rows(
            f"SELECT id FROM workers WHERE heartbeat_at < {self.NOW} - ?", (lease,)
        )
        return [row["id"] for row in rows]

    async def release(self, worker: str, file_ids: Iterable[int] | None = None) -> list[int]:
        """`worker`'s claims (all, or on `file_ids`) go back to pending with what ran of
        them: the next claimant salvages its parts. Returns the released file ids."""
        return await self._release("release", "worker=?", [worker], file_ids)

    async def release_expired(self, keep: str) -> list[int]:
        """Claims whose lease ran out (their worker died, or lost the store) go back to
        pending, but those of worker `keep` (the caller: it is alive and renews them) unless
        a user asked to stop them (their leases are not renewed); so do running files no
        worker claims (recorded before claims existed)."""
        return await self._release(
            "expire",
            f"(lease_until IS NULL OR lease_until < {self.NOW})"
            " AND (worker IS DISTINCT FROM ? OR stop_asked IS NOT NULL)",
            [keep],
        )

    async def _release(
        self, verb: str, which: str, params: list[Any], file_ids: Iterable[int] | None = None
    ) -> list[int]:
        """The running files `which` selects go back to pending by `verb` (`release` or
        `expire`), their running outputs and stream jobs with them."""
        ids = None if file_ids is None else list(file_ids)
        if ids == []:
            return []
        only = "" if ids is None else f" AND id IN ({_marks(ids)})"
        legal, allowed = _from(MOVES["file"][verb])

        async def release() -> list[int]:
            rows = await self._rows(
                f"SELECT id, worker, stop_asked FROM files WHERE {legal} AND {which}{only}"
                f"{self.ROW_LOCK}",
                [*allowed, *params, *(ids or [])],
            )
            released = [row["id"] for row in rows]
            for row in rows:
                kind, text = given_back(verb, row["worker"], row["stop_asked"])
                await self._event([row["id"]], kind, text, row["worker"])
                moved, columns = given_back_by(verb, row["stop_asked"])
                await self._move_file(
                    row["id"], moved, worker=None, lease_until=None, stop_asked=None, **columns
                )
            await self._move_children("release", released)
            for chunk in _chunks(released):
                await self._write(f"DELETE FROM progress WHERE file_id IN ({_marks(chunk)})", chunk)
            if released:
                await self._work_changed()
            return released

        return await self._atomically(release)

    async def ask_stop(self, file_id: int, asked: StopAsked, by: str = FROM_THE_PAGE) -> None:
        """Ask the worker holding running file `file_id` to stop it and give it back
        (`asked`: to pending, or set aside as failed): its heartbeat no longer answers that
        it holds the file (`heartbeat`), and its release does what was asked. IllegalMove
        unless the file runs."""

        async def ask() -> None:
            legal, allowed = _from(MOVES["file"]["release"])
            if not await self._write(
                f"UPDATE files SET stop_asked=? WHERE id=? AND {legal}", [asked, file_id, *allowed]
            ):
                await self._not_now(file_id, "stop", FileState.RUNNING)
            await self._event([file_id], EventKind.STOP_ASKED, stop_asked(asked), by)

        await self._atomically(ask)

    async def move_to_front(self, file_id: int, by: str = FROM_THE_PAGE) -> None:
        """A pending file is claimed before all the others (`Rank.FRONT`); IllegalMove
        unless it is pending."""

        async def front() -> None:
            legal, allowed = _from(MOVES["file"]["claim"])
            if not await self._write(
                f"UPDATE files SET claim_rank=? WHERE id=? AND {legal}",
                [Rank.FRONT, file_id, *allowed],
            ):
                await self._not_now(file_id, "move to the front", FileState.PENDING)
            await self._event([file_id], EventKind.FRONT, "first in the queue", by)
            await self._work_changed()

        await self._atomically(front)

    async def _not_now(self, file_id: int, what: str, needed: FileState) -> None:
        """Raise why a file cannot be asked `what`: it is not `needed` (IllegalMove), or
        there is no such file (NoSuchFile)."""
        state = (await self.get_file(file_id)).state
        raise not_now(file_id, state, what, needed)

    async def remove_worker(self, worker: str) -> list[int]:
        """A worker that stopped (or is known dead): its claims released, its row gone."""

        async def remove() -> list[int]:
            released = await self.release(worker)
            await self._write("DELETE FROM progress WHERE worker=?", (worker,))
            await self._write("DELETE FROM workers WHERE id=?", (worker,))
            return released

        return await self._atomically(remove)

    # -- progress ----------------------------------------------------------------------------

    async def write_progress(self, worker: str, tasks: Sequence[Progress]) -> None:
        """What `worker` runs now, replacing what it wrote before: only for files it still
        holds (a file another worker took over shows that worker's progress). Written at
        the database's time, which the page compares with its own (no machine's clock)."""

        async def write() -> None:
            await self._write("DELETE FROM progress WHERE worker=?", (worker,))
            for task in tasks:
                values = asdict(task)
                del values["updated_at"], values["lost_since"]
                await self._write(
                    f"INSERT INTO progress ({', '.join(values)}, updated_at)"
                    f" SELECT {_marks(list(values))}, {self.NOW}"
                    " WHERE EXISTS (SELECT 1 FROM files WHERE id=? AND worker=?)"
                    " ON CONFLICT (file_id, label) DO NOTHING",
                    [*values.values(), task.file_id, worker],
                )

        await self._atomically(write)

    async def progress(self) -> list[Progress]:
        """What runs, as it stands now (`Progress.read_at`)."""
        columns = ", ".join(f"p.{column}" for column in _PROGRESS_COLUMNS.split(", "))
        rows = await self._rows(
            f"SELECT {columns}, {self.NOW} AS now, f.lease_until, w.heartbeat_at FROM progress p"
            " LEFT JOIN files f ON f.id = p.file_id AND f.worker = p.worker"
            " LEFT JOIN workers w ON w.id = p.worker ORDER BY p.file_id, p.label"
        )
        return [
            Progress(**{name: row[name] for name in _PROGRESS_COLUMNS.split(", ")}).read_at(
                float(row["now"]), row["lease_until"], row["heartbeat_at"]
            )
            for row in rows
        ]

    # -- outputs -----------------------------------------------------------------------------

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
        """Record one output's state; a published one with where it is (relative to the
        root), its size and SHA-256. `error` is always written (None clears it). With `by`,
        only while that worker holds the file's claim (ClaimLost otherwise)."""
        given = {"path": path, "size": size, "sha256": sha256}
        columns = {name: value for name, value in given.items() if value is not None}
        key = {"file_id": file_id, "output": output}

        async def write() -> None:
            await self._move("output", key, state, columns | {"error": error}, by)
            if state is OutputState.DONE:
                [row] = await self._rows(
                    "SELECT path FROM outputs WHERE file_id=? AND output=?", (file_id, output)
                )
                where = f" → {row['path']}" if row["path"] else ""
                await self._event([file_id], EventKind.PUBLISHED, f"{output}{where}", by)

        await self._atomically(write)

    async def outputs(self, file_id: int) -> dict[str, OutputRow]:
        rows = await self._rows(
            f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE file_id=?", (file_id,)
        )
        return {row["output"]: _output(row) for row in rows}

    async def publishing(self) -> list[OutputRow]:
        """Outputs whose publishing began (the intent is recorded) and was not recorded done."""
        rows = await self._rows(
            f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE state=?", (OutputState.PUBLISHING,)
        )
        return [_output(row) for row in rows]

    async def remember_intent(
        self, file_id: int, output: str, path: str, size: int, sha256: str, by: str
    ) -> None:
        """Keep what worker `by` is about to publish at `path` (relative to the root), under
        the number of its claim of the file, beside what every earlier claim intended
        there; ClaimLost unless it holds the claim."""
        changed = await self._write(
            "INSERT INTO intents (file_id, output, path, claim, size, sha256, recorded_at)"
            " SELECT id, ?, ?, claims, ?, ?, ? FROM files WHERE id=? AND worker=?"
            " ON CONFLICT (file_id, path, claim) DO UPDATE SET output=excluded.output,"
            " size=excluded.size, sha256=excluded.sha256, recorded_at=excluded.recorded_at",
            (output, path, size, sha256, time.time(), file_id, by),
        )
        if not changed:
            raise ClaimLost(f"worker {by} no longer holds file {file_id}")

    async def intents(self, file_id: int, output: str, path: str) -> list[Intent]:
        """What the claims of a file intended to publish at `path`, the earliest claim first."""
        rows = await self._rows(
            "SELECT claim, size, sha256 FROM intents WHERE file_id=? AND output=? AND path=?"
            " ORDER BY claim",
            (file_id, output, path),
        )
        return [Intent(**row) for row in rows]

    async def all_outputs(self, file_ids: Sequence[int] | None = None) -> list[OutputRow]:
        """Every output, or those of `file_ids`."""
        if file_ids is None:
            rows = await self._rows(f"SELECT {_OUTPUT_COLUMNS} FROM outputs")
        else:
            rows = []
            for chunk in _chunks(file_ids):
                rows += await self._rows(
                    f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE file_id IN ({_marks(chunk)})",
                    chunk,
                )
        return [_output(row) for row in rows]

    # -- stream jobs -------------------------------------------------------------------------

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
        """Record one stream job with its decision and state; `figures` that are set. With
        `by`, only while that worker holds the file's claim (ClaimLost otherwise)."""
        key = {"file_id": file_id, "output": output, "stream_index": stream_index}
        columns = {
            "stream_type": stream_type,
            "decision": decision,
            "notes": json.dumps(list(notes)),
        } | _figure_columns(figures)

        ends = state in (JobState.DONE, JobState.FAILED)

        async def write() -> None:
            was = await self._rows(
                "SELECT state FROM stream_jobs WHERE file_id=? AND output=? AND stream_index=?",
                list(key.values()),
            ) if ends else []  # fmt: skip
            await self._move("job", key, state, columns, by)
            if ends and [row["state"] for row in was] != [state]:  # its end, not figures after it
                text = job_ended(output, stream_index, stream_type, decision, state, figures)
                await self._event([file_id], EventKind.STREAM, text, by)

        await self._atomically(write)

    async def jobs(self, file_id: int, output: str) -> dict[int, StreamJobRow]:
        rows = await self._rows(
            f"SELECT {_JOB_COLUMNS} FROM stream_jobs WHERE file_id=? AND output=?"
            " ORDER BY stream_index",
            (file_id, output),
        )
        return {row["stream_index"]: _job(row) for row in rows}

    async def all_jobs(
        self, file_ids: Sequence[int] | None = None
    ) -> dict[int, list[tuple[str, StreamJobRow]]]:
        """Every stream job (or those of `file_ids`), by file id, with its output."""
        select = f"SELECT file_id, output, {_JOB_COLUMNS} FROM stream_jobs"
        order = " ORDER BY file_id, output, stream_index"
        if file_ids is None:
            rows = await self._rows(select + order)
        else:
            rows = []
            for chunk in _chunks(file_ids):
                rows += await self._rows(
                    f"{select} WHERE file_id IN ({_marks(chunk)}){order}", chunk
                )
        jobs: dict[int, list[tuple[str, StreamJobRow]]] = {}
        for row in rows:
            file_id, output = row.pop("file_id"), row.pop("output")
            jobs.setdefault(file_id, []).append((output, _job(row)))
        return jobs
