"""A worker that lost its claim can neither record nor publish (issue 24): one frozen between
recording its archive's publishing intent and linking the archive into place, whose lease
then runs out and whose file another worker takes over, puts nothing in place when it wakes.

Each worker runs under strace, which holds its first link into `archive/a.mkv` at the system
call's entry (`inject=linkat:delay_enter`, far longer than the test) until the test ends
strace: the link then goes on, at the moment the test chooses. The stale worker is frozen
with SIGSTOP (its ffmpeg processes run on) at a moment it holds no transaction of the state,
as any worker may be; its lease then runs out for real, and the other worker buries it as
silent. Every wait is for an event (a state recorded, a process stopped or gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from media import WORKER_CONFIG, children, ffmpeg, file_sha256, probe, proc_stat, wait_until
from test_cli import tmpfs

HELD_FOR_US = 600_000_000  # how long strace holds a link: longer than any wait below
_wait = partial(wait_until, timeout=240, every=0.05)


def _alive(pid: int) -> bool:
    """The process runs (neither gone nor a zombie nobody reaped)."""
    try:
        return proc_stat(pid)[0] != "Z"
    except OSError:
        return False


def _stopped(pid: int) -> bool:
    """Every thread of the process is stopped (by a signal, or by its tracer)."""
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            if proc_stat(pid, task.name)[0] not in "tT":
                return False
    return True


class HeldAtLink:
    """`videoarchiver run --once` on a root, its first link into `destination` held at the
    system call's entry by strace until `let_go` ends strace (its tracee goes on)."""

    def __init__(self, root: Path, destination: Path, env: dict[str, str]) -> None:
        self.tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=linkat",
             "-P", str(destination), "-e", f"inject=linkat:delay_enter={HELD_FOR_US}:when=1",
             sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(lambda: self._daemon() is not None)
        self.pid = self._daemon() or 0

    def _daemon(self) -> int | None:
        """The traced daemon, once strace started it (strace also forks a short-lived helper
        of its own, and the tracee is strace until it execs Python)."""
        for pid in children(self.tracer.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if argv[0] == os.fsencode(sys.executable) and b"videoarchiver" in argv:
                    return pid
        return None

    def let_go(self) -> None:
        self.tracer.kill()
        self.tracer.wait()

    def stop(self) -> None:
        """Whatever happened to the test: no process of it outlives it."""
        self.let_go()
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)


class Root:
    """A root with one clip, `raw/a.mkv`, and its state (SQLite in `work/`, or the
    PostgreSQL database at `url`): read directly while workers run, through the CLI after."""

    def __init__(self, path: Path, url: str | None) -> None:
        self.path, self.url = path, url
        self.env = {**os.environ, "COLUMNS": "200"}
        self.env.pop("VIDEOARCHIVER_CONFIG", None)
        if url is not None:
            self.env["VIDEOARCHIVER_STATE"] = url
        (path / "raw").mkdir(parents=True)
        (path / "videoarchiver.toml").write_text(WORKER_CONFIG.format(preset="ultrafast"))
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-f", "lavfi",
               "-i", "sine=d=3", "-c:v", "mpeg4", "-c:a", "pcm_s16le",
               path / "raw" / "a.mkv")  # fmt: skip

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "videoarchiver", *args, "--root", str(self.path)],
            capture_output=True, text=True, timeout=120, env=self.env,
        )  # fmt: skip

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.url is not None:
            with psycopg.connect(self.url, autocommit=True) as db:
                try:
                    return db.execute(sql).fetchall()
                except psycopg.errors.UndefinedTable:  # not made yet
                    return []
        try:
            with contextlib.closing(sqlite3.connect(self.path / "work" / "state.sqlite3")) as db:
                return list(db.execute(sql))
        except sqlite3.OperationalError:  # not made yet
            return []

    def archive(self) -> tuple[str, str] | None:
        """The archive output's state and SHA-256, once recorded."""
        rows = self._rows("SELECT state, sha256 FROM outputs WHERE output = 'archive'")
        return rows[0] if rows else None

    def lease_ran_out(self) -> bool:
        [(lease_until,)] = self._rows("SELECT lease_until FROM files")
        return lease_until is None or lease_until < time.time()

    def quiet(self) -> bool:
        """No worker holds a transaction of the state now."""
        if self.url is not None:
            return not self._rows(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
        with contextlib.closing(
            sqlite3.connect(self.path / "work" / "state.sqlite3", timeout=0)
        ) as db:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # locked: a writer is inside a transaction
                return False
            db.execute("ROLLBACK")
        return True


def _freeze_between_transactions(pid: int, root: Root) -> None:
    """SIGSTOP the worker at a moment it holds no transaction (frozen inside one, it would
    hold up every other worker until it wakes, which proves nothing)."""
    while True:
        _wait(root.quiet)
        os.kill(pid, signal.SIGSTOP)
        _wait(lambda: _stopped(pid))
        if root.quiet():
            return
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
def processes() -> Iterator[list[HeldAtLink]]:
    started: list[HeldAtLink] = []
    yield started
    for worker in started:
        with contextlib.suppress(OSError):
            os.kill(worker.pid, signal.SIGCONT)
        worker.stop()


@pytest.mark.parametrize(
    ("backend", "archive_elsewhere"),
    [("sqlite", False), ("sqlite", True), ("postgresql", False)],
    ids=["sqlite", "sqlite-archive-on-another-fs", "postgresql"],
)
def test_a_worker_frozen_before_its_link_publishes_nothing_once_taken_over(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    processes: list[HeldAtLink],
    backend: str,
    archive_elsewhere: bool,
) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make test installs it)")
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    root = Root(tmp_path / "root", url)
    published = root.path / "archive" / "a.mkv"
    with ExitStack() as stack:
        if archive_elsewhere:
            stack.enter_context(tmpfs(root.path / "archive", "64m"))
        # A records its archive's intent, is held at the link and frozen; its lease runs out.
        stale = HeldAtLink(root.path, published, root.env)
        processes.append(stale)
        _wait(lambda: (root.archive() or ("",))[0] == "publishing")
        _freeze_between_transactions(stale.pid, root)
        [_state, stale_sha] = root.archive() or ("", "")
        _wait(root.lease_ran_out)
        # B buries A as silent, takes the file over, records its own intent, and is held.
        current = HeldAtLink(root.path, published, root.env)
        processes.append(current)
        _wait(lambda: root.archive() not in (None, ("publishing", stale_sha))
              and (root.archive() or ("",))[0] == "publishing")  # fmt: skip
        # A wakes and goes on, and ends; then B.
        os.kill(stale.pid, signal.SIGCONT)
        stale.let_go()
        _wait(lambda: not _alive(stale.pid))
        current.let_go()
        _wait(lambda: not _alive(current.pid))
        [file] = json.loads(root.cli("status", "--json").stdout)
        assert file["state"] == "done", file["error_detail"]
        archive = file["outputs"]["archive"]
        assert archive["state"] == "done"
        assert file_sha256(published) == archive["sha256"], "the archive is the one recorded"
        assert archive["sha256"] != stale_sha, "not the stale worker's"
        read = probe(published)
        assert [stream["codec_type"] for stream in read["streams"]] == ["video", "audio"]
        assert float(read["format"]["duration"]) == pytest.approx(3, abs=0.1)
        assert [p.name for p in published.parent.iterdir()] == ["a.mkv"], "no copy left"
        verify = root.cli("verify")
        assert verify.returncode == 0, verify.stdout
        assert "0 problems" in verify.stdout
    assert not any((root.path / "work" / "files").iterdir()), "no work files left"
