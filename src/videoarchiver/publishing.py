"""Putting files in place (outputs, and raw files moved to `done/`): atomically, durably,
never over a file that is not the same.

The caller records the intent (destination, size, SHA-256) first. The file's data is fsynced,
then it is hard-linked into place (`link` fails rather than replace an existing name) and the
work name removed; across filesystems it is copied beside the destination under a hidden
temporary name, fsynced, and linked. A destination that already holds exactly the intended
bytes is what a crash between publishing and recording it leaves behind: it is adopted.
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


def sha256_fd(fd: int) -> str:
    """The SHA-256 of the whole file open at `fd` (read by offset: its position stays)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


async def sha256_file(path: Path) -> str:
    return await to_thread.run_sync(_sha256, path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def matches(path: Path, size: int | None, sha256: str | None) -> bool:
    """True when `path` holds exactly the recorded bytes (size first: it costs no reading)."""
    try:
        return path.stat().st_size == size and _sha256(path) == sha256
    except OSError:
        return False


def _link_no_clobber(source: Path, destination: Path, sha256: str | None) -> None:
    try:
        os.link(source, destination, follow_symlinks=False)
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


def _temporary(destination: Path) -> Path:
    """A hidden name beside `destination` that fits a file name however long its name."""
    tag = hashlib.sha256(destination.name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return destination.with_name(f".videoarchiver-{tag}.tmp")


def _make_folders(folder: Path) -> None:
    """`mkdir -p`, each new folder synced into its parent so a power loss cannot drop it."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_dir(new.parent)


def _copy_beside(source: Path, temporary: Path, mode: int | None) -> None:
    """A synced copy of `source` (a symlink: the link itself) under `temporary`."""
    temporary.unlink(missing_ok=True)
    if source.is_symlink():
        temporary.symlink_to(source.readlink())
        return
    shutil.copyfile(source, temporary)
    if mode is not None:
        temporary.chmod(mode)
    _fsync_file(temporary)


def _publish(source: Path, destination: Path, sha256: str | None, mode: int | None) -> None:
    _make_folders(destination.parent)
    if not source.is_symlink():
        if mode is not None:
            source.chmod(mode)
        _fsync_file(source)
    try:
        _link_no_clobber(source, destination, sha256)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temporary = _temporary(destination)
        _copy_beside(source, temporary, mode)
        try:
            _link_no_clobber(temporary, destination, sha256)
        finally:
            temporary.unlink(missing_ok=True)
    fsync_dir(destination.parent)
    source.unlink(missing_ok=True)
    fsync_dir(source.parent)


async def publish(
    source: Path, destination: Path, sha256: str | None = None, mode: int | None = None
) -> None:
    """Move `source` to `destination` (with permission bits `mode`, if given); an existing
    destination with the same bytes (SHA-256 `sha256`, computed from `source` when not
    given) counts as already moved. A symlink is moved as the link."""
    await to_thread.run_sync(_publish, source, destination, sha256, mode)


def _adopt(path: Path, size: int | None, sha256: str | None) -> bool:
    if not matches(path, size, sha256):
        return False
    _temporary(path).unlink(missing_ok=True)  # left by a kill during a cross-filesystem copy
    return True


async def adoptable(path: Path, size: int | None, sha256: str | None) -> bool:
    """True when a recorded intent's destination holds its bytes: published before a kill
    (whatever that publishing left beside it is removed)."""
    return await to_thread.run_sync(_adopt, path, size, sha256)
