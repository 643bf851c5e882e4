"""Finding settled raw files (SPEC §2): walk `raw/`, skip hidden and partial names."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from anyio import to_thread

from videoarchiver.planning.paths import is_ignored


@dataclass(frozen=True)
class RawFile:
    rel: PurePosixPath
    path: Path
    size: int
    mtime_ns: int


def _walk(raw: Path, settle_seconds: float) -> list[RawFile]:
    settled_before = time.time_ns() - int(settle_seconds * 1e9)
    found = []
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
            if not path.is_file() or stat.st_mtime_ns > settled_before:
                continue
            found.append(RawFile(rel, path, stat.st_size, stat.st_mtime_ns))
    return found


async def scan(raw: Path, settle_seconds: float) -> list[RawFile]:
    """Regular files under `raw/` unchanged for at least `settle_seconds`, in path order."""
    return await to_thread.run_sync(_walk, raw, settle_seconds)
