"""The files the page serves: published outputs only, found from the store by file id.

A path in the store is relative to the root. It is opened one name at a time from the root
with O_NOFOLLOW, so no symbolic link on the way is followed, even one put there after a
check (a link someone put in `preview/` could point anywhere); what is served is the file so
opened (by its descriptor), and only if it is a regular file. A montage of several video
streams is a folder of sheets: its first sheet stands for it.

Previews are Matroska (AV1 + Opus), which browsers play as WebM: each is remuxed once
(`-c copy`, milliseconds) into `work/web/`, named by its SHA-256, one remux at a time.
ffmpeg reads the preview as it reads a raw file: by the `file` protocol and a demuxer that
opens nothing else (a playlist in a preview's place names no file to it).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio

from videoarchiver.errors import VideoArchiverError
from videoarchiver.layout import Layout
from videoarchiver.planning.commands import FFMPEG, RawInput, url
from videoarchiver.processes import read_output
from videoarchiver.state import OutputRow

SHEET_SUFFIX = ".jpg"
# No link followed; a FIFO put in an output's place opens at once instead of waiting.
NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _open_under(root: Path, recorded: str) -> int | None:
    """A descriptor of the regular file at `recorded` under `root`, reached through no
    link (a folder: its first sheet); None when there is none such."""
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
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            names = os.listdir(fd)  # noqa: PTH208 (a descriptor: no path to follow)
            sheets = sorted(n for n in names if n.endswith(SHEET_SUFFIX))
            if not sheets:
                os.close(fd)
                return None
            fd = _step(fd, sheets[0])
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd
    except OSError:  # a link (ELOOP), gone, or not a folder on the way
        return None


def _step(folder: int, name: str) -> int:
    """Open `name` in the folder `folder` without following a link; closes `folder`."""
    try:
        return os.open(name, NOFOLLOW, dir_fd=folder)
    finally:
        os.close(folder)


@contextlib.contextmanager
def _held(fd: int) -> Iterator[Path]:
    try:
        yield fd_path(fd)
    finally:
        os.close(fd)


async def open_published(layout: Layout, output: OutputRow) -> int | None:
    """A descriptor of a published output, if it is a plain file inside the root; the
    caller closes it."""
    if output.path is None:
        return None
    return await anyio.to_thread.run_sync(_open_under, layout.root, output.path)


def fd_path(fd: int) -> Path:
    """A name for an open descriptor that this process and its children can open."""
    return Path(f"/proc/{os.getpid()}/fd/{fd}")


def webm_args(preview: RawInput, webm: Path) -> list[str]:
    return [*FFMPEG, *preview.args(), "-map", "0", "-c", "copy", "-f", "webm", url(webm)]


class WebmCache:
    """Previews remuxed into WebM under `work/web/`, made on first asking, one at a time; a
    half-made one is never served, and two requests for one preview make it once."""

    def __init__(self, layout: Layout, demuxers: str) -> None:
        self.folder, self.demuxers = layout.work / "web", demuxers
        self._lock = anyio.Lock()

    async def of(self, file_id: int, output: OutputRow, preview_fd: int) -> Path | None:
        """The WebM of the preview open at `preview_fd` (closed here); None if it cannot
        be made."""
        webm = self.folder / f"{file_id}-{(output.sha256 or 'unknown')[:16]}.webm"
        with _held(preview_fd) as preview:
            async with self._lock:
                if await anyio.Path(webm).is_file():
                    return webm
                await anyio.Path(self.folder).mkdir(parents=True, exist_ok=True)
                for old in await anyio.to_thread.run_sync(
                    lambda: list(self.folder.glob(f"{file_id}-*.webm"))
                ):  # a preview made again: its old copy goes
                    await anyio.Path(old).unlink(missing_ok=True)
                partial = self.folder / f".{webm.name}.partial"
                await anyio.Path(partial).unlink(missing_ok=True)
                try:
                    args = webm_args(RawInput(preview, self.demuxers), partial)
                    await read_output(args, "remux into WebM")
                except VideoArchiverError:
                    await anyio.Path(partial).unlink(missing_ok=True)
                    return None
                await anyio.Path(partial).rename(webm)
                return webm
