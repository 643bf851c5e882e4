"""The daemon as a user runs it: a subprocess on a temporary root, files dropped in, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from media import PREVIEW_ARGS, children, ffmpeg, poll_rows, probe, run_cli, status_json, wait_until

DAEMON_CONFIG = f"""\
settle_seconds = 1
scan_interval = 30
[preview]
video_args = {PREVIEW_ARGS}
[archive]
video_args = ["-crf", "18", "-preset", "ultrafast"]
"""


wait_for = partial(wait_until, timeout=60)


@pytest.fixture
def daemon_root(root: Path) -> Path:
    """The test root, with files taken after one second and rescans every 30."""
    (root / "videoarchiver.toml").write_text(DAEMON_CONFIG)
    return root


@pytest.fixture
def start_daemon(daemon_root: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "videoarchiver", "run", "--root", str(daemon_root)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def drop(raw: Path, name: str, seconds: float = 2) -> None:
    """Write a clip under a hidden name, then rename it in, as a careful copy tool does."""
    hidden = raw / f".{name}"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=320x240:r=25:d={seconds}",
           "-f", "lavfi", "-i", f"sine=d={seconds}",
           "-c:v", "mpeg4", "-q:v", "2", "-c:a", "pcm_s16le", hidden)  # fmt: skip
    hidden.rename(raw / name)


def test_daemon_picks_up_new_files_and_stops_on_sigterm(
    daemon_root: Path, start_daemon: Callable[[], subprocess.Popen[str]]
) -> None:
    daemon = start_daemon()
    raw = daemon_root / "raw"
    drop(raw, "first.mkv")
    wait_for(lambda: (daemon_root / "screenshot" / "first.jpg").exists()
             and (daemon_root / "archive" / "first.mkv").exists()
             and (daemon_root / "preview" / "first.mkv").exists())  # fmt: skip
    (raw / "later").mkdir()
    drop(raw / "later", "second.mkv")
    wait_for(lambda: poll_rows(daemon_root, "SELECT state FROM files") == [("done",), ("done",)])
    daemon.send_signal(signal.SIGTERM)
    _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "━" not in err, "no progress bars without a terminal"
    assert "later/second.mkv: done" in err
    assert [
        s["codec_name"] for s in probe(daemon_root / "archive" / "later" / "second.mkv")["streams"]
    ] == ["h264", "opus"]
    log = (daemon_root / "log" / "videoarchiver.log").read_text()
    assert "first.mkv: found" in log and "SIGTERM: stopping" in log


def test_sigterm_during_an_encode_stops_cleanly_and_work_resumes(
    daemon_root: Path, start_daemon: Callable[[], subprocess.Popen[str]]
) -> None:
    (daemon_root / "videoarchiver.toml").write_text(
        DAEMON_CONFIG.replace('"ultrafast"', '"veryslow"')
    )
    drop(daemon_root / "raw", "long.mkv", seconds=30)
    daemon = start_daemon()
    wait_for(lambda: ("running",) in poll_rows(daemon_root, "SELECT state FROM stream_jobs"))
    wait_for(lambda: len(children(daemon.pid)) > 0)
    ffmpegs = children(daemon.pid)
    daemon.send_signal(signal.SIGTERM)
    daemon.communicate(timeout=60)  # the encode would take minutes: it is stopped, not waited for
    assert daemon.returncode == 0
    for pid in ffmpegs:
        assert not Path(f"/proc/{pid}").exists(), "an ffmpeg outlived the daemon"
    files = status_json(daemon_root)
    states = {job["state"] for file in files for jobs in file["jobs"].values() for job in jobs}
    assert "running" not in states and "pending" in states
    assert [file["state"] for file in files] == ["pending"]


def test_missing_ffmpeg_or_encoder_is_a_clear_message_at_start(daemon_root: Path) -> None:
    env_path = os.environ["PATH"]
    no_ffmpeg = daemon_root / "bin"
    no_ffmpeg.mkdir()
    (no_ffmpeg / "setpriv").symlink_to("/usr/bin/setpriv")
    result = subprocess.run(
        [sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(daemon_root)],
        capture_output=True, text=True, env={**os.environ, "PATH": str(no_ffmpeg)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "ffprobe is not installed" in result.stderr or "ffmpeg is not installed" in result.stderr
    (daemon_root / "videoarchiver.toml").write_text(
        DAEMON_CONFIG.replace("[preview]\n", '[preview]\nvideo_codec = "libnosuchcodec"\n')
    )
    result = run_cli(daemon_root, "run", "--once")
    assert result.returncode == 2
    assert "lacks the encoder(s) libnosuchcodec" in result.stderr
    assert env_path == os.environ["PATH"]
