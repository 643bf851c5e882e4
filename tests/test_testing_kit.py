"""What `videoarchiver.testing` promises its users: the fake runner answers by its rules and
fails loudly on anything else; the in-memory store's leases follow the clock it is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from videoarchiver.processes import read_output
from videoarchiver.state import FileState, Progress, Worker
from videoarchiver.testing import FakeRunner, MemoryStore, Rule, Unanswered, transcript

pytestmark = pytest.mark.anyio
LEASE = 30.0


async def test_the_first_rule_that_matches_answers_and_every_call_is_recorded(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.mkv"
    runner = FakeRunner([Rule("ffmpeg", "*.mkv", stdout=b"default", creates=b"made")])
    runner.add(Rule("ffmpeg", "*.mkv", has=("-c:v", "libx264"), stdout=b"x264"))
    args = ["ffmpeg", "-i", "file:/in.mp4", "-c:v", "libx264", f"file:{out}"]
    assert await read_output(runner, args, "encode") == b"x264", "a rule added is tried first"
    assert not out.exists(), "that rule writes nothing"
    assert await read_output(runner, [*args[:3], f"file:{out}"], "copy") == b"default"
    assert out.read_bytes() == b"made"
    assert [call.target for call in runner.calls] == [str(out), str(out)]
    assert runner.of("ffmpeg", "*/out.mkv") == runner.calls


async def test_a_command_no_rule_answers_fails_naming_it() -> None:
    runner = FakeRunner([Rule("ffprobe", "*.mkv")])
    with pytest.raises(Unanswered, match=r"no rule answers ffmpeg -i file:/a\.mp4 file:/b\.mkv"):
        await read_output(runner, ["ffmpeg", "-i", "file:/a.mp4", "file:/b.mkv"], "encode")


async def test_a_caller_that_stops_the_process_gets_no_more_output() -> None:
    runner = FakeRunner([Rule("ffmpeg", stdout=transcript(30, 1_000))])
    seen = bytearray()

    def enough(chunk: bytes) -> bool:
        seen.extend(chunk)
        return len(seen) > 100

    result = await runner(["ffmpeg", "file:/out.mkv"], enough, {"SVT_LOG": "1"}, None)
    assert result.stopped and result.returncode != 0
    assert 100 < len(seen) < 200, "stopped at the chunk it asked in"
    assert runner.calls[0].env == {"SVT_LOG": "1"}


async def test_leases_run_out_by_the_clock_the_memory_store_is_given() -> None:
    now = [1_000.0]
    store = MemoryStore(clock=lambda: now[0])
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    worker = Worker("w", "host", 1, now[0], now[0])
    await store.heartbeat(worker, LEASE)
    assert await store.claim(worker.id, LEASE) is not None
    task = Progress(row.id, "s0 archive video", "archive", "w", 2.0, 10.0, 1.0, 100.0, 0.0)
    await store.write_progress("w", [task])
    now[0] += LEASE - 1
    assert await store.heartbeat(worker, LEASE) == {row.id}, "renewed in time"
    now[0] += LEASE - 1
    assert await store.release_expired(keep="other") == [], "not run out yet"
    [read] = await store.progress()
    assert read.remaining == 100.0 - 2 * (LEASE - 1), "less its age, by that clock"
    now[0] += 2
    assert await store.silent_workers(LEASE) == ["w"]
    assert [task.lost_since for task in await store.progress()] == [1_000.0 + LEASE - 1]
    assert await store.release_expired(keep="other") == [row.id]
    assert (await store.get_file(row.id)).state is FileState.PENDING
