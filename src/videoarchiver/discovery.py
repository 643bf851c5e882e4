"""Finding settled raw files (SPEC §2): walk `raw/`, skip hidden and partial names."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import anyio
from anyio import to_thread

from videoarchiver.planning.paths import is_ignored


@dataclass(frozen=True)
class Scan:
    """Settled files, and how long until the next unsettled one may be taken (None: none)."""

    settled: list[RawFile]
    next_settle: float | None


@dataclass(frozen=True)
class RawFile:
    rel: PurePosixPath
    path: Path
    size: int
    mtime_ns: int


def _walk(raw: Path, settle_seconds: float) -> Scan:
    now = time.time_ns()
    settled_before = now - int(settle_seconds * 1e9)
    found = []
    waits: list[float] = []
    for folder, dirs, names in os.walk(raw):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder, name)
            rel = PurePosixPath(path.relative_to(raw).as_posix())
            if is_ignored(rel):
                continue
            try:
                stat = path.stat()
            except OSError:
                continue  # vanished between listing and stat: the next scan decides
            if not path.is_file():
                continue
            if stat.st_mtime_ns > settled_before:
                waits.append((stat.st_mtime_ns - settled_before) / 1e9)
                continue
            found.append(RawFile(rel, path, stat.st_size, stat.st_mtime_ns))
    return Scan(found, min(waits, default=None))


async def scan(raw: Path, settle_seconds: float) -> Scan:
    """Regular files under `raw/` unchanged for at least `settle_seconds`, in path order.

    A file still being written keeps changing its mtime, so an mtime older than
    `settle_seconds` means its size and mtime have not changed for that long.
    """
    return await to_thread.run_sync(_walk, raw, settle_seconds)


async def unchanged(raw: RawFile) -> bool:
    """True while the file at `raw.path` is still the one that was found (size and mtime)."""
    try:
        stat = await anyio.Path(raw.path).stat()
    except OSError:
        return False
    return (stat.st_size, stat.st_mtime_ns) == (raw.size, raw.mtime_ns)
