"""End to end: each re-encoded video stream's SSIM against its raw stream, measured on sampled
frames, recorded and shown; `after_done` lets the raw file go only when every one reaches
`archive.min_ssim` and keeps it, saying why, when one does not or could not be measured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from media import ffmpeg, poll_rows, run_cli, status_json, traced, wait_until
from videoarchiver.layout import Layout
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.quality import (
    LOSSLESS_NOTE,
    Comparison,
    keyframe_args,
    parse_keyframes,
    parse_ssim,
    preroll,
    summarize,
)
from videoarchiver.state import open_store
from videoarchiver.tools import readable_demuxers
from videoarchiver.web.app import create_app

CONFIG = """\
settle_seconds = 0
jobs = 1
after_done = "{after_done}"
[archive]
video_args = ["-crf", "{crf}", "-preset", "ultrafast", "-g", "50"]
"""
# The picture moves 1 % of its width a frame: a comparison off by one frame scores low.
MOVING = "testsrc2=s=320x240:r=25:d=4,scroll=h=0.01"
# Passes every ffprobe on but the keyframe search of the quality measurement.
WRAPPER = """#!/bin/sh
case "$*" in *-read_intervals*packet=pts_time,flags*) {action};; esac
exec {ffprobe} "$@"
"""


def _root(
    tmp_path: Path, after_done: str = "delete", crf: int = 18, min_ssim: float | None = None
) -> Path:
    """A root whose raw files are archived at `crf` (`ultrafast`), with `min_ssim` set if
    given (else the default)."""
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    config = CONFIG.format(after_done=after_done, crf=crf)
    if min_ssim is not None:
        config += f"min_ssim = {min_ssim}\n"
    (root / "videoarchiver.toml").write_text(config)
    return root


def _transport_stream(path: Path) -> None:
    """A tuner's MPEG-TS: B-frames, a start time that is not zero, a seek that may land
    after the time asked; coded nearly losslessly, so that every encode saves enough."""
    ffmpeg("-f", "lavfi", "-i", MOVING, "-c:v", "libx264", "-preset", "veryfast", "-qp", "4",
           "-g", "30", "-bf", "2", "-f", "mpegts", path)  # fmt: skip


def _video_job(root: Path, rel: str) -> dict[str, Any]:
    [file] = [file for file in status_json(root) if file["rel_path"] == rel]
    [job] = [job for job in file["jobs"]["archive"] if job["stream_type"] == "video"]
    found: dict[str, Any] = job
    return found


def _raw_action(root: Path, rel: str) -> str:
    [file] = [file for file in status_json(root) if file["rel_path"] == rel]
    action: str = file["raw_action"]
    return action


async def _file_page(root: Path) -> str:
    async with open_store(root) as store:
        [done] = await store.finished("", 1, 0)
        app = create_app(store, Layout(root), None, await readable_demuxers())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get(f"/files/{done.id}")
    assert page.status_code == 200
    return page.text


def _compared(archive: Path, raw: Path, shift: float) -> float:
    """Mean SSIM of the archive against the raw at the archive's keyframes after its
    first, the raw's seek moved by `shift` seconds."""
    start = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=start_time", "-of", "csv=p=0",
         f"file:{raw}"], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    how = Comparison(archive, RawInput(raw, "mpegts"), 0, float(start), 0.04, "yuv420p",
                     preroll("mpegts", 30, 0.04))  # fmt: skip
    found = subprocess.run(keyframe_args(archive, [1.0, 3.0]), capture_output=True, text=True)
    points = [at for at in parse_keyframes(found.stdout) if at > 0]
    assert points, found.stderr
    done = subprocess.run(how.args(points, shift), capture_output=True, text=True, check=True)
    quality = summarize(parse_ssim(done.stdout))
    assert quality is not None
    return quality.mean


def test_a_measured_archive_lets_its_raw_file_go_and_shows_its_ssim(tmp_path: Path) -> None:
    root = _root(tmp_path)
    raw, kept = root / "raw" / "tuner.ts", tmp_path / "tuner.ts"
    _transport_stream(raw)
    shutil.copy(raw, kept)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert not raw.exists(), "deleted: the encode reaches archive.min_ssim"
    assert _raw_action(root, "tuner.ts") == "deleted"
    job = _video_job(root, "tuner.ts")
    assert job["decision"] == "encode"
    assert 0.98 < job["ssim_mean"] <= 1.0
    assert 0.9 < job["ssim_worst"] <= job["ssim_mean"]
    assert "frames at" in job["ssim_note"]
    status = run_cli(root, "status").stdout
    assert f"stream 0: SSIM {job['ssim_mean']:.4f}, worst {job['ssim_worst']:.4f}" in status
    page = anyio.run(_file_page, root)
    assert f"SSIM {job['ssim_mean']:.4f}, worst frame {job['ssim_worst']:.4f}" in page
    # The measurement compares the same frames: one frame off, the same archive scores low.
    archive = root / "archive" / "tuner.mkv"
    assert _compared(archive, kept, 0.0) > 0.98
    for shift in (0.04, -0.04):
        assert _compared(archive, kept, shift) < 0.9, shift


def test_an_encode_below_the_minimum_keeps_its_raw_file_saying_why(tmp_path: Path) -> None:
    root = _root(tmp_path, crf=51, min_ssim=0.99)
    raw = root / "raw" / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", MOVING, "-c:v", "mjpeg", "-q:v", "2", raw)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert raw.exists(), "kept: its encode is below archive.min_ssim"
    job = _video_job(root, "clip.mkv")
    assert job["ssim_mean"] < 0.99
    reason = (
        f"kept: stream 0: SSIM {job['ssim_mean']:.4f} (worst frame {job['ssim_worst']:.4f})"
        " below archive.min_ssim 0.99"
    )
    assert _raw_action(root, "clip.mkv") == reason
    assert reason in run_cli(root, "status").stdout
    assert (root / "archive" / "clip.mkv").exists(), "the archive itself is done"


def _ffprobe_wrapper(tmp_path: Path, action: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An `ffprobe` first on PATH that does `action` for the quality's keyframe search."""
    folder = tmp_path / "bin"
    folder.mkdir()
    real = shutil.which("ffprobe")
    assert real is not None
    script = folder / "ffprobe"
    script.write_text(WRAPPER.format(action=action, ffprobe=real))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{Path(real).parent}")


def test_a_failed_measurement_keeps_the_raw_file_and_not_the_archive_from_being_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _root(tmp_path)
    raw = root / "raw" / "tuner.ts"
    _transport_stream(raw)
    _ffprobe_wrapper(tmp_path, 'echo "no keyframe index here" >&2; exit 1', monkeypatch)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert raw.exists()
    job = _video_job(root, "tuner.ts")
    assert (job["state"], job["ssim_mean"], job["ssim_worst"]) == ("done", None, None)
    assert "no keyframe index here" in job["ssim_note"]
    action = _raw_action(root, "tuner.ts")
    assert action.startswith("kept: stream 0: quality not measured: ffprobe of stream 0's")
    assert "quality not measured" in run_cli(root, "status").stdout
    assert (root / "archive" / "tuner.mkv").exists()


def test_killed_while_measuring_measures_again_without_encoding_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _root(tmp_path, after_done="keep")
    _transport_stream(root / "raw" / "tuner.ts")
    mark, path = tmp_path / "measuring", os.environ["PATH"]
    _ffprobe_wrapper(tmp_path, f'touch "{mark}"; exec sleep 600', monkeypatch)
    monkeypatch.setenv("VIDEOARCHIVER_TRACE", str(tmp_path / "first.jsonl"))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(mark.exists, timeout=120)
    daemon.kill()
    daemon.wait()
    rows = poll_rows(root, "SELECT state, ssim_mean FROM stream_jobs WHERE output = 'archive'")
    assert rows == [("done", None)], "recorded done before it was measured"
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("VIDEOARCHIVER_TRACE", str(tmp_path / "second.jsonl"))
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert _video_job(root, "tuner.ts")["ssim_mean"] > 0.98
    encodes = [
        command for command in traced(tmp_path / "second.jsonl")
        if "archive/s0.partial" in command["args"][-1]
    ]  # fmt: skip
    assert encodes == [], "the encode recorded done is not made again"


# Footage as it comes (tests/test_wild_footage.py, tests/test_picture_e2e.py), each coded
# finely enough that its encode saves space (no ratio fallback), each a case the comparison
# must line up: turned, HDR 10-bit, interlaced, odd-sized RGB, anamorphic, variable frame
# rate, without timestamps, MPEG-PS, alpha (lossless: 1.0, not measured).
SPREAD = {
    "phone.mp4": ["-f", "lavfi", "-i", MOVING, "-c:v", "libx264", "-qp", "4",
                  "-metadata:s:v:0", "rotate=90"],
    "pq.mkv": ["-f", "lavfi", "-i", MOVING, "-pix_fmt", "yuv420p10le", "-c:v", "libx265",
               "-preset", "ultrafast", "-x265-params",
               "qp=4:log-level=error:colorprim=bt2020:colormatrix=bt2020nc:transfer=smpte2084"],
    "tape.dv": ["-f", "lavfi", "-i", "testsrc2=s=720x576:r=50:d=2,scroll=h=0.005",
                "-vf", "interlace=scan=bff", "-target", "pal-dv"],
    "odd.mkv": ["-f", "lavfi", "-i", "testsrc=s=321x241:d=3:r=7", "-c:v", "ffv1"],
    "anamorphic.mkv": ["-f", "lavfi", "-i", MOVING, "-vf", "setsar=4/3", "-c:v", "mjpeg",
                       "-q:v", "2"],
    "vfr.mkv": ["-f", "lavfi", "-i", MOVING, "-vf", "select='not(between(mod(n,10),3,5))'",
                "-fps_mode", "vfr", "-c:v", "mjpeg", "-q:v", "2"],
    "camera.h264": ["-f", "lavfi", "-i", MOVING, "-c:v", "libx264", "-qp", "4", "-f", "h264"],
    "dvd.mpg": ["-f", "lavfi", "-i", "testsrc2=s=720x480:d=3:r=30000/1001,scroll=h=0.01",
                "-c:v", "mpeg2video", "-q:v", "1", "-f", "vob"],
    "alpha.mov": ["-f", "lavfi", "-i", f"{MOVING},format=rgba,geq=r='r(X,Y)':g='g(X,Y)':"
                  "b='b(X,Y)':a='X*255/W'", "-c:v", "qtrle"],
}  # fmt: skip


def test_footage_of_every_kind_is_compared_frame_for_frame(tmp_path: Path) -> None:
    root = _root(tmp_path, after_done="keep")
    for name, args in SPREAD.items():
        ffmpeg(*args, root / "raw" / name)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    figures = {
        name: (job["decision"], job["ssim_mean"], job["ssim_worst"], job["ssim_note"])
        for name in SPREAD
        for job in [_video_job(root, name)]
    }
    for name, (decision, mean, worst, note) in figures.items():
        assert decision == "encode", (name, figures)
        if name == "alpha.mov":
            assert (mean, worst, note) == (1.0, 1.0, LOSSLESS_NOTE)
        else:
            assert mean > 0.97 and worst > 0.9, (name, figures)
