"""Waiting for disk space: doubling waits, reset by work that completes."""

from __future__ import annotations

import errno
from pathlib import Path

from test_cli import tmpfs
from videoarchiver.errors import ProcessError
from videoarchiver.space import (
    MAX_WAIT_SECONDS,
    SpaceBackoff,
    headroom,
    short_of_room,
    short_of_space,
)


def test_waits_double_up_to_an_hour_and_end_when_work_completes() -> None:
    now = [100.0]
    backoff = SpaceBackoff(5, clock=lambda: now[0])
    assert backoff.remaining == 0
    assert backoff.short() == 5
    now[0] += 2
    assert backoff.short() == 3, "more failures within a wait do not make it longer"
    waits = []
    for _ in range(3):
        now[0] += backoff.remaining
        waits.append(backoff.short())
    assert waits == [10, 20, 40]
    for _ in range(20):
        now[0] += backoff.remaining
        backoff.short()
    assert backoff.remaining == MAX_WAIT_SECONDS
    backoff.recovered()
    assert backoff.remaining == 0 and backoff.short() == 5


def test_full_disks_are_recognised_in_every_form() -> None:
    assert short_of_space(OSError(errno.ENOSPC, "No space left on device"))
    assert short_of_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert short_of_space(ProcessError("mux failed (exit 1): ... No space left on device"))
    assert not short_of_space(OSError(errno.EACCES, "Permission denied"))


def test_headroom_is_the_setting_but_at_most_a_twentieth_of_the_disk() -> None:
    assert headroom(2 << 30, 10 << 40) == 2 << 30
    assert headroom(2 << 30, 8 << 20) == (8 << 20) // 20
    assert headroom(0, 10 << 40) == 0


def test_a_disk_is_short_of_room_below_its_headroom(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    with tmpfs(disk, "1m"):
        assert short_of_room([tmp_path / "absent", disk], 2 << 30) is None
        (disk / "ballast").write_bytes(b"\0" * (1000 << 10))  # 24 KiB left of 1 MiB
        short = short_of_room([tmp_path / "absent", disk], 2 << 30)
        assert short is not None
        folder, free, kept = short
        assert (folder, kept) == (disk, (1 << 20) // 20) and free < kept
        assert short_of_room([disk], 0) is None, "min_free_space = 0 keeps nothing"
