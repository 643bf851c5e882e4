"""One pipeline ffmpeg under the limiter, with a fake runner that replays a `-progress`
transcript and an exit status: the ratio rule, progress and failures in milliseconds."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from videoarchiver.config import Config
from videoarchiver.errors import ProcessError
from videoarchiver.layout import Layout
from videoarchiver.planning.ratio import RatioWatch
from videoarchiver.processes import ProcessResult, StdoutHandler, Watchdog
from videoarchiver.progress import Outcome, ProgressHub, QueueProgress, Task, TaskInfo
from videoarchiver.runtime import Runtime
from videoarchiver.state import Worker, open_store
from videoarchiver.stream_jobs import run_limited
from videoarchiver.testing import transcript

pytestmark = pytest.mark.anyio


class Replay:
    """A ProcessRunner that runs nothing: it hands `transcript` to the caller in odd-sized
    chunks, stops when the caller asks (as ffmpeg does on SIGTERM) and ends with `returncode`."""

    def __init__(self, transcript: bytes, returncode: int = 0, stderr: Sequence[str] = ()) -> None:
        self.transcript, self.returncode, self.stderr = transcript, returncode, tuple(stderr)
        self.fed = 0  # bytes handed over before it ended

    async def __call__(
        self,
        args: Sequence[str],
        on_stdout: StdoutHandler,
        env: Mapping[str, str] | None,
        watchdog: Watchdog | None,
    ) -> ProcessResult:
        for start in range(0, len(self.transcript), 37):
            chunk = self.transcript[start : start + 37]
            self.fed = start + len(chunk)
            if on_stdout(chunk):
                return ProcessResult(255, self.stderr, stopped=True)
            await anyio.lowlevel.checkpoint()
        return ProcessResult(self.returncode, self.stderr, stopped=False)


class Seen:
    """A hub subscriber that keeps what a display would show."""

    def __init__(self) -> None:
        self.done: list[float] = []
        self.over: list[Task] = []

    def started(self, task: Task) -> None:
        pass

    def changed(self, task: Task) -> None:
        self.done.append(task.done or 0.0)

    def ended(self, task: Task) -> None:
        self.over.append(task)

    def queue(self, queue: QueueProgress) -> None:
        pass


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    (tmp_path / "work").mkdir()
    worker = Worker("w", "host", 1, time.time(), time.time())
    async with open_store(tmp_path) as store:
        yield Runtime.create(Layout(tmp_path), Config(), store, worker, ProgressHub(), "")


def _with(runtime: Runtime, replay: Replay) -> tuple[Runtime, Seen]:
    seen = Seen()
    runtime.progress.subscribe(seen)
    return Runtime(**{**runtime.__dict__, "run_process": replay}), seen


ARGS = ["ffmpeg", "-i", "file:in.mkv", "-progress", "pipe:1", "file:/tmp/x/out.mkv"]
TASK = TaskInfo(1, "clip.mkv", "archive", "s0 archive video", total=30.0)


async def test_the_ratio_rule_stops_a_replayed_encode_once_its_grace_is_over(
    runtime: Runtime,
) -> None:
    # 2,000 bytes a second against a raw stream of 1,000: over 0.9 × raw from the start,
    # stopped at the first block past the 10 s grace.
    replay = Replay(transcript(30, 2_000))
    rt, seen = _with(runtime, replay)
    watch = RatioWatch(raw_bytes=30_000, raw_seconds=30, ratio=0.9, grace=10)
    stopped, _wall = await run_limited(rt, ARGS, "archive encode", TASK, watch.check)
    assert stopped
    assert watch.reason is not None and "20000 bytes" in watch.reason
    assert replay.fed < len(replay.transcript) / 2, "stopped at 10 s of 30, not at the end"
    assert max(seen.done) == 10.0
    assert [task.outcome for task in seen.over] == [Outcome.KEPT_RAW]


async def test_a_replayed_encode_that_saves_enough_runs_to_its_end(runtime: Runtime) -> None:
    rt, seen = _with(runtime, Replay(transcript(30, 500)))
    watch = RatioWatch(raw_bytes=30_000, raw_seconds=30, ratio=0.9, grace=10)
    stopped, _wall = await run_limited(rt, ARGS, "archive encode", TASK, watch.check)
    assert not stopped and watch.reason is None
    assert seen.done[-1] == 30.0 and [t.outcome for t in seen.over] == [Outcome.DONE]
    [task] = seen.over
    assert task.record("w").done == 30.0, "what the store gets: the media done"


async def test_a_replayed_failure_says_ffmpeg_s_decisive_line(runtime: Runtime) -> None:
    stderr = ["[libx264 @ 0x55d0] Invalid preset: fastest",
              "Error initializing output stream 0:0 --", "Conversion failed!"]  # fmt: skip
    rt, seen = _with(runtime, Replay(transcript(3, 500), returncode=1, stderr=stderr))
    with pytest.raises(ProcessError, match=r"archive encode failed: Invalid preset: fastest"):
        await run_limited(rt, ARGS, "archive encode", TASK, None)
    assert [task.outcome for task in seen.over] == [Outcome.FAILED]


async def test_a_paused_gate_holds_a_replayed_encode_until_resumed(runtime: Runtime) -> None:
    rt, seen = _with(runtime, Replay(transcript(2, 500)))
    rt.gate.hold("paused")
    async with anyio.create_task_group() as group:
        group.start_soon(run_limited, rt, ARGS, "archive encode", TASK, None)
        await anyio.sleep(0.05)
        assert seen.done == [], "nothing starts while paused"
        rt.gate.release("paused")
    assert seen.done[-1] == 2.0
