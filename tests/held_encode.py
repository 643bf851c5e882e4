"""An `ffmpeg` that holds the archive's first video encode at a moment of its own, so that a
test meets it running there however busy the machine: `held_ffmpeg` puts it first in PATH.

The encode runs as this program's child, its progress passed on block by block. At a block
past `at` seconds it is stopped (SIGSTOP) and `held` is marked, until the daemon stops it
(SIGTERM: it goes on to close its output) or kills it. Without `at`, it is stopped at the
first block once the daemon asked whether the raw stream can stand in (the trial copy the
ratio rule asks for once it warned), until that trial is over: copied, then its copy
deleted by the daemon once it read it. Every other command is the real ffmpeg, run in place.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from media import wait_until

ENCODE = "/archive/s0.partial0.mkv"
TRIAL = "/archive/s0.trial.mkv"
PR_SET_PDEATHSIG = 1


def held_ffmpeg(marks: Path, at: float | None) -> dict[str, str]:
    """Make `marks/ffmpeg` this program (`marks` keeps what it marks); the environment that
    puts it first in PATH."""
    real = shutil.which("ffmpeg")
    assert real is not None, "ffmpeg is not installed"
    marks.mkdir(parents=True, exist_ok=True)
    shim = marks / "ffmpeg"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" "$@"\n')
    shim.chmod(0o755)
    return {"PATH": f"{marks}:{os.environ['PATH']}", "HELD_FFMPEG": real,
            "HELD_AT": "" if at is None else str(at), "HELD_MARKS": str(marks)}  # fmt: skip


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _encode(real: str, args: list[str], marks: Path, trial: Path) -> int:
    at = os.environ["HELD_AT"]
    child = subprocess.Popen([real, *args], stdout=subprocess.PIPE, preexec_fn=_die_with_parent)

    def stop(_signum: int, _frame: object) -> None:
        child.send_signal(signal.SIGTERM)
        child.send_signal(signal.SIGCONT)

    signal.signal(signal.SIGTERM, stop)
    assert child.stdout is not None
    media_us = 0
    for line in child.stdout:
        sys.stdout.buffer.write(line)
        key, _, value = line.decode().strip().partition("=")
        if key == "out_time_us" and value.isdigit():
            media_us = int(value)
        if key != "progress":
            continue
        if at and media_us >= float(at) * 1e6:
            _hold(child, marks)
            break  # until stopped or killed
        if not at and (marks / "trial-started").exists():
            _hold(child, marks)
            wait_until(lambda: (marks / "trial-copied").exists() and not trial.exists(), 600)
            child.send_signal(signal.SIGCONT)
            break  # the rest of its progress goes on below
    for line in child.stdout:
        sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
    return child.wait()


def _hold(child: subprocess.Popen[bytes], marks: Path) -> None:
    sys.stdout.buffer.flush()  # the daemon has read the block it held at
    child.send_signal(signal.SIGSTOP)
    (marks / "held").touch()


def main() -> int:
    real, args = os.environ["HELD_FFMPEG"], sys.argv[1:]
    output = args[-1] if args else ""
    marks = Path(os.environ["HELD_MARKS"])
    if output.endswith(TRIAL):
        (marks / "trial-started").touch()
        code = subprocess.call([real, *args])
        (marks / "trial-copied").touch()
        return code
    if output.endswith(ENCODE):
        trial = Path(output.removeprefix("file:")).with_name(Path(TRIAL).name)
        return _encode(real, args, marks, trial)
    os.execv(real, [real, *args])


if __name__ == "__main__":
    sys.exit(main())
