"""The files the page serves: published outputs only, found from the store by file id.

A path in the store is relative to the root; it is served only if it resolves to a regular
file inside the root with no symbolic link on the way (a link someone put in `preview/`
could point anywhere). Previews are Matroska (AV1 + Opus), which browsers play as WebM:
each is remuxed once (`-c copy`, milliseconds) into `work/web/`, named by its SHA-256.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio

from videoarchiver.layout import Layout
from videoarchiver.planning.commands import FFMPEG, url
from videoarchiver.processes import read_output
from videoarchiver.state import OutputRow


def _inside(root: Path, recorded: str) -> Path | None:
    """The regular file at `recorded` under `root`, reached through no link; else None."""
    parts = Path(recorded).parts
    if not parts or recorded.startswith("/") or "\\" in recorded:
        return None
    path, info = root, os.lstat(root)
    for part in parts:
        if part in ("", ".", ".."):
            return None
        path = path / part
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            return None
    return path if stat.S_ISREG(info.st_mode) else None


async def published_media(layout: Layout, output: OutputRow) -> Path | None:
    """Where a published output is, if it is a plain file inside the root."""
    if output.path is None:
        return None
    return await anyio.to_thread.run_sync(_inside, layout.root, output.path)


def webm_args(preview: Path, webm: Path) -> list[str]:
    return [*FFMPEG, "-i", url(preview), "-map", "0", "-c", "copy", "-f", "webm", url(webm)]


async def webm_of(layout: Layout, file_id: int, output: OutputRow, preview: Path) -> Path:
    """The preview as WebM, made on first asking; a half-made one is never served."""
    folder = layout.work / "web"
    webm = folder / f"{file_id}-{(output.sha256 or 'unknown')[:16]}.webm"
    if await anyio.Path(webm).is_file():
        return webm
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    partial = webm.with_suffix(".partial.webm")
    await anyio.Path(partial).unlink(missing_ok=True)
    await read_output(webm_args(preview, partial), "remux of the preview into WebM")
    await anyio.Path(partial).rename(webm)
    return webm
