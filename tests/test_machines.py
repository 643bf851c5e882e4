"""Several machines: one PostgreSQL, one shared folder, each worker with its own path to it.

Machines are played by processes: each worker has its own root path (a symlink to the shared
folder, as each machine mounts the share where it likes), and a worker "of another machine"
runs with a host name of its own (a UTS namespace). The server is a throwaway cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import psycopg
import pytest

from held_encode import held_ffmpeg
from media import (
    LEASE_SECONDS,
    WORKER_CONFIG,
    ffmpeg,
    kept_by_the_next_claim,
    packets,
    wait_until,
)
from pgcluster import Cluster


class Share:
    """The shared folder, the machines' paths to it, and the state's URL."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder, self.url = folder, url
        self.started: list[subprocess.Popen[str]] = []
        self.shared = folder / "shared"
        (self.shared / "raw").mkdir(parents=True)

    def mount(self, name: str) -> Path:
        """A machine's own path to the share."""
        path = self.folder / name
        path.symlink_to(self.shared)
        return path

    def unmount(self, path: Path) -> None:
        """The share goes away under `path`: an empty folder is there instead."""
        empty = self.folder / f"{path.name}-empty"
        empty.mkdir()
        swap = path.with_name(path.name + ".new")
        swap.symlink_to(empty)
        swap.replace(path)

    def worker(self, root: Path, *args: str, host: str | None = None, trace: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen[str]:  # fmt: skip
        env = {**os.environ, **(env or {}), "VIDEOARCHIVER_STATE": self.url}
        env.pop("VIDEOARCHIVER_CONFIG", None)
        if trace is not None:
            env["VIDEOARCHIVER_TRACE"] = str(trace)
        command = [sys.executable, "-m", "videoarchiver", "run", *args, "--root", str(root)]
        if host is not None:
            command = ["unshare", "--uts", sys.executable, "-c",
                       "import os, socket, sys; socket.sethostname(sys.argv[1]);"
                       " os.execv(sys.executable, sys.argv[2:])", host, *command]  # fmt: skip
        worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.started.append(worker)
        return worker

    def status_text(self, root: Path, *args: str) -> str:
        """`status` as a machine with this path to the share runs it (piped)."""
        env = {**os.environ, "VIDEOARCHIVER_STATE": self.url}
        return subprocess.run(
            [sys.executable, "-m", "videoarchiver", "status", *args, "--root", str(root)],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip

    def status(self, root: Path) -> list[dict[str, object]]:
        files: list[dict[str, object]] = json.loads(self.status_text(root, "--json"))
        return files

    def archive_done(self) -> float:
        """Media seconds of the archive's video encode that the state shows done."""
        with psycopg.connect(self.url, autocommit=True) as db:
            row = db.execute("SELECT done FROM progress WHERE label = 's0 archive video'")
            found = row.fetchone()
        return float(found[0]) if found else 0.0

    def log(self) -> str:
        return (self.shared / "log" / "videoarchiver.log").read_text()


@pytest.fixture
def share(tmp_path: Path, pg_url: str) -> Iterator[Share]:
    made = Share(tmp_path, pg_url)
    yield made
    for worker in made.started:  # none outlives its test, whatever happened
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _clips(share: Share, count: int, seconds: int = 3, preset: str = "ultrafast") -> list[str]:
    (share.shared / "videoarchiver.toml").write_text(WORKER_CONFIG.format(preset=preset))
    names = [f"clip{number}.mkv" for number in range(count)]
    for name in names:
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=320x240:r=25:d={seconds}", "-f", "lavfi", "-i",
               f"sine=d={seconds}", "-c:v", "mpeg4", "-q:v", "2", "-c:a", "pcm_s16le",
               share.shared / "raw" / name)  # fmt: skip
    return names


_wait = partial(wait_until, timeout=240)


def _commands(traces: list[Path], roots: list[Path]) -> list[str]:
    """Every ffmpeg command the workers ran, each machine's path to the share made one.
    (Each scanner reads a new file's header with ffprobe before registering it: reads that
    several workers may repeat, no work.)"""
    commands = []
    for trace in traces:
        for line in trace.read_text().splitlines():
            args = json.loads(line)["args"]
            text = json.dumps(args)
            if args[0] == "ffmpeg" and any(str(root) in text for root in roots):
                for root in roots:
                    text = text.replace(str(root), "ROOT")
                commands.append(text)
    return commands


def _all_done(share: Share, root: Path, names: list[str]) -> None:
    files = share.status(root)
    assert sorted(str(f["rel_path"]) for f in files) == names, "one row per file"
    assert {str(f["state"]) for f in files} == {"done"}, [f["error"] for f in files]
    for name in names:
        for folder in ("archive", "preview"):
            assert (share.shared / folder / name).exists()


def test_three_workers_each_with_its_own_path_share_a_batch_once(share: Share) -> None:
    names = _clips(share, 5)
    roots = [share.mount(f"machine{number}") for number in range(3)]
    traces = [share.folder / f"trace{number}.jsonl" for number in range(3)]
    workers = [share.worker(root, "--once", trace=trace)
               for root, trace in zip(roots, traces, strict=True)]  # fmt: skip
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-2000:]
    _all_done(share, roots[0], names)
    commands = _commands(traces, roots)
    assert commands and max(Counter(commands).values()) == 1, "every ffmpeg command once"
    claims = re.findall(r"(clip\d\.mkv): claimed by worker (\S+)", share.log())
    assert sorted(name for name, _worker in claims) == names, "each file claimed once"
    assert len({worker for _name, worker in claims}) >= 2, "the work was shared"
    for root in roots:  # the state holds paths relative to the root: any machine reads them
        assert all(not str(f["outputs"]["archive"]["path"]).startswith("/")  # type: ignore[index]
                   for f in share.status(root))  # fmt: skip


def test_a_killed_machine_is_taken_over_when_its_lease_runs_out(share: Share) -> None:
    seconds = 12
    [name] = _clips(share, 1, seconds=seconds, preset="fast")
    first, second = share.mount("first"), share.mount("second")
    # Its archive's encode is held half way, running (a few GOPs written) whatever the load.
    held = share.folder / "held"
    elsewhere = share.worker(first, host="elsewhere",
                             env=held_ffmpeg(held, seconds / 2))  # fmt: skip
    claim = share.shared / "work" / "files" / "1" / "claim-1"
    _wait(lambda: (held / "held").exists() and kept_by_the_next_claim(claim)
          and share.archive_done() >= seconds / 2)  # as the state shows it  # fmt: skip
    keys = [p for p in packets(claim / "archive" / "s0.partial0.mkv", 0) if "K" in p["flags"]]
    assert len(keys) >= 2, "a whole GOP is there to salvage"
    # `status` on another machine shows the live progress the worker writes to the state.
    line = share.status_text(second).splitlines()[-1].split("\t")
    assert line[1] == "running" and re.fullmatch(r"running \d+%", line[2]), line
    assert re.search(r"worker elsewhere-\d+-\w+$", line[-1]), line
    [row] = share.status(second)  # and `status --json`, each task with its figures
    tasks = row["progress"]
    assert isinstance(tasks, list) and tasks, row
    assert all(task["worker"].startswith("elsewhere-") and task["total"] for task in tasks)
    elsewhere.send_signal(signal.SIGKILL)
    elsewhere.wait()
    killed_at = time.monotonic()
    here = share.worker(second)
    try:
        _wait(lambda: [f["state"] for f in share.status(second)] == ["done"], timeout=300)
    finally:
        here.send_signal(signal.SIGTERM)
        _out, err = here.communicate(timeout=60)
    assert here.returncode == 0, err[-2000:]
    log = share.log()
    assert re.search(r"worker elsewhere-\S+ is gone; its 1 file\(s\) go back to pending", log)
    assert re.search(rf"{name}: archive stream 0: salvaged \d+\.\d+ s", log), "not from zero"
    assert time.monotonic() - killed_at > LEASE_SECONDS, "the lease was waited for"
    assert len(packets(share.shared / "archive" / name, 0)) == seconds * 25, "every frame, once"


def test_a_database_restart_mid_batch_loses_and_repeats_nothing(
    share: Share, pg_cluster: Cluster
) -> None:
    names = _clips(share, 4, seconds=4, preset="fast")
    roots = [share.mount("one"), share.mount("two")]
    traces = [share.folder / "trace1.jsonl", share.folder / "trace2.jsonl"]
    workers = [share.worker(root, "--once", trace=trace)
               for root, trace in zip(roots, traces, strict=True)]  # fmt: skip
    _wait(lambda: (share.shared / "log" / "videoarchiver.log").exists()
          and share.log().count("claimed by worker") >= 2)  # fmt: skip
    pg_cluster.restart()
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-2000:]
    _all_done(share, roots[0], names)
    commands = _commands(traces, roots)
    assert max(Counter(commands).values()) == 1, "no command ran twice"


def test_a_worker_whose_share_goes_away_fails_no_file(share: Share) -> None:
    names = _clips(share, 3, seconds=6, preset="fast")
    steady, flaky = share.mount("steady"), share.mount("flaky")
    workers = [share.worker(flaky), share.worker(steady)]
    try:
        _wait(lambda: (share.shared / "log" / "videoarchiver.log").exists()
              and share.log().count("claimed by worker") >= 2)  # fmt: skip
        share.unmount(flaky)
        _wait(lambda: {f["state"] for f in share.status(steady)} == {"done"}, timeout=300)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        _out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err[-2000:]
    _all_done(share, steady, names)
    assert "is not there (unmounted?)" in share.log()
