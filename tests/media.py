"""Test helpers: make clips with lavfi and read outputs back with ffprobe, as a user would."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# SVT-AV1's fastest preset for small pictures: the preview is on each file's critical path,
# and its quality is not what these tests look at (preset 8, the default, took 2.3 s of a
# 3 s clip's 3.7). [preview] comes first: a test adds archive settings at the end.
PREVIEW_ARGS = '["-crf", "63", "-preset", "12"]'
# Workers that take files at once, one ffmpeg each, and bury a silent one after its lease.
LEASE_SECONDS = 3
WORKER_CONFIG = f"""\
settle_seconds = 0
jobs = 1
lease_seconds = {LEASE_SECONDS}
[preview]
video_args = {PREVIEW_ARGS}
[archive]
video_args = ["-crf", "18", "-preset", "{{preset}}", "-g", "50"]
"""
FAST_CONFIG = f"""\
settle_seconds = 0
[preview]
video_args = {PREVIEW_ARGS}
[archive]
video_args = ["-crf", "18", "-preset", "ultrafast"]
"""


def ffmpeg(*args: str | Path) -> None:
    """Run ffmpeg to make a test input; fail loudly with its message."""
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)]
    subprocess.run(command, check=True, capture_output=True)


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         "-show_chapters", f"file:{path}"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def packets(path: Path, stream: int) -> list[dict[str, str]]:
    """Every packet of one stream: pts_time, duration_time, size, flags."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", str(stream), "-print_format", "json",
         "-show_entries", "packet=pts_time,duration_time,size,flags", f"file:{path}"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    result: list[dict[str, str]] = json.loads(out)["packets"]
    return result


def span(path: Path, stream: int) -> tuple[float, float]:
    """(first packet start, last packet end) of one stream."""
    times = [
        (float(p["pts_time"]), float(p.get("duration_time", 0) or 0))
        for p in packets(path, stream)
        if p.get("pts_time", "N/A") != "N/A"
    ]
    return min(t for t, _ in times), max(t + d for t, d in times)


def stream_hash(path: Path, stream: int) -> str:
    """SHA-256 of one stream's packet payloads (identical for a stream copied bit for bit)."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", f"file:{path}", "-map", f"0:{stream}", "-c", "copy",
         "-f", "hash", "-hash", "sha256", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return out.decode().strip()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ssim(pictures: Path, reference: Path) -> float:
    """Mean SSIM of a file's pictures against a reference recording, both as ffmpeg shows
    them (turned upright), the reference scaled to the pictures' size."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-i", f"file:{pictures}", "-i", f"file:{reference}",
         "-lavfi", "[1:v][0:v]scale2ref[reference][pictures];[pictures][reference]ssim",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(re.findall(r"All:([0-9.]+)", result.stderr)[-1])


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
    """Return once `condition()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def run_cli(root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`videoarchiver <args> --root <root>` as a user would start it, output captured."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("VIDEOARCHIVER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "videoarchiver", *args, "--root", str(root)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def traced(trace: Path) -> list[dict[str, Any]]:
    """The commands of a run made with $VIDEOARCHIVER_TRACE=`trace`, in the order they
    ended: "args", "at" (start, monotonic seconds), "wall"."""
    return [json.loads(line) for line in trace.read_text().splitlines()]


def status_json(root: Path) -> list[dict[str, Any]]:
    """Everything recorded, read as a user's script reads it: `videoarchiver status --json`,
    one object per file (by path), with its "outputs" by kind and its stream "jobs"."""
    result = run_cli(root, "status", "--json")
    assert result.returncode == 0, result.stderr
    files: list[dict[str, Any]] = json.loads(result.stdout)
    return files


def file_states(root: Path) -> list[str]:
    """Each recorded file's state, in `status --json` order (by path)."""
    return [file["state"] for file in status_json(root)]


def proc_stat(pid: int | str, task: int | str | None = None) -> list[str]:
    """The fields of /proc/<pid>/stat (a thread's: /proc/<pid>/task/<task>/stat) after the
    command name: the state first ("Z" a zombie, "T"/"t" stopped), then the parent's pid."""
    where = Path("/proc") / str(pid)
    if task is not None:
        where = where / "task" / str(task)
    return (where / "stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (setpriv execs ffmpeg in place)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int(proc_stat(entry.name)[1]) == pid:
                    found.append(int(entry.name))
    return found


def kept_by_the_next_claim(claim: Path) -> bool:
    """What the claim whose folder is `claim` (work/files/<file>/claim-<n>) made so far is
    kept by the next claim of the file: its marker names the content alone, no longer with
    the claim's number, once the raw file's whole content is hashed and recorded (parts made
    before that are of content nothing proves)."""
    number = claim.name.removeprefix("claim-")
    try:
        return not (claim / "source").read_text().endswith(f":{number}")
    except OSError:
        return False


def poll_rows(root: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the state database directly, many times a second while a daemon runs (`status
    --json` is a process of its own each time): [] until the daemon has created it."""
    if not (root / "work" / "state.sqlite3").exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(root / "work" / "state.sqlite3")) as db:
            return list(db.execute(sql))
    except sqlite3.OperationalError:
        return []
