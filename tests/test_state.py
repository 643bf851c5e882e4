from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from videoarchiver.outputs import adopt
from videoarchiver.state import StateDB
from videoarchiver.state.database import DONE, FAILED, PENDING, PUBLISHING, RUNNING
from videoarchiver.state.migrations import MIGRATIONS

pytestmark = pytest.mark.anyio


async def test_new_database_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    async with StateDB.open(path):
        pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    async with StateDB.open(path) as state:  # reopening applies nothing twice
        assert await state.files() == []


async def test_file_identity_and_replaced_content(tmp_path: Path) -> None:
    async with StateDB.open(tmp_path / "s.db") as state:
        first = await state.add_file("a.mp4", 10, 1, "fp1", "a")
        assert await state.find_files(["a.mp4", "b.mp4"]) == {"a.mp4": [first]}
        assert await state.stem_taken("a")
        # New content at the same path while the old one is unfinished: the old row goes,
        # and its id is never given to another file.
        second = await state.add_file("a.mp4", 11, 2, "fp2", "a.mp4")
        assert await state.forget_replaced("a.mp4", keep=second.id, busy=()) == [first.id]
        assert [row.id for row in await state.files()] == [second.id]
        third = await state.add_file("b.mp4", 12, 3, "fp3", "b")
        assert third.id > second.id > first.id
        # A finished row, or one that published an output, stays as history.
        await state.set_done(second.id, None)
        await state.set_output(third.id, "archive", DONE, path="/x", size=1, sha256="s")
        fourth = await state.add_file("a.mp4", 12, 3, "fp4", "a.mp4.2")
        assert await state.forget_replaced("a.mp4", keep=fourth.id, busy=()) == []
        assert await state.forget_replaced("b.mp4", keep=fourth.id, busy=()) == []
        assert (await state.get_file(third.id)).state == FAILED, "it published: kept, failed"
        # Nor is a row a task works on, or one with a published montage sheet.
        fifth = await state.add_file("c.mp4", 1, 1, "fp5", "c")
        sixth = await state.add_file("c.mp4", 2, 2, "fp6", "c.mp4")
        assert await state.forget_replaced("c.mp4", keep=0, busy=[fifth.id]) == [sixth.id]
        await state.save_job(fifth.id, "montage", 0, kind="video", decision="seek",
                             state=RUNNING, path="/s/c.jpg", sha256="s")  # fmt: skip
        assert await state.forget_replaced("c.mp4", keep=0, busy=()) == []
        # `touch`: the same content with a new mtime keeps its row.
        await state.set_identity(fourth.id, 99, "fp4")
        assert (await state.get_file(fourth.id)).mtime_ns == 99


async def test_files_of_an_older_schema_migrate_and_ids_stop_being_reused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")
        for number, migration in enumerate(MIGRATIONS[:5], start=1):
            db.executescript(f"{migration.script}; PRAGMA user_version = {number};")
        db.execute(
            "INSERT INTO files (rel_path, size, mtime_ns, stem, created_at, updated_at)"
            " VALUES ('a.mp4', 10, 1, 'a', 0, 0), ('b.mp4', 20, 2, 'b', 0, 0)"
        )
        db.execute(
            "INSERT INTO stream_jobs (file_id, output, stream_index, kind, decision, updated_at)"
            " VALUES (2, 'archive', 0, 'video', 'encode', 0)"
        )
    async with StateDB.open(path) as state:
        rows = await state.files()
        assert [(r.id, r.rel_path, r.fingerprint) for r in rows] == [
            (1, "a.mp4", None), (2, "b.mp4", None)
        ]  # fmt: skip
        assert list(await state.jobs(2, "archive")) == [0], "stream jobs survive the rebuild"
        assert await state.forget_replaced("b.mp4", keep=0, busy=()) == [2]
        assert (await state.add_file("c.mp4", 1, 1, "fp", "c")).id == 3, "id 2 is not reused"


async def test_interrupted_work_is_requeued(tmp_path: Path) -> None:
    async with StateDB.open(tmp_path / "s.db") as state:
        row = await state.add_file("a.mp4", 10, 1, "fp", "a")
        await state.set_file_state(row.id, RUNNING)
        await state.set_output(row.id, "archive", RUNNING)
        await state.save_job(row.id, "archive", 0, kind="video", decision="encode", state=RUNNING,
                             notes=["n"], raw_bytes=5)  # fmt: skip
        await state.save_job(row.id, "archive", 1, kind="audio", decision="copy", state=FAILED)
        await state.requeue_interrupted()
        assert (await state.get_file(row.id)).state == PENDING
        assert (await state.outputs(row.id))["archive"].state == PENDING
        jobs = await state.jobs(row.id, "archive")
        assert (jobs[0].state, jobs[0].notes, jobs[0].raw_bytes) == (PENDING, ("n",), 5)
        assert jobs[1].state == FAILED


async def test_an_output_published_but_not_recorded_is_adopted_only_when_its_bytes_match(
    tmp_path: Path,
) -> None:
    published = tmp_path / "a.mkv"
    published.write_bytes(b"archive bytes")
    sha = hashlib.sha256(b"archive bytes").hexdigest()
    async with StateDB.open(tmp_path / "s.db") as state:
        row = await state.add_file("a.mp4", 10, 1, "fp", "a")
        await state.set_output(row.id, "archive", PUBLISHING, path=str(published), size=13,
                               sha256=sha)  # fmt: skip
        await state.set_output(row.id, "preview", PUBLISHING, path=str(published), size=13,
                               sha256="other")  # fmt: skip
        outputs = await state.outputs(row.id)
        assert await adopt(state, outputs["archive"]) is True
        assert await adopt(state, outputs["preview"]) is False, "not our bytes: left alone"
        after = await state.outputs(row.id)
        assert (after["archive"].state, after["preview"].state) == (DONE, PUBLISHING)
