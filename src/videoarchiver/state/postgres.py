"""The PostgreSQL store: one database shared by the workers of several machines.

psycopg 3 (async, with its connection pool): it speaks PostgreSQL's own protocol features we
use — LISTEN/NOTIFY on a connection of its own, `FOR UPDATE SKIP LOCKED` claims — with plain
SQL and `%s` parameters, so the statements of `SQLStore` run as they are, and its pool
replaces connections that a server restart broke. (asyncpg would do too; psycopg's
`notifies()` generator and its pool checks made the reconnecting simpler.)

A statement outside a transaction that fails because the server is unreachable is tried
again with back-off, for as long as `patience` allows (the daemon: for ever, and it claims no
new work meanwhile; a command such as `status`: a few seconds, then a clear error). A
transaction that loses its connection is rolled back and raises StoreUnavailable: what it
was doing is done again by the next scan or claim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import anyio
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from videoarchiver.errors import StoreRefused, StoreUnavailable
from videoarchiver.state.migrations import MIGRATIONS
from videoarchiver.state.sql import Row, SQLStore, T

log = logging.getLogger(__name__)
# The pool says each failed connection attempt; this module says once that the server is away.
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
CHANNEL = "videoarchiver"  # NOTIFY'd when work is registered or given back
MIGRATE_LOCK = 0x7669_6461  # advisory lock ids: one migrating worker at a time …
REGISTER_LOCK = 0x7669_6462  # … and one registering scanner
BACKOFF_START, BACKOFF_MAX = 0.5, 15.0
POOL_SIZE = 6  # heartbeat, progress, claims, a registration, a file's writes, a command
# A machine cut off mid-transaction must not hold its locks for the hours TCP takes to
# notice: the server ends a transaction left idle for a minute; the client probes the line.
LIVELINESS = {
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    "options": "-c idle_in_transaction_session_timeout=60000",
}  # fmt: skip
LISTEN_TIMEOUT = 30.0  # a listener checks its connection at least this often


def _dialect(sql: str) -> str:
    """SQLStore's `?` marks as psycopg's `%s` (and a literal `%` kept)."""
    return sql.replace("%", "%%").replace("?", "%s")


# SQLSTATEs of a server going away: admin, crash or fast shutdown, not accepting yet.
GONE = {"57P01", "57P02", "57P03"}
AGAIN = {"40001", "40P01"}  # a serialization failure or deadlock: the statement may be rerun


def _lost(exc: BaseException) -> bool:
    """True for the errors of a connection that broke or a server that is not there (or
    that asks for the statement again); other errors are the statement's own."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in GONE | AGAIN


def _refused(exc: psycopg.Error) -> StoreRefused:
    return StoreRefused(f"the state database refused a change: {str(exc).strip()}")


def _unreachable(exc: psycopg.Error) -> StoreUnavailable:
    return StoreUnavailable(f"the state database cannot be reached: {exc}")


Trouble = Callable[[str | None], None] | None


class PostgresStore(SQLStore):
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    ROW_LOCK = " FOR UPDATE"
    LIKE = "ILIKE"  # in the database's locale
    FOLD = "{}"
    DAY = "FLOOR({} / 86400)"
    NOW = "extract(epoch from clock_timestamp())"
    POLL_SECONDS = 15.0  # NOTIFY wakes idle workers; polling is only the fallback

    def __init__(
        self, pool: AsyncConnectionPool[Any], url: str, patience: float | None, trouble: Trouble
    ) -> None:
        self._pool = pool
        self._url = url
        self._patience = patience  # seconds a statement waits for the server (None: for ever)
        self._trouble = trouble
        self._current: ContextVar[psycopg.AsyncConnection[Row] | None] = ContextVar(
            "transaction", default=None
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, patience: float | None, trouble: Trouble = None
    ) -> AsyncIterator[PostgresStore]:
        """`trouble` is told (a line for systemd's status) when the server stops answering,
        and None when it answers again."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url, open=False, min_size=1, max_size=POOL_SIZE, timeout=10.0,
            kwargs={"autocommit": True, "row_factory": dict_row, **LIVELINESS},
            check=AsyncConnectionPool.check_connection, reconnect_timeout=0,
        )  # fmt: skip
        await pool.open(wait=False)
        store = cls(pool, url, patience, trouble)
        try:
            await store._retrying(store._migrate)
            yield store
        finally:
            with anyio.CancelScope(shield=True):
                await pool.close()

    def ensure_in_place(self) -> None:
        """Nothing to check: the server keeps its database where it is."""

    # -- connections, transactions and migrations ------------------------------------------------

    async def _retrying(self, step: Callable[[], Any]) -> Any:
        """Run `step` (which takes its own connection) until the server answers, backing off;
        gives up with StoreUnavailable after `patience` seconds."""
        wait, since, said = BACKOFF_START, time.monotonic(), False
        while True:
            try:
                result = await step()
                if said:
                    log.warning("the state database answers again")
                    if self._trouble is not None:
                        self._trouble(None)
                return result
            except (psycopg.Error, PoolTimeout) as exc:
                if not _lost(exc):
                    raise _refused(exc) from exc
                waited = time.monotonic() - since
                if self._patience is not None and waited >= self._patience:
                    raise _unreachable(exc) from exc
                if not said:
                    reason = str(exc).strip()
                    log.warning("the state database cannot be reached (%s); no new work is"
                                " claimed until it answers; trying again", reason)  # fmt: skip
                    if self._trouble is not None:
                        self._trouble("the state database cannot be reached: claiming no work")
                    said = True
                await anyio.sleep(wait)
                wait = min(wait * 2, BACKOFF_MAX)

    async def _migrate(self) -> None:
        """Apply the migrations this database lacks, by name, one worker at a time."""
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS migrations"
                    " (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION)"
                )
                cursor = await conn.execute("SELECT name FROM migrations")
                applied = {row["name"] for row in await cursor.fetchall()}
                for migration in MIGRATIONS:
                    if migration.name in applied:
                        continue
                    async with conn.transaction():
                        for statement in migration.statements("postgresql"):
                            await conn.execute(statement)
                        await conn.execute(
                            "INSERT INTO migrations (name, applied_at) VALUES (%s, %s)",
                            (migration.name, time.time()),
                        )
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))

    @asynccontextmanager
    async def _own_transaction(self) -> AsyncIterator[None]:
        """A pooled connection in a transaction, which this task's statements then use."""
        async with self._pool.connection() as conn, conn.transaction():
            token = self._current.set(conn)
            try:
                yield
            finally:
                self._current.reset(token)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._current.get() is not None:
            yield
            return
        try:
            async with self._own_transaction():
                yield
        except (psycopg.Error, PoolTimeout) as exc:
            raise (_unreachable(exc) if _lost(exc) else _refused(exc)) from exc

    async def _atomically(self, body: Callable[[], Awaitable[T]]) -> T:
        """Run `body` in a transaction of its own, again and whole if the connection breaks
        (inside an open transaction: in it, once)."""
        if self._current.get() is not None:
            return await body()

        async def attempt() -> T:
            async with self._own_transaction():
                return await body()

        result: T = await self._retrying(attempt)
        return result

    @asynccontextmanager
    async def registering(self) -> AsyncIterator[None]:
        async with self.transaction():
            await self._write("SELECT pg_advisory_xact_lock(?)", (REGISTER_LOCK,))
            yield

    async def _run(self, sql: str, params: Iterable[Any]) -> tuple[int, list[Row]]:
        values = tuple(params)

        async def on(conn: psycopg.AsyncConnection[Row]) -> tuple[int, list[Row]]:
            cursor = await conn.execute(_dialect(sql), values)
            rows = await cursor.fetchall() if cursor.description else []
            return cursor.rowcount, rows

        conn = self._current.get()
        if conn is not None:
            return await on(conn)

        async def pooled() -> tuple[int, list[Row]]:
            async with self._pool.connection() as conn:
                return await on(conn)

        result: tuple[int, list[Row]] = await self._retrying(pooled)
        return result

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        changed, _rows = await self._run(sql, params)
        return changed

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        _changed, rows = await self._run(sql, params)
        return rows

    # -- waking idle workers -------------------------------------------------------------------

    async def _work_changed(self) -> None:
        await self._write("SELECT pg_notify(?, '')", (CHANNEL,))

    async def watch(self, wake: Callable[[], None]) -> None:
        """LISTEN on a connection of its own; reconnect (and wake once, for what was missed)
        whenever it breaks."""
        wait = BACKOFF_START
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    wait = BACKOFF_START
                    wake()
                    while True:
                        async for _notice in conn.notifies(timeout=LISTEN_TIMEOUT):
                            wake()
                        await conn.execute("SELECT 1")  # still there?
            except psycopg.OperationalError:
                await anyio.sleep(wait)
                wait = min(wait * 2, BACKOFF_MAX)
