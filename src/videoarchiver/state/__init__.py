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
    Day,
    Figures,
    FileRow,
    FileState,
    Intent,
    JobState,
    OutputRow,
    OutputState,
    Progress,
    StreamJobRow,
    Summary,
    Worker,
)
from videoarchiver.state.store import Store
from videoarchiver.state.transitions import IllegalMove

STATE_FILE = "state.sqlite3"  # in work/: the embedded default


@asynccontextmanager
async def open_store(
    root: Path,
    url: str | None = None,
    patience: float | None = None,
    trouble: Callable[[str | None], None] | None = None,
    say_after: float = SAY_AFTER_SECONDS,
) -> AsyncIterator[Store]:
    """The store of the root at `root`: PostgreSQL at `url` (`postgresql://…`), else SQLite
    in its `work/`. `patience`: how long a statement waits for an unreachable server, or for
    a lock another process holds on the SQLite file (None: for as long as it takes);
    `trouble` is told when that begins (None: it is over). A wait for a lock is logged once
    it is longer than `say_after` seconds."""
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
    "NO_FIGURES",
    "STATE_FILE",
    "Day",
    "Figures",
    "FileRow",
    "FileState",
    "IllegalMove",
    "Intent",
    "JobState",
    "OutputRow",
    "OutputState",
    "Progress",
    "Store",
    "StreamJobRow",
    "Summary",
    "Worker",
    "open_store",
]
