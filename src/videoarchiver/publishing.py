"""Putting files in place (outputs, and raw files moved to `done/`): atomically, durably,
never over a file that is not the same — and an output only from a name its claim alone has.

The caller records the intent (destination, size, SHA-256) first. The file's data is fsynced,
then it is hard-linked into place (`link` fails rather than replace an existing name) and the
work name removed; across filesystems it is copied beside the destination under a hidden
name, fsynced, and linked from there. A destination that already holds exactly the intended
bytes is what a crash between publishing and recording it leaves behind: it is adopted.

An output is linked from a name only the claim it was made under has: its file in the claim's
work folder, which the next claim renames away before anything else (`claim_folders`), or
its copy beside the destination, named for the claim (`.videoarchiver-<tag>.<claim>.tmp`),
which the next claim removes before it publishes there (the copy is made before the claim
is checked once more, so a later claim finds it). A worker that lost its claim therefore
cannot put its file in place once the file was taken over: the name it links or renames from
is gone, and finding the name and placing the file are one system call, with no moment
between them to be suspended in. A file an earlier claim did put in place before the take-over
(one of `replaceable`: what earlier claims intended there) is replaced, atomically, by a
rename over it; anything else at the destination is left untouched.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable, Collection, Sequence
from enum import Enum
from pathlib import Path

from anyio import to_thread

from videoarchiver.errors import PublishError
from videoarchiver.state import Intent

CHUNK = 1 << 20
NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)


class Placed(Enum):
    LINKED = "linked"  # put in place
    THERE = "there"  # the destination held these very bytes already
    REPLACED = "replaced"  # renamed over what an earlier claim put there


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


def staged_name(destination: Path, claim: int | None = None) -> Path:
    """A hidden name beside `destination`, however long its name, for a copy made there from
    another filesystem: by claim number `claim` of an output, or of a raw file moved (None;
    also what versions before numbered claims named an output's copy)."""
    tag = hashlib.sha256(destination.name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    claimed = "" if claim is None else f".{claim}"
    return destination.with_name(f".videoarchiver-{tag}{claimed}.tmp")


def _put(
    source: Path, destination: Path, sha256: str | None, replaceable: Collection[tuple[int, str]]
) -> Placed:
    """Link `source` to `destination`, never over another file: a destination with the same
    bytes (SHA-256 `sha256`, else `source`'s) is taken as placed already, one holding a
    (size, SHA-256) of `replaceable` is replaced by `source` renamed over it, and anything
    else is a PublishError."""
    try:
        os.link(source, destination, follow_symlinks=False)
        return Placed.LINKED
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        # A filesystem without hard links: the existence check and rename leave a tiny race.
        if not os.path.lexists(destination):
            source.rename(destination)
            return Placed.LINKED
    there = _sha256(destination)
    if there == (sha256 or _sha256(source)):
        return Placed.THERE
    if (destination.stat().st_size, there) in replaceable:
        source.rename(destination)
        return Placed.REPLACED
    raise PublishError(
        f"{destination} already exists and was not written for this source; it is left untouched"
    )


_LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1


def rename_no_replace(source: Path, destination: Path) -> None:
    """Rename `source` (a symlink: the link) to `destination` as one step, never over an
    existing name (FileExistsError). Where the filesystem cannot say so in one call, a hard
    link then the old name's removal; without hard links, a check before the rename."""
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is not None:
        names = os.fsencode(source), os.fsencode(destination)
        if renameat2(AT_FDCWD, names[0], AT_FDCWD, names[1], RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, *NO_HARD_LINKS):
            raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(destination))
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(destination):
            exists = os.strerror(errno.EEXIST)
            raise FileExistsError(errno.EEXIST, exists, os.fspath(destination)) from exc
        source.rename(destination)
        return
    source.unlink()


def _make_folders(folder: Path) -> None:
    """`mkdir -p`, each new folder synced into its parent so a power loss cannot drop it."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_dir(new.parent)


def _copy_beside(source: Path, staged: Path, mode: int | None) -> None:
    """A synced copy of `source` (a symlink: the link itself) under `staged`."""
    staged.unlink(missing_ok=True)
    if source.is_symlink():
        staged.symlink_to(source.readlink())
        return
    shutil.copyfile(source, staged)
    if mode is not None:
        staged.chmod(mode)
    _fsync_file(staged)


def _place(
    source: Path,
    destination: Path,
    sha256: str | None,
    mode: int | None,
    replaceable: Collection[tuple[int, str]] = (),
) -> Placed:
    """`source` synced (with permission bits `mode`, if given), then `_put` at
    `destination`, synced into its folder; OSError EXDEV when they are on two filesystems."""
    _make_folders(destination.parent)
    if not source.is_symlink():
        if mode is not None:
            source.chmod(mode)
        _fsync_file(source)
    placed = _put(source, destination, sha256, replaceable)
    fsync_dir(destination.parent)
    return placed


def _let_go(source: Path) -> None:
    """The name a file was published from goes (synced: it is a second name of it)."""
    source.unlink(missing_ok=True)
    fsync_dir(source.parent)


def _move(source: Path, destination: Path, sha256: str | None) -> None:
    try:
        _place(source, destination, sha256, None)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # A copy of this move's own (two workers may move the same file at once), checked
        # whole once in place before the source goes.
        staged = destination.with_name(f"{staged_name(destination).stem}.{secrets.token_hex(6)}")
        try:
            _copy_beside(source, staged, None)
            _place(staged, destination, sha256, None)
        finally:
            staged.unlink(missing_ok=True)
        if sha256 is not None and not source.is_symlink() and _sha256(destination) != sha256:
            raise PublishError(f"{destination} is not a whole copy; the original is kept") from None
    _let_go(source)


async def publish(source: Path, destination: Path, sha256: str | None = None) -> None:
    """Move `source` (whose content's SHA-256 is `sha256`, if known) to `destination`; an
    existing destination with the same bytes counts as already moved. A symlink is moved as
    the link."""
    await to_thread.run_sync(_move, source, destination, sha256)


def withdraw(destination: Path, claims: Sequence[int]) -> None:
    """The copies beside `destination` of those `claims` (and of a version without numbered
    claims) go: whatever later links or renames from them finds nothing."""
    for claim in (None, *claims):
        staged_name(destination, claim).unlink(missing_ok=True)


async def publish_claimed(
    finished: Path,
    destination: Path,
    sha256: str,
    mode: int,
    claim: int,
    intents: Collection[Intent],
    held: Callable[[], Awaitable[None]],
) -> Placed:
    """Put `finished` (in the work folder of claim number `claim`) at `destination`, with
    permission bits `mode`. `intents`: what the file's claims intended there; those of
    earlier claims have their copies beside it withdrawn first, and a file of theirs found
    there is replaced. `held` raises ClaimLost unless the claim still holds."""
    earlier = [intent for intent in intents if intent.claim < claim]
    replaceable = {(intent.size, intent.sha256) for intent in earlier}
    await to_thread.run_sync(withdraw, destination, [intent.claim for intent in earlier])
    try:
        placed = await to_thread.run_sync(_place, finished, destination, sha256, mode, replaceable)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        staged = staged_name(destination, claim)
        try:
            await to_thread.run_sync(_copy_beside, finished, staged, mode)
            await held()  # the copy is older than any later claim, which withdraws it
            placed = await to_thread.run_sync(_place, staged, destination, sha256, None,
                                              replaceable)  # fmt: skip
        finally:
            await to_thread.run_sync(staged.unlink, True)
    await to_thread.run_sync(_let_go, finished)
    return placed


def _adopt(path: Path, size: int | None, sha256: str | None, withdrawn: Sequence[int]) -> bool:
    if not matches(path, size, sha256):
        return False
    withdraw(path, withdrawn)  # left by a kill during a cross-filesystem copy
    return True


async def adoptable(
    path: Path, size: int | None, sha256: str | None, withdrawn: Sequence[int] = ()
) -> bool:
    """True when a recorded intent's destination holds its bytes: published before a kill
    (the copies beside it of the claims `withdrawn` go)."""
    return await to_thread.run_sync(_adopt, path, size, sha256, withdrawn)
