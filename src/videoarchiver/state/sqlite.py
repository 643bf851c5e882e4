"""The SQLite store (`work/state.sqlite3`): the embedded backend of `state.Store`.

Each transition is committed before the filesystem step that depends on it, in WAL mode with
full sync, so that a kill at any instant leaves a database that says what was happening.
One connection serves the whole process: a task's transaction holds it until committed, and
`BEGIN IMMEDIATE` takes SQLite's write lock at once, so the workers (processes) sharing the
file serialise their claims and registrations. A lock another process keeps is waited out,
for as long as it takes, saying who holds it (`lock_wait`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from videoarchiver.errors import StateError
from videoarchiver.state.lock_holder import LockProbe, shm_of
from videoarchiver.state.lock_wait import SAY_AFTER_SECONDS, LockWait
from videoarchiver.state.migrations import MIGRATIONS
from videoarchiver.state.sql import Row, SQLStore

PRIVATE = 0o600  # the state names every recording and keeps every tag


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


def _casefold(text: str | None) -> str | None:
    """SQL's `casefold(x)`: x in one case, for every alphabet (SQLite's LIKE folds ASCII)."""
    return None if text is None else str(text).casefold()


class SQLiteStore(SQLStore):
    """Async access to `work/state.sqlite3`; open it with `SQLiteStore.open(path, root)`."""

    def __init__(self, connection: aiosqlite.Connection, path: Path, waits: LockWait) -> None:
        self._db = connection
        self._path = path
        self._waits = waits
        self._inode = path.stat().st_ino
        self._lock = anyio.Lock()
        self._owner: object = None  # the task holding the connection

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: Path,
        root: Path,
        patience: float | None = None,
        trouble: Callable[[str | None], None] | None = None,
        say_after: float = SAY_AFTER_SECONDS,
    ) -> AsyncIterator[SQLiteStore]:
        """`patience`: how long a statement waits for another process's lock (None: for as
        long as it takes); `trouble` is told what holds it up, then None; a wait longer than
        `say_after` is logged."""
        # Created private: it names every recording (SQLite gives its -wal and -shm files
        # the same permission bits).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE))
        for made in (path, path.with_name(f"{path.name}-wal"), shm_of(path)):
            with contextlib.suppress(OSError):  # also those an older version made
                made.chmod(PRIVATE)
        probe = LockProbe(path)
        waits = LockWait(path, probe, say_after, patience, trouble)
        try:
            with _errors_named(path):
                async with aiosqlite.connect(path, isolation_level=None) as connection:
                    connection.row_factory = aiosqlite.Row
                    await connection.create_function("casefold", 1, _casefold, deterministic=True)
                    # First: another worker may be creating or migrating the same file. Its
                    # making the new file WAL at this moment is answered "locked" at once,
                    # without the busy handler: waited out all the same.
                    await connection.execute(f"PRAGMA busy_timeout={waits.attempt_ms}")
                    await waits.run(partial(connection.execute, "PRAGMA journal_mode=WAL"))
                    await connection.execute("PRAGMA synchronous=FULL")
                    store = cls(connection, path, waits)
                    await store._migrate(root)
                    await connection.execute("PRAGMA foreign_keys=ON")
                    yield store
        finally:
            probe.close()  # after the connection: see `lock_holder`

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
            # Shielded: aiosqlite runs a statement even when its caller is cancelled, and a
            # BEGIN nobody ends would swallow every later write of this process.
            with anyio.CancelScope(shield=True), _errors_named(self._path):
                await self._waits.run(partial(self._db.execute, "BEGIN IMMEDIATE"))
            try:
                yield
                with anyio.CancelScope(shield=True), _errors_named(self._path):
                    await self._waits.run(partial(self._db.execute, "COMMIT"))
            finally:
                if self._db.in_transaction:  # it raised, or the COMMIT failed
                    with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                        await self._db.execute("ROLLBACK")

    async def _work_changed(self) -> None:
        """Nothing to say: the workers sharing a SQLite file poll it every POLL_SECONDS."""

    def registering(self) -> AbstractAsyncContextManager[None]:
        return self.transaction()  # BEGIN IMMEDIATE: no other writer meanwhile

    async def _migrate(self, root: Path) -> None:
        """Apply, once each and by name, the migrations this database lacks: each in its own
        transaction that first records its name, so two workers starting together apply it
        once (the second finds the name taken and moves on)."""
        db, run = self._db, self._waits.run
        table = "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        await run(partial(db.execute, table))
        [row] = await run(partial(db.execute_fetchall, "PRAGMA user_version"))
        numbered = int(row[0])  # how older versions counted them
        names = await run(partial(db.execute_fetchall, "SELECT name FROM migrations"))
        applied = {name for (name,) in names}
        if not applied and numbered:
            applied = {migration.name for migration in MIGRATIONS[:numbered]}
            known = "INSERT OR IGNORE INTO migrations (name, applied_at) VALUES (?, ?)"
            rows = [(name, time.time()) for name in applied]
            await run(partial(db.executemany, known, rows))
        places = {"root": str(root), "real": str(await anyio.Path(root).resolve())}
        for migration in MIGRATIONS:
            if migration.name in applied:
                continue
            await run(partial(db.execute, "BEGIN IMMEDIATE"))
            try:
                await db.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                    (migration.name, time.time()),
                )
            except sqlite3.IntegrityError:
                await db.execute("ROLLBACK")  # another worker applied it meanwhile
                continue
            try:
                for statement in migration.statements("sqlite"):
                    await db.execute(statement, places)
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await run(partial(db.execute, "COMMIT"))

    # One trip to aiosqlite's thread a statement (`execute_fetchall`), not one to run it,
    # one to read it and one to close its cursor: each trip costs the daemon ~0.1 ms.

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed (with those its foreign
        keys deleted): the connection's count of changes, which no other statement moves
        while this one holds the connection. Shielded: aiosqlite runs a statement even when
        its caller is cancelled, and one still to run after the connection was let go would
        be counted in the next statement's changes."""
        async with self._held():
            with _errors_named(self._path), anyio.CancelScope(shield=True):
                before = self._db.total_changes
                await self._statement(sql, params)
            return self._db.total_changes - before

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self._held():
            with _errors_named(self._path):
                return [dict(row) for row in await self._statement(sql, params)]

    async def _statement(self, sql: str, params: Iterable[Any]) -> Iterable[sqlite3.Row]:
        """One statement on the connection this task holds; sent again while another
        process holds the lock, unless a transaction of ours is open (it ends instead)."""
        alone = not self._db.in_transaction
        return await self._waits.run(
            partial(self._db.execute_fetchall, sql, tuple(params)), again=alone
        )
