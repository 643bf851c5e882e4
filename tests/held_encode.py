"""An `ffmpeg` that holds the archive's first video encode at a point of its progress, so
that a test meets it running there however busy the machine: `held_ffmpeg` puts it first
in PATH.

The encode runs as this program's child, its progress passed on block by block. After the
first block at `$HELD_AT` seconds or more it is stopped (SIGSTOP) and `held` is marked;
until the trial copy is over (`until_trial`: the ratio rule warned, and asked whether the
raw stream can stand in; the trial is copied, then its copy deleted by the daemon once it
read it), or else until the daemon stops it (SIGTERM: it goes on to close its output) or
kills it. Every other command is the real ffmpeg, run in place.
"""

from __future__ import annotations

import contextlib
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


def held_ffmpeg(marks: Path, at: float, until_trial: bool) -> dict[str, str]:
    """Make `marks/ffmpeg` this program (`marks` keeps what it marks); the environment that
    puts it first in PATH."""
    real = shutil.which("ffmpeg")
    assert real is not None, "ffmpeg is not installed"
    marks.mkdir(parents=True, exist_ok=True)
    shim = marks / "ffmpeg"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" "$@"\n')
    shim.chmod(0o755)
    return {
        "PATH": f"{marks}:{os.environ['PATH']}", "HELD_FFMPEG": real, "HELD_AT": str(at),
        "HELD_MARKS": str(marks), "HELD_UNTIL": "trial" if until_trial else "stopped",
    }  # fmt: skip


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _encode(real: str, args: list[str], marks: Path, trial: Path) -> int:
    at_us = float(os.environ["HELD_AT"]) * 1e6
    child = subprocess.Popen([real, *args], stdout=subprocess.PIPE, preexec_fn=_die_with_parent)

    def stop(_signum: int, _frame: object) -> None:
        child.send_signal(signal.SIGTERM)
        child.send_signal(signal.SIGCONT)

    signal.signal(signal.SIGTERM, stop)
    assert child.stdout is not None
    reached, held = False, False
    for line in child.stdout:
        sys.stdout.buffer.write(line)
        key, _, value = line.decode().strip().partition("=")
        with contextlib.suppress(ValueError):
            reached = reached or (key == "out_time_us" and int(value) >= at_us)
        if key == "progress" and reached and not held:
            sys.stdout.buffer.flush()
            child.send_signal(signal.SIGSTOP)
            (marks / "held").touch()
            held = True
            if os.environ["HELD_UNTIL"] != "trial":
                break  # until stopped or killed
            wait_until(lambda: (marks / "trial-copied").exists() and not trial.exists(), 600)
            child.send_signal(signal.SIGCONT)
    sys.stdout.buffer.flush()
    return child.wait()


def main() -> int:
    real, args = os.environ["HELD_FFMPEG"], sys.argv[1:]
    output = args[-1] if args else ""
    marks = Path(os.environ["HELD_MARKS"])
    if output.endswith(TRIAL):
        code = subprocess.call([real, *args])
        (marks / "trial-copied").touch()
        return code
    if output.endswith(ENCODE):
        trial = Path(output.removeprefix("file:")).with_name(Path(TRIAL).name)
        return _encode(real, args, marks, trial)
    os.execv(real, [real, *args])


if __name__ == "__main__":
    sys.exit(main())
