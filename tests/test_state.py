"""The store's contract: what any backend must do (SQLite, PostgreSQL, in memory), in
milliseconds. Tests of what only a database has (migrations, WAL, two connections, lock
waits, a server restart) take `sql_backend` or open SQLite themselves."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

import anyio
import anyio.lowlevel
import psycopg
import pytest

from pgcluster import Cluster
from videoarchiver.errors import ClaimLost
from videoarchiver.layout import Layout
from videoarchiver.outputs import adopt
from videoarchiver.planning.claim_order import ABSENT, Estimate, Rank
from videoarchiver.planning.resume import Part
from videoarchiver.state import (
    CLEARED,
    MEMORY_URL,
    SET_ASIDE_REASON,
    EventKind,
    Figures,
    FileRow,
    FileState,
    IllegalMove,
    Intent,
    JobState,
    NoSuchFile,
    OutputState,
    Progress,
    StopAsked,
    Store,
    Worker,
    open_store,
)
from videoarchiver.state import postgres as postgres_store
from videoarchiver.state import sqlite as sqlite_store
from videoarchiver.state.migrations import CLAIM_ORDER_IN_COLUMNS, MIGRATIONS
from videoarchiver.state.transitions import MOVES, Entity, Move

pytestmark = pytest.mark.anyio
LEASE = 30.0
STATES: dict[Entity, type[StrEnum]] = {"file": FileState, "output": OutputState, "job": JobState}
# Where a row begins: a file when found, an output or a stream job when a worker starts it.
BEGINS: dict[Entity, StrEnum] = {
    "file": FileState.PENDING, "output": OutputState.RUNNING, "job": JobState.RUNNING
}  # fmt: skip
NAMED = {"finish", "fail", "reopen", "start", "publish", "skip"}  # the others pick rows by state
CARRIED = {"release", "retry", "reopen"}  # an output's or stream job's, with its file's
REOPENED: dict[Entity, list[tuple[str, int | None]]] = {
    "file": [], "output": [("archive", None)], "job": [("montage", 0)]
}  # fmt: skip


def _worker(name: str) -> Worker:
    return Worker(name, "host", 1, time.time(), time.time())


def _costs(seconds: float) -> Estimate:
    """The estimate of a file with video that costs `seconds` of CPU."""
    return Estimate(Rank.VIDEO, seconds)


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The state's URL of the backend `request.param` (None: SQLite in work/)."""
    (tmp_path / "work").mkdir()
    if request.param == "sqlite":
        return None
    if request.param == "memory":
        return MEMORY_URL
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The state's URL for each backend the contract runs on."""
    return _url(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The state's URL for each database: what is about connections and migrations."""
    return _url(request, tmp_path)


@pytest.fixture
async def store(tmp_path: Path, backend: str | None) -> AsyncIterator[Store]:
    async with open_store(tmp_path, backend) as opened:
        yield opened


async def test_new_database_is_migrated_by_name_and_in_wal_mode(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    async with open_store(tmp_path):
        pass
    with sqlite3.connect(tmp_path / "work" / "state.sqlite3") as db:
        names = [name for (name,) in db.execute("SELECT name FROM migrations")]
        assert sorted(names) == sorted(migration.name for migration in MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    async with open_store(tmp_path) as store:  # reopening applies nothing twice
        assert await store.files() == []


async def test_a_database_of_an_older_version_migrates_forward(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    path = tmp_path / "work" / "state.sqlite3"
    with sqlite3.connect(path) as db:
        for number, migration in enumerate(MIGRATIONS[:5], start=1):
            db.executescript(f"{migration.sqlite}; PRAGMA user_version = {number};")
        db.execute(
            "INSERT INTO files (rel_path, size, mtime_ns, stem, created_at, updated_at, state)"
            " VALUES ('a.mp4', 10, 1, 'a', 0, 0, 'done'), ('b.mp4', 20, 2, 'b', 0, 0, 'running')"
        )
        db.execute(
            "INSERT INTO stream_jobs (file_id, output, stream_index, kind, decision, updated_at)"
            " VALUES (2, 'archive', 0, 'video', 'encode', 0)"
        )
        db.execute(
            "INSERT INTO outputs (file_id, kind, state, path, updated_at)"
            f" VALUES (1, 'archive', 'done', '{tmp_path}/archive/a.mkv', 0)"
        )
    async with open_store(tmp_path) as store:
        rows = await store.files()
        assert [(r.id, r.rel_path, r.fingerprint) for r in rows] == [
            (1, "a.mp4", None), (2, "b.mp4", None)
        ]  # fmt: skip
        [job] = (await store.jobs(2, "archive")).values()
        assert job.stream_type == "video", "stream jobs survive the rebuilds"
        assert (await store.outputs(1))["archive"].path == "archive/a.mkv", "now relative"
        # A file running when claims did not exist belongs to no live worker.
        assert await store.release_expired(keep="me") == [2]
        assert await store.forget_replaced("b.mp4", keep=0) == [2]
        assert (await store.add_file("c.mp4", 1, 1, "fp", "c")).id == 3, "id 2 is not reused"


async def test_costs_of_an_older_version_are_estimated_again(tmp_path: Path) -> None:
    """Costs were pixels × seconds in `cost`; CPU seconds have a column of their own: a file
    registered before (or by a worker of an older version) is estimated again, and the
    figures an older worker writes play no part in the claim order."""
    (tmp_path / "work").mkdir()
    async with open_store(tmp_path) as store:
        before = await store.add_file("a.mp4", 10, 1, "fp1", "a")
        costed = await store.add_file("b.mp4", 10, 1, "fp2", "b", cost=_costs(5.0))
    with sqlite3.connect(tmp_path / "work" / "state.sqlite3") as db:
        db.execute("UPDATE files SET cost = 2.5e7 WHERE id = ?", (before.id,))
    async with open_store(tmp_path) as store:
        assert [row.id for row in await store.to_estimate(10)] == [before.id]
        claimed = await store.claim("w", LEASE)
        assert claimed is not None and claimed.id == costed.id


def _execute(root: Path, url: str | None, *statements: str) -> None:
    """Statements on a connection of their own to the state of `root` (SQLite) or at `url`."""
    if url is None:
        with sqlite3.connect(root / "work" / "state.sqlite3") as db:
            for statement in statements:
                db.execute(statement)
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


async def test_the_schema_refuses_a_state_that_does_not_exist(
    tmp_path: Path, sql_backend: str | None
) -> None:
    async with open_store(tmp_path, sql_backend) as store:
        row = await store.add_file("a.mp4", 10, 1, "fp", "a")
        await store.set_output(row.id, "archive", OutputState.RUNNING)
        await store.save_job(row.id, "archive", 0, stream_type="video", decision="encode",
                             state=JobState.RUNNING)  # fmt: skip
    for table in ("files", "outputs", "stream_jobs"):
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation),
                           match=f"{table}_state_known"):  # fmt: skip
            _execute(tmp_path, sql_backend, f"UPDATE {table} SET state = 'lost'")


async def test_sentinel_costs_of_an_older_version_become_ranks(
    tmp_path: Path, sql_backend: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim order was said in costs: 1e13 and more unreadable, 1e12 and more without
    video (1e12 added), -1 absent from raw/, -2 being estimated. They become ranks, costs
    become seconds; the tables SQLite builds again keep their rows and the ids given out."""
    older = MIGRATIONS[: MIGRATIONS.index(CLAIM_ORDER_IN_COLUMNS)]
    costs = {
        "unreadable": 1e13,
        "song": 1e12 + 5,
        "album": 1e12 + 50,
        "clip": 30.0,
        "film": 300.0,
        "absent": -1.0,
        "estimating": -2.0,
        "new": "NULL",
        "gone": 1.0,
    }
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_store, "MIGRATIONS", older)
        patch.setattr(postgres_store, "MIGRATIONS", older)
        async with open_store(tmp_path, sql_backend):
            pass
    _execute(tmp_path, sql_backend, *(
        "INSERT INTO files (rel_path, size, mtime_ns, stem, created_at, updated_at, cpu_cost)"
        f" VALUES ('{name}', 1, 1, '{name}', 0, 0, {cost})" for name, cost in costs.items()
    ), "DELETE FROM files WHERE stem = 'gone'")  # fmt: skip
    async with open_store(tmp_path, sql_backend) as store:
        ids = {row.stem: row.id for row in await store.files()}
        assert [ids[row.stem] for row in await store.queue(10)] == [
            ids[name] for name in ("unreadable", "album", "song", "film", "clip", "absent",
                                   "estimating", "new")
        ]  # fmt: skip
        assert [row.stem for row in await store.to_estimate(10)] == ["estimating", "new"]
        assert (await store.summary()).waiting_cost == 385.0, "seconds only"
        assert (await store.add_file("next", 1, 1, "fp", "next")).id == len(costs) + 1
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        _execute(tmp_path, sql_backend, "UPDATE files SET state = 'lost'")


async def test_a_file_id_nobody_was_given_is_no_such_file(store: Store) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    assert (await store.get_file(row.id)).rel_path == "a.mp4"
    with pytest.raises(NoSuchFile, match=f"no file {row.id + 1}"):
        await store.get_file(row.id + 1)


async def test_file_identity_and_replaced_content(store: Store) -> None:
    first = await store.add_file("a.mp4", 10, 1, "fp1", "a")
    assert await store.find_files(["a.mp4", "b.mp4"]) == {"a.mp4": [first]}
    assert await store.stem_taken("a")
    # New content at the same path while the old one is unfinished: the old row goes,
    # and its id is never given to another file.
    second = await store.add_file("a.mp4", 11, 2, "fp2", "a.mp4")
    assert await store.forget_replaced("a.mp4", keep=second.id) == [first.id]
    assert [row.id for row in await store.files()] == [second.id]
    third = await store.add_file("b.mp4", 12, 3, "fp3", "b")
    assert third.id > second.id > first.id
    # A finished row, or one that published an output, stays as history.
    assert await store.claim("w", LEASE) == await store.get_file(second.id)
    await store.finish_file(second.id, None)
    await store.set_output(third.id, "archive", OutputState.RUNNING)
    await store.set_output(third.id, "archive", OutputState.DONE, path="x", size=1, sha256="s")
    fourth = await store.add_file("a.mp4", 12, 3, "fp4", "a.mp4.2")
    assert await store.forget_replaced("a.mp4", keep=fourth.id) == []
    assert await store.forget_replaced("b.mp4", keep=fourth.id) == [third.id], "its work goes"
    assert (await store.get_file(third.id)).state is FileState.FAILED, "published: kept, failed"
    # Nor is a claimed row, or one with a published montage sheet.
    fifth = await store.add_file("c.mp4", 1, 1, "fp5", "c")
    sixth = await store.add_file("c.mp4", 2, 2, "fp6", "c.mp4")
    claimed = [await store.claim("w", LEASE) for _ in range(2)]
    assert [row.id for row in claimed if row] == [fourth.id, fifth.id], "in id order"
    assert await store.forget_replaced("c.mp4", keep=0) == [sixth.id]
    sheet = Figures(path="s/c.jpg", sha256="s")
    await store.save_job(fifth.id, "montage", 0, stream_type="video", decision="seek",
                         state=JobState.RUNNING, figures=sheet)  # fmt: skip
    await store.release("w")
    assert await store.forget_replaced("c.mp4", keep=0) == [fifth.id]
    assert (await store.get_file(fifth.id)).state is FileState.FAILED, "a sheet: kept, failed"
    # `touch`: the same content with a new mtime keeps its row.
    await store.set_identity(fourth.id, 99, "fp4")
    assert (await store.get_file(fourth.id)).mtime_ns == 99


async def test_a_stream_jobs_measured_quality_is_kept_then_cleared(store: Store) -> None:
    row = await store.add_file("q.mp4", 10, 1, "fpq", "q")

    async def save(figures: Figures) -> Figures:
        await store.save_job(row.id, "archive", 0, stream_type="video", decision="encode",
                             state=JobState.DONE, figures=figures)  # fmt: skip
        return (await store.jobs(row.id, "archive"))[0].figures

    measured = Figures(ssim_mean=0.991, ssim_worst=0.95, ssim_note="9 frames at 3 sample points")
    assert (await save(measured)).ssim_mean == 0.991
    kept = await save(Figures(out_bytes=5))  # a None figure keeps what is recorded
    assert (kept.ssim_mean, kept.ssim_worst, kept.ssim_note, kept.out_bytes) == (
        0.991, 0.95, "9 frames at 3 sample points", 5)  # fmt: skip
    cleared = await save(Figures(ssim_mean=CLEARED, ssim_worst=CLEARED, ssim_note="no ffmpeg"))
    assert (cleared.ssim_mean, cleared.ssim_worst, cleared.ssim_note, cleared.out_bytes) == (
        None, None, "no ffmpeg", 5)  # fmt: skip


async def test_illegal_moves_are_refused_naming_both_states(store: Store) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    with pytest.raises(IllegalMove, match="pending → done"):
        await store.finish_file(row.id, None)
    await store.set_output(row.id, "archive", OutputState.RUNNING)
    await store.set_output(row.id, "archive", OutputState.PUBLISHING, path="a", size=1, sha256="s")
    await store.set_output(row.id, "archive", OutputState.DONE)
    with pytest.raises(IllegalMove, match="done → running"):
        await store.set_output(row.id, "archive", OutputState.RUNNING)
    with pytest.raises(IllegalMove, match="done → publishing"):
        await store.set_output(row.id, "archive", OutputState.PUBLISHING)
    await store.set_output(row.id, "archive", OutputState.DONE)  # a repeat is legal
    assert (await store.outputs(row.id))["archive"].path == "a", "a repeat keeps the figures"
    with pytest.raises(IllegalMove, match="pending is reached only by release or retry or reopen"):
        await store.set_output(row.id, "preview", OutputState.PENDING)
    # Every verb of the table, from every state: a verb that names its row refuses a state it
    # does not start from, naming both; one that picks its rows by state leaves it as it is.
    walk = _Walk(store)
    for entity, verbs in MOVES.items():
        for verb, move in verbs.items():
            for state in STATES[entity]:
                await walk.check(entity, verb, move, state)


def _path(entity: Entity, state: StrEnum) -> list[str] | None:
    """The shortest list of verbs that takes a row of `entity` from where it begins to
    `state`, by the table (None: it cannot get there)."""
    paths: dict[StrEnum, list[str]] = {BEGINS[entity]: []}
    edge = [BEGINS[entity]]
    while edge:
        reached = edge.pop(0)
        for verb, move in MOVES[entity].items():
            if reached in move.sources and move.target is not None and move.target not in paths:
                paths[move.target] = [*paths[reached], verb]
                edge.append(move.target)
    return paths.get(state)


def test_every_state_is_reachable_through_the_table() -> None:
    for entity, states in STATES.items():
        for state in states:
            assert _path(entity, state) is not None, f"no verb takes a {entity} to {state}"


class _Walk:
    """Rows of one store brought to any state through the store's verbs, each on a file of
    its own; a verb of the table applied to one of them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.made = 0

    async def file(self) -> FileRow:
        self.made += 1
        return await self.store.add_file(f"{self.made}.mp4", 1, 1, "fp", f"walk{self.made}")

    async def state(self, entity: Entity, row: FileRow) -> str | None:
        """The row's state (None: it is gone)."""
        if entity == "file":
            found = (await self.store.find_files([row.rel_path])).get(row.rel_path, [])
            return found[0].state if found else None
        if entity == "output":
            return (await self.store.outputs(row.id))["archive"].state
        return (await self.store.jobs(row.id, "montage"))[0].state

    async def check(self, entity: Entity, verb: str, move: Move, state: StrEnum) -> None:
        row = await self.reach(entity, state)
        again = verb in NAMED and verb != "reopen" and state == move.target
        if state in move.sources or again:
            await self.apply(entity, verb, row)
            assert await self.state(entity, row) == move.target, (entity, verb, state)
        elif verb in NAMED:
            with pytest.raises(IllegalMove, match=f"{entity} .* {verb}: {state} → {move.target}"):
                await self.apply(entity, verb, row)
        else:
            await self.apply(entity, verb, row)
            assert await self.state(entity, row) == state, f"{verb} leaves a {entity} {state}"

    async def reach(self, entity: Entity, state: StrEnum) -> FileRow:
        """A new file whose row of `entity` is in `state` (and the file running, for an
        output's or a stream job's)."""
        row, path = await self.file(), _path(entity, state)
        assert path is not None
        if entity != "file":
            await self.claim(row)
            if entity == "job":  # a sheet is made again with its montage
                await self.store.set_output(row.id, "montage", OutputState.DONE, path="m")
            await self.apply(entity, "start", row)
        for verb in path:
            await self.apply(entity, verb, row)
            if entity != "file" and verb in CARRIED:
                await self.claim(row)
        return row

    async def claim(self, row: FileRow) -> None:
        """Claim `row` (under a lease that ran out already, to expire)."""
        others = [other.id for other in await self.store.files() if other.id != row.id]
        await self.store.claim("w", -1.0, others)

    async def apply(self, entity: Entity, verb: str, row: FileRow) -> None:
        store = self.store
        if entity == "file" or verb in CARRIED:  # a stream job's or output's, with its file's
            if entity != "file" and verb == "retry":
                await store.fail_file(row.id, "failed")
            if entity != "file" and verb == "reopen":
                await store.finish_file(row.id, None)
            await self.file_verb(verb, row, REOPENED[entity])
        elif entity == "output":
            await store.set_output(row.id, "archive", OutputState(str(MOVES[entity][verb].target)))
        else:
            await store.save_job(row.id, "montage", 0, stream_type="video", decision="seek",
                                 state=JobState(str(MOVES[entity][verb].target)))  # fmt: skip

    async def file_verb(
        self, verb: str, row: FileRow, reopened: list[tuple[str, int | None]]
    ) -> None:
        store = self.store
        if verb == "claim":
            await self.claim(row)
        elif verb == "release":
            await store.release("w", [row.id])
        elif verb == "expire":
            await store.release_expired(keep="another")
        elif verb == "set_aside":  # as asked of a running file (only), when it is given back
            with contextlib.suppress(IllegalMove):
                await store.ask_stop(row.id, StopAsked.SET_ASIDE)
            await store.release("w", [row.id])
        elif verb == "finish":
            await store.finish_file(row.id, None)
        elif verb == "fail":
            await store.fail_file(row.id, "failed")
        elif verb in ("replace", "forget"):  # new content: what published something stays
            if verb == "replace":
                await store.set_output(row.id, "preview", OutputState.DONE, path="p")
            await store.forget_replaced(row.rel_path, keep=0)
        elif verb == "retry":
            await store.retry([row.rel_path])
        else:
            assert verb == "reopen"
            await store.reopen(row.id, reopened)


async def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction():
            await store.add_file("a.mp4", 10, 1, "fp", "a")
            raise RuntimeError("half-way")
    assert await store.files() == []


async def test_a_failed_transaction_puts_back_what_it_changed(store: Store) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    await store.set_output(row.id, "archive", OutputState.RUNNING)
    with pytest.raises(RuntimeError):
        async with store.transaction():
            assert await store.claim("w", LEASE) is not None
            await store.set_output(row.id, "archive", OutputState.FAILED, error="boom")
            await store.set_control("paused", "x")
            raise RuntimeError("half-way")
    after = await store.get_file(row.id)
    assert (after.state, after.worker, after.claims) == (FileState.PENDING, None, 0)
    archive = (await store.outputs(row.id))["archive"]
    assert (archive.state, archive.error) == (OutputState.RUNNING, None)
    assert await store.control("paused") is None


async def test_claims_leases_and_release(store: Store) -> None:
    small = await store.add_file("small.mp4", 10, 1, "fp1", "small")
    large = await store.add_file("large.mp4", 10, 1, "fp2", "large")
    one, two = _worker("one"), _worker("two")
    first = await store.claim(one.id, LEASE)
    second = await store.claim(two.id, LEASE)
    assert first is not None and second is not None
    assert {first.id, second.id} == {small.id, large.id}
    assert (first.state, first.worker) == (FileState.RUNNING, "one")
    assert await store.claim(one.id, LEASE) is None, "nothing is claimed twice"
    assert await store.heartbeat(one, LEASE) == {first.id}
    assert [worker.id for worker in await store.workers()] == ["one"]
    # What ran of a released file goes back to pending with it; its parts stay recorded.
    part = Part(file="s0.p0.mkv", start=0, end=1, bytes=5, packets=2, source="10:fp1")
    await store.set_output(first.id, "archive", OutputState.RUNNING)
    await store.save_job(first.id, "archive", 0, stream_type="video", decision="encode",
                         state=JobState.RUNNING, figures=Figures(parts=(part,)))  # fmt: skip
    assert await store.release("one") == [first.id]
    assert (await store.get_file(first.id)).state is FileState.PENDING
    assert (await store.outputs(first.id))["archive"].state is OutputState.PENDING
    [job] = (await store.jobs(first.id, "archive")).values()
    assert (job.state, job.parts) == (JobState.PENDING, (part,))
    assert await store.heartbeat(one, LEASE) == set(), "a released claim is not renewed"
    # A lease that runs out returns the file; a renewed one does not.
    again = await store.claim(one.id, 0.2)
    assert again is not None and again.id == first.id
    await anyio.sleep(0.3)
    assert await store.release_expired(keep="one") == [], "a worker never robs itself"
    assert await store.release_expired(keep="two") == [first.id]
    assert await store.remove_worker(two.id) == [second.id]


async def test_two_connections_never_claim_one_file_twice(
    tmp_path: Path, sql_backend: str | None
) -> None:
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    async with (
        open_store(tmp_path, sql_backend) as first,
        open_store(tmp_path, sql_backend) as second,
    ):
        for number in range(40):
            await first.add_file(f"{number}.mp4", 1, 1, f"fp{number}", str(number))

        async def drain(store: Store, name: str) -> None:
            while (row := await store.claim(name, LEASE)) is not None:
                claimed[name].append(row.id)
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as group:
            group.start_soon(drain, first, "a")
            group.start_soon(drain, second, "b")
    assert sorted(claimed["a"] + claimed["b"]) == list(range(1, 41)), "each file once"


async def test_progress_is_written_per_worker_and_read_by_anyone(store: Store) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    task = Progress(row.id, "s0 archive video", "archive", "one", 2.0, 10.0, 1.5, 5.3, 0.0)
    await store.write_progress("one", [task])
    assert await store.progress() == [], "only for a file the worker holds"
    assert await store.claim("one", LEASE) is not None
    await store.write_progress("one", [task])
    await store.write_progress("two", [replace(task, worker="two")])  # a worker robbed late
    [written] = await store.progress()
    assert written == replace(task, updated_at=written.updated_at, remaining=written.remaining)
    assert abs(written.updated_at - await store.clock()) < 5, "at the database's time"
    assert written.remaining is not None and 0.3 < written.remaining <= 5.3, "less its age"
    assert written.lost_since is None
    await store.write_progress("one", [])
    assert await store.progress() == []


async def test_a_task_whose_worker_lost_its_lease_is_read_as_lost(store: Store) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    gone = Worker("gone", "elsewhere", 7, 0.0, 0.0)
    await store.heartbeat(gone, LEASE)
    assert await store.claim("gone", -1) is not None  # a lease that ran out a second ago
    task = Progress(row.id, "s0 archive video", "archive", "gone", 2.0, 10.0, 1.5, 5.3, 0.0)
    await store.write_progress("gone", [task])
    [read] = await store.progress()
    [worker] = await store.workers()
    assert (read.lost_since, read.remaining) == (worker.heartbeat_at, None)


async def test_an_output_published_but_not_recorded_is_adopted_only_when_its_bytes_match(
    tmp_path: Path, store: Store
) -> None:
    published = tmp_path / "a.mkv"
    published.write_bytes(b"archive bytes")
    sha = hashlib.sha256(b"archive bytes").hexdigest()
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    for kind, recorded in (("archive", sha), ("preview", "other")):
        await store.set_output(row.id, kind, OutputState.RUNNING)
        await store.set_output(row.id, kind, OutputState.PUBLISHING, path="a.mkv", size=13,
                               sha256=recorded)  # fmt: skip
    outputs = await store.outputs(row.id)
    assert await adopt(store, Layout(tmp_path), outputs["archive"]) is True
    assert await adopt(store, Layout(tmp_path), outputs["preview"]) is False, "not our bytes"
    after = await store.outputs(row.id)
    assert (after["archive"].state, after["preview"].state) == (
        OutputState.DONE, OutputState.PUBLISHING
    )  # fmt: skip


async def test_workers_opening_a_new_database_together_migrate_it_once(
    tmp_path: Path, sql_backend: str | None
) -> None:
    opened: list[int] = []

    async def open_one() -> None:
        async with open_store(tmp_path, sql_backend) as store:
            opened.append(len(await store.files()))

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(open_one)
    assert opened == [0, 0, 0, 0]
    async with open_store(tmp_path, sql_backend) as store:
        assert await store.files() == [], "and it works"


def _another_connection(root: Path) -> sqlite3.Connection:
    """Another worker's connection to the SQLite state of `root`."""
    path = root / "work" / "state.sqlite3"
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


@asynccontextmanager
async def _writing_for_a_moment(other: sqlite3.Connection) -> AsyncIterator[None]:
    """`other` holds the write lock for 0.3 s from now; the block ends once it let go."""
    other.execute("BEGIN IMMEDIATE")

    def commit_soon() -> None:
        time.sleep(0.3)
        other.execute("COMMIT")

    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, commit_soon)
        yield


async def test_a_transaction_cancelled_while_waiting_for_the_lock_leaves_none_open(
    tmp_path: Path,
) -> None:
    (tmp_path / "work").mkdir()
    async with open_store(tmp_path) as store:
        other = _another_connection(tmp_path)
        async with _writing_for_a_moment(other):
            with anyio.move_on_after(0.05):  # a shutdown cancels a progress write
                await store.write_progress("w", [])
        await store.set_control("paused", "x")  # a write of its own, committed at once
        other.execute("PRAGMA busy_timeout=1000")
        other.execute("BEGIN IMMEDIATE")  # and the other worker can write again
        other.execute("ROLLBACK")
        assert other.execute("SELECT value FROM controls").fetchall() == [("x",)]
        other.close()


async def test_a_write_cancelled_while_waiting_is_not_counted_as_the_next_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "work").mkdir()
    async with open_store(tmp_path) as store:
        row = await store.add_file("a.mp4", 10, 1, "fp", "a")
        assert await store.claim("w1", LEASE) is not None
        other = _another_connection(tmp_path)
        async with _writing_for_a_moment(other):
            with anyio.move_on_after(0.05):  # a shutdown cancels a write waiting its turn
                await store.set_control("paused", "x")
            with pytest.raises(ClaimLost):  # that write's change is not this refused one's
                await store.finish_file(row.id, None, by="w2")
        other.close()
        assert (await store.get_file(row.id)).state is FileState.RUNNING


async def test_a_worker_whose_lease_ran_out_records_nothing_more(store: Store) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    assert await store.claim("slow", LEASE) is not None
    await store.set_output(row.id, "archive", OutputState.RUNNING, by="slow")
    assert await store.release("slow") == [row.id]  # its lease ran out
    assert await store.claim("fast", LEASE) is not None
    for late in (
        store.set_output(row.id, "archive", OutputState.PUBLISHING, path="a", size=1,
                         sha256="s", by="slow"),
        store.save_job(row.id, "archive", 0, stream_type="video", decision="encode",
                       state=JobState.DONE, by="slow"),
        store.finish_file(row.id, None, by="slow"),
        store.fail_file(row.id, "boom", by="slow"),
    ):  # fmt: skip
        with pytest.raises(ClaimLost):
            await late
    await store.set_output(row.id, "archive", OutputState.RUNNING, by="fast")
    await store.finish_file(row.id, None, by="fast")
    await store.finish_file(row.id, None, by="fast")  # sent again after a lost reply: as done
    assert (await store.get_file(row.id)).state is FileState.DONE


async def test_claims_are_numbered_and_every_intent_is_kept_under_its_claim(
    store: Store,
) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    first = await store.claim("slow", LEASE)
    assert first is not None and first.claims == 1
    await store.remember_intent(row.id, "archive", "archive/a.mkv", 5, "first", by="slow")
    await store.check_claim(row.id, "slow")
    assert await store.release("slow") == [row.id]  # its lease ran out
    for late in (
        store.remember_intent(row.id, "archive", "archive/a.mkv", 6, "late", by="slow"),
        store.check_claim(row.id, "slow"),
    ):
        with pytest.raises(ClaimLost):
            await late
    second = await store.claim("fast", LEASE)
    assert second is not None and second.claims == 2, "one more than the claim before"
    for _sent in range(2):  # sent again after a lost reply: kept once
        await store.remember_intent(row.id, "archive", "archive/a.mkv", 7, "second", by="fast")
    assert await store.intents(row.id, "archive", "archive/a.mkv") == [
        Intent(1, 5, "first"), Intent(2, 7, "second")
    ]  # fmt: skip
    assert await store.intents(row.id, "preview", "archive/a.mkv") == []
    assert (await store.get_file(row.id)).claims == 2


async def test_postgresql_statements_and_transactions_survive_a_server_restart(
    tmp_path: Path, pg_url: str, pg_cluster: Cluster
) -> None:
    async with open_store(tmp_path, pg_url) as store:
        row = await store.add_file("a.mp4", 10, 1, "fp", "a")
        assert await store.claim("w", LEASE) is not None
        pg_cluster.restart()  # every pooled connection is cut
        assert [found.id for found in await store.files()] == [row.id], "sent again"
        assert await store.release("w") == [row.id], "a transaction run again, whole"
        pg_cluster.restart()
        assert await store.retry() == [], "and again"


async def test_what_the_web_page_reads_queue_gallery_and_days(
    store: Store, backend: str | None
) -> None:
    cheap = await store.add_file("a/chéap.mp4", 100, 1, "fp1", "cheap", cost=_costs(1.0))
    dear = await store.add_file("b/Dear 100%.mp4", 300, 1, "fp2", "dear", cost=_costs(9.0))
    await store.add_file("c/unknown.mp4", 50, 1, "fp3", "unknown")
    assert [row.id for row in await store.queue(2)] == [dear.id, cheap.id], "as claimed"
    assert await store.failures(10) == []
    me = _worker("me")
    for expected in (dear, cheap):
        claimed = await store.claim(me.id, LEASE)
        assert claimed is not None and claimed.id == expected.id
        await store.set_output(claimed.id, "archive", OutputState.DONE, path="archive/x.mkv",
                               size=claimed.size // 10, sha256="00")  # fmt: skip
        await store.save_job(claimed.id, "archive", 0, stream_type="video", decision="encode",
                             state=JobState.DONE, figures=Figures(wall_seconds=1.5))  # fmt: skip
        await store.finish_file(claimed.id, None)
    assert [row.id for row in await store.finished("", 10, 0)] == [cheap.id, dear.id]
    assert [row.id for row in await store.finished("DEAR 100%", 10, 0)] == [dear.id]
    assert await store.finished("0_", 10, 0) == [], "% and _ are plain characters"
    if backend in (None, MEMORY_URL):  # PostgreSQL folds case in the database's locale
        assert [row.id for row in await store.finished("chèap", 10, 0)] == []
        assert [row.id for row in await store.finished("CHÉAP", 10, 0)] == [cheap.id]
    assert [row.id for row in await store.finished("", 1, 1)] == [dear.id], "paged"
    [today] = await store.days()
    assert today.day == int(time.time()) // 86400
    assert (today.files, today.raw_bytes, today.archive_bytes) == (2, 400, 40)
    assert await store.encode_seconds() == 3.0
    broken = await store.add_file("d/broken.mp4", 5, 1, "fp4", "broken")
    await store.fail_file(broken.id, "not a readable media file")
    [failed] = await store.failures(10)
    assert (failed.id, failed.error) == (broken.id, "not a readable media file")


async def test_the_summary_counts_the_estimated_cost_left_and_done(store: Store) -> None:
    costs = {"a.mp4": _costs(30.0), "b.mp4": _costs(50.0), "c.mp4": ABSENT}
    rows = {name: await store.add_file(name, 10, 1, f"fp-{name}", name) for name in costs}
    for name, cost in costs.items():
        await store.set_cost(rows[name].id, cost)
    claimed = await store.claim("one", LEASE)
    assert claimed is not None and claimed.rel_path == "b.mp4", "the costliest first"
    await store.finish_file(claimed.id, None, "one")
    summary = await store.summary()
    assert (summary.waiting_cost, summary.done_cost) == (30.0, 50.0)


async def test_a_files_history_is_written_by_the_calls_that_make_each_step(store: Store) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    before = await store.clock()
    claimed = await store.claim("w", LEASE)
    assert claimed is not None
    await store.note(row.id, EventKind.RESUMED, "archive stream 0: from 1 salvaged part", by="w")
    await store.save_job(row.id, "archive", 0, stream_type="video", decision="encode",
                         state=JobState.RUNNING, by="w")  # fmt: skip
    await store.save_job(row.id, "archive", 0, stream_type="video", decision="encode",
                         state=JobState.DONE, figures=Figures(ratio=0.25), by="w")  # fmt: skip
    await store.save_job(row.id, "archive", 0, stream_type="video", decision="encode",
                         state=JobState.DONE, figures=Figures(ssim_mean=0.99), by="w")  # fmt: skip
    await store.set_output(row.id, "archive", OutputState.RUNNING, by="w")
    await store.set_output(row.id, "archive", OutputState.PUBLISHING, path="archive/a.mkv",
                           size=5, sha256="s", by="w")  # fmt: skip
    await store.set_output(row.id, "archive", OutputState.DONE, by="w")
    await store.finish_file(row.id, None, by="w")
    await store.finish_file(row.id, None, by="w")  # sent again: one step all the same
    await store.note(row.id, EventKind.RAW, "raw file kept")
    history = await store.history(row.id)
    assert [(event.kind, event.worker, event.text) for event in history] == [
        (EventKind.FOUND, None, "in raw/"),
        (EventKind.CLAIMED, "w", "claim 1"),
        (EventKind.RESUMED, "w", "archive stream 0: from 1 salvaged part"),
        (EventKind.STREAM, "w", "archive stream 0 (video): encode, done, 25% of raw"),
        (EventKind.PUBLISHED, "w", "archive → archive/a.mkv"),
        (EventKind.DONE, "w", "every output done"),
        (EventKind.RAW, None, "raw file kept"),
    ], "a step for a job's end only (not its start, nor figures added after it)"
    assert before - 5 < history[1].at <= history[-1].at <= await store.clock() + 1
    assert await store.history(row.id + 1) == []


async def test_history_of_failures_retries_releases_and_leases_that_ran_out(store: Store) -> None:
    row = await store.add_file("a.mp4", 10, 1, "fp", "a")
    await store.claim("w", LEASE)
    await store.release("w", [row.id])
    await store.claim("dead", -1.0)
    await store.release_expired(keep="alive")
    await store.claim("w", LEASE)
    failed = Figures(error="no encoder")
    await store.save_job(row.id, "preview", 1, stream_type="audio", decision="encode",
                         state=JobState.FAILED, figures=failed, by="w")  # fmt: skip
    await store.fail_file(row.id, "preview: no encoder", by="w")
    await store.retry([row.rel_path], by="web page")
    steps = [(event.kind, event.worker, event.text) for event in await store.history(row.id)][1:]
    assert steps == [
        (EventKind.CLAIMED, "w", "claim 1"),
        (EventKind.RELEASED, "w", "given back by its worker; back to pending"),
        (EventKind.CLAIMED, "dead", "claim 2"),
        (EventKind.EXPIRED, "dead", "the lease of worker dead ran out; back to pending"),
        (EventKind.CLAIMED, "w", "claim 3"),
        (EventKind.STREAM, "w", "preview stream 1 (audio): encode, failed: no encoder"),
        (EventKind.FAILED, "w", "preview: no encoder"),
        (EventKind.RETRIED, "web page", "back to pending"),
    ]
    await store.forget_replaced(row.rel_path, keep=0)
    assert await store.history(row.id) == [], "a forgotten file's history goes with it"


async def test_a_stop_asked_is_read_by_the_heartbeat_and_carried_out_by_the_release(
    store: Store,
) -> None:
    me = _worker("w")
    back = await store.add_file("back.mp4", 10, 1, "fp1", "back", _costs(2))
    aside = await store.add_file("aside.mp4", 10, 1, "fp2", "aside", _costs(1))
    with pytest.raises(IllegalMove, match=r"file \d+ is pending: only a running file can stop"):
        await store.ask_stop(back.id, StopAsked.RELEASE)
    with pytest.raises(NoSuchFile):
        await store.ask_stop(aside.id + 1, StopAsked.RELEASE)
    await store.claim(me.id, LEASE)
    await store.claim(me.id, LEASE)
    await store.set_output(back.id, "archive", OutputState.RUNNING, by=me.id)
    await store.ask_stop(back.id, StopAsked.RELEASE)
    await store.ask_stop(aside.id, StopAsked.SET_ASIDE)
    assert await store.heartbeat(me, LEASE) == set(), "its worker is to stop them"
    assert (await store.get_file(back.id)).state is FileState.RUNNING, "until it gives it back"
    assert sorted(await store.release(me.id)) == [back.id, aside.id]
    assert (await store.get_file(back.id)).state is FileState.PENDING
    assert (await store.outputs(back.id))["archive"].state is OutputState.PENDING
    held = await store.get_file(aside.id)
    assert (held.state, held.error, held.worker) == (FileState.FAILED, SET_ASIDE_REASON, None)
    assert [(event.kind, event.worker) for event in (await store.history(aside.id))[2:]] == [
        (EventKind.STOP_ASKED, "web page"), (EventKind.SET_ASIDE, "w"),
    ]  # fmt: skip
    assert (await store.history(back.id))[-1].text == (
        "stopped as asked from the web page; back in the queue"
    )
    # A stopped file waits after those it waited with; claimed again, it is not to stop.
    other = await store.add_file("other.mp4", 10, 1, "fp3", "other", _costs(1))
    assert [row.id for row in await store.queue(2)] == [other.id, back.id]
    await store.claim(me.id, LEASE)
    await store.claim(me.id, LEASE)
    assert await store.heartbeat(me, LEASE) == {other.id, back.id}
    assert await store.retry([aside.rel_path]) == [aside.rel_path]


async def test_a_stop_its_worker_could_not_give_back_ends_when_its_lease_runs_out(
    store: Store,
) -> None:
    me = _worker("w")
    stopped = await store.add_file("stopped.mp4", 10, 1, "fp1", "stopped", _costs(2))
    going = await store.add_file("going.mp4", 10, 1, "fp2", "going", _costs(1))
    await store.claim(me.id, -1.0)  # both leases ran out already …
    await store.claim(me.id, -1.0)
    await store.ask_stop(stopped.id, StopAsked.RELEASE)
    assert await store.heartbeat(me, LEASE) == {going.id}, "… and only one is renewed"
    # Its worker's give-back failed (a full disk): its own expiry pass carries out the stop.
    assert await store.release_expired(keep=me.id) == [stopped.id]
    assert {row.id: row.state for row in await store.files()} == {
        stopped.id: FileState.PENDING, going.id: FileState.RUNNING,
    }  # fmt: skip


async def test_an_estimate_leaves_a_file_moved_to_the_front_there(store: Store) -> None:
    fresh = await store.add_file("fresh.mp4", 10, 1, "fp1", "fresh")  # not estimated yet
    other = await store.add_file("other.mp4", 10, 1, "fp2", "other", Estimate(Rank.UNREADABLE))
    await store.move_to_front(fresh.id)
    await store.set_cost(fresh.id, _costs(3))  # an estimate that was under way meanwhile
    await store.set_cost(other.id, Estimate(Rank.UNREADABLE))
    assert [row.id for row in await store.queue(2)] == [fresh.id, other.id]


async def test_a_file_moved_to_the_front_is_claimed_first(store: Store) -> None:
    costly = await store.add_file("costly.mp4", 10, 1, "fp1", "costly", _costs(100))
    unread = await store.add_file("unread.mp4", 10, 1, "fp2", "unread", Estimate(Rank.UNREADABLE))
    cheap = await store.add_file("cheap.mp4", 10, 1, "fp3", "cheap", _costs(1))
    fresh = await store.add_file("fresh.mp4", 10, 1, "fp4", "fresh")  # not estimated yet
    assert [row.id for row in await store.queue(4)] == [unread.id, costly.id, cheap.id, fresh.id]
    await store.move_to_front(cheap.id)
    await store.move_to_front(fresh.id)
    assert [row.id for row in await store.queue(4)] == [cheap.id, fresh.id, unread.id, costly.id]
    assert (await store.history(cheap.id))[-1].kind is EventKind.FRONT
    claimed = await store.claim("w", LEASE)
    assert claimed is not None and claimed.id == cheap.id
    with pytest.raises(IllegalMove, match="is running: only a pending file can move to the front"):
        await store.move_to_front(cheap.id)
