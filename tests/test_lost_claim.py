"""A worker that lost its claim can neither record nor publish (issue 24): one caught between
recording its archive's publishing intent and linking the archive into place, whose claim
then runs out and goes to another worker, puts nothing in place when it goes on.

Each worker runs under strace, which holds its first link into `archive/a.mkv` at the system
call's entry (`inject=linkat:delay_enter`, far longer than the test) until the test ends
strace: then the link goes on, at a moment the test chooses. Every wait is for an event (a
state recorded, a process gone), never for a time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from media import WORKER_CONFIG, ffmpeg, file_sha256, probe, wait_until
from test_cli import tmpfs
from videoarchiver.state import open_store

HELD_FOR_US = 600_000_000  # how long strace holds a link: longer than any wait below
_wait = partial(wait_until, timeout=240, every=0.05)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """The process runs (neither gone nor a zombie nobody reaped)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


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
        _wait(lambda: bool(_children(self.tracer.pid)))
        [self.pid] = _children(self.tracer.pid)

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
    PostgreSQL database at `url`), read and written as a user would: the CLI, or the store."""

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

    def file(self) -> dict[str, Any]:
        """The clip's row in `status --json` (one without outputs until it is registered)."""
        result = self.cli("status", "--json")
        assert result.returncode in (0, 2), result.stderr  # 2: no state yet
        rows: list[dict[str, Any]] = json.loads(result.stdout) if result.returncode == 0 else []
        return rows[0] if rows else {"state": None, "outputs": {}}

    def archive(self) -> dict[str, Any]:
        archive: dict[str, Any] = self.file()["outputs"].get("archive", {})
        return archive

    def release(self) -> None:
        """The clip's claim goes back to pending, as when its lease has run out and a live
        worker releases it (`release_expired`): its worker no longer holds it."""

        async def release() -> None:
            async with open_store(self.path, self.url) as store:
                [row] = await store.files()
                assert row.worker is not None
                assert await store.release(row.worker, [row.id]) == [row.id]

        anyio.run(release)


@pytest.fixture
def processes() -> Iterator[list[HeldAtLink]]:
    started: list[HeldAtLink] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.mark.parametrize(
    ("backend", "archive_elsewhere"),
    [("sqlite", False), ("sqlite", True), ("postgresql", False)],
    ids=["sqlite", "sqlite-archive-on-another-fs", "postgresql"],
)
def test_a_worker_that_lost_its_claim_before_its_link_publishes_nothing(
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
        # A records its archive's intent and is held at the link.
        stale = HeldAtLink(root.path, published, root.env)
        processes.append(stale)
        _wait(lambda: root.archive().get("state") == "publishing")
        stale_sha = root.archive()["sha256"]
        # Its claim runs out; B takes the file over, records its own intent, and is held.
        root.release()
        current = HeldAtLink(root.path, published, root.env)
        processes.append(current)
        _wait(lambda: root.archive().get("state") == "publishing"
              and root.archive()["sha256"] != stale_sha)  # fmt: skip
        # A goes on, and ends; then B.
        stale.let_go()
        _wait(lambda: not _alive(stale.pid))
        current.let_go()
        _wait(lambda: not _alive(current.pid))
        file = root.file()
        assert file["state"] == "done", file["error_detail"]
        archive = file["outputs"]["archive"]
        assert archive["state"] == "done"
        assert file_sha256(published) == archive["sha256"], "the archive is the one recorded"
        assert archive["sha256"] != stale_sha, "the stale worker's archive is not in place"
        read = probe(published)
        assert [stream["codec_type"] for stream in read["streams"]] == ["video", "audio"]
        assert float(read["format"]["duration"]) == pytest.approx(3, abs=0.1)
        assert [p.name for p in published.parent.iterdir()] == ["a.mkv"], "no copy left"
        verify = root.cli("verify")
        assert verify.returncode == 0, verify.stdout
        assert "0 problems" in verify.stdout
    assert not any((root.path / "work" / "files").iterdir()), "no work files left"
