"""Finding settled raw files: walk `raw/`, skip hidden and partial names."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from anyio import to_thread

from videoarchiver.planning.paths import is_ignored, rel_key


@dataclass(frozen=True)
class Scan:
    """Settled files, and how long until the next unsettled one may be taken (None: none)."""

    settled: list[RawFile]
    next_settle: float | None


@dataclass(frozen=True, slots=True)
class RawFile:
    """A file found in `raw/`: its path relative to raw/ (POSIX form) and its identity.

    Kept small: a rescan of 100,000 files holds one of these per file.
    """

    raw: Path
    rel: str
    size: int
    mtime_ns: int

    @property
    def path(self) -> Path:
        return self.raw / self.rel

    @property
    def key(self) -> str:
        """The path as the state records it (valid text even when the name is not UTF-8)."""
        return rel_key(self.rel)


def _entries(
    folder: Path, prefix: str, inside: Path, seen: set[tuple[int, int]]
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative path, entry) of every file below `folder`, in path order, skipping hidden
    folders; one `scandir` per folder, no second `stat` for the file type.

    A folder symlink is followed only when it resolves inside raw/ (`inside`), and no folder
    is listed twice, so a symlink loop ends and nothing outside the root is ever acted on.
    """
    try:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:
            return
        seen.add((info.st_dev, info.st_ino))
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return  # vanished or unreadable: the next scan decides
    for entry in entries:
        rel = prefix + entry.name
        try:
            is_folder = entry.is_dir(follow_symlinks=True)
            outside = entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(inside)
        except (OSError, RuntimeError):  # a symlink loop (ELOOP)
            continue
        if not is_folder:
            yield rel, entry
        elif not entry.name.startswith(".") and not outside:
            yield from _entries(Path(entry.path), rel + "/", inside, seen)


def _walk(raw: Path, settle_seconds: float) -> Scan:
    settled_before = time.time_ns() - int(settle_seconds * 1e9)
    found = []
    waits: list[float] = []
    for rel, entry in _entries(raw, "", raw.resolve(), set()):
        if is_ignored(PurePosixPath(rel)):
            continue
        try:
            info = entry.stat(follow_symlinks=True)
        except OSError:
            continue  # vanished between listing and stat: the next scan decides
        if not stat.S_ISREG(info.st_mode):
            continue
        if info.st_mtime_ns > settled_before:
            waits.append((info.st_mtime_ns - settled_before) / 1e9)
            continue
        found.append(RawFile(raw, rel, info.st_size, info.st_mtime_ns))
    return Scan(found, min(waits, default=None))


async def scan(raw: Path, settle_seconds: float) -> Scan:
    """Regular files under `raw/` unchanged for at least `settle_seconds`, in path order.

    A file still being written keeps changing its mtime, so an mtime older than
    `settle_seconds` means its size and mtime have not changed for that long.
    """
    return await to_thread.run_sync(_walk, raw, settle_seconds)
