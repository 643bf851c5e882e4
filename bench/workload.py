"""The bench batch, our settings for it, and running the daemon on it: what the benches share."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

PROGRAM = str(Path(sys.executable).parent / "videoarchiver")
CONFIG = """\
settle_seconds = 0
[archive]
video_args = ["-crf", "18", "-preset", "medium"]
"""
# Seconds of each file of the batch; the ratio rule needs more than 10 s of noise to act.
BATCH_SECONDS = {"big": 12, "mid": 24, "multi": 20, "song": 120, "noise": 30}
QUICK_SECONDS = {"big": 3, "mid": 6, "multi": 5, "song": 30, "noise": 14}


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def make_workload(
    raw: Path, quick: bool, seconds: Mapping[str, int] | None = None
) -> dict[str, str]:
    """The mixed batch (smaller pictures when `quick`; its files `seconds` long, by default
    the batch's or the quick batch's); returns a description of each file for the report."""
    raw.mkdir(parents=True)
    seconds = seconds or (QUICK_SECONDS if quick else BATCH_SECONDS)
    big, mid = ("1280x720", "854x480") if quick else ("1920x1080", "1280x720")
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={big}:r=25:d={seconds['big']}",
           "-f", "lavfi", "-i", f"sine=d={seconds['big']}:sample_rate=48000", "-ac", "2",
           "-c:v", "mpeg4", "-q:v", "3", "-c:a", "pcm_s16le", raw / "big.mkv")  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", f"testsrc=s={mid}:r=30:d={seconds['mid']}",
           "-f", "lavfi", "-i", f"sine=d={seconds['mid']}:sample_rate=44100", "-ac", "2",
           "-c:v", "mpeg4", "-q:v", "3", "-c:a", "aac", "-b:a", "320k",
           raw / "mid.mp4")  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=640x360:r=25:d={seconds['multi']}",
           "-f", "lavfi", "-i", f"sine=frequency=300:d={seconds['multi']}",
           "-f", "lavfi", "-i", f"testsrc=s=640x360:r=25:d={seconds['multi']}",
           "-f", "lavfi", "-i", f"sine=frequency=500:d={seconds['multi']}",
           "-map", "0", "-map", "1", "-map", "2", "-map", "3",
           "-c:v", "mpeg4", "-q:v", "3", "-c:a", "pcm_s16le", raw / "multi.mkv")  # fmt: skip
    song = f"anoisesrc=d={seconds['song']}:color=pink:amplitude=0.2:r=44100"
    ffmpeg("-f", "lavfi", "-i", song, "-ac", "2", "-c:a", "flac", raw / "song.flac")
    ffmpeg("-f", "lavfi", "-i",
           f"nullsrc=s=320x240:d={seconds['noise']}:r=25,geq=lum='random(1)*255':cb=128:cr=128",
           "-c:v", "mpeg4", "-b:v", "300k", raw / "noise.avi")  # fmt: skip
    return {
        "big.mkv": f"{big} {seconds['big']} s + stereo PCM",
        "mid.mp4": f"{mid} {seconds['mid']} s 30 fps + stereo AAC",
        "multi.mkv": f"2 × 640x360 + 2 audio, {seconds['multi']} s",
        "song.flac": f"audio only, {seconds['song']} s",
        "noise.avi": f"incompressible noise 320x240, {seconds['noise']} s",
    }


def resources_line(root: Path) -> dict[str, float]:
    text = (root / "log" / "videoarchiver.log").read_text()
    match = re.findall(
        r"resources: own CPU ([\d.]+) s, children CPU ([\d.]+) s, peak RSS ([\d.]+) MiB", text
    )[-1]
    return {"own": float(match[0]), "children": float(match[1]), "rss": float(match[2])}


def run_once(root: Path, env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run([PROGRAM, "run", "--once", "--root", str(root)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})  # fmt: skip
    return time.monotonic() - started


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
