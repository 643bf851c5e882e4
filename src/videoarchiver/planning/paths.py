"""Which raw files are taken, and where their outputs go (SPEC §1–2).

An output name ("stem") is reserved for one source when it is first seen: `a.mp4` gets `a`,
a second source that would collide (`a.mov`) keeps its extension (`a.mov`), and if even that
is taken (a camera reusing `GOPR0001.MP4` for new footage) a number is added, so that an
earlier archive is never overwritten by a different recording.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

PARTIAL_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download")


def is_ignored(rel: PurePosixPath) -> bool:
    """Hidden files (or files in hidden folders) and names of downloads still in progress."""
    if any(part.startswith(".") for part in rel.parts):
        return True
    name = rel.name.lower()
    return name.endswith("~") or name.endswith(PARTIAL_SUFFIXES)


def stem_candidates(rel: PurePosixPath) -> Iterator[str]:
    """Output names for a raw file, best first; the caller takes the first one that is free."""
    without_suffix = str(rel.with_suffix("")) if rel.suffix else str(rel)
    yield without_suffix
    if rel.suffix:
        yield str(rel)
    number = 2
    while True:
        yield f"{rel}.{number}"
        number += 1


def archive_path(root: Path, stem: str) -> Path:
    return root / "archive" / f"{stem}.mkv"


def preview_path(root: Path, stem: str) -> Path:
    return root / "preview" / f"{stem}.mkv"


def screenshot_path(root: Path, name: str) -> Path:
    return root / "screenshot" / name


def output_paths(root: Path, stem: str) -> tuple[Path, ...]:
    """Every path the outputs of a stem may take: a stem is free only if none exists."""
    return (
        archive_path(root, stem),
        preview_path(root, stem),
        screenshot_path(root, f"{stem}.jpg"),
        screenshot_path(root, stem),
    )
