"""A write lock held on the SQLite state for longer than SQLite's busy timeout — a `sqlite3`
shell left in `BEGIN IMMEDIATE`, a worker stopped mid-write — stops no worker: each waits,
says who holds it, keeps what runs running, and goes on by itself once it is let go."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from media import FAST_CONFIG, ffmpeg, poll_rows, run_cli, wait_until

_wait = partial(wait_until, timeout=240)


def _worker(root: Path, name: str) -> subprocess.Popen[str]:
    """`videoarchiver run` on `root`, its stderr in `<root>/../<name>.err`."""
    with (root.parent / f"{name}.err").open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "videoarchiver", "run", "--root", str(root)],
            stdout=subprocess.DEVNULL, stderr=stderr, text=True,
        )  # fmt: skip


def _said(root: Path, name: str) -> str:
    return (root.parent / f"{name}.err").read_text()


@contextlib.contextmanager
def _stopped_at_the_end(*workers: subprocess.Popen[str]) -> Iterator[None]:
    """Each worker is still running when the block ends, and stops cleanly on SIGTERM."""
    try:
        yield
        assert [worker.poll() for worker in workers] == [None] * len(workers), "none exited"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGCONT)
                worker.send_signal(signal.SIGTERM)
    assert [worker.wait(timeout=120) for worker in workers] == [0] * len(workers)


def _states(root: Path) -> list[str]:
    return [state for (state,) in poll_rows(root, "SELECT state FROM files ORDER BY id")]


def test_a_sqlite3_shell_holding_the_lock_is_waited_out_and_named(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "videoarchiver.toml").write_text("lock_warning_seconds = 0.5\n" + FAST_CONFIG)
    assert run_cli(root, "run", "--once").returncode == 0  # the state, empty
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-c:v", "mpeg4",
           root / "raw" / "a.mp4")  # fmt: skip
    database = root / "work" / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as shell:
        shell.execute("BEGIN IMMEDIATE")  # held from before the worker starts
        worker = _worker(root, "worker")
        with _stopped_at_the_end(worker):
            held = f"is locked, held by pid {os.getpid()} ("
            _wait(lambda: worker.poll() is not None or held in _said(root, "worker"))
            assert worker.poll() is None, _said(root, "worker")
            # It waited past its attempts (0.5 s each, SQLite's busy timeout) and says so.
            assert re.search(rf"{re.escape(held)}.*\) for \d+ s: waiting", _said(root, "worker"))
            shell.execute("ROLLBACK")
            _wait(lambda: worker.poll() is not None or _states(root) == ["done"])
            said = _said(root, "worker")
            assert re.search(r"the state database is free again after \d+ s: going on", said)
            assert said.count("is locked, held by") < 10, "said at growing intervals"
