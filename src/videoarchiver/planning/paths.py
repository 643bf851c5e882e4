"""Which raw files are taken, and where their outputs go.

An output name ("stem") is reserved for one source when it is first seen: `a.mp4` gets `a`,
a second source that would collide (`a.mov`) keeps its extension (`a.mov`), and if even that
is taken (a camera reusing `GOPR0001.MP4` for new footage) a number is added, so that an
earlier archive is never overwritten by a different recording.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

PARTIAL_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download")
NAME_MAX = 255  # bytes in one file name, on every filesystem Linux mounts for us
# Room kept in an output name for what follows the stem (`.mkv`, `.jpg`).
SUFFIX_ROOM = 4
UNDECODABLE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def rel_key(rel: str) -> str:
    """How the state records a path relative to raw/: itself when it is valid UTF-8; else
    (a name whose bytes are not UTF-8, which Python holds as lone surrogates) a form that
    is valid text and reversible: `/` first (no relative path starts so), each byte that is
    not UTF-8 as `\\xNN` and each backslash doubled."""
    if not any("\udc80" <= char <= "\udcff" for char in rel):
        return rel
    escaped = (
        f"\\x{ord(char) - 0xDC00:02x}" if "\udc80" <= char <= "\udcff" else char
        for char in rel.replace("\\", "\\\\")
    )
    return "/" + "".join(escaped)


def rel_from_key(key: str) -> str:
    """The path (relative to raw/, as Python names it) that `rel_key` recorded as `key`."""
    if not key.startswith("/"):
        return key
    return UNDECODABLE.sub(
        lambda match: "\\" if match[1] == "\\" else chr(0xDC00 + int(match[1][1:], 16)),
        key[1:],
    )


def shown_name(key: str) -> str:
    """A recorded path as people read it (and as outputs are named): valid text always."""
    return key.removeprefix("/")


def shown_rel(key: str) -> PurePosixPath:
    return PurePosixPath(shown_name(key))


def fit_name(name: str, room: int = SUFFIX_ROOM) -> str:
    """`name` if it and `room` more bytes fit in one file name; else its beginning (cut on
    a character boundary) and a short hash of the whole, so it stays recognisable and
    distinct from every other shortened name."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) + room <= NAME_MAX:
        return name
    tag = "~" + hashlib.sha256(encoded).hexdigest()[:10]
    keep = encoded[: NAME_MAX - room - len(tag)].decode("utf-8", "ignore")
    return keep + tag


def is_ignored(rel: PurePosixPath) -> bool:
    """Hidden files (or files in hidden folders) and names of downloads still in progress."""
    if any(part.startswith(".") for part in rel.parts):
        return True
    name = rel.name.lower()
    return name.endswith("~") or name.endswith(PARTIAL_SUFFIXES)


def stem_candidates(rel: PurePosixPath) -> Iterator[str]:
    """Output names for a raw file, best first; the caller takes the first one that is free.
    Each fits a file name with the output's suffix (a long name is shortened)."""

    folders = [fit_name(folder, room=0) for folder in rel.parent.parts]

    def fitted(name: str) -> str:
        return str(PurePosixPath(*folders, fit_name(name)))

    if rel.suffix:
        yield fitted(rel.stem)
    yield fitted(rel.name)
    number = 2
    while True:
        yield fitted(f"{rel.name}.{number}")
        number += 1
