"""Who holds the SQLite state's write lock: the kernel's answer, and how it is told."""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import sys
from pathlib import Path

import pytest

from sqlite_locks import write_lock_held
from videoarchiver.state.lock_holder import (
    COMMAND_CHARS,
    FLOCK,
    SHM_WRITE_LOCK,
    Holder,
    LockBytes,
    LockProbe,
    command_line,
    held_by,
    holder_in,
    is_wal,
    request,
    writer_bytes,
)


def _database(path: Path, journal: str) -> Path:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA journal_mode={journal}")
        db.execute("CREATE TABLE t (x)")
    return path


def _header(path: Path) -> bytes:
    return path.read_bytes()[:100]


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_the_holder_of_the_write_lock_is_named_with_its_command_line(
    tmp_path: Path, journal: str
) -> None:
    database = _database(tmp_path / "state.sqlite3", journal)
    probe = LockProbe(database)
    try:
        assert probe.holder() is None, "nobody holds it"
        with write_lock_held(database) as holder:
            found = probe.holder()
            assert found is not None and found.pid == holder.pid
            assert found.command is not None, "its command line, on one line"
            assert found.command.startswith(f"{sys.executable} -c import sqlite3, sys db =")
        assert probe.holder() is None, "let go"
    finally:
        probe.close()


def test_no_database_no_holder(tmp_path: Path) -> None:
    assert LockProbe(tmp_path / "missing.sqlite3").holder() is None


def test_the_mode_is_read_from_the_header(tmp_path: Path) -> None:
    wal = _header(_database(tmp_path / "wal.sqlite3", "wal"))
    rollback = _header(_database(tmp_path / "rollback.sqlite3", "delete"))
    assert is_wal(wal) and not is_wal(rollback) and not is_wal(b"")
    assert writer_bytes(wal)[0] == LockBytes(True, SHM_WRITE_LOCK, 1, fcntl.F_WRLCK)
    assert not any(lock.shm for lock in writer_bytes(rollback)), "no -shm file to ask"
    # Readers share the SHARED range in either mode: only a rollback commit waits for them.
    assert writer_bytes(wal)[-1].kind == fcntl.F_RDLCK
    assert writer_bytes(rollback)[-1].kind == fcntl.F_WRLCK


def test_the_kernels_answer() -> None:
    asked = request(LockBytes(True, SHM_WRITE_LOCK, 1, fcntl.F_WRLCK))
    assert FLOCK.unpack(asked) == (fcntl.F_WRLCK, 0, SHM_WRITE_LOCK, 1, 0)
    assert holder_in(FLOCK.pack(fcntl.F_UNLCK, 0, SHM_WRITE_LOCK, 1, 0)) is None
    assert holder_in(FLOCK.pack(fcntl.F_WRLCK, 0, SHM_WRITE_LOCK, 1, 1234)) == Holder(1234)
    # A process of another PID namespace (0), an open file description's lock (-1).
    for unnamed in (0, -1):
        assert holder_in(FLOCK.pack(fcntl.F_WRLCK, 0, 120, 1, unnamed)) == Holder(None)


def test_a_command_line_is_one_printable_line() -> None:
    assert command_line(b"sqlite3\0work/state.sqlite3\0") == "sqlite3 work/state.sqlite3"
    assert command_line(b"python3\0-c\0import x\nx.run()\0") == "python3 -c import x x.run()"
    assert command_line(b"caf\xe9\0\x1b[2J\0") == "caf\\xe9 [2J"
    assert command_line(b"") is None, "a zombie has none"
    long = command_line(b"x" * 1000)
    assert long is not None and len(long) == COMMAND_CHARS and long.endswith("…")


def test_what_the_warning_says() -> None:
    named = Holder(1234, "sqlite3 work/state.sqlite3")
    assert held_by(named, 45.2) == "held by pid 1234 (sqlite3 work/state.sqlite3) for 45 s"
    assert held_by(Holder(1234), 45) == "held by pid 1234 for 45 s", "its command unreadable"
    assert held_by(Holder(None), 45) == "held by another process for 45 s"
    assert held_by(None, 45) == "held by another process for 45 s", "not found"
