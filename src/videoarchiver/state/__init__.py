"""The state: a backend-neutral store (`Store`) and the only package that speaks SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from videoarchiver.state.lock_wait import SAY_AFTER_SECONDS
from videoarchiver.state.records import (
    CLEARED,
    FIGURE_NAMES,
    FINISHED,
    NO_FIGURES,
    ORDERS,
    SET_ASIDE_REASON,
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
from videoarchiver.state.store import Store
from videoarchiver.state.transitions import IllegalMove

STATE_FILE = "state.sqlite3"  # in work/: the embedded default
MEMORY_URL = "memory:"  # a store in this process's memory, one per root (tests)


@asynccontextmanager
async def open_store(
    root: Path,
    url: str | None = None,
    patience: float | None = None,
    trouble: Callable[[str | None], None] | None = None,
    say_after: float = SAY_AFTER_SECONDS,
) -> AsyncIterator[Store]:
    """The store of the root at `root`: PostgreSQL at `url` (`postgresql://…`), the root's
    store in this process's memory for `memory:` (kept while the process lives), else SQLite
    in its `work/`. `patience`: how long a statement waits for an unreachable server, or for
    a lock another process holds on the SQLite file (None: for as long as it takes);
    `trouble` is told when that begins (None: it is over). A wait for a lock is logged once
    it is longer than `say_after` seconds."""
    if url == MEMORY_URL:
        from videoarchiver.state.memory import MemoryStore

        yield MemoryStore.of(root)
        return
    if url:
        from videoarchiver.state.postgres import PostgresStore

        async with PostgresStore.open(url, patience, trouble) as shared:
            yield shared
        return
    from videoarchiver.state.sqlite import SQLiteStore

    path = root / "work" / STATE_FILE
    async with SQLiteStore.open(path, root, patience, trouble, say_after) as store:
        yield store


__all__ = [
    "CLEARED",
    "FIGURE_NAMES",
    "FINISHED",
    "MEMORY_URL",
    "NO_FIGURES",
    "ORDERS",
    "SET_ASIDE_REASON",
    "STATE_FILE",
    "Day",
    "Event",
    "EventKind",
    "Figures",
    "FileQuery",
    "FileRow",
    "FileState",
    "IllegalMove",
    "Intent",
    "JobState",
    "Listed",
    "NoSuchFile",
    "OutputRow",
    "OutputState",
    "Progress",
    "StopAsked",
    "Store",
    "StreamJobRow",
    "Summary",
    "Worker",
    "open_store",
]
