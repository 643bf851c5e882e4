"""Waiting out another process's lock on the SQLite state: a busy database is not a damaged
one.

A statement that finds the database locked ("database is locked", SQLITE_BUSY) — a worker
stopped mid-write, a `sqlite3` shell left in `BEGIN IMMEDIATE` — is tried again for as long as
it takes (or `patience` seconds, then StoreUnavailable: a command gives up, a worker never
does), SQLite's busy handler waiting up to ATTEMPT_SECONDS an attempt. The worker says so
after `say_after` seconds, naming who holds the lock and for how long, then at doubling
intervals (at most an hour apart), and once more when it got the lock.

Only a statement that can be sent again is: one on its own, a BEGIN or a COMMIT (SQLite's
word: "If the statement is a COMMIT or occurs outside of an explicit transaction, then you
can retry the statement"). Inside a transaction (which in WAL mode holds the write lock from
its BEGIN IMMEDIATE on) a busy statement ends the transaction with StoreUnavailable: what it
was doing is done again later, as when a server goes away.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio

from videoarchiver.errors import StoreUnavailable
from videoarchiver.state.lock_holder import LockProbe, held_by

log = logging.getLogger(__name__)
T = TypeVar("T")
SAY_AFTER_SECONDS = 30.0  # a wait this long is said (`lock_warning_seconds`)
ATTEMPT_SECONDS = 1.0  # SQLite's busy handler waits at most this long an attempt …
PAUSE_SECONDS = 0.05  # … and this is waited before the next (a busy that did not wait)
LONGEST_SILENCE = 3600.0  # the waits said grow to an hour apart, not more


def busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error says another connection holds a lock this one needs."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


class LockWait:
    """Runs the statements of one SQLite connection, one at a time, again while the database
    is locked. A hold-up lasts from the first attempt of the statement that met the lock
    until a statement goes through: one wait, however many statements (a cancelled one, the
    next) it held up."""

    def __init__(
        self,
        path: Path,
        probe: LockProbe,
        say_after: float = SAY_AFTER_SECONDS,
        patience: float | None = None,
        trouble: Callable[[str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._probe = probe
        self.say_after = say_after
        self._patience = patience  # seconds before StoreUnavailable (None: for ever)
        self._trouble = trouble  # told what holds the worker up, then None
        self._clock = clock
        self._since: float | None = None  # when the hold-up began (None: there is none)
        self._say_at = say_after  # seconds into it when it is said next
        self._said = False

    @property
    def attempt_ms(self) -> int:
        """SQLite's `busy_timeout` for this connection."""
        return round(min(ATTEMPT_SECONDS, self.say_after) * 1000)

    async def run(self, step: Callable[[], Awaitable[T]], again: bool = True) -> T:
        """`step()` (one statement, sent once each call), until the database lets it run;
        with `again` False (inside a transaction) a lock ends it with StoreUnavailable."""
        start = self._clock()
        while True:
            try:
                result = await step()
            except sqlite3.OperationalError as exc:
                if not busy(exc):
                    raise
                if not again:
                    raise StoreUnavailable(
                        f"the state database {self._path} was locked in the middle of a change,"
                        " which was undone; it is made again later"
                    ) from exc
                await self._held_up(start, exc)
                await anyio.sleep(PAUSE_SECONDS)
                continue
            self._over()
            return result

    async def _held_up(self, start: float, exc: sqlite3.Error) -> None:
        """An attempt found the database locked: say so when it is time, give up when
        patience ran out."""
        if self._since is None:
            self._since = start
        waited = self._clock() - self._since
        if self._patience is not None and waited >= self._patience:
            self._since, self._say_at, self._said = None, self.say_after, False
            why = await self._held_by(waited)
            raise StoreUnavailable(
                f"the state database {self._path} is locked, {why}; try again once it is let go"
            ) from exc
        if waited < self._say_at:
            return
        self._said, self._say_at = True, waited + min(waited, LONGEST_SILENCE)
        why = await self._held_by(waited)
        log.warning("the state database %s is locked, %s: waiting for it (encodes already"
                    " running go on)", self._path, why)  # fmt: skip
        if self._trouble is not None:
            self._trouble(f"the state database is locked, {why}: waiting")

    def _over(self) -> None:
        """The hold-up ended: said when it was said to begin."""
        if self._said and self._since is not None:
            waited = self._clock() - self._since
            log.warning("the state database is free again after %.0f s: going on", waited)
            if self._trouble is not None:
                self._trouble(None)
        self._since, self._say_at, self._said = None, self.say_after, False

    async def _held_by(self, seconds: float) -> str:
        holder = await anyio.to_thread.run_sync(self._probe.holder)
        return held_by(holder, seconds)
