"""The scheduler's claims, leases and pauses with a fake file processor: no ffmpeg, in
milliseconds (httpcore's mock backend is the model: the logic runs, the I/O is faked)."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from videoarchiver import progress
from videoarchiver.config import Config
from videoarchiver.discovery import RawFile, scan
from videoarchiver.errors import StateError
from videoarchiver.layout import Layout
from videoarchiver.output_kinds import names
from videoarchiver.planning.claim_order import Estimate, Rank
from videoarchiver.processing import Claims, Processor
from videoarchiver.progress import ProgressHub, TaskInfo
from videoarchiver.registration import HeaderReader
from videoarchiver.runtime import Load, Runtime
from videoarchiver.scheduler import Scheduler
from videoarchiver.space import SpaceBackoff
from videoarchiver.state import (
    SET_ASIDE_REASON,
    EventKind,
    FileRow,
    FileState,
    StopAsked,
    Store,
    Worker,
    open_store,
)
from videoarchiver.workers import (
    Steadiness,
    bury_dead,
    bury_if_dead_here,
    holding_life,
    keep_alive,
)

pytestmark = pytest.mark.anyio
LEASE = 30.0


class FakeProcessor(Processor):
    """Processes a file by waiting `seconds` and recording it done."""

    def __init__(
        self,
        runtime: Runtime,
        claims: Claims,
        space: SpaceBackoff,
        seconds: float = 0.01,
        after: float = 0.0,
    ) -> None:
        super().__init__(runtime, claims, space)
        self.seconds = seconds
        self.after = after  # what follows the file's end (a raw file moved to done/)
        self.started: list[str] = []
        self.finished: list[str] = []
        self.began = anyio.Event()
        self.settled = anyio.Event()

    async def process(self, row: FileRow, raw: RawFile, load: Load) -> None:
        self.started.append(row.rel_path)
        self.began.set()
        await anyio.sleep(self.seconds)
        await self.settle(row, None)
        self.settled.set()
        await anyio.sleep(self.after)
        self.finished.append(row.rel_path)


async def sized(path: Path) -> tuple[str | None, Estimate]:
    """A header reader for files of x's: no header, the size is the cost."""
    return None, Estimate(Rank.VIDEO, float((await anyio.Path(path).stat()).st_size))


class FakeScheduler(Scheduler):
    """A scheduler whose processor is a `FakeProcessor` (or the `processor` given) and whose
    costs are file sizes (or what `read_header` says)."""

    def __init__(
        self,
        runtime: Runtime,
        seconds: float = 0.01,
        after: float = 0.0,
        processor: type[FakeProcessor] = FakeProcessor,
        read_header: HeaderReader = sized,
    ) -> None:
        super().__init__(runtime, partial(processor, seconds=seconds, after=after), read_header)

    @property
    def fake(self) -> FakeProcessor:
        assert isinstance(self.processor, FakeProcessor)
        return self.processor


@asynccontextmanager
async def worker(
    root: Path, name: str, seconds: float = 0.01, after: float = 0.0
) -> AsyncIterator[FakeScheduler]:
    me = Worker(name, "host", 1, time.time(), time.time())
    config = Config(jobs=1, settle_seconds=0, lease_seconds=LEASE, scan_interval=0.2)
    async with open_store(root) as store:
        await store.heartbeat(me, LEASE)
        runtime = Runtime.create(Layout(root), config, store, me, ProgressHub(), "")
        yield FakeScheduler(runtime, seconds, after)


def raw_files(root: Path, sizes: list[int]) -> list[str]:
    (root / "raw").mkdir(exist_ok=True)
    (root / "work").mkdir(exist_ok=True)
    names = [f"{number:02d}.mp4" for number in range(len(sizes))]
    for name, size in zip(names, sizes, strict=True):
        (root / "raw" / name).write_bytes(b"x" * size)
    return names


async def test_two_workers_register_and_process_every_file_once(tmp_path: Path) -> None:
    names = raw_files(tmp_path, list(range(1, 13)))
    async with worker(tmp_path, "a") as a, worker(tmp_path, "b") as b:
        async with anyio.create_task_group() as group:  # both scan: one row per file
            group.start_soon(a.run_once)
            group.start_soon(b.run_once)
        files = await a.rt.state.files()
    assert sorted(a.fake.finished + b.fake.finished) == names, "each file once"
    assert a.fake.finished and b.fake.finished, "both had work"
    assert [row.state for row in files] == [FileState.DONE] * 12
    for scheduler in (a, b):  # each took the largest left when it claimed
        assert scheduler.fake.started == sorted(scheduler.fake.started, reverse=True)


async def test_run_once_fails_when_it_could_not_record_the_end_of_a_file(
    tmp_path: Path,
) -> None:
    raw_files(tmp_path, [2, 1])

    class Unrecorded(FakeProcessor):
        """The end of 01.mp4 cannot be written (a full disk): it stays held by this worker."""

        async def process(self, row: FileRow, raw: RawFile, load: Load) -> None:
            if row.rel_path == "00.mp4":
                await super().process(row, raw, load)

    async with worker(tmp_path, "a") as a:
        assert await FakeScheduler(a.rt, processor=Unrecorded).run_once() is False, (
            "not every file is done"
        )
        rows = {row.rel_path: (row.state, row.worker) for row in await a.rt.state.files()}
    assert rows == {"00.mp4": (FileState.DONE, None), "01.mp4": (FileState.RUNNING, "a")}


async def test_the_next_file_starts_once_those_held_only_assemble_their_outputs(
    tmp_path: Path,
) -> None:
    raw_files(tmp_path, [3, 2, 1])  # claimed largest first: 00, 01, 02
    encode = {"00.mp4": 0.2, "01.mp4": 0.6, "02.mp4": 0.2}
    events: list[str] = []

    class Staged(FakeProcessor):
        """Encodes, then assembles its outputs (mux, check, publish) for 0.4 s."""

        async def process(self, row: FileRow, raw: RawFile, load: Load) -> None:
            events.append(f"start {row.rel_path}")
            with load.long_step():
                await anyio.sleep(encode[row.rel_path])
            events.append(f"encoded {row.rel_path}")
            for output in names():
                load.made(output)
            await anyio.sleep(0.4)
            events.append(f"end {row.rel_path}")
            await self.settle(row, None)

    async with worker(tmp_path, "a") as a:  # jobs = 1: two files held that encode, at most
        await FakeScheduler(a.rt, processor=Staged).run_once()
        assert (await a.rt.state.summary()).count(FileState.DONE) == 3
    assert events[:3] == ["start 00.mp4", "start 01.mp4", "encoded 00.mp4"]
    assert events[3] == "start 02.mp4", "as soon as 00 only assembles, beside it"
    assert events.index("start 02.mp4") < events.index("encoded 01.mp4")


async def test_files_left_with_only_a_montage_to_make_are_claimed_a_few_at_a_time(
    tmp_path: Path,
) -> None:
    raw_files(tmp_path, list(range(1, 21)))  # `retry --missing` after screenshot/ was lost
    most = inside = 0

    class MontageOnly(FakeProcessor):
        async def process(self, row: FileRow, raw: RawFile, load: Load) -> None:
            nonlocal most, inside
            inside += 1  # files held and processed
            await anyio.sleep(0.01)  # its header read
            load.made("archive")  # both done before
            load.made("preview")
            with load.long_step():  # a sheet, in one slot
                async with self.rt.ffmpeg_slots.slot((load.turn,)):
                    most = max(most, inside)
                    await anyio.sleep(0.02)
            load.made("montage")
            await self.settle(row, None)
            inside -= 1

    async with worker(tmp_path, "a") as a:  # jobs = 1
        await FakeScheduler(a.rt, processor=MontageOnly).run_once()
        assert (await a.rt.state.summary()).count(FileState.DONE) == 20
    assert most <= 2, "twice the slots at most, as for any long step"


async def test_a_worker_that_lost_its_claim_stops_and_another_finishes(tmp_path: Path) -> None:
    [name] = raw_files(tmp_path, [5])
    async with worker(tmp_path, "slow", seconds=60) as slow, worker(tmp_path, "b") as other:
        async with anyio.create_task_group() as group:
            group.start_soon(slow.run_once)
            await slow.fake.began.wait()
            # Its lease ran out (it was suspended, say): its file goes back to pending.
            [row] = await other.rt.state.files()
            assert await other.rt.state.release("slow") == [row.id]
            await other.run_once()
            asked = time.monotonic()
            await slow.claims.keep_held(await slow.rt.state.heartbeat(slow.rt.worker, LEASE), asked)
        assert (await other.rt.state.get_file(row.id)).state is FileState.DONE
    assert (slow.fake.started, slow.fake.finished, other.fake.finished) == ([name], [], [name])


@pytest.mark.parametrize("asked", list(StopAsked))
async def test_a_file_asked_to_stop_is_stopped_by_the_heartbeat_and_given_back(
    tmp_path: Path, asked: StopAsked
) -> None:
    [name] = raw_files(tmp_path, [5])
    async with worker(tmp_path, "a", seconds=60) as a:
        store: Store = a.rt.state
        async with anyio.create_task_group() as group:
            group.start_soon(a.run_once)
            await a.fake.began.wait()
            [row] = await store.files()
            await store.ask_stop(row.id, asked)  # from the page, through the store
            a.fake.seconds = 0.01  # the next claim of it is quick
            asked_at = time.monotonic()
            await a.claims.keep_held(await store.heartbeat(a.rt.worker, LEASE), asked_at)
        after = await store.get_file(row.id)
        kinds = [event.kind for event in await store.history(row.id)]
    if asked is StopAsked.RELEASE:  # back to pending, then taken up again: done
        assert (a.fake.started, a.fake.finished, after.state) == ([name] * 2, [name], "done")
        assert kinds[kinds.index(EventKind.STOP_ASKED) + 1] is EventKind.RELEASED
    else:  # held until retried
        assert (a.fake.started, a.fake.finished) == ([name], [])
        assert (after.state, after.error) == (FileState.FAILED, SET_ASIDE_REASON)
        assert kinds[-2:] == [EventKind.STOP_ASKED, EventKind.SET_ASIDE]


async def test_pause_now_gives_the_claim_back_and_resume_takes_it_again(tmp_path: Path) -> None:
    [name] = raw_files(tmp_path, [5])
    async with worker(tmp_path, "a", seconds=0.2) as a:
        store: Store = a.rt.state
        release, released = store.release, anyio.Event()

        async def releasing(*args: Any) -> list[int]:
            ids = await release(*args)
            released.set()
            return ids

        setattr(store, "release", releasing)  # noqa: B010 - this store only
        async with anyio.create_task_group() as group:
            group.start_soon(a.run_once)
            await a.fake.began.wait()
            a.rt.gate.hold("paused", stop_running=True)
            with anyio.fail_after(30):  # given back: a moment, however busy the machine
                await released.wait()
            [row] = await store.files()
            assert (row.state, row.worker) == (FileState.PENDING, None), "given back"
            a.rt.gate.release("paused")
        assert a.fake.started == [name, name] and a.fake.finished == [name]
        assert (await store.get_file(row.id)).state is FileState.DONE


async def test_the_heartbeat_leaves_the_end_of_a_finished_file_alone(tmp_path: Path) -> None:
    [name] = raw_files(tmp_path, [5])
    async with worker(tmp_path, "a", after=0.2) as a:
        async with anyio.create_task_group() as group:
            group.start_soon(a.run_once)
            await a.fake.settled.wait()  # recorded done: the claim ended, the raw action runs
            asked = time.monotonic()
            await a.claims.keep_held(await a.rt.state.heartbeat(a.rt.worker, LEASE), asked)
        assert a.fake.finished == [name], "not cancelled"


async def test_workers_of_this_machine_are_buried_by_their_lock_or_their_silence(
    tmp_path: Path,
) -> None:
    raw_files(tmp_path, [5])
    layout = Layout(tmp_path)
    live = Worker("live", "host", 2, time.time(), time.time())
    crashed = Worker("crashed", "host", 3, time.time(), time.time())
    async with worker(tmp_path, "a") as a:
        store = a.rt.state
        for other in (live, crashed):
            await store.heartbeat(other, LEASE)
        layout.workers.mkdir(exist_ok=True)
        (layout.workers / "crashed.lock").touch()  # left by a SIGKILL: nobody holds it
        with holding_life(layout, live):
            await bury_dead(store, layout, a.rt.worker, LEASE)
            assert sorted(w.id for w in await store.workers()) == ["a", "live"]
            assert not (layout.workers / "crashed.lock").exists(), "a dead one's lock goes"
            # Silent for longer than its lease (stalled): its claims go, its lock stays.
            _age(tmp_path, 2 * LEASE, "UPDATE workers SET heartbeat_at = heartbeat_at - ?"
                 " WHERE id = 'live'")  # fmt: skip
            await bury_dead(store, layout, a.rt.worker, LEASE)
            assert [w.id for w in await store.workers()] == ["a"]
            assert (layout.workers / "live.lock").exists(), "never a live one's lock"


def _age(root: Path, seconds: float, *updates: str, db: sqlite3.Connection | None = None) -> None:
    """Make times recorded in the state `seconds` older (as if the clock had gone on), in
    `db`'s open transaction if given."""
    with contextlib.closing(sqlite3.connect(root / "work" / "state.sqlite3")) as own:
        for update in updates:
            (db or own).execute(update, (seconds,))
        own.commit()


def test_a_worker_judges_the_others_only_after_a_lease_of_its_own_beats_on_time() -> None:
    now = [0.0]
    steady = Steadiness(4.0, clock=lambda: now[0])
    assert steady.may_judge(), "from its start"
    now[0] += 10.0  # its heartbeat waited 10 s (a lock, a server away), as did everybody's
    steady.beat()
    assert not steady.may_judge()
    for _beat in range(3):
        now[0] += 1.0
        steady.beat()
        assert not steady.may_judge(), "the others may not have renewed their leases yet"
    now[0] += 1.0
    steady.beat()
    assert steady.may_judge(), "a whole lease of heartbeats on time"
    now[0] += 1.5  # then the judgement waits longer than a beat for the state
    assert not steady.may_judge()


async def test_a_lock_held_longer_than_the_lease_takes_no_live_workers_files(
    tmp_path: Path,
) -> None:
    """Everybody waited for the lock while the clock went on: when it goes, a worker judges
    the others only after they have had a lease to renew theirs — though their heartbeats
    and leases, read once it may write, look a lease old."""
    raw_files(tmp_path, [5])
    layout, now = Layout(tmp_path), [0.0]
    other = Worker("other", "elsewhere", 2, time.time(), time.time())  # only its silence tells
    async with worker(tmp_path, "a") as a:
        store = a.rt.state
        await store.heartbeat(other, LEASE)
        await store.add_file("00.mp4", 5, 1, "fp", "00")
        assert await store.claim("other", LEASE) is not None
        steady = Steadiness(LEASE, clock=lambda: now[0])
        with contextlib.closing(
            sqlite3.connect(tmp_path / "work" / "state.sqlite3", isolation_level=None)
        ) as shell:
            shell.execute("BEGIN IMMEDIATE")  # a `sqlite3` shell holds the lock
            async with anyio.create_task_group() as group:
                group.start_soon(bury_dead, store, layout, a.rt.worker, LEASE, steady)
                await anyio.wait_all_tasks_blocked()  # it waits for the lock
                now[0] += 2 * LEASE
                _age(tmp_path, 2 * LEASE, "UPDATE workers SET heartbeat_at = heartbeat_at - ?",
                     "UPDATE files SET lease_until = lease_until - ?", db=shell)  # fmt: skip
                shell.execute("COMMIT")
        assert {w.id for w in await store.workers()} == {"a", "other"}
        assert [row.worker for row in await store.files()] == ["other"], "still its file"
        for _beat in range(4):  # a lease of heartbeats on time: the silent one is gone
            now[0] += LEASE / 4
            steady.beat()
        assert await bury_dead(store, layout, a.rt.worker, LEASE, steady) == [1]
        assert [w.id for w in await store.workers()] == ["a"]


async def test_a_judgement_a_stop_held_up_is_undone(tmp_path: Path) -> None:
    """Stopped (SIGSTOP) in the middle of judging, a worker wakes to a clock that went on:
    what it judged after that is not kept."""
    raw_files(tmp_path, [5])
    other = Worker("other", "elsewhere", 2, time.time(), time.time())
    async with worker(tmp_path, "a") as a:
        store = a.rt.state
        await store.heartbeat(other, LEASE)
        await store.add_file("00.mp4", 5, 1, "fp", "00")
        assert await store.claim("other", LEASE) is not None
        _age(tmp_path, 2 * LEASE, "UPDATE workers SET heartbeat_at = heartbeat_at - ?",
             "UPDATE files SET lease_until = lease_until - ?")  # fmt: skip
        times = iter([0.0, 0.0, 2 * LEASE])  # made, may judge; stopped before it was over
        steady = Steadiness(LEASE, clock=lambda: next(times))
        assert await bury_dead(store, Layout(tmp_path), a.rt.worker, LEASE, steady) == []
        assert {w.id for w in await store.workers()} == {"a", "other"}
        assert [row.worker for row in await store.files()] == ["other"]


def test_a_worker_that_could_not_give_its_files_back_leaves_its_lock_to_say_so(
    tmp_path: Path,
) -> None:
    """A full disk refused the release at its stop: its unlocked lock file tells the next
    worker of this machine at once (no lease to wait out); one that gave them back leaves
    nothing."""
    layout, me = Layout(tmp_path), Worker("me", "host", 1, time.time(), time.time())
    with holding_life(layout, me):
        assert not bury_if_dead_here(layout, me), "alive: its lock is held"
    assert bury_if_dead_here(layout, me)
    assert not (layout.workers / "me.lock").exists(), "buried: its lock goes"
    with holding_life(layout, me) as gave_back:
        gave_back()
    assert not (layout.workers / "me.lock").exists()


async def test_a_worker_never_claims_again_a_file_its_task_still_works_on(tmp_path: Path) -> None:
    [name] = raw_files(tmp_path, [5])
    async with worker(tmp_path, "a", seconds=0.3) as a:
        async with anyio.create_task_group() as group:
            group.start_soon(a.run_once)
            await a.fake.began.wait()
            # Its claim ends under it (another worker took it for dead): the file is pending.
            await a.rt.state.release("a")
            a.claims.wake()
            await anyio.sleep(0.05)
            assert a.fake.started == [name], "not claimed a second time while it runs"
        # Its task's own write was refused (claim lost); claimed again once free, it is done.
        assert a.fake.started == [name, name] and a.fake.finished == [name]
        [row] = await a.rt.state.files()
        assert row.state is FileState.DONE


async def test_work_starts_while_a_long_first_scan_goes_on(tmp_path: Path) -> None:
    raw_files(tmp_path, [5] * 10)

    async def slow_share(path: Path) -> tuple[str | None, Estimate]:
        await anyio.sleep(0.05)  # a slow share: each new file's header takes a while
        return None, Estimate(Rank.VIDEO, 1.0)

    async with worker(tmp_path, "a") as a:
        slow = FakeScheduler(a.rt, seconds=5, read_header=slow_share)
        send, receive = anyio.create_memory_object_stream[None](1)
        async with anyio.create_task_group() as group, send:
            group.start_soon(slow.run_forever, receive)
            await slow.fake.began.wait()
            registered = len(await slow.rt.state.files())
            group.cancel_scope.cancel()
    assert registered < 10, "the first file started before the scan had registered them all"


async def test_costs_left_unset_are_estimated_before_the_first_claim(tmp_path: Path) -> None:
    """Pending files without a cost (a migration cleared them; a worker died estimating)
    are estimated before a worker claims any, then claimed the costliest first."""
    names = raw_files(tmp_path, [1, 30, 20, 10])
    async with worker(tmp_path, "a") as a:
        await a.discover()
        with sqlite3.connect(tmp_path / "work" / "state.sqlite3") as db:
            db.execute("UPDATE files SET claim_rank = NULL, cpu_cost = NULL")
        queue = [row.rel_path for row in await a.rt.state.queue(10)]
        assert queue == names, "unestimated, they would be claimed in the order found"
        assert await a.run_once()
    assert a.fake.started == [names[1], names[2], names[3], names[0]]


class FullDisk:
    """A store whose first writes find the disk full (SQLite says ENOSPC), then succeed."""

    def __init__(self, full_for: int) -> None:
        self.full_for, self.calls = full_for, 0
        self.went_on = anyio.Event()  # a write after the disk was full

    def _write(self) -> None:
        self.calls += 1
        if self.calls <= self.full_for:
            raise OSError(errno.ENOSPC, "No space left on device", "work/state.sqlite3")
        self.went_on.set()

    async def write_progress(self, worker: str, tasks: object) -> None:
        self._write()

    async def heartbeat(self, worker: Worker, lease: float) -> set[int]:
        self._write()
        return set()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    async def silent_workers(self, lease: float) -> list[str]:
        return []

    async def workers(self) -> list[Worker]:
        return []

    async def release_expired(self, keep: str) -> list[int]:
        return []


async def test_a_full_disk_stops_neither_the_progress_writer_nor_the_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "WRITE_EVERY", 0.01)
    hub = ProgressHub()
    hub.start(TaskInfo(1, "a.mp4", "archive", "s0 archive video", 10.0))
    me = Worker("me", "host", 1, time.time(), time.time())
    writes, beats = FullDisk(full_for=2), FullDisk(full_for=2)

    async def held(ids: set[int], asked: float) -> None:
        pass

    with anyio.fail_after(30):  # both go on once there is room again
        async with anyio.create_task_group() as group:
            group.start_soon(progress.write_progress, cast(Store, writes), hub, "me")
            group.start_soon(keep_alive, cast(Store, beats), Layout(tmp_path), me, 0.04, held)
            await writes.went_on.wait()
            await beats.went_on.wait()
            group.cancel_scope.cancel()


async def test_a_claim_the_full_disk_refused_waits_for_space_then_goes_on(tmp_path: Path) -> None:
    [name] = raw_files(tmp_path, [5])
    async with worker(tmp_path, "a") as a:
        store = a.rt.state
        claim, refusals = store.claim, [OSError(errno.ENOSPC, "No space left on device")]

        async def full_once(*args: Any) -> FileRow | None:
            if refusals:
                raise refusals.pop()
            return await claim(*args)

        setattr(store, "claim", full_once)  # noqa: B010 - this store only
        assert await a.run_once()
    assert a.fake.finished == [name], "claimed once the wait for space was over"


async def test_no_raw_file_is_deleted_once_the_state_database_is_gone(tmp_path: Path) -> None:
    """What is done to a raw file must be recorded where it can be read again."""
    [name] = raw_files(tmp_path, [10])
    async with worker(tmp_path, "w") as scheduler:
        state = scheduler.rt.state
        await scheduler.registrar.register((await scan(tmp_path / "raw", 0)).settled)
        row = await state.claim("w", LEASE)
        assert row is not None
        await state.finish_file(row.id, "delete pending", by="w")
        (tmp_path / "work" / "state.sqlite3").unlink()
        with pytest.raises(StateError, match="deleted or replaced while running"):
            await scheduler.processor.finish_raw_action(await state.get_file(row.id))
    assert (tmp_path / "raw" / name).read_bytes() == b"x" * 10
