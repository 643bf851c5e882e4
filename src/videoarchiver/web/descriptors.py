"""Files the page serves, held by descriptor from the check to the last byte sent.

A path the store records is relative to the root. It is opened one name at a time from the
root with O_NOFOLLOW, so no symbolic link on the way is followed, even one put there after
a check (a link someone put in `preview/` could point anywhere), and what is served is the
file so opened, by its descriptor: a regular file with one name (a hard link put in its
place has two, the other anywhere).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

# No link followed; a FIFO put in a file's place opens at once instead of waiting.
NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def open_plain(root: Path, recorded: str) -> int | None:
    """A descriptor of the regular file of one name at `recorded` under `root`, reached
    through no link; None when there is none such. The caller closes it."""
    parts = Path(recorded).parts
    if not parts or recorded.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts:
            fd = _step(fd, part)
    except OSError:  # a link (ELOOP), gone, or not a folder on the way
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        return None
    return fd


def _step(folder: int, name: str) -> int:
    """Open `name` in the folder `folder` without following a link; closes `folder`."""
    try:
        return os.open(name, NOFOLLOW, dir_fd=folder)
    finally:
        os.close(folder)


def fd_path(fd: int) -> Path:
    """A name for an open descriptor that this process and its children can open: opening
    it opens that very file, whatever became of its name since."""
    return Path(f"/proc/{os.getpid()}/fd/{fd}")


class DescriptorResponse(FileResponse):
    """The file open at a descriptor, with its content type (ranges as FileResponse serves
    them), or as an attachment named `filename` (its type guessed from the name); the
    descriptor is closed once answered, however the answer ends."""

    def __init__(self, fd: int, media_type: str | None, headers: dict[str, str],
                 filename: str | None = None) -> None:  # fmt: skip
        super().__init__(fd_path(fd), media_type=media_type, headers=headers,
                         stat_result=os.fstat(fd), filename=filename)  # fmt: skip
        self.fd = fd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self.fd)
