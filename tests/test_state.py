from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from videoarchiver.state import StateDB
from videoarchiver.state.database import DONE, FAILED, PENDING, RUNNING
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
        first = await state.add_file("a.mp4", 10, 1, "a")
        assert await state.find_file("a.mp4", 10, 1) == first
        assert await state.find_file("a.mp4", 11, 1) is None
        assert await state.stem_taken("a")
        # New content at the same path while the old one is unfinished: the old row goes.
        second = await state.add_file("a.mp4", 11, 2, "a.mp4")
        assert [row.id for row in await state.files()] == [second.id]
        # A finished row stays as history.
        await state.set_file_state(second.id, DONE)
        third = await state.add_file("a.mp4", 12, 3, "a.mp4.2")
        assert {row.id for row in await state.files()} == {second.id, third.id}


async def test_interrupted_work_is_requeued(tmp_path: Path) -> None:
    async with StateDB.open(tmp_path / "s.db") as state:
        row = await state.add_file("a.mp4", 10, 1, "a")
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
