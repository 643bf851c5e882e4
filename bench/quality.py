"""videoarchiver's quality bench: what the SSIM measurement costs, and what it finds.

Run with `make bench-quality` (about 20 minutes on 2 cores). It replaces the section
"Quality (SSIM)" of `bench/results.md` (or `--out`; `make bench` keeps it). What it measures:

- the measurement's CPU against its encode's, on a 1080p and an SD clip, at the shipped
  settings (x264 crf 18 `veryslow`) and at `medium`: each clip goes through `run --once`
  with $VIDEOARCHIVER_TRACE set; the archive's video encode and the measurement's commands
  (the keyframe search and the comparisons) are then replayed one at a time, each one's CPU
  counted (the measurement's on the published archive, whose video is the encoded part);
- SSIM mean and worst on a spread of ffmpeg-made footage at the shipped settings, as the
  daemon recorded it (at its sample points), and over every frame (for reference), and the
  same at crf 30 and 51.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from sections import QUALITY, replace_section

from media import ffmpeg, status_json
from videoarchiver.planning.quality import parse_ssim, summarize

HEADING = QUALITY
CONFIG = """\
settle_seconds = 0
jobs = 1
[archive]
video_args = ["-crf", "{crf}", "-preset", "{preset}"]
"""
CAMERA = "testsrc2=s={size}:r=25:d={seconds},noise=alls=5:allf=t,scroll=h=0.002"
# (name, what, seconds) → ffmpeg's input and options: the raw file, coded finely (a camera's
# bitrate or more), so that the archive's encode is kept.
COST_CLIPS = {
    "hd.mp4": ("1920x1080 25 fps, camera-like (moving, sensor noise), H.264 GOP 1 s", 5,
               ["-f", "lavfi", "-i", CAMERA.format(size="1920x1080", seconds=5),
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "14", "-g", "25"]),
    "sd.mp4": ("720x576 25 fps, camera-like, H.264 GOP 1 s", 12,
               ["-f", "lavfi", "-i", CAMERA.format(size="720x576", seconds=12),
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "14", "-g", "25"]),
}  # fmt: skip
FINE = ["-c:v", "libx264", "-preset", "veryfast", "-qp", "6", "-g", "25"]
SPREAD = {
    "camera.mp4": ("camera-like: moving pattern, sensor noise",
                   ["-f", "lavfi", "-i", CAMERA.format(size="640x360", seconds=4), *FINE]),
    "noise.mkv": ("heavy noise (grain, low light)",
                  ["-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=4,noise=alls=40:allf=t",
                   *FINE]),
    "screen.mkv": ("screen capture: text and flat colours, RGB",
                   ["-f", "lavfi", "-i", "testsrc=s=1280x720:r=10:d=4", "-c:v", "ffv1"]),
    "animation.mkv": ("animation: hard edges, flat fills",
                      ["-f", "lavfi", "-i", "life=s=640x360:r=25:mold=10:ratio=0.1:"
                       "life_color=#00ff00:death_color=#c83232,scale=640:360:flags=neighbor",
                       "-t", "4", *FINE]),
    "fractal.mkv": ("fine detail in motion (a fractal zoom)",
                    ["-f", "lavfi", "-i", "mandelbrot=s=640x360:r=25", "-t", "4", *FINE]),
    "tape.dv": ("interlaced DV (PAL, bottom field first)",
                ["-f", "lavfi", "-i", "testsrc2=s=720x576:r=50:d=4,scroll=h=0.003",
                 "-vf", "interlace=scan=bff", "-target", "pal-dv"]),
    "hdr.mkv": ("HDR 10-bit (HEVC, PQ, BT.2020)",
                ["-f", "lavfi", "-i", CAMERA.format(size="640x360", seconds=4),
                 "-pix_fmt", "yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast",
                 "-x265-params", "qp=4:log-level=error:colorprim=bt2020:colormatrix=bt2020nc:"
                 "transfer=smpte2084"]),
}  # fmt: skip


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu(args: list[str]) -> float:
    """CPU seconds of one command run alone."""
    before = _children_cpu()
    subprocess.run(args, check=True, capture_output=True)
    return _children_cpu() - before


def _run(root: Path, trace: Path | None = None) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    if trace is not None:
        env["VIDEOARCHIVER_TRACE"] = str(trace)
    subprocess.run([sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
                   check=True, capture_output=True, env=env)  # fmt: skip


def _root(tmp: Path, name: str, crf: int, preset: str) -> Path:
    root = tmp / name
    (root / "raw").mkdir(parents=True)
    (root / "videoarchiver.toml").write_text(CONFIG.format(crf=crf, preset=preset))
    return root


def _measuring(args: list[str]) -> bool:
    joined = " ".join(args)
    return "ssim=stats_file=-" in joined or "packet=pts_time,flags" in joined


def _encodes(args: list[str]) -> bool:
    """The archive's encode of stream 0 (not the ffprobe that counts its packets)."""
    return args[-1].endswith("/archive/s0.partial0.mkv")


class Cost(NamedTuple):
    clip: str
    preset: str
    encode: float
    measure: float
    points: int
    frames: int


def cost(tmp: Path, name: str, preset: str) -> Cost:
    """The archive's video encode and its quality measurement, replayed, in CPU seconds."""
    root = _root(tmp, f"{Path(name).stem}-{preset}", 18, preset)
    ffmpeg(*COST_CLIPS[name][2], root / "raw" / name)
    trace = root / "trace.jsonl"
    _run(root, trace)
    commands = [json.loads(line)["args"] for line in trace.read_text().splitlines()]
    [encode] = [args for args in commands if args[0] == "ffmpeg" and _encodes(args)]
    output = root / "replayed.mkv"
    encode_cpu = _cpu([*encode[:-1], f"file:{output}"])
    archive = f"file:{root / 'archive' / f'{Path(name).stem}.mkv'}"
    measure_cpu, points = 0.0, 0
    for args in filter(_measuring, commands):
        replayed = [archive if arg.endswith("/archive/s0.mkv") else arg for arg in args]
        measure_cpu += _cpu(replayed)
        points += replayed.count("-ss") // 2
    [job] = [job for job in status_json(root)[0]["jobs"]["archive"] if job["stream_index"] == 0]
    frames = int(job["ssim_note"].split()[0])
    return Cost(name, preset, encode_cpu, measure_cpu, points, frames)


def _full(archive: Path, raw: Path) -> tuple[float, float]:
    """Mean and worst SSIM over every frame (both as ffmpeg shows them, paired in order)."""
    first = "setpts=N/TB,format=yuv420p10le,setsar=1"
    graph = (f"[0:v:0]{first}[a];[1:v:0]{first}[r];[a][r]scale2ref[a2][r2];"
             f"[a2][r2]ssim=stats_file=-")  # fmt: skip
    printed = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{archive}", "-i", f"file:{raw}",
         "-lavfi", graph, "-f", "null", "-"], check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    quality = summarize(parse_ssim(printed))
    assert quality is not None
    return quality.mean, quality.worst


def spread(tmp: Path, crf: int) -> dict[str, dict[str, Any]]:
    """Each kind of footage at `crf` (preset veryslow): the daemon's figures and the full ones."""
    root = _root(tmp, f"spread-{crf}", crf, "veryslow")
    for name, (_, args) in SPREAD.items():
        ffmpeg(*args, root / "raw" / name)
    _run(root)
    found = {}
    for file in status_json(root):
        [job] = [job for job in file["jobs"]["archive"] if job["stream_type"] == "video"]
        name = file["rel_path"]
        archive = root / "archive" / f"{Path(name).stem}.mkv"
        found[name] = job | {"full": _full(archive, root / "raw" / name)}
    return found


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def report(costs: list[Cost], spreads: dict[int, dict[str, dict[str, Any]]]) -> str:
    lines = [
        HEADING, "",
        "What the measurement costs: the archive's video encode and the measurement (keyframe",
        "search and comparisons, 3 frames a sample point), each replayed alone; CPU seconds.",
        "",
        "| clip | preset | encode CPU | measurement CPU | share | sample points | frames |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for c in costs:
        share = f"{100 * c.measure / c.encode:.2f} %"
        lines.append(
            f"| {COST_CLIPS[c.clip][0]}, {COST_CLIPS[c.clip][1]} s | `{c.preset}` | "
            f"{c.encode:.1f} s | {c.measure:.2f} s | {share} | {c.points} | {c.frames} |"
        )
    lines += [
        "",
        "What it finds: SSIM (all planes) of the archive against the raw at x264 `veryslow`,",
        "as recorded (mean and worst of the frames sampled), and over every frame (mean, worst).",
        "",
        "| footage | crf | recorded mean | recorded worst | every frame: mean | worst |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, (what, _) in SPREAD.items():
        for crf, found in spreads.items():
            job = found[name]
            mean, worst = job["full"]
            recorded = (_figure(job["ssim_mean"]), _figure(job["ssim_worst"]))
            if job["decision"] != "encode":
                recorded = ("raw stream kept", "(ratio rule)")
            lines.append(f"| {what} | {crf} | {recorded[0]} | {recorded[1]} | {mean:.4f} | "
                         f"{worst:.4f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.md")
    parser.add_argument("--notes", type=Path, help="a text appended to the section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="videoarchiver-quality-") as folder:
        tmp = Path(folder)
        costs = []
        for name in COST_CLIPS:
            for preset in ("veryslow", "medium"):
                print(f"cost: {name} at {preset} …", flush=True)
                costs.append(cost(tmp, name, preset))
                print(f"  {costs[-1]}", flush=True)
        spreads = {}
        for crf in (18, 30, 51):
            print(f"spread at crf {crf} …", flush=True)
            spreads[crf] = spread(tmp, crf)
    section = report(costs, spreads)
    if args.notes:
        section += "\n" + args.notes.read_text()
    replace_section(args.out, HEADING, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
