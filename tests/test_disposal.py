"""`after_done` on real files: the raw file is taken aside, proven whole, then deleted or moved;
whatever else is found is put back and kept, and new footage under the old name is untouched."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from videoarchiver.disposal import finish_raw_action, taken_path
from videoarchiver.layout import Layout
from videoarchiver.state import FileRow, FileState

pytestmark = pytest.mark.anyio
OLD = b"old recording " * 100_000
NEW = b"new recording " * 100_000


def _row(content: bytes | None, action: str, file_id: int = 7) -> FileRow:
    return FileRow(
        id=file_id, rel_path="cam/VID_0001.mp4", size=len(OLD), mtime_ns=0, fingerprint="f",
        stem="cam/VID_0001", state=FileState.DONE, error=None, error_detail=None, warnings=(),
        raw_action=f"{action} pending",
        sha256=None if content is None else hashlib.sha256(content).hexdigest(),
    )  # fmt: skip


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    (tmp_path / "raw" / "cam").mkdir(parents=True)
    return Layout(tmp_path)


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _raw(layout: Layout) -> Path:
    return layout.raw / "cam" / "VID_0001.mp4"


@pytest.mark.parametrize("action", ["delete", "move"])
async def test_what_was_archived_goes_and_nothing_else(layout: Layout, action: str) -> None:
    _raw(layout).write_bytes(OLD)
    done = (await finish_raw_action(layout, _row(OLD, action))).action
    assert not _raw(layout).exists()
    assert _names(_raw(layout).parent) == []
    if action == "move":
        assert done == "moved to done/cam/VID_0001.mp4"
        assert (layout.root / "done" / "cam" / "VID_0001.mp4").read_bytes() == OLD
    else:
        assert done == "deleted"


@pytest.mark.parametrize("action", ["delete", "move"])
async def test_new_footage_under_the_old_name_is_put_back_untouched(
    layout: Layout, action: str
) -> None:
    """The camera's counter was reset: `VID_0001.mp4` is another recording now."""
    _raw(layout).write_bytes(NEW)
    inode = _raw(layout).stat().st_ino
    outcome = await finish_raw_action(layout, _row(OLD, action))
    assert outcome.action.startswith("kept: its content is not what was archived")
    assert outcome.other_content, "to be taken as new footage"
    assert (_raw(layout).read_bytes(), _raw(layout).stat().st_ino) == (NEW, inode)
    assert _names(_raw(layout).parent) == ["VID_0001.mp4"], "nothing left aside"
    assert not (layout.root / "done").exists()


async def test_an_edit_in_the_middle_keeps_the_raw_file(layout: Layout) -> None:
    """Same size, same first and last MiB: only the whole content tells."""
    edited = bytearray(OLD)
    edited[len(OLD) // 2 : len(OLD) // 2 + 65536] = b"\0" * 65536
    _raw(layout).write_bytes(bytes(edited))
    done = (await finish_raw_action(layout, _row(OLD, "delete"))).action
    assert done.startswith("kept: its content is not what was archived")
    assert _raw(layout).read_bytes() == edited


async def test_no_whole_sha256_recorded_keeps_the_raw_file(layout: Layout) -> None:
    _raw(layout).write_bytes(OLD)
    outcome = await finish_raw_action(layout, _row(None, "delete"))
    assert outcome.action == (
        "kept: no SHA-256 of its whole content was recorded when it was processed"
    )
    assert not outcome.other_content
    assert _raw(layout).read_bytes() == OLD


async def test_taken_aside_before_a_kill_then_new_footage_arrived(layout: Layout) -> None:
    """A kill left the archived file under its hidden name; meanwhile a new recording took
    the old name: the archived one goes, the new one stays."""
    taken = taken_path(_raw(layout), 7)
    taken.write_bytes(OLD)
    _raw(layout).write_bytes(NEW)
    assert (await finish_raw_action(layout, _row(OLD, "delete"))).action == "deleted"
    assert _names(_raw(layout).parent) == ["VID_0001.mp4"]
    assert _raw(layout).read_bytes() == NEW


async def test_changed_content_found_aside_goes_beside_new_footage(layout: Layout) -> None:
    taken = taken_path(_raw(layout), 7)
    taken.write_bytes(NEW)
    _raw(layout).write_bytes(b"a third recording")
    done = (await finish_raw_action(layout, _row(OLD, "delete"))).action
    assert done.endswith("; it is at VID_0001.mp4.kept-7")
    assert (_raw(layout).parent / "VID_0001.mp4.kept-7").read_bytes() == NEW
    assert _raw(layout).read_bytes() == b"a third recording"


async def test_put_back_before_a_kill_is_not_put_back_twice(layout: Layout) -> None:
    """A kill between the link back and the removal of the hidden name."""
    _raw(layout).write_bytes(NEW)
    os.link(_raw(layout), taken_path(_raw(layout), 7))
    done = (await finish_raw_action(layout, _row(OLD, "delete"))).action
    assert done == "kept: its content is not what was archived (it changed after it was processed)"
    assert _names(_raw(layout).parent) == ["VID_0001.mp4"]


async def test_a_symlink_goes_as_the_link_and_its_target_stays(layout: Layout) -> None:
    target = layout.root / "elsewhere.mp4"
    target.write_bytes(OLD)
    _raw(layout).symlink_to(target)
    assert (await finish_raw_action(layout, _row(OLD, "delete"))).action == "deleted"
    assert _names(_raw(layout).parent) == [] and target.read_bytes() == OLD


async def test_gone_from_raw_before_it_could_be_moved(layout: Layout) -> None:
    assert (await finish_raw_action(layout, _row(OLD, "move"))).action == "kept: no longer in raw/"
    assert (await finish_raw_action(layout, _row(OLD, "delete"))).action == "deleted"


async def test_two_workers_finishing_the_same_action_agree(layout: Layout) -> None:
    """Two workers starting at once each finish the pending actions they find (here one
    that a kill left with the raw file taken aside)."""
    taken_path(_raw(layout), 7).write_bytes(OLD)
    row = _row(OLD, "delete")
    first, second = await asyncio.gather(
        finish_raw_action(layout, row), finish_raw_action(layout, row)
    )
    assert (first.action, second.action) == ("deleted", "deleted")
    assert _names(_raw(layout).parent) == []
