"""Interrupt recovery, pure: what to keep of a killed encode and how to go on.

A killed ffmpeg leaves a Matroska file readable up to its last complete cluster. Of video,
every complete GOP is kept (packets before the last keyframe, in decode order: x264's GOPs
are closed, so they cover presentation times up to that keyframe exactly). The encode resumes
at the kept packets' end, read from the packets themselves, into a new part; all parts share
the raw file's timeline (`-output_ts_offset`), and are joined with the concat demuxer and
`-c copy`.

Audio (and every other kind) is encoded again from its start instead: an audio encoder
starts each run with its priming (Opus: 312 samples, AAC: 1024), so a join would add a gap,
a click and an A/V shift at every kill; its encode costs little next to the video's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from videoarchiver.planning.commands import FFMPEG, PROGRESS, url
from videoarchiver.planning.packets import parse_packet_line

# Seek this much before the resume point: Matroska stores milliseconds, so the exact frame
# time may lie up to half a millisecond before the stored end.
SEEK_MARGIN = 0.0005
# Kept parts that end this close to the end of what they encode hold all of it: an encode
# resumed there has (next to) nothing to encode, and makes a Matroska file without packets.
END_SLACK = 0.005


class Part(BaseModel):
    """One finished or salvaged piece of a stream encode, on the raw file's timeline."""

    model_config = ConfigDict(frozen=True)

    file: str
    start: float
    end: float
    bytes: int
    packets: int
    last: bool = False  # the encode reached the end of the stream with this part
    source: str = ""  # the identity (size:fingerprint) of the raw content it was made from

    @property
    def seconds(self) -> float:
        return self.end - self.start


def resumes_from_parts(stream_type: str) -> bool:
    """Whether a killed encode of this kind of stream goes on from what it kept (video), or
    starts again (audio, subtitles: see the module's note)."""
    return stream_type == "video"


@dataclass
class SalvageTally:
    """Fed the packet lines of a killed video part (a packet pass), in file (decode) order."""

    packets: int = 0
    keep: int = 0
    kept_bytes: int = 0
    kept_start: float | None = None
    kept_end: float | None = None
    _bytes: int = 0
    _start: float | None = None
    _end: float | None = None

    def feed(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.feed_line(line)

    def feed_line(self, line: str) -> None:
        packet = parse_packet_line(line)
        if packet is None or packet.pts is None:
            return
        pts, duration = packet.pts, packet.duration
        if packet.key:
            # Everything before this keyframe is complete: commit it.
            self.keep, self.kept_bytes = self.packets, self._bytes
            self.kept_start, self.kept_end = self._start, self._end
        self.packets += 1
        self._bytes += packet.size
        self._start = pts if self._start is None else min(self._start, pts)
        self._end = pts + duration if self._end is None else max(self._end, pts + duration)

    def salvaged(self, name: str, source: str) -> Part | None:
        """The part worth keeping, or None when there is no complete GOP."""
        if self.keep == 0 or self.kept_start is None or self.kept_end is None:
            return None
        return Part(
            file=name, start=self.kept_start, end=self.kept_end, bytes=self.kept_bytes,
            packets=self.keep, source=source,
        )  # fmt: skip


def holds_whole(parts: Sequence[Part], ends: Iterable[float | None], start: float) -> bool:
    """Whether the kept `parts` reach the end of the raw streams they encode (`ends`: where
    each stream's last packet ends, on the raw file's clock, which starts at `start`; parts
    count from the file's start, as ffmpeg does): a run killed after its encode ended,
    before the part was kept, left a partial that holds it all."""
    known = [end for end in ends if end is not None]
    if not parts or not known:
        return False
    return parts[-1].end >= max(known) - start - END_SLACK


def cut_args(partial: Path, packets: int, output: Path) -> list[str]:
    """Copy the first `packets` packets (decode order) of a killed part into a clean file."""
    return [*FFMPEG, "-i", url(partial), "-map", "0:0", "-c", "copy", "-frames:v", str(packets),
            "-f", "matroska", url(output)]  # fmt: skip


def resume_args(encode: Sequence[str], at: float) -> list[str]:
    """An encode command made to start at `at` seconds of the raw timeline and keep that
    timeline: seek the input, shift the output back by the same amount."""
    position = f"{max(0.0, at - SEEK_MARGIN):.6f}"
    args = list(encode)
    assert args[-3] == "-f", "encode commands end with -f FORMAT OUTPUT"
    where = args.index("-i")
    args[where:where] = ["-ss", position]
    args[-3:-3] = ["-output_ts_offset", position]
    return args


def concat_list(parts: Sequence[Part]) -> str:
    """An ffconcat script, written beside the parts, placing each part right after the
    previous one's kept end. Parts are named relative to the script: a folder path may hold
    a newline, which no line of the script could."""
    lines = ["ffconcat version 1.0"]
    for number, part in enumerate(parts):
        quoted = part.file.replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
        if number < len(parts) - 1:
            lines.append(f"duration {part.seconds:.6f}")
    return "\n".join(lines) + "\n"


def join_args(script: Path, start: float, output: Path) -> list[str]:
    """Join the parts losslessly; the result starts where the first part starts."""
    return [
        *FFMPEG, "-f", "concat", "-safe", "0", "-i", url(script), "-map", "0", "-c", "copy",
        "-output_ts_offset", f"{start:.6f}", *PROGRESS, "-f", "matroska", url(output),
    ]  # fmt: skip
