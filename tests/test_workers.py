"""Several `run` processes on one root are workers sharing the files through claims."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from media import WORKER_CONFIG, ffmpeg, file_states, run_cli


def _worker(root: Path, *args: str) -> subprocess.Popen[bytes]:
    """`videoarchiver run` on `root`, started beside others."""
    command = [sys.executable, "-m", "videoarchiver", "run", *args, "--root", str(root)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _log(root: Path) -> str:
    return (root / "log" / "videoarchiver.log").read_text()


def test_two_workers_on_one_root_share_a_batch_and_do_each_file_once(root: Path) -> None:
    (root / "videoarchiver.toml").write_text(WORKER_CONFIG.format(preset="ultrafast"))
    names = [f"clip{number}.mkv" for number in range(4)]
    for name in names:
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-f", "lavfi", "-i",
               "sine=d=3", "-c:v", "mpeg4", "-c:a", "pcm_s16le", root / "raw" / name)  # fmt: skip
    workers = [_worker(root, "--once"), _worker(root, "--once")]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    assert file_states(root) == ["done"] * 4
    log = _log(root)
    claims = re.findall(r"(clip\d\.mkv): claimed by worker (\S+)", log)
    assert sorted(name for name, _worker_id in claims) == names, "each file claimed once"
    assert len({worker_id for _name, worker_id in claims}) == 2, "both workers had work"
    # Every encode ran once: no stream job was started twice, by either worker.
    started = Counter(re.findall(r"(clip\d\.mkv): (\w+ stream \d+ \w+) started", log))
    assert started and set(started.values()) == {1}, started
    for name in names:
        assert (root / "archive" / name).exists() and (root / "preview" / name).exists()


def test_files_are_claimed_costliest_first(root: Path) -> None:
    (root / "videoarchiver.toml").write_text(WORKER_CONFIG.format(preset="ultrafast"))
    for name, source in (
        ("a_short.mkv", "testsrc2=s=160x120:r=10:d=2"),
        ("b_long.mkv", "testsrc2=s=160x120:r=10:d=6"),
        ("c_large.mkv", "testsrc2=s=320x240:r=10:d=3"),
        ("d_audio.mka", "sine=d=1"),
    ):
        ffmpeg("-f", "lavfi", "-i", source, root / "raw" / name)
    assert run_cli(root, "run", "--once").returncode == 0
    claims = re.findall(r"(\w+\.mk[va]): claimed by worker", _log(root))
    # The file without video first (the cheapest here: 0.03 CPU seconds, `planning.cost`),
    # then 320×240×3 s (0.11) > 160×120×6 s (0.05) > 160×120×2 s (0.02).
    assert claims == ["d_audio.mka", "c_large.mkv", "b_long.mkv", "a_short.mkv"]
