"""The measured quality of a re-encoded video stream: SSIM against the raw stream on sampled
frames, before `after_done` may let the raw file go.

A few frames (`FRAMES`) are compared at sample points spread over the stream, as many as
cost at most `BUDGET` of the encode's estimated CPU (at least one point). Each point is a
keyframe of the encoded part (found by ffprobe at or before a target time), so that its
decoder starts there. Both timelines are the raw file's: the part's timestamps are the raw's
minus the file's start (`encode_args`, `-output_ts_offset` on resume), so both seeks are to
absolute times (`-seek_timestamp`). The raw is seeked to its keyframe at or before the same
time (earlier by a preroll where its container has no index: `preroll`), and its frames up
to a quarter frame before the point dropped, whatever Matroska's millisecond rounding did to
the part's; from there the frames of both are paired in order, not by timestamp. A raw
stream without timestamps is read from its start and its frames counted. Both are decoded as
ffmpeg shows them (the encode turned the pixels upright: the raw is turned as the encode
turned it), the part scaled to the raw's size if they differ, both in the archive's pixel
format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from videoarchiver.planning.commands import FFMPEG, FFPROBE, RawInput, url

BUDGET = 0.02  # of the encode's CPU
FRAMES = 3  # compared at each sample point
BATCH = 4  # sample points one ffmpeg compares (two decoders each, one thread each)
MIN_INTERVAL = 2.0  # seconds between sample points at the least
MAX_POINTS = 200
# CPU a sample point costs, measured with ffmpeg 5.1 on 2 shared cores (`make bench-quality`,
# bench/results.md "Quality (SSIM)"), on camera-like 1080p and SD clips: per pixel, opening
# and decoding the FRAMES frames of both streams and comparing them; per pixel of each raw
# frame decoded before them (from its keyframe, or the preroll's); per point, and per ffmpeg
# and ffprobe started.
POINT_US_PER_PIXEL = 0.3
LEAD_US_PER_PIXEL = 0.009
POINT_SECONDS = 0.03
PROCESS_SECONDS = 0.08
# The part is our own Matroska file: its header says all, nothing need be decoded to open it.
OWN_FILE = ("-analyzeduration", "0", "-probesize", "32")
LOSSLESS_NOTE = "lossless (FFV1): 1.0 recorded, not measured"
NOT_MEASURED = "quality not measured"


@dataclass(frozen=True)
class SamplePlan:
    """Where to sample one stream: target times on the part's timeline (each becomes the
    keyframe at or before it), and the CPU seconds allowed and estimated."""

    targets: tuple[float, ...]
    budget: float
    cost: float

    @property
    def interval(self) -> float:
        return self.targets[1] - self.targets[0] if len(self.targets) > 1 else math.inf


def point_cost(pixels: int, lead_frames: float) -> float:
    """Estimated CPU seconds of one sample point (its share of an ffmpeg's start included)."""
    per_pixel = POINT_US_PER_PIXEL + LEAD_US_PER_PIXEL * lead_frames
    return pixels * per_pixel / 1e6 + POINT_SECONDS + PROCESS_SECONDS / BATCH


def lead_frames(raw_gop: float, preroll: float, frame_seconds: float) -> float:
    """Raw frames decoded before a sample point's, on average: half a GOP (`raw_gop`
    frames from keyframe to keyframe), and the preroll's (a raw stream without timestamps,
    read from its start: half the stream as its preroll, half its GOP as its GOP)."""
    return max(0.0, raw_gop - 1) / 2 + preroll / frame_seconds


def sample_plan(
    start: float, duration: float, pixels: int, lead: float, encode_cpu: float
) -> SamplePlan:
    """Sample points for a stream of `duration` s from `start` (on the part's timeline), of
    `pixels` a frame and `lead` raw frames decoded before each point's (`lead_frames`),
    whose encode cost `encode_cpu` CPU seconds: evenly spread, each in the middle of its
    stretch, as many as fit in BUDGET beside the keyframe probe and the first ffmpeg's
    start (at least one, at most MAX_POINTS and one per MIN_INTERVAL)."""
    budget = BUDGET * max(encode_cpu, 0.0)
    each = point_cost(pixels, lead)
    fixed = 2 * PROCESS_SECONDS - PROCESS_SECONDS / BATCH
    most = min(MAX_POINTS, max(1, int(duration / MIN_INTERVAL)))
    count = max(1, min(most, int((budget - fixed) / each)))
    stretch = max(duration, 0.0) / count
    targets = tuple(round(start + (k + 0.5) * stretch, 6) for k in range(count))
    return SamplePlan(targets, budget, fixed + count * each)


def keyframe_args(part: Path, targets: Sequence[float]) -> list[str]:
    """ffprobe of the part's first packet from each target: the keyframe at or before it
    (Matroska's cues), without decoding anything."""
    intervals = ",".join(f"{target:.6f}%+#1" for target in targets)
    return [
        *FFPROBE, *OWN_FILE, "-select_streams", "v:0", "-read_intervals", intervals,
        "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", "-i", url(part),
    ]  # fmt: skip


def parse_keyframes(text: str) -> list[float]:
    """The distinct keyframe times of `keyframe_args`' output, in order."""
    times = set()
    for line in text.splitlines():
        pts, _, flags = line.strip().partition(",")
        if "K" in flags and pts not in ("", "N/A"):
            times.add(float(pts))
    return sorted(times)


@dataclass(frozen=True)
class Comparison:
    """How one stream is compared: the raw stream `index` of `raw` (whose file starts at
    `file_start`), frames `frame_seconds` apart, against `part`, both in `pix_fmt`. A raw
    stream without timestamps (an elementary stream) is not seeked: its frames are counted
    from its start, which is the part's `untimed_start`."""

    part: Path
    raw: RawInput
    index: int
    file_start: float
    frame_seconds: float
    pix_fmt: str
    preroll: float = 0.0  # seconds the raw is seeked early (`preroll`)
    untimed_start: float | None = None

    def _inputs(self, at: float, shift: float) -> list[str]:
        """The part from its keyframe at `at`; the raw from its keyframe at or before the
        same time, less its preroll (its frames before a quarter frame early are dropped
        by `_raw_from`)."""
        raw_at = at + self.file_start - self.preroll + shift
        seek = ["-noaccurate_seek", "-ss", f"{raw_at:.6f}"] if self.untimed_start is None else []
        return [
            *OWN_FILE, "-seek_timestamp", "1", "-threads", "1", "-ss", f"{at:.6f}",
            "-i", url(self.part),
            "-seek_timestamp", "1", "-threads", "1", *seek, *self.raw.args(),
        ]  # fmt: skip

    def _raw_from(self, at: float, shift: float) -> str:
        """The filter that drops the raw's frames before the one shown at `at`."""
        if self.untimed_start is None:
            return f"select='gte(t,{self.preroll - self.frame_seconds / 4:.6f})'"
        frame = round((at + shift - self.untimed_start) / self.frame_seconds)
        return f"select='gte(n,{frame})'"

    def _graph(self, number: int, at: float, shift: float) -> str:
        first = f"trim=end_frame={FRAMES},setpts=N/TB"  # paired in order: no rounding
        same = f"format={self.pix_fmt},setsar=1"
        a, r, raw = f"a{number}", f"r{number}", f"{2 * number + 1}:{self.index}"
        return (
            f"[{2 * number}:v:0]{first}[{a}];[{raw}]{self._raw_from(at, shift)},{first}[{r}];"
            f"[{a}][{r}]scale2ref=flags=bicubic[{a}s][{r}s];"
            f"[{a}s]{same}[{a}f];[{r}s]{same}[{r}f];[{a}f][{r}f]ssim=stats_file=-[s{number}]"
        )

    def args(self, points: Sequence[float], shift: float = 0.0) -> list[str]:
        """One ffmpeg comparing FRAMES frames at each of `points` (part times), printing
        ssim's line per frame on stdout; `shift` moves the raw's seek (tests only: a
        comparison off by a frame must score low)."""
        inputs: list[str] = []
        maps: list[str] = []
        for number, at in enumerate(points):
            inputs += self._inputs(at, shift)
            maps += ["-map", f"[s{number}]"]
        graph = ";".join(self._graph(number, at, shift) for number, at in enumerate(points))
        return [*FFMPEG, *inputs, "-filter_complex", graph, *maps, "-f", "null", "-"]


# Containers whose seek lands on the keyframe at or before the time asked (an index: cues,
# sample tables, idx1). Others (MPEG-TS, MPEG-PS, elementary streams) search by timestamps
# and may land a GOP after it: the raw is seeked that much earlier, and its frames up to the
# time decoded and dropped.
INDEXED = frozenset({"matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2", "avi"})


def preroll(format_name: str, raw_gop: float, frame_seconds: float) -> float:
    """Seconds the raw is seeked before a sample point: none in an indexed container, else
    a GOP and a second."""
    return 0.0 if format_name in INDEXED else raw_gop * frame_seconds + 1.0


_ALL = re.compile(r"\bAll:([0-9.]+)")


def parse_ssim(text: str) -> list[float]:
    """The SSIM of each frame (all planes) in the ssim filter's `stats_file` lines:
    `n:1 Y:0.98 U:0.99 V:0.99 All:0.985 (18.3)`."""
    return [float(value) for value in _ALL.findall(text)]


@dataclass(frozen=True)
class Quality:
    mean: float
    worst: float
    frames: int


def summarize(values: Sequence[float]) -> Quality | None:
    """Mean and worst of the frames compared (None: no frame was)."""
    if not values:
        return None
    return Quality(sum(values) / len(values), min(values), len(values))


def pixel_format(args: Sequence[str], raw_pix_fmt: str | None) -> str:
    """The archive's pixel format: the last `-pix_fmt` its encode was given, else the raw's."""
    given = [value for option, value in pairwise(args) if option == "-pix_fmt"]
    return given[-1] if given else raw_pix_fmt or "yuv420p"


def shortfall(
    index: int, mean: float | None, worst: float | None, note: str | None, minimum: float
) -> str | None:
    """Why a re-encoded video stream's quality does not let the raw file go (None: it may)."""
    if mean is None:
        return f"stream {index}: {NOT_MEASURED}: {note or 'no figure recorded'}"
    if mean < minimum:
        seen = f" (worst frame {worst:.4f})" if worst is not None else ""
        return f"stream {index}: SSIM {mean:.4f}{seen} below archive.min_ssim {minimum:g}"
    return None
