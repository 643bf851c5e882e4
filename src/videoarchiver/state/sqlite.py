"""The SQLite store (`work/state.sqlite3`): the embedded backend of `state.Store`.

Each transition is committed before the filesystem step that depends on it, in WAL mode with
full sync, so that a kill at any instant leaves a database that says what was happening.
One connection serves the whole process: a task's transaction holds it until committed, and
`BEGIN IMMEDIATE` takes SQLite's write lock at once, so the workers (processes) sharing the
file serialise their claims.
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
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
from pydantic import TypeAdapter

from videoarchiver.errors import StateError
from videoarchiver.planning.resume import Part
from videoarchiver.state.migrations import MIGRATIONS
from videoarchiver.state.records import (
    FIGURE_NAMES,
    NO_FIGURES,
    Figures,
    FileRow,
    FileState,
    JobState,
    OutputRow,
    OutputState,
    Progress,
    StreamJobRow,
    Summary,
    Worker,
)
from videoarchiver.state.transitions import refuse, sources

REPLACED = (
    "its raw file was replaced by new content before it was finished (what it published stays)"
)
PRIVATE = 0o600  # the state names every recording and keeps every tag
CHUNK = 500  # values per `IN (...)`: SQLite limits the number of ? marks
WAL_ATTEMPTS = 200  # × 50 ms
PARTS = TypeAdapter(list[Part])

_FILE_COLUMNS = (
    "id, rel_path, size, mtime_ns, fingerprint, stem, state, error, error_detail, warnings,"
    " raw_action, worker"
)
_OUTPUT_COLUMNS = "file_id, output, state, path, size, sha256, error"
_JOB_COLUMNS = "stream_index, stream_type, decision, state, notes, " + ", ".join(FIGURE_NAMES)
_PROGRESS_COLUMNS = "file_id, label, output, worker, done, total, speed, remaining, updated_at"


def _file(row: aiosqlite.Row) -> FileRow:
    values = dict(row)
    warnings = values["warnings"]
    values["warnings"] = () if warnings == "[]" else tuple(json.loads(warnings))
    values["state"] = FileState(values["state"])
    return FileRow(**values)


def _output(row: aiosqlite.Row) -> OutputRow:
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
    """The columns a job's figures set: those given (a None figure keeps what is recorded)."""
    values = figures.shown()
    if "parts" in values:
        values["parts"] = json.dumps([part.model_dump() for part in figures.parts or ()])
    return values


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


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


async def _into_wal(connection: aiosqlite.Connection) -> None:
    """WAL mode, waiting for a worker that is making the same new file WAL at this moment
    (SQLite answers that race "locked" at once, without its busy handler)."""
    for attempt in range(WAL_ATTEMPTS):
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                raise
            await anyio.sleep(0.05)


class SQLiteStore:
    """Async access to `work/state.sqlite3`; open it with `SQLiteStore.open(path, root)`."""

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._db = connection
        self._path = path
        self._inode = path.stat().st_ino
        self._lock = anyio.Lock()
        self._owner: object = None  # the task holding the connection

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path, root: Path) -> AsyncIterator[SQLiteStore]:
        # Created private: it names every recording (SQLite gives its -wal and -shm files
        # the same permission bits).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE))
        for made in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            with contextlib.suppress(OSError):  # also those an older version made
                made.chmod(PRIVATE)
        with _errors_named(path):
            async with aiosqlite.connect(path, isolation_level=None) as connection:
                connection.row_factory = aiosqlite.Row
                # First: another worker may be creating or migrating the same file.
                await connection.execute("PRAGMA busy_timeout=30000")
                await _into_wal(connection)
                await connection.execute("PRAGMA synchronous=FULL")
                store = cls(connection, path)
                await store._migrate(root)
                await connection.execute("PRAGMA foreign_keys=ON")
                yield store

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

    # -- the connection, transactions and migrations -------------------------------------------

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[bool]:
        """The connection for this task; True when this call took it (not nested)."""
        me = anyio.get_current_task().id
        if self._owner == me:
            yield False
            return
        async with self._lock:
            self._owner = me
            try:
                yield True
            finally:
                self._owner = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Everything inside commits together or not at all; nested calls join the outer one."""
        async with self._held() as outermost:
            if not outermost:
                yield
                return
            with _errors_named(self._path):
                await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                    await self._db.execute("ROLLBACK")
                raise
            with anyio.CancelScope(shield=True), _errors_named(self._path):
                await self._db.execute("COMMIT")

    async def _migrate(self, root: Path) -> None:
        """Apply, once each and by name, the migrations this database lacks: each in its own
        transaction that first records its name, so two workers starting together apply it
        once (the second finds the name taken and moves on)."""
        db = self._db
        await db.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        numbered = int(row[0]) if row else 0  # how older versions counted them
        async with db.execute("SELECT name FROM migrations") as cursor:
            applied = {name for (name,) in await cursor.fetchall()}
        if not applied and numbered:
            applied = {migration.name for migration in MIGRATIONS[:numbered]}
            await db.executemany(
                "INSERT OR IGNORE INTO migrations (name, applied_at) VALUES (?, ?)",
                [(name, time.time()) for name in applied],
            )
        for migration in MIGRATIONS:
            if migration.name in applied:
                continue
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                    (migration.name, time.time()),
                )
                for statement in migration.statements():
                    await db.execute(statement, {"root": str(root)})
            except sqlite3.IntegrityError:
                await db.execute("ROLLBACK")  # another worker applied it meanwhile
                continue
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        async with self._held():
            with _errors_named(self._path):
                cursor = await self._db.execute(sql, tuple(params))
                changed = cursor.rowcount
                await cursor.close()
                return changed

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._held():
            with _errors_named(self._path):
                async with self._db.execute(sql, tuple(params)) as cursor:
                    return list(await cursor.fetchall())

    async def _refused(self, entity: str, table: str, where: str, key: Sequence[Any],
                       new: StrEnum) -> None:  # fmt: skip
        """Raise the IllegalMove for a move that changed no row because it was not legal."""
        rows = await self._rows(f"SELECT state FROM {table} WHERE {where}", key)
        if rows:
            raise refuse(entity, " ".join(map(str, key)), rows[0][0], new)

    async def _move(
        self, entity: str, table: str, key: dict[str, Any], new: StrEnum, columns: dict[str, Any]
    ) -> None:
        """Insert the row at `key` in state `new`, or move it there if the table allows."""
        values = {**key, "state": str(new), **columns, "updated_at": time.time()}
        allowed = sources(entity, new)
        updates = ", ".join(f"{name}=excluded.{name}" for name in values if name not in key)
        changed = await self._write(
            f"INSERT INTO {table} ({', '.join(values)}) VALUES ({_marks(list(values))})"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
            f" WHERE {table}.state IN ({_marks(allowed)})",
            [*values.values(), *allowed],
        )
        if not changed:
            where = " AND ".join(f"{name}=?" for name in key)
            await self._refused(entity, table, where, list(key.values()), new)

    async def _move_file(self, file_id: int, new: FileState, **columns: Any) -> None:
        values = {"state": str(new), **columns, "updated_at": time.time()}
        allowed = sources("file", new)
        changed = await self._write(
            f"UPDATE files SET {', '.join(f'{name}=?' for name in values)}"
            f" WHERE id=? AND state IN ({_marks(allowed)})",
            [*values.values(), file_id, *allowed],
        )
        if not changed:
            await self._refused("file", "files", "id=?", [file_id], new)

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

    async def forget_replaced(self, rel_path: str, keep: int) -> list[int]:
        """Rows of older content at `rel_path` that never finished nor published anything
        are forgotten (their ids are never given out again); returns their ids. A claimed
        row is running, so no worker's file is forgotten under it."""
        async with self.transaction():
            rows = await self._rows(
                "DELETE FROM files WHERE rel_path=? AND id!=? AND state IN (?, ?)"
                " AND NOT EXISTS (SELECT 1 FROM outputs o WHERE o.file_id=files.id AND o.state"
                " IN (?, ?)) AND NOT EXISTS (SELECT 1 FROM stream_jobs j WHERE"
                " j.file_id=files.id AND j.path IS NOT NULL) RETURNING id",
                (
                    rel_path,
                    keep,
                    FileState.PENDING,
                    FileState.FAILED,
                    OutputState.DONE,
                    OutputState.PUBLISHING,
                ),
            )
            # Those that published something stay, to keep it recorded, but wait for nothing.
            await self._write(
                "UPDATE files SET state=?, error=?, updated_at=? WHERE rel_path=? AND id!=?"
                " AND state=?",
                (FileState.FAILED, REPLACED, time.time(), rel_path, keep, FileState.PENDING),
            )
        return [row[0] for row in rows]

    async def fail_file(self, file_id: int, error: str, detail: str | None = None) -> None:
        """The file failed: its one-line reason and whole text; its claim ends."""
        await self._move_file(
            file_id,
            FileState.FAILED,
            error=error,
            error_detail=detail,
            worker=None,
            lease_until=None,
        )

    async def finish_file(self, file_id: int, raw_action: str | None) -> None:
        """The file is done; `raw_action` (the pending `after_done`) in the same write."""
        await self._move_file(
            file_id, FileState.DONE, error=None, error_detail=None, raw_action=raw_action,
            worker=None, lease_until=None,
        )  # fmt: skip

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
        return str(rows[0][0]) if rows else None

    async def set_control(self, name: str, value: str | None) -> None:
        if value is None:
            await self._write("DELETE FROM controls WHERE name=?", (name,))
        else:
            await self._write(
                "INSERT INTO controls (name, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value=excluded.value,"
                " updated_at=excluded.updated_at",
                (name, value, time.time()),
            )

    async def unestimated(self, limit: int) -> list[FileRow]:
        """Pending files whose cost is not estimated yet (the oldest first)."""
        rows = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE state=? AND cost IS NULL ORDER BY id LIMIT ?",
            (FileState.PENDING, limit),
        )
        return [_file(row) for row in rows]

    async def set_cost(self, file_id: int, cost: float) -> None:
        await self._write("UPDATE files SET cost=? WHERE id=?", (cost, file_id))

    async def set_probe(self, file_id: int, probe_json: str) -> None:
        await self._write("UPDATE files SET probe=? WHERE id=?", (probe_json, file_id))

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

    async def retry(self, rel_paths: Iterable[str] | None = None) -> list[str]:
        """Failed files (all, or those at `rel_paths`) become pending, with their failed
        outputs and stream jobs; returns the paths made pending."""
        wanted = None if rel_paths is None else set(rel_paths)
        async with self.transaction():
            failed = [
                row
                for row in await self.files([FileState.FAILED])
                if wanted is None or row.rel_path in wanted
            ]
            for row in failed:
                await self._move_file(row.id, FileState.PENDING, error=None, error_detail=None)
                for table in ("outputs", "stream_jobs"):
                    await self._write(
                        f"UPDATE {table} SET state=?, error=NULL WHERE file_id=? AND state=?",
                        (OutputState.PENDING, row.id, OutputState.FAILED),
                    )
        return [row.rel_path for row in failed]

    async def reopen(self, file_id: int, outputs: Iterable[tuple[str, int | None]]) -> None:
        """A done file's outputs (kind, and the stream of a montage sheet) are to be made
        again: they and the file become pending."""
        async with self.transaction():
            for output, stream in outputs:
                await self._move("output", "outputs", {"file_id": file_id, "output": output},
                                 OutputState.PENDING, {})  # fmt: skip
                if stream is not None:
                    await self._write(
                        "UPDATE stream_jobs SET state=? WHERE file_id=? AND output=?"
                        " AND stream_index=?",
                        (JobState.PENDING, file_id, output, stream),
                    )
            await self._move_file(file_id, FileState.PENDING)

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
        states = await self._rows("SELECT state, COUNT(*) FROM files GROUP BY state")
        [(raw, archived)] = await self._rows(
            "SELECT COALESCE(SUM(f.size), 0), COALESCE(SUM(o.size), 0) FROM outputs o"
            " JOIN files f ON f.id = o.file_id WHERE o.output = 'archive' AND o.state = ?",
            (OutputState.DONE,),
        )
        [(waiting,)] = await self._rows(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE state IN (?, ?)",
            (FileState.PENDING, FileState.RUNNING),
        )
        return Summary({row[0]: row[1] for row in states}, raw, archived, waiting)

    # -- claims, leases and workers ------------------------------------------------------------

    async def workers(self) -> list[Worker]:
        rows = await self._rows(
            "SELECT id, host, pid, started_at, heartbeat_at FROM workers ORDER BY started_at"
        )
        return [Worker(**dict(row)) for row in rows]

    async def claim(self, worker: str, lease: float, skip: Sequence[int] = ()) -> FileRow | None:
        """The next pending file (the costliest first), now running under `worker`'s lease;
        None when none is pending (but those in `skip`)."""
        skip = list(skip)[:CHUNK]
        rows = await self._rows(
            f"UPDATE files SET state=?, worker=?, lease_until=?, updated_at=? WHERE id=("
            f"SELECT id FROM files WHERE state=? AND id NOT IN ({_marks(skip)})"
            f" ORDER BY cost DESC NULLS LAST, id LIMIT 1) RETURNING {_FILE_COLUMNS}",
            (FileState.RUNNING, worker, time.time() + lease, time.time(), FileState.PENDING, *skip),
        )
        return _file(rows[0]) if rows else None

    async def heartbeat(self, worker: Worker, lease: float) -> set[int]:
        """Record `worker` alive (registering it the first time) and renew its leases;
        returns the ids of the files it still holds."""
        now = time.time()
        async with self.transaction():
            await self._write(
                "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) VALUES"
                " (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at=excluded.heartbeat_at",
                (worker.id, worker.host, worker.pid, worker.started_at, now),
            )
            rows = await self._rows(
                "UPDATE files SET lease_until=? WHERE worker=? AND state=? RETURNING id",
                (now + lease, worker.id, FileState.RUNNING),
            )
        return {row[0] for row in rows}

    async def release(self, worker: str, file_ids: Iterable[int] | None = None) -> list[int]:
        """`worker`'s claims (all, or on `file_ids`) go back to pending with what ran of
        them: the next claimant salvages its parts. Returns the released file ids."""
        return await self._release("worker=?", [worker], file_ids)

    async def release_expired(self) -> list[int]:
        """Claims whose lease ran out (their worker died, or lost the store) go back to
        pending; so do running files no worker claims (recorded before claims existed)."""
        return await self._release("(lease_until IS NULL OR lease_until<?)", [time.time()])

    async def _release(
        self, which: str, params: list[Any], file_ids: Iterable[int] | None = None
    ) -> list[int]:
        ids = None if file_ids is None else list(file_ids)
        only = "" if ids is None else f" AND id IN ({_marks(ids)})"
        async with self.transaction():
            rows = await self._rows(
                f"UPDATE files SET state=?, worker=NULL, lease_until=NULL, updated_at=?"
                f" WHERE state=? AND {which}{only} RETURNING id",
                [FileState.PENDING, time.time(), FileState.RUNNING, *params, *(ids or [])],
            )
            released = [row[0] for row in rows]
            for chunk in _chunks(released):
                for table in ("outputs", "stream_jobs"):
                    await self._write(
                        f"UPDATE {table} SET state=?, updated_at=? WHERE state=?"
                        f" AND file_id IN ({_marks(chunk)})",
                        (OutputState.PENDING, time.time(), OutputState.RUNNING, *chunk),
                    )
                await self._write(f"DELETE FROM progress WHERE file_id IN ({_marks(chunk)})", chunk)
        return released

    async def remove_worker(self, worker: str) -> list[int]:
        """A worker that stopped (or is known dead): its claims released, its row gone."""
        async with self.transaction():
            released = await self.release(worker)
            await self._write("DELETE FROM progress WHERE worker=?", (worker,))
            await self._write("DELETE FROM workers WHERE id=?", (worker,))
        return released

    # -- progress ----------------------------------------------------------------------------

    async def write_progress(self, worker: str, tasks: Sequence[Progress]) -> None:
        """What `worker` runs now, replacing what it wrote before."""
        async with self.transaction():
            await self._write("DELETE FROM progress WHERE worker=?", (worker,))
            for task in tasks:
                values = asdict(task)
                await self._write(
                    f"INSERT OR REPLACE INTO progress ({', '.join(values)})"
                    f" VALUES ({_marks(list(values))})",
                    list(values.values()),
                )

    async def progress(self) -> list[Progress]:
        rows = await self._rows(f"SELECT {_PROGRESS_COLUMNS} FROM progress ORDER BY file_id, label")
        return [Progress(**dict(row)) for row in rows]

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
    ) -> None:
        """Record one output's state; a published one with where it is (relative to the
        root), its size and SHA-256. `error` is always written (None clears it)."""
        given = {"path": path, "size": size, "sha256": sha256}
        columns = {name: value for name, value in given.items() if value is not None}
        key = {"file_id": file_id, "output": output}
        await self._move("output", "outputs", key, state, columns | {"error": error})

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
    ) -> None:
        """Record one stream job with its decision and state; `figures` that are set."""
        key = {"file_id": file_id, "output": output, "stream_index": stream_index}
        columns = {
            "stream_type": stream_type,
            "decision": decision,
            "notes": json.dumps(list(notes)),
        } | _figure_columns(figures)
        await self._move("job", "stream_jobs", key, state, columns)

    async def jobs(self, file_id: int, output: str) -> dict[int, StreamJobRow]:
        rows = await self._rows(
            f"SELECT {_JOB_COLUMNS} FROM stream_jobs WHERE file_id=? AND output=?"
            " ORDER BY stream_index",
            (file_id, output),
        )
        return {row["stream_index"]: _job(dict(row)) for row in rows}

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
            values = dict(row)
            file_id, output = values.pop("file_id"), values.pop("output")
            jobs.setdefault(file_id, []).append((output, _job(values)))
        return jobs
