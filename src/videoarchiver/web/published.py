"""Published outputs as the page serves them: only while they are what was published.

A file's output is found from the store by file id (a montage of several video streams by
its first stream's sheet), with the path, size and SHA-256 recorded when it was published;
it is opened as `open_plain` opens a file, and served only if its bytes have that SHA-256.
Hashing a large file at every request would be slow: what a file hashed to is remembered by
its stat (inode, device, size, mtime, ctime, link count), and it is hashed again only when
that changes (the ctime too: a rewrite whose mtime was put back still changes it).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import anyio

from videoarchiver.checking import Published, published_outputs
from videoarchiver.layout import Layout
from videoarchiver.publishing import sha256_fd
from videoarchiver.state import Store
from videoarchiver.web.descriptors import open_plain

REMEMBERED = 4096  # stats whose SHA-256 is kept (the least recently asked forgotten first)
StatKey = tuple[str, int, int, int, int, int, int]


class Opened(NamedTuple):
    """A published output, open: its descriptor, SHA-256 and file name."""

    fd: int
    sha256: str
    name: str


def _stat_key(recorded: str, fd: int) -> StatKey:
    info = os.fstat(fd)
    return (recorded, info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns,
            info.st_ctime_ns, info.st_nlink)  # fmt: skip


class PublishedFiles:
    """Opens a file's published outputs for the page, checked as the module says."""

    def __init__(self, store: Store, layout: Layout) -> None:
        self.store, self.layout = store, layout
        self._hashes: dict[StatKey, str] = {}
        self._hashing = anyio.Lock()  # one at a time: a request that waited finds it known

    async def open(self, file_id: int, kind: str) -> Opened | None:
        """The file's published `kind` opened, or None when it is not published or is not
        as published. The caller closes the descriptor."""
        wanted = next((published for published in
                       await published_outputs(self.store, self.layout, [file_id])
                       if published.kind == kind), None)  # fmt: skip
        if wanted is None or wanted.sha256 is None:
            return None
        fd = await anyio.to_thread.run_sync(open_plain, self.layout.root, wanted.recorded)
        if fd is None:
            return None
        intact = False
        try:
            intact = await self._intact(fd, wanted)
        finally:
            if not intact:
                os.close(fd)
        return Opened(fd, wanted.sha256, wanted.path.name) if intact else None

    async def _intact(self, fd: int, wanted: Published) -> bool:
        key = _stat_key(wanted.recorded, fd)
        if wanted.size is not None and key[3] != wanted.size:
            return False
        digest = self._hashes.pop(key, None)
        if digest is None:
            async with self._hashing:
                digest = self._hashes.pop(key, None)
                if digest is None:
                    digest = await anyio.to_thread.run_sync(sha256_fd, fd)
                    if _stat_key(wanted.recorded, fd) != key:  # written to meanwhile
                        return False
        self._remember(key, digest)
        return digest == wanted.sha256

    def _remember(self, key: StatKey, digest: str) -> None:
        """Known again: the last to be forgotten."""
        if len(self._hashes) >= REMEMBERED:
            del self._hashes[next(iter(self._hashes))]
        self._hashes[key] = digest
