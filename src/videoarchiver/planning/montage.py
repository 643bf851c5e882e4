"""Montage planning: grid size, frame times, one decode pass or one seek per frame.

Seeking costs a decode from the keyframe before each time; when the frames are closer than
the stream's mean keyframe interval, those decodes would overlap, so one pass with `select`
and `tile` is cheaper. Either way only one decoder is open at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from videoarchiver.planning.commands import FFMPEG, RawInput, pattern_url, url
from videoarchiver.planning.preview import even
from videoarchiver.planning.shown import AS_DECODED, Shown

JPEG_MAX_SIDE = 65535
JPEG_ARGS = ("-pix_fmt", "yuvj420p", "-q:v", "2", "-c:v", "mjpeg")
ONE_IMAGE = ("-frames:v", "1", "-update", "1", "-f", "image2")


def grid_size(duration: float, min_n: int, max_n: int) -> int:
    """N = clamp(floor(ln(d / 2 + 1)), min_n, max_n): 60 s → 3, 3600 s → 7."""
    natural = math.floor(math.log(max(duration, 0.0) / 2 + 1))
    return max(min_n, min(max_n, natural))


def frame_times(duration: float, n: int) -> list[float]:
    """Seconds from the stream's start: d/2 for N = 1, else k·d/N² for k = 0 … N²−1."""
    if n == 1:
        return [duration / 2]
    tiles = n * n
    return [k * duration / tiles for k in range(tiles)]


def single_pass(duration: float, n: int, keyframes: int) -> bool:
    """True when frames are closer together than the mean keyframe interval."""
    if n == 1 or keyframes <= 0:
        return False
    return duration / (n * n) < duration / keyframes


def tile_size(shown: tuple[int, int], max_tile_width: int, n: int) -> tuple[int, int]:
    """A tile at the displayed source size (`shown`), narrowed to `max_tile_width` (0: no
    cap) and to what a JPEG can hold (65535 pixels a side), keeping the aspect ratio."""
    shown_width, shown_height = shown
    limit = min(
        max_tile_width or shown_width,
        shown_width,
        JPEG_MAX_SIDE // n,
        int(JPEG_MAX_SIDE / n * shown_width / shown_height),
    )
    if limit >= shown_width:
        return shown_width, shown_height
    return even(limit), even(shown_height * limit / shown_width)


@dataclass(frozen=True)
class MontagePlan:
    index: int
    n: int
    times: tuple[float, ...]
    single_pass: bool
    tile: tuple[int, int]
    shown: Shown = AS_DECODED  # deinterlaced, tone-mapped

    def scale(self) -> str:
        """A frame as shown, at the tile's size."""
        return self.shown.graph(self.tile)


def single_pass_args(raw: RawInput, plan: MontagePlan, offset: float, output: Path) -> list[str]:
    """Decode once; `select` takes the first frame at or after each time, `tile` lays them out.

    Also the fallback when a seek finds no frame (a stream cut mid-GOP, a damaged index).

    `offset` is where the stream starts on ffmpeg's timeline (its start minus the file's).
    """
    step = plan.times[1] - plan.times[0] if len(plan.times) > 1 else 0.0
    chooser = f"if(gte(t\\,{offset + plan.times[0]:.6f}+ld(0))\\,st(0\\,ld(0)+{step:.6f})*0+1\\,0)"
    graph = f"select='{chooser}',{plan.scale()},tile={plan.n}x{plan.n}"
    return [
        *FFMPEG, *raw.args(), "-map", f"0:{plan.index}", "-vf", graph,
        "-fps_mode", "passthrough", *JPEG_ARGS, *ONE_IMAGE, url(output),
    ]  # fmt: skip


FRAME_PATTERN = "frame_%03d.png"


def frame_name(number: int) -> str:
    return FRAME_PATTERN % number


def seek_args(raw: RawInput, plan: MontagePlan, time: float | None, output: Path) -> list[str]:
    """One frame at `time` on ffmpeg's timeline: seek to the keyframe before, decode to it;
    with no time, the first frame that decodes (no seek: a still image cannot take one)."""
    image = ("-c:v", "png") if output.suffix == ".png" else JPEG_ARGS
    seek = () if time is None else ("-ss", f"{time:.6f}")
    return [
        *FFMPEG, *seek, *raw.args(), "-map", f"0:{plan.index}",
        "-vf", plan.scale(), *image, *ONE_IMAGE, url(output),
    ]  # fmt: skip


def tile_args(folder: Path, n: int, output: Path) -> list[str]:
    """Lay out the frames `frame_000.png` … of `folder`, row by row, into one N×N JPEG; one
    image decoder reads them in turn."""
    return [
        *FFMPEG, "-f", "image2", "-start_number", "0", "-i", pattern_url(folder, FRAME_PATTERN),
        "-vf", f"tile={n}x{n}", *JPEG_ARGS, *ONE_IMAGE, url(output),
    ]  # fmt: skip
