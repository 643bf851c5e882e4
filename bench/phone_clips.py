"""A batch of phone-like clips, made in seconds however many: four pools (H.264 and HEVC, 1080p
and 720p, 30 fps, a keyframe a second, AAC 48 kHz stereo, at phones' bit rates) of a moving
test pattern with sensor-like noise, then each clip a stream copy of a stretch of one pool,
some turned to portrait by a display rotation. Their lengths spread from 2 to 20 s evenly on
a log scale (short clips are the many), their start in the pool on a keyframe."""

from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workload import ffmpeg

POOL_SECONDS = 22
SHORTEST, LONGEST = 2.0, 20.0
H264 = ("-c:v", "libx264", "-preset", "ultrafast")
HEVC = ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
        "-tag:v", "hvc1")  # fmt: skip
POOLS = {  # name: size, encoder, video bit rate (Mbit/s)
    "h264-1080p": ("1920x1080", H264, 17),
    "h264-720p": ("1280x720", H264, 8),
    "hevc-1080p": ("1920x1080", HEVC, 10),
    "hevc-720p": ("1280x720", HEVC, 5),
}
ROTATIONS = (0, 90, 0, 0, 270, 0)  # a third of the clips portrait


def make_pool(folder: Path, name: str) -> Path:
    size, encoder, mbits = POOLS[name]
    pool = folder / f"{name}.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d={POOL_SECONDS},noise=alls=3:allf=t",
           "-f", "lavfi", "-i", f"anoisesrc=d={POOL_SECONDS}:color=pink:amplitude=0.1:r=48000",
           "-ac", "2", *encoder, "-b:v", f"{mbits}M", "-maxrate", f"{mbits * 1.2:g}M",
           "-bufsize", f"{mbits * 1.2:g}M", "-g", "30", "-c:a", "aac", "-b:a", "192k",
           pool)  # fmt: skip
    return pool


def make_phone_clips(raw: Path, count: int, cores: int) -> dict[str, str]:
    """`count` clips in `raw`; returns a description of each for the report."""
    raw.mkdir(parents=True)
    pools_folder = raw.parent / "pools"
    pools_folder.mkdir()
    with ThreadPoolExecutor(cores) as pool:
        made = pool.map(lambda name: make_pool(pools_folder, name), POOLS)
        pools = dict(zip(POOLS, made, strict=True))
    chosen = random.Random(28)
    clips: dict[str, str] = {}
    for number in range(count):
        name = chosen.choice(list(POOLS))
        seconds = round(SHORTEST * math.exp(chosen.random() * math.log(LONGEST / SHORTEST)), 1)
        start = chosen.randrange(int(POOL_SECONDS - seconds) + 1)
        rotation = ROTATIONS[number % len(ROTATIONS)]
        clip = f"phone-{number:03d}.mp4"
        turn = ("-metadata:s:v:0", f"rotate={rotation}") if rotation else ()
        ffmpeg("-ss", str(start), "-i", pools[name], "-t", str(seconds), "-map", "0", "-c", "copy",
               *turn, raw / clip)  # fmt: skip
        turned = f", turned {rotation}°" if rotation else ""
        clips[clip] = f"{name} {seconds} s from {start} s{turned}"
    return clips
