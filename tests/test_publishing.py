"""Publishing an output under a claim: what it may put in place, and over what."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from videoarchiver.errors import ClaimLost, PublishError
from videoarchiver.publishing import Placed, publish_claimed, staged_name
from videoarchiver.state import Intent

pytestmark = pytest.mark.anyio
MODE = 0o640


def _intent(claim: int, data: bytes) -> Intent:
    return Intent(claim, len(data), hashlib.sha256(data).hexdigest())


async def _held() -> None:
    """The claim still holds."""


async def _lost() -> None:
    raise ClaimLost("a later claim took the file over")


def _finished(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    """A finished work file of the current claim, and its SHA-256."""
    work = tmp_path / "work" / "claim-2" / "archive"
    work.mkdir(parents=True, exist_ok=True)
    finished = work / "archive.mkv"
    finished.write_bytes(data)
    return finished, hashlib.sha256(data).hexdigest()


async def test_an_earlier_claims_file_at_the_destination_is_replaced(tmp_path: Path) -> None:
    destination = tmp_path / "archive" / "a.mkv"
    destination.parent.mkdir()
    destination.write_bytes(b"linked by a worker that had lost its claim")
    staged_name(destination, 1).write_bytes(b"its copy from another filesystem")
    finished, sha = _finished(tmp_path, b"the current claim's archive")
    earlier = [_intent(1, b"linked by a worker that had lost its claim")]
    placed = await publish_claimed(finished, destination, sha, MODE, 2, earlier, _held)
    assert placed is Placed.REPLACED
    assert destination.read_bytes() == b"the current claim's archive"
    assert sorted(p.name for p in destination.parent.iterdir()) == ["a.mkv"], "copy withdrawn"
    assert not finished.exists()


@pytest.mark.parametrize(
    "there",
    [b"a file of a later claim of the same file", b"a file nobody recorded"],
    ids=["later-claim", "unrecorded"],
)
async def test_anything_else_at_the_destination_is_left_untouched(
    tmp_path: Path, there: bytes
) -> None:
    destination = tmp_path / "archive" / "a.mkv"
    destination.parent.mkdir()
    destination.write_bytes(there)
    finished, sha = _finished(tmp_path, b"a stale claim's archive")
    intents = [_intent(3, b"a file of a later claim of the same file")]
    with pytest.raises(PublishError, match="was not written for this source"):
        await publish_claimed(finished, destination, sha, MODE, 2, intents, _held)
    assert destination.read_bytes() == there


async def test_a_copy_made_after_the_claim_was_lost_is_never_put_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = tmp_path / "archive" / "a.mkv"
    finished, sha = _finished(tmp_path, b"a stale claim's archive")
    real_link = os.link

    def across_filesystems(source: Path, target: Path, **kwargs: bool) -> None:
        if Path(source) == finished:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(source, target, **kwargs)

    monkeypatch.setattr(os, "link", across_filesystems)
    with pytest.raises(ClaimLost):
        await publish_claimed(finished, destination, sha, MODE, 2, [], _lost)
    assert list(destination.parent.iterdir()) == [], "neither the file nor its copy"
    assert finished.exists()
    placed = await publish_claimed(finished, destination, sha, MODE, 2, [], _held)
    assert placed is Placed.LINKED and destination.read_bytes() == b"a stale claim's archive"
    assert sorted(p.name for p in destination.parent.iterdir()) == ["a.mkv"]
    assert destination.stat().st_mode & 0o777 == MODE
