"""What makes a raw file the same file: its size and a fingerprint of its content.

The fingerprint is a SHA-256 of the size, the first MiB and the last MiB, so it costs at most
2 MiB of reading however long the recording. mtime is only a hint: a rescan does not read a
file whose size and mtime are unchanged, but `touch` does not make a new file, and before an
output is published the fingerprint is read again. A raw file's whole content is hashed too,
once, while it is first processed: a raw file is moved or deleted only once what is taken
is proven, whole, to be that content (an edit in its middle keeps its ends).
"""

from __future__ import annotations

import hashlib
import os
import stat
from enum import Enum
from pathlib import Path
from typing import BinaryIO

import anyio
from anyio import to_thread

EDGE_BYTES = 1 << 20
WHOLE_CHUNK = 4 << 20  # read per step of a whole-content hash (a cancellation waits one)


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, refused unless it is a regular file."""
    # O_NONBLOCK: a FIFO put in place of a file must not block the reader forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise OSError(f"{path} is not a regular file")
    return handle


def _read_fingerprint(path: Path) -> str:
    with _open_regular(path) as handle:
        info = os.fstat(handle.fileno())
        digest = hashlib.sha256(f"{info.st_size}:".encode())
        digest.update(handle.read(EDGE_BYTES))
        if info.st_size > 2 * EDGE_BYTES:
            handle.seek(info.st_size - EDGE_BYTES)
        digest.update(handle.read(EDGE_BYTES))
    return digest.hexdigest()


async def fingerprint(path: Path) -> str:
    """The content fingerprint of the file at `path` (OSError if it cannot be read)."""
    return await to_thread.run_sync(_read_fingerprint, path)


async def whole_sha256(path: Path) -> str:
    """The SHA-256 of the whole content of the file at `path` (OSError if it cannot be
    read), in steps that each run in a thread, so that a cancellation is not kept waiting."""
    handle = await to_thread.run_sync(_open_regular, path)
    digest = hashlib.sha256()

    def step() -> bool:
        chunk = handle.read(WHOLE_CHUNK)
        digest.update(chunk)
        return bool(chunk)

    try:
        while await to_thread.run_sync(step):
            pass
    finally:
        handle.close()
    return digest.hexdigest()


class Content(Enum):
    """What is at a raw file's path, against the content recorded for it."""

    SAME = "the same"
    OTHER = "changed or vanished"
    UNREADABLE = "cannot be read"  # (its permissions: it may be the same)


async def check_content(path: Path, size: int, expected: str | None) -> Content:
    """Whether `path` still holds the content that was fingerprinted as `expected`."""
    try:
        if (await anyio.Path(path).stat()).st_size != size:
            return Content.OTHER
        same = expected is not None and await fingerprint(path) == expected
    except PermissionError:
        return Content.UNREADABLE
    except OSError:
        return Content.OTHER
    return Content.SAME if same else Content.OTHER
