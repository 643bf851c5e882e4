"""What makes a raw file the same file (SPEC §12): its size and a fingerprint of its content.

The fingerprint is a SHA-256 of the size, the first MiB and the last MiB, so it costs at most
2 MiB of reading however long the recording. mtime is only a hint: a rescan does not read a
file whose size and mtime are unchanged, but `touch` does not make a new file, and before an
output is published or a raw file is moved or deleted the fingerprint is read again.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import anyio
from anyio import to_thread

EDGE_BYTES = 1 << 20


def _read_fingerprint(path: Path) -> str:
    # O_NONBLOCK: a FIFO put in place of a file must not block the reader forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        digest = hashlib.sha256(f"{info.st_size}:".encode())
        digest.update(handle.read(EDGE_BYTES))
        if info.st_size > 2 * EDGE_BYTES:
            handle.seek(info.st_size - EDGE_BYTES)
        digest.update(handle.read(EDGE_BYTES))
    return digest.hexdigest()


async def fingerprint(path: Path) -> str:
    """The content fingerprint of the file at `path` (OSError if it cannot be read)."""
    return await to_thread.run_sync(_read_fingerprint, path)


async def same_content(path: Path, size: int, expected: str | None) -> bool:
    """True while `path` still holds the content that was fingerprinted as `expected`."""
    try:
        if (await anyio.Path(path).stat()).st_size != size:
            return False
        return expected is not None and await fingerprint(path) == expected
    except OSError:
        return False
