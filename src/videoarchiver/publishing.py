"""Putting files in place (outputs, and raw files moved to `done/`): atomically, never over
a file that is not the same.

An output is hard-linked into place (`link` fails rather than replace an existing name) and
the work copy removed; across filesystems it is copied beside the destination under a hidden
temporary name, fsynced, and linked. A destination that already holds exactly our bytes is
what a crash between publishing and recording it leaves behind, and counts as published.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

from anyio import to_thread

from videoarchiver.errors import PublishError

CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def sha256_file(path: Path) -> str:
    return await to_thread.run_sync(_sha256, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_no_clobber(source: Path, destination: Path, sha256: str | None) -> None:
    try:
        os.link(source, destination)
    except FileExistsError:
        if _sha256(destination) != (sha256 or _sha256(source)):
            raise PublishError(
                f"{destination} already exists and was not written for this source;"
                " it is left untouched"
            ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # A filesystem without hard links: the existence check and rename leave a tiny race.
        if destination.exists():
            raise PublishError(f"{destination} already exists; it is left untouched") from exc
        source.rename(destination)


def _publish(source: Path, destination: Path, sha256: str | None) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        _link_no_clobber(source, destination, sha256)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temporary = destination.with_name(f".{destination.name}.videoarchiver-tmp")
        shutil.copyfile(source, temporary)
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        try:
            _link_no_clobber(temporary, destination, sha256)
        finally:
            temporary.unlink(missing_ok=True)
    _fsync_dir(destination.parent)
    source.unlink(missing_ok=True)


async def publish(source: Path, destination: Path, sha256: str | None = None) -> None:
    """Move `source` to `destination`; an existing destination with the same bytes (SHA-256
    `sha256`, computed from `source` when not given) counts as already moved."""
    await to_thread.run_sync(_publish, source, destination, sha256)
