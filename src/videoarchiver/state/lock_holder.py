"""Who holds the SQLite state's write lock: a process id and its command line, for the line
a worker logs while it waits for that lock.

SQLite's unix VFS locks bytes of its files with POSIX record locks (`fcntl` F_SETLK), and
F_GETLK names the process holding a lock in the way of one asked about (never one of the
asking process's own). In WAL mode (the store's) a writer holds an exclusive lock on one byte
of the `-shm` file, WAL_WRITE_LOCK: byte 120 (os_unix.c: the shm locks start at
UNIX_SHM_BASE = (22 + SQLITE_SHM_NLOCK) * 4; wal.c: WAL_WRITE_LOCK = 0). In rollback mode a
writer holds RESERVED_BYTE, then PENDING_BYTE, of the database file itself and, committing,
the SHARED range after them (os.h: PENDING_BYTE = 0x40000000; readers hold that range shared).

The files are opened when first asked about and kept open until the store is closed, after
its connection: closing any descriptor of a file drops every POSIX lock this process holds on
it, SQLite's own among them (sqlite.org, "How To Corrupt An SQLite Database File", 2.2).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

SHM_WRITE_LOCK = 120
PENDING_BYTE = 0x40000000
RESERVED_BYTE = PENDING_BYTE + 1
SHARED_FIRST = PENDING_BYTE + 2
SHARED_SIZE = 510
HEADER_BYTES = 100
WAL_FORMAT = 2  # the header's file format versions (bytes 18 and 19) in WAL mode
# Linux's `struct flock` on 64-bit machines: type, whence, start, length, pid.
FLOCK = struct.Struct("hhqqi")
COMMAND_CHARS = 200  # of a command line, in the log


def shm_of(database: Path) -> Path:
    """The `-shm` file SQLite keeps beside a database in WAL mode."""
    return database.with_name(f"{database.name}-shm")


@dataclass(frozen=True)
class LockBytes:
    """Bytes of the database (or of its `-shm` file) asked about as a lock of `kind` would
    be: F_WRLCK is in the way of any holder, F_RDLCK only of an exclusive one."""

    shm: bool
    start: int
    length: int
    kind: int


@dataclass(frozen=True)
class Holder:
    """The process holding the lock; `pid` None when it cannot be named (one of another PID
    namespace, or a lock of an open file description rather than of a process)."""

    pid: int | None
    command: str | None = None


def is_wal(header: bytes) -> bool:
    """Whether a database header (its first 100 bytes) says WAL mode."""
    return len(header) >= 20 and header[18] == header[19] == WAL_FORMAT


def writer_bytes(header: bytes) -> tuple[LockBytes, ...]:
    """Where whoever keeps others from writing holds its lock, by the database's mode: in
    WAL mode the `-shm` write lock (or the database's own bytes, held exclusively by a
    connection in exclusive locking mode); in rollback mode a writer's RESERVED or PENDING
    byte, or a reader's share of the range a commit needs whole."""
    only_writers = fcntl.F_RDLCK
    legacy = (
        LockBytes(False, RESERVED_BYTE, 1, only_writers),
        LockBytes(False, PENDING_BYTE, 1, only_writers),
    )
    if is_wal(header):
        return (
            LockBytes(True, SHM_WRITE_LOCK, 1, fcntl.F_WRLCK),
            *legacy,
            LockBytes(False, SHARED_FIRST, SHARED_SIZE, only_writers),
        )
    return (*legacy, LockBytes(False, SHARED_FIRST, SHARED_SIZE, fcntl.F_WRLCK))


def request(lock: LockBytes) -> bytes:
    """The `struct flock` F_GETLK is given for `lock`."""
    return FLOCK.pack(lock.kind, os.SEEK_SET, lock.start, lock.length, 0)


def holder_in(answer: bytes) -> Holder | None:
    """The holder F_GETLK's answer names (None: nothing is in the way)."""
    kind, _whence, _start, _length, pid = FLOCK.unpack(answer)
    if kind == fcntl.F_UNLCK:
        return None
    return Holder(pid if pid > 0 else None)


def command_line(raw: bytes) -> str | None:
    """`/proc/<pid>/cmdline` (arguments ended by NULs) as one line of printable characters
    (a newline in an argument is a space), cut to COMMAND_CHARS; None when empty (a zombie)."""
    text = raw.replace(b"\0", b" ").decode(errors="backslashreplace")
    text = " ".join("".join(char if char.isprintable() else " " for char in text).split())
    if len(text) > COMMAND_CHARS:
        text = text[: COMMAND_CHARS - 1] + "…"
    return text or None


def held_by(holder: Holder | None, seconds: float) -> str:
    """`held by pid 1234 (sqlite3 work/state.sqlite3) for 45 s`, or by another process."""
    if holder is None or holder.pid is None:
        who = "another process"
    elif holder.command is None:
        who = f"pid {holder.pid}"
    else:
        who = f"pid {holder.pid} ({holder.command})"
    return f"held by {who} for {seconds:.0f} s"


def _command_of(pid: int) -> str | None:
    """The command line of process `pid`, if this process may read it."""
    try:
        return command_line(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:  # gone, or hidden (another user's, with hidepid or ProtectProc)
        return None


class LockProbe:
    """Asks the kernel who holds the write lock of one SQLite database."""

    def __init__(self, database: Path) -> None:
        self._paths = {False: database, True: shm_of(database)}
        self._fds: dict[bool, int] = {}

    def _fd(self, shm: bool) -> int | None:
        if shm not in self._fds:
            try:
                self._fds[shm] = os.open(self._paths[shm], os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
        return self._fds[shm]

    def holder(self) -> Holder | None:
        """The process holding the lock now (None: none found; it may have let go)."""
        database = self._fd(False)
        if database is None:
            return None
        try:
            header = os.pread(database, HEADER_BYTES, 0)
        except OSError:
            return None
        for lock in writer_bytes(header):
            fd = self._fd(lock.shm)
            if fd is None:
                continue
            try:
                found = holder_in(fcntl.fcntl(fd, fcntl.F_GETLK, request(lock)))
            except OSError:
                continue
            if found is not None:
                return found if found.pid is None else Holder(found.pid, _command_of(found.pid))
        return None

    def close(self) -> None:
        """Only once this process holds no lock on the files (its connection is closed)."""
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
