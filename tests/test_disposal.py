"""`after_done` on real files: the raw file is taken aside, proven whole, then deleted or moved;
whatever else is found is put back and kept, and new footage under the old name is untouched."""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest

from videoarchiver.disposal import (
    OTHER_FOOTAGE,
    Outcome,
    finish_raw_action,
    quality_shortfall,
    taken_path,
)
from videoarchiver.errors import StateError
from videoarchiver.layout import Layout
from videoarchiver.state import Figures, FileRow, FileState, JobState, StreamJobRow

pytestmark = pytest.mark.anyio
OLD = b"old recording " * 100_000
NEW = b"new recording " * 100_000
ARCHIVED_AT = 1_700_000_000_000_000_000  # the raw file's mtime when it was archived


def _row(content: bytes | None, action: str, file_id: int = 7) -> FileRow:
    """The record of `raw/cam/VID_0001.mp4` archived with `content` (None: before whole
    hashes were recorded), its `action` pending."""
    return FileRow(
        id=file_id, rel_path="cam/VID_0001.mp4", size=len(OLD), mtime_ns=ARCHIVED_AT,
        fingerprint="f", stem="cam/VID_0001", state=FileState.DONE, error=None,
        error_detail=None, warnings=(), raw_action=f"{action} pending",
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


def _write(path: Path, content: bytes, mtime_ns: int = ARCHIVED_AT) -> None:
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def _finish(layout: Layout, row: FileRow) -> Outcome:
    outcome = await finish_raw_action(layout, row)
    assert outcome is not None, "raw/ is there"
    return outcome


@pytest.mark.parametrize("action", ["delete", "move"])
async def test_what_was_archived_goes_and_nothing_else(layout: Layout, action: str) -> None:
    _write(_raw(layout), OLD)
    done = (await _finish(layout, _row(OLD, action))).action
    assert _names(_raw(layout).parent) == []
    if action == "move":
        assert done == "moved to done/cam/VID_0001.mp4"
        assert (layout.root / "done" / "cam" / "VID_0001.mp4").read_bytes() == OLD
    else:
        assert done == "deleted"


@pytest.mark.parametrize("action", ["delete", "move"])
async def test_new_footage_under_the_old_name_is_not_touched(layout: Layout, action: str) -> None:
    """The camera's counter was reset: `VID_0001.mp4` is another recording now."""
    _write(_raw(layout), NEW + b"longer", ARCHIVED_AT + 10**9)
    before = _raw(layout).stat()
    outcome = await _finish(layout, _row(OLD, action))
    assert outcome == Outcome(f"not {action}d: {OTHER_FOOTAGE}")
    after = _raw(layout).stat()
    assert (before.st_ino, before.st_ctime_ns) == (after.st_ino, after.st_ctime_ns), "untouched"
    assert _names(_raw(layout).parent) == ["VID_0001.mp4"]
    assert not (layout.root / "done").exists()


@pytest.mark.parametrize("action", ["delete", "move"])
async def test_other_content_of_the_same_size_is_put_back(layout: Layout, action: str) -> None:
    """Edited in the middle (its ends, which the fingerprint reads, and its size kept), or
    another recording of the same size: only the whole content tells."""
    edited = bytearray(OLD)
    edited[len(OLD) // 2 : len(OLD) // 2 + 65536] = b"\0" * 65536
    _write(_raw(layout), bytes(edited), ARCHIVED_AT + 10**9)
    outcome = await _finish(layout, _row(OLD, action))
    assert outcome == Outcome(
        "kept: its content is not what was archived (it changed after it was processed)", True
    )
    assert _raw(layout).read_bytes() == edited
    assert _names(_raw(layout).parent) == ["VID_0001.mp4"], "nothing left aside"
    assert not (layout.root / "done").exists()


async def test_no_whole_sha256_recorded_keeps_the_raw_file(layout: Layout) -> None:
    _write(_raw(layout), OLD)
    outcome = await _finish(layout, _row(None, "delete"))
    assert outcome == Outcome(
        "kept: no SHA-256 of its whole content was recorded when it was processed"
    )
    assert _raw(layout).read_bytes() == OLD


async def test_taken_aside_before_a_kill_then_new_footage_arrived(layout: Layout) -> None:
    """A kill left the archived file under its hidden name; meanwhile a new recording took
    the old name: the archived one goes, the new one stays."""
    taken_path(_raw(layout), 7).write_bytes(OLD)
    _raw(layout).write_bytes(NEW)
    assert (await _finish(layout, _row(OLD, "delete"))).action == "deleted"
    assert _names(_raw(layout).parent) == ["VID_0001.mp4"]
    assert _raw(layout).read_bytes() == NEW


async def test_changed_content_found_aside_goes_beside_new_footage(layout: Layout) -> None:
    taken_path(_raw(layout), 7).write_bytes(NEW)
    _raw(layout).write_bytes(b"a third recording")
    done = (await _finish(layout, _row(OLD, "delete"))).action
    assert done.endswith("; it is at VID_0001.mp4.kept-7")
    assert (_raw(layout).parent / "VID_0001.mp4.kept-7").read_bytes() == NEW
    assert _raw(layout).read_bytes() == b"a third recording"


async def test_a_name_too_long_for_its_kept_name_is_shortened(layout: Layout) -> None:
    raw = layout.raw / ("v" * 250 + ".mp4")
    taken_path(raw, 7).write_bytes(NEW)
    raw.write_bytes(b"a third recording")
    done = (await _finish(layout, replace(_row(OLD, "delete"), rel_path=raw.name))).action
    [kept] = [name for name in _names(layout.raw) if name.endswith(".kept-7")]
    assert len(kept.encode()) <= 255 and kept.startswith("v" * 200) and done.endswith(kept)


async def test_put_back_before_a_kill_is_not_put_back_twice(layout: Layout) -> None:
    """A kill between the link back and the removal of the hidden name."""
    _raw(layout).write_bytes(NEW)
    os.link(_raw(layout), taken_path(_raw(layout), 7))
    done = (await _finish(layout, _row(OLD, "delete"))).action
    assert done == "kept: its content is not what was archived (it changed after it was processed)"
    assert _names(_raw(layout).parent) == ["VID_0001.mp4"]


async def test_a_symlink_goes_as_the_link_and_its_target_stays(layout: Layout) -> None:
    target = layout.root / "elsewhere.mp4"
    _write(target, OLD)
    _raw(layout).symlink_to(target)
    assert (await _finish(layout, _row(OLD, "delete"))).action == "deleted"
    assert _names(_raw(layout).parent) == [] and target.read_bytes() == OLD


async def test_gone_from_raw_before_it_could_be_moved(layout: Layout) -> None:
    assert (await _finish(layout, _row(OLD, "move"))).action == "kept: no longer in raw/"
    assert (await _finish(layout, _row(OLD, "delete"))).action == "deleted"


async def test_nothing_is_done_while_raw_is_not_there(tmp_path: Path) -> None:
    """An unmounted share: the action stays pending (nothing says it was done)."""
    assert await finish_raw_action(Layout(tmp_path), _row(OLD, "delete")) is None


async def test_a_state_that_cannot_record_it_stops_it_and_puts_the_file_back(
    layout: Layout,
) -> None:
    _write(_raw(layout), OLD)

    def gone() -> None:
        raise StateError("the state database was deleted")

    with pytest.raises(StateError):
        await finish_raw_action(layout, _row(OLD, "delete"), gone)
    assert _names(_raw(layout).parent) == ["VID_0001.mp4"] and _raw(layout).read_bytes() == OLD


async def test_two_workers_finishing_the_same_action_agree(layout: Layout) -> None:
    """Two workers starting at once each finish the pending actions they find (here one
    that a kill left with the raw file taken aside)."""
    taken_path(_raw(layout), 7).write_bytes(OLD)
    row = _row(OLD, "delete")
    first, second = await asyncio.gather(_finish(layout, row), _finish(layout, row))
    assert (first.action, second.action) == ("deleted", "deleted")
    assert _names(_raw(layout).parent) == []


def test_every_re_encoded_video_stream_must_reach_the_minimum_quality() -> None:
    def job(index: int, kind: str, decision: str, figures: Figures) -> StreamJobRow:
        return StreamJobRow(index, kind, decision, JobState.DONE, (), figures)

    good = Figures(ssim_mean=0.97, ssim_worst=0.9, ssim_note="6 frames at 2 sample points")
    jobs = [
        job(0, "video", "encode", good),
        job(1, "video", "copy", Figures()),  # the raw stream itself: nothing to measure
        job(2, "audio", "encode", Figures()),
        job(3, "video", "encode", Figures(ssim_mean=0.85, ssim_worst=0.8, ssim_note="3 frames")),
        job(4, "video", "encode", Figures(ssim_note="SSIM of stream 4 failed: no frames")),
    ]
    assert quality_shortfall(jobs[:3], 0.9) is None
    assert quality_shortfall(jobs, 0.9) == (
        "stream 3: SSIM 0.8500 (worst frame 0.8000) below archive.min_ssim 0.9; "
        "stream 4: quality not measured: SSIM of stream 4 failed: no frames"
    )
    assert quality_shortfall(jobs[:4], 0.8) is None
