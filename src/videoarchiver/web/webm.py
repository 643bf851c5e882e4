"""Previews as browsers play them: Matroska (AV1 + Opus) remuxed into WebM.

Each preview is remuxed once (`-c copy`, milliseconds) into `work/web/`, named by its file
id and its SHA-256 (a preview made again gets a WebM of its own, and the old one goes), one
remux at a time. ffmpeg reads the preview as it reads a raw file: by the `file` protocol and
a demuxer that opens nothing else (a playlist in a preview's place names no file to it).
The remux is no pipeline step (the web server has no runtime): it runs the real
`run_process`.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from videoarchiver.errors import VideoArchiverError
from videoarchiver.layout import Layout
from videoarchiver.planning.commands import FFMPEG, RawInput, url
from videoarchiver.processes import read_output, run_process
from videoarchiver.web.descriptors import fd_path, open_plain


def webm_args(preview: RawInput, webm: Path) -> list[str]:
    return [*FFMPEG, *preview.args(), "-map", "0", "-c", "copy", "-f", "webm", url(webm)]


class WebmCache:
    """Previews remuxed into WebM under `work/web/`, made on first asking, one at a time; a
    half-made one is never served, and two requests for one preview make it once."""

    def __init__(self, layout: Layout, demuxers: str) -> None:
        self.layout, self.demuxers = layout, demuxers
        self.folder = layout.work / "web"
        self._lock = anyio.Lock()

    async def of(self, file_id: int, sha256: str, preview_fd: int) -> int | None:
        """A descriptor of the WebM of the preview open at `preview_fd` (closed here),
        whose SHA-256 is `sha256`; None if it cannot be made. The caller closes it."""
        webm = self.folder / f"{file_id}-{sha256}.webm"
        preview = RawInput(fd_path(preview_fd), self.demuxers)
        try:
            async with self._lock:
                if not await anyio.Path(webm).exists() and not await self._make(
                    file_id, preview, webm
                ):
                    return None
        finally:
            os.close(preview_fd)
        return await anyio.to_thread.run_sync(
            open_plain, self.layout.root, self.layout.relative(webm)
        )

    async def _make(self, file_id: int, preview: RawInput, webm: Path) -> bool:
        await anyio.Path(self.folder).mkdir(parents=True, exist_ok=True)
        for old in await anyio.to_thread.run_sync(
            lambda: list(self.folder.glob(f"{file_id}-*.webm"))
        ):  # a preview made again: its old copy goes
            await anyio.Path(old).unlink(missing_ok=True)
        partial = self.folder / f".{webm.name}.partial"
        await anyio.Path(partial).unlink(missing_ok=True)
        try:
            await read_output(run_process, webm_args(preview, partial), "remux into WebM")
        except VideoArchiverError:
            await anyio.Path(partial).unlink(missing_ok=True)
            return False
        await anyio.Path(partial).rename(webm)
        return True
