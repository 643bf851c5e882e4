"""Argument lists shared by every ffmpeg/ffprobe command we build.

Paths are always passed as absolute `file:` URLs: a raw file named `-x.mp4` or `a:b.mkv`
must never be read as an option or a protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from videoarchiver.planning.packets import PACKET_ENTRIES, PACKET_FORMAT
from videoarchiver.planning.timing import DECODED_ENTRIES, FRAME_ENTRIES

# `-n`: ffmpeg never writes into an existing file. A work file may be a hard link to a
# published output (a kill between linking and unlinking it); overwriting it in place would
# rewrite the published file. The caller removes a stale output name first (`output_of`).
FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-n")
# `-o pipe:1`: ffprobe's own output, buffered (32 KiB writes); to stdout as such it writes
# each line on its own, and reading a packet pass line by line cost the daemon 5 µs a line.
FFPROBE = ("ffprobe", "-hide_banner", "-loglevel", "error", "-o", "pipe:1")
PROGRESS = ("-progress", "pipe:1")


# Demuxers that open other files or the network on a file's say-so (playlists, concat and
# manifest lists, scripts, session descriptions), and devices: a raw file is read as itself,
# never as directions to read something else (a `.mp4` holding an HLS playlist would publish
# any file it names).
REFUSED_DEMUXERS = frozenset(
    {"hls", "applehttp", "concat", "dash", "imf", "sdp", "rtsp", "rtp", "avisynth",
     "vapoursynth", "lavfi", "ffconcat",
     "alsa", "fbdev", "jack", "kmsgrab", "v4l2", "video4linux2", "x11grab", "pulse", "oss",
     "openal", "libcdio", "libdc1394", "iec61883", "sndio", "decklink"}
)  # fmt: skip
DEMUXER_LINE = re.compile(r"^ D[E ]\s+(\S+)", re.MULTILINE)


def url(path: Path) -> str:
    """An ffmpeg input/output URL that no file name can turn into an option or protocol."""
    return "file:" + str(path.absolute())


def safe_demuxers(listing: str) -> str:
    """From `ffmpeg -demuxers`, every demuxer that reads only the file it is given, as the
    comma-separated list `-format_whitelist` takes."""
    names = {name for line in DEMUXER_LINE.findall(listing) for name in line.split(",")}
    return ",".join(sorted(names - REFUSED_DEMUXERS))


@dataclass(frozen=True)
class RawInput:
    """A raw file (or any file we cannot vouch for, such as a published preview the web
    page remuxes) as ffmpeg and ffprobe open it: the `file` protocol alone, and only the
    demuxers `safe_demuxers` allows."""

    path: Path
    demuxers: str

    def args(self) -> list[str]:
        return [
            "-protocol_whitelist", "file", "-format_whitelist", self.demuxers, "-i", url(self.path)
        ]  # fmt: skip


IMAGE_SUFFIXES = (".jpg", ".png")


def input_args(target: Path | RawInput) -> list[str]:
    """The input options for one of our own files (a path) or a raw file. Our images are
    single files, never `%d` patterns, whatever `%` their folder's name holds."""
    if isinstance(target, RawInput):
        return target.args()
    if target.suffix in IMAGE_SUFFIXES:
        return ["-f", "image2", "-pattern_type", "none", "-i", url(target)]
    return ["-i", url(target)]


def pattern_url(folder: Path, pattern: str) -> str:
    """An image2 `%d` pattern in `folder`, with any `%` of the folder's path kept literal."""
    return url(folder).replace("%", "%%") + "/" + pattern


def output_of(args: Sequence[str]) -> Path:
    """The file an ffmpeg command we built writes: every one ends with its output URL."""
    last = args[-1]
    assert last.startswith("file:"), f"not an output URL: {last}"
    return Path(last.removeprefix("file:"))


def probe_args(target: Path | RawInput) -> list[str]:
    return [
        *FFPROBE,
        "-print_format", "json",
        "-show_format", "-show_streams", "-show_chapters",
        *input_args(target),
    ]  # fmt: skip


def frame_time_args(target: Path | RawInput, index: int, packets: int) -> list[str]:
    """The decoded times of the frames of one stream's first `packets` packets, one a line;
    warnings too (what the decoder says of the stream: packed B-frames)."""
    return [
        *FFPROBE, "-loglevel", "info", "-select_streams", str(index),
        "-read_intervals", f"%+#{packets}", "-show_entries", FRAME_ENTRIES, "-of", "csv=p=0",
        *input_args(target),
    ]  # fmt: skip


def decoded_audio_args(target: Path | RawInput) -> list[str]:
    """Every audio stream decoded (no video), one line a frame: its stream and samples."""
    return [
        *FFPROBE, "-select_streams", "a", "-show_entries", DECODED_ENTRIES, "-of", "csv=p=0",
        *input_args(target),
    ]  # fmt: skip


def packet_args(target: Path | RawInput) -> list[str]:
    return [
        *FFPROBE, "-print_format", PACKET_FORMAT, "-show_entries", PACKET_ENTRIES,
        *input_args(target),
    ]  # fmt: skip
