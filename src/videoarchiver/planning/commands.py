"""Argument lists shared by every ffmpeg/ffprobe command we build.

Paths are always passed as absolute `file:` URLs: a raw file named `-x.mp4` or `a:b.mkv`
must never be read as an option or a protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from videoarchiver.planning.packets import PACKET_ENTRIES

# `-n`: ffmpeg never writes into an existing file. A work file may be a hard link to a
# published output (a kill between linking and unlinking it); overwriting it in place would
# rewrite the published file. The caller removes a stale output name first (`output_of`).
FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-n")
FFPROBE = ("ffprobe", "-hide_banner", "-loglevel", "error")
PROGRESS = ("-progress", "pipe:1")


def url(path: Path) -> str:
    """An ffmpeg input/output URL that no file name can turn into an option or protocol."""
    return "file:" + str(path.absolute())


def output_of(args: Sequence[str]) -> Path:
    """The file an ffmpeg command we built writes: every one ends with its output URL."""
    last = args[-1]
    assert last.startswith("file:"), f"not an output URL: {last}"
    return Path(last.removeprefix("file:"))


def probe_args(path: Path) -> list[str]:
    return [
        *FFPROBE,
        "-print_format", "json",
        "-show_format", "-show_streams", "-show_chapters",
        url(path),
    ]  # fmt: skip


def packet_args(path: Path) -> list[str]:
    return [*FFPROBE, "-print_format", "compact=p=0", "-show_entries", PACKET_ENTRIES, url(path)]
