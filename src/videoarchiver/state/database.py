"""State database: what is known of every raw file, each of its outputs and stream jobs.

Each transition is committed before the filesystem step that depends on it, in WAL mode with
full sync, so that a kill at any instant leaves a database that says what was happening.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from videoarchiver.errors import StateError
from videoarchiver.state.migrations import MIGRATIONS

# States shared by files, outputs and stream jobs.
PENDING, RUNNING, PUBLISHING, DONE, FAILED = "pending", "running", "publishing", "done", "failed"
REPLACED = (
    "its raw file was replaced by new content before it was finished (what it published stays)"
)
PRIVATE = 0o600  # the state names every recording and keeps every tag
CHUNK = 500  # values per `IN (...)`: SQLite limits the number of ? marks
SKIPPED = "skipped"  # an output the file has nothing for (no montage without video)
FINISHED = (DONE, SKIPPED)


@dataclass(frozen=True, slots=True)
class FileRow:
    id: int
    rel_path: str
    size: int
    mtime_ns: int  # a hint only: the identity is (rel_path, size, fingerprint)
    fingerprint: str | None  # None for rows recorded before fingerprints: read on next sight
    stem: str
    state: str
    error: str | None  # one line for `status`
    error_detail: str | None  # the whole text (ffmpeg's stderr), for `status --json`
    warnings: tuple[str, ...]
    raw_action: str | None


@dataclass(frozen=True, slots=True)
class OutputRow:
    file_id: int
    kind: str
    state: str
    path: str | None
    size: int | None
    sha256: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class StreamJobRow:
    stream_index: int
    kind: str
    decision: str
    state: str
    notes: tuple[str, ...]
    raw_bytes: int | None
    raw_seconds: float | None
    out_bytes: int | None
    out_seconds: float | None
    ratio: float | None
    wall_seconds: float | None
    error: str | None
    path: str | None
    sha256: str | None
    parts: str


# The ffprobe JSON (`probe`) is stored for the record but never listed: it is large.
@dataclass(frozen=True)
class Summary:
    files: dict[str, int]
    raw_bytes: int
    archive_bytes: int


_FILE_COLUMNS = (
    "id, rel_path, size, mtime_ns, fingerprint, stem, state, error, error_detail, warnings,"
    " raw_action"
)
_OUTPUT_COLUMNS = "file_id, kind, state, path, size, sha256, error"
_JOB_COLUMNS = (
    "stream_index, kind, decision, state, notes, raw_bytes, raw_seconds, out_bytes, "
    "out_seconds, ratio, wall_seconds, error, path, sha256, parts"
)


def _file(row: aiosqlite.Row) -> FileRow:
    values = dict(row)
    warnings = values["warnings"]
    values["warnings"] = () if warnings == "[]" else tuple(json.loads(warnings))
    return FileRow(**values)


def _job_values(values: dict[str, Any]) -> StreamJobRow:
    values["notes"] = tuple(json.loads(values["notes"]))
    return StreamJobRow(**values)


def _job(row: aiosqlite.Row) -> StreamJobRow:
    return _job_values(dict(row))


@contextmanager
def _errors_named(path: Path) -> Iterator[None]:
    """SQLite's errors as the user can act on them: a full disk is `ENOSPC` (the file waits
    for space like any other), a damaged or unusable database a StateError naming it."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise  # a bug of ours, not the database's state
    except sqlite3.DatabaseError as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_FULL":
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from exc
        if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            raise StateError(
                f"the state database {path} is damaged ({exc}); move it away to start with a"
                " new one (outputs already published are kept and never overwritten)"
            ) from exc
        raise StateError(f"the state database {path} cannot be used: {exc}") from exc


class StateDB:
    """Async access to `work/state.sqlite3`; open it with `StateDB.open(path)`."""

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._db = connection
        self._path = path
        self._inode = path.stat().st_ino

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[StateDB]:
        # Created private: it names every recording (SQLite gives its -wal and -shm files
        # the same permission bits).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE))
        for made in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            with contextlib.suppress(OSError):  # also those an older version made
                made.chmod(PRIVATE)
        with _errors_named(path):
            async with aiosqlite.connect(path, isolation_level=None) as connection:
                connection.row_factory = aiosqlite.Row
                await connection.execute("PRAGMA journal_mode=WAL")
                await connection.execute("PRAGMA synchronous=FULL")
                await connection.execute("PRAGMA foreign_keys=ON")
                await connection.execute("PRAGMA busy_timeout=10000")
                state = cls(connection, path)
                await state._migrate()
                yield state

    def ensure_in_place(self) -> None:
        """Raise StateError when the database file was deleted or replaced while open: what
        is written would go to a file nobody can read again."""
        try:
            inode = self._path.stat().st_ino
        except OSError:
            inode = None
        if inode != self._inode:
            raise StateError(
                f"the state database {self._path} was deleted or replaced while running;"
                " stopping (the next start begins with a new one)"
            )

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        applied = int(row[0]) if row else 0
        if applied == len(MIGRATIONS):
            return
        # Off while tables are rebuilt: dropping a parent table must not cascade.
        await self._db.execute("PRAGMA foreign_keys=OFF")
        for number, migration in enumerate(MIGRATIONS[applied:], start=applied + 1):
            await self._db.executescript(
                f"BEGIN; {migration.script}; PRAGMA user_version = {number}; COMMIT;"
            )
        await self._db.execute("PRAGMA foreign_keys=ON")

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> None:
        with _errors_named(self._path):
            await self._db.execute(sql, tuple(params))

    async def _upsert(self, table: str, key: dict[str, Any], columns: dict[str, Any]) -> None:
        """Insert a row, or update `columns` of the row with the same primary `key`."""
        values = {**key, **columns, "updated_at": time.time()}
        names = ", ".join(values)
        marks = ", ".join("?" * len(values))
        updates = ", ".join(f"{name}=excluded.{name}" for name in values if name not in key)
        await self._write(
            f"INSERT INTO {table} ({names}) VALUES ({marks})"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}",
            values.values(),
        )

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        with _errors_named(self._path):
            async with self._db.execute(sql, tuple(params)) as cursor:
                return list(await cursor.fetchall())

    # -- files -------------------------------------------------------------------------------

    async def find_files(self, rel_paths: Sequence[str]) -> dict[str, list[FileRow]]:
        """Every recorded row at these paths (old contents included), newest last."""
        found: dict[str, list[FileRow]] = {}
        for start in range(0, len(rel_paths), CHUNK):
            chunk = list(rel_paths[start : start + CHUNK])
            marks = ",".join("?" * len(chunk))
            for row in await self._rows(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE rel_path IN ({marks}) ORDER BY id",
                chunk,
            ):
                file = _file(row)
                found.setdefault(file.rel_path, []).append(file)
        return found

    async def get_file(self, file_id: int) -> FileRow:
        rows = await self._rows(f"SELECT {_FILE_COLUMNS} FROM files WHERE id=?", (file_id,))
        return _file(rows[0])

    async def stem_taken(self, stem: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM files WHERE stem=?", (stem,)))

    async def add_file(
        self, rel_path: str, size: int, mtime_ns: int, fingerprint: str, stem: str
    ) -> FileRow:
        """A new source, under an id no other file ever had."""
        now = time.time()
        [row] = await self._rows(
            f"INSERT INTO files (rel_path, size, mtime_ns, fingerprint, stem, created_at,"
            f" updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_FILE_COLUMNS}",
            (rel_path, size, mtime_ns, fingerprint, stem, now, now),
        )
        return _file(row)

    async def set_identity(self, file_id: int, mtime_ns: int, fingerprint: str) -> None:
        """The same content seen with a new mtime (`touch`), or first fingerprinted."""
        await self._write(
            "UPDATE files SET mtime_ns=?, fingerprint=? WHERE id=?",
            (mtime_ns, fingerprint, file_id),
        )

    async def forget_replaced(self, rel_path: str, keep: int, busy: Iterable[int]) -> list[int]:
        """Rows of older content at `rel_path` that never finished nor published anything,
        and that no task is working on (`busy`), are forgotten (their ids are never given out
        again); returns their ids."""
        busy = list(busy)
        idle = f"rel_path=? AND id!=? AND id NOT IN ({','.join('?' * len(busy))})"
        rows = await self._rows(
            f"DELETE FROM files WHERE {idle} AND state IN (?, ?)"
            " AND NOT EXISTS (SELECT 1 FROM outputs o WHERE o.file_id=files.id AND o.state IN"
            " (?, ?)) AND NOT EXISTS (SELECT 1 FROM stream_jobs j WHERE j.file_id=files.id"
            " AND j.path IS NOT NULL) RETURNING id",
            (rel_path, keep, *busy, PENDING, FAILED, DONE, PUBLISHING),
        )
        # Those that published something stay, to keep it recorded, but wait for nothing.
        await self._write(
            f"UPDATE files SET state=?, error=? WHERE {idle} AND state=?",
            (FAILED, REPLACED, rel_path, keep, *busy, PENDING),
        )
        return [row[0] for row in rows]

    async def set_file_state(
        self, file_id: int, state: str, error: str | None = None, detail: str | None = None
    ) -> None:
        await self._write(
            "UPDATE files SET state=?, error=?, error_detail=?, updated_at=? WHERE id=?",
            (state, error, detail, time.time(), file_id),
        )

    async def set_done(self, file_id: int, raw_action: str | None) -> None:
        """The file is done; `raw_action` (the pending `after_done`) in the same write."""
        await self._write(
            "UPDATE files SET state=?, error=NULL, error_detail=NULL, raw_action=?, updated_at=?"
            " WHERE id=?",
            (DONE, raw_action, time.time(), file_id),
        )

    async def with_pending_raw_action(self, suffix: str) -> list[FileRow]:
        """Done files whose raw action (recorded as `<action><suffix>`) was interrupted."""
        rows = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state=? AND raw_action LIKE ?",
            (DONE, f"%{suffix}"),
        )
        return [_file(row) for row in rows]

    async def control(self, name: str) -> str | None:
        """A setting a user made for the daemons (None when unset)."""
        rows = await self._rows("SELECT value FROM controls WHERE name=?", (name,))
        return str(rows[0][0]) if rows else None

    async def set_control(self, name: str, value: str | None) -> None:
        if value is None:
            await self._write("DELETE FROM controls WHERE name=?", (name,))
        else:
            await self._upsert("controls", {"name": name}, {"value": value})

    async def set_probe(self, file_id: int, probe_json: str) -> None:
        await self._write("UPDATE files SET probe=? WHERE id=?", (probe_json, file_id))

    async def set_raw_action(self, file_id: int, action: str) -> None:
        await self._write("UPDATE files SET raw_action=? WHERE id=?", (action, file_id))

    async def set_warnings(self, file_id: int, warnings: Iterable[str]) -> None:
        await self._write(
            "UPDATE files SET warnings=? WHERE id=?", (json.dumps(list(warnings)), file_id)
        )

    async def files(self, states: Iterable[str] | None = None) -> list[FileRow]:
        if states is None:
            rows = await self._rows(f"SELECT {_FILE_COLUMNS} FROM files ORDER BY rel_path, id")
        else:
            wanted = list(states)
            marks = ",".join("?" * len(wanted))
            rows = await self._rows(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE state IN ({marks}) ORDER BY id", wanted
            )
        return [_file(row) for row in rows]

    async def retry(self, rel_paths: Iterable[str] | None = None) -> list[str]:
        """Failed files (all, or those at `rel_paths`) become pending, with their failed
        outputs and stream jobs; returns the paths made pending."""
        wanted = None if rel_paths is None else list(rel_paths)
        failed = [
            row for row in await self.files([FAILED]) if wanted is None or row.rel_path in wanted
        ]
        for row in failed:
            await self.set_file_state(row.id, PENDING)
            for table in ("outputs", "stream_jobs"):
                await self._write(
                    f"UPDATE {table} SET state=?, error=NULL WHERE file_id=? AND state=?",
                    (PENDING, row.id, FAILED),
                )
        return [row.rel_path for row in failed]

    async def reopen(self, file_id: int, outputs: Iterable[tuple[str, int | None]]) -> None:
        """A done file's outputs (kind, and the stream of a montage sheet) are to be made
        again: they and the file become pending."""
        for kind, stream in outputs:
            await self._write(
                "UPDATE outputs SET state=? WHERE file_id=? AND kind=?", (PENDING, file_id, kind)
            )
            if stream is not None:
                await self._write(
                    "UPDATE stream_jobs SET state=? WHERE file_id=? AND output=?"
                    " AND stream_index=?",
                    (PENDING, file_id, kind, stream),
                )
        await self.set_file_state(file_id, PENDING)

    async def attention_and_recent(self, recent: int) -> list[FileRow]:
        """Files that are not done, then the `recent` last finished ones: what `status`
        shows of a large state without listing every file."""
        rows = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state != ? ORDER BY rel_path, id", (DONE,)
        )
        latest = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state = ? ORDER BY updated_at DESC, id DESC"
            " LIMIT ?",
            (DONE, recent),
        )
        return [_file(row) for row in rows] + [_file(row) for row in reversed(latest)]

    async def summary(self) -> Summary:
        """Files per state, and raw and archive bytes of the files whose archive is done."""
        states = await self._rows("SELECT state, COUNT(*) FROM files GROUP BY state")
        [(raw, archived)] = await self._rows(
            "SELECT COALESCE(SUM(f.size), 0), COALESCE(SUM(o.size), 0) FROM outputs o"
            " JOIN files f ON f.id = o.file_id WHERE o.kind = 'archive' AND o.state = ?",
            (DONE,),
        )
        return Summary({row[0]: row[1] for row in states}, raw, archived)

    async def all_jobs(self) -> dict[int, list[tuple[str, StreamJobRow]]]:
        """Every stream job, by file id, with its output kind: one query for `status --json`."""
        rows = await self._rows(
            f"SELECT file_id, output, {_JOB_COLUMNS} FROM stream_jobs"
            " ORDER BY file_id, output, stream_index"
        )
        jobs: dict[int, list[tuple[str, StreamJobRow]]] = {}
        for row in rows:
            values = dict(row)
            file_id, output = values.pop("file_id"), values.pop("output")
            jobs.setdefault(file_id, []).append((output, _job_values(values)))
        return jobs

    async def requeue_interrupted(self, file_id: int | None = None) -> None:
        """What was running (of every file, or of one) starts that step again: at start, for
        what the last daemon was doing when it died; later, for work a pause stopped."""
        now = time.time()
        for table, key in (("files", "id"), ("outputs", "file_id"), ("stream_jobs", "file_id")):
            which = "" if file_id is None else f" AND {key}=?"
            await self._write(
                f"UPDATE {table} SET state=?, updated_at=? WHERE state=?{which}",
                (PENDING, now, RUNNING, *(() if file_id is None else (file_id,))),
            )

    # -- outputs -----------------------------------------------------------------------------

    async def set_output(self, file_id: int, kind: str, state: str, **fields: Any) -> None:
        """Insert or update one output's row; `fields` are columns of `outputs`."""
        await self._upsert(
            "outputs", {"file_id": file_id, "kind": kind}, {"state": state, **fields}
        )

    async def outputs(self, file_id: int) -> dict[str, OutputRow]:
        rows = await self._rows(
            f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE file_id=?", (file_id,)
        )
        return {row["kind"]: OutputRow(**dict(row)) for row in rows}

    async def publishing(self) -> list[OutputRow]:
        """Outputs whose publishing began (the intent is recorded) and was not recorded done."""
        rows = await self._rows(
            f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE state=?", (PUBLISHING,)
        )
        return [OutputRow(**dict(row)) for row in rows]

    async def all_outputs(self, file_ids: Sequence[int] | None = None) -> list[OutputRow]:
        """Every output, or those of `file_ids`."""
        if file_ids is None:
            rows = await self._rows(f"SELECT {_OUTPUT_COLUMNS} FROM outputs")
        else:
            rows = []
            for start in range(0, len(file_ids), CHUNK):
                chunk = list(file_ids[start : start + CHUNK])
                marks = ",".join("?" * len(chunk))
                rows += await self._rows(
                    f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE file_id IN ({marks})", chunk
                )
        return [OutputRow(**dict(row)) for row in rows]

    # -- stream jobs -------------------------------------------------------------------------

    async def save_job(
        self,
        file_id: int,
        output: str,
        stream_index: int,
        *,
        kind: str,
        decision: str,
        state: str,
        notes: Iterable[str] = (),
        **figures: Any,
    ) -> None:
        """Insert or replace one stream job with its decision, state and figures."""
        await self._upsert(
            "stream_jobs",
            {"file_id": file_id, "output": output, "stream_index": stream_index},
            {"kind": kind, "decision": decision, "state": state, "notes": json.dumps(list(notes))}
            | figures,
        )

    async def jobs(self, file_id: int, output: str) -> dict[int, StreamJobRow]:
        rows = await self._rows(
            f"SELECT {_JOB_COLUMNS} FROM stream_jobs WHERE file_id=? AND output=?"
            " ORDER BY stream_index",
            (file_id, output),
        )
        return {row["stream_index"]: _job(row) for row in rows}
