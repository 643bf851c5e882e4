"""Each claim's work folder: taken over by the next claim, never by an earlier one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from videoarchiver.claim_folders import SOURCE_MARKER, prepare, remove, take_over
from videoarchiver.errors import ClaimLost


def _names(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def test_a_claim_takes_the_latest_folder_over_and_its_old_paths_lead_nowhere(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "files" / "7"
    first = take_over(folder, 1)
    (first / "archive").mkdir()
    (first / "archive" / "archive.mkv").write_bytes(b"muxed by the first claim")
    (first / "archive" / "s0.p0.mkv").write_bytes(b"a part to go on from")
    second = take_over(folder, 2)
    assert _names(folder) == ["claim-2"]
    assert (second / "archive" / "s0.p0.mkv").read_bytes() == b"a part to go on from"
    # The first claim's worker, woken after the take-over, links by its old path: nothing.
    with pytest.raises(FileNotFoundError):
        os.link(first / "archive" / "archive.mkv", tmp_path / "a.mkv", follow_symlinks=False)
    with pytest.raises(FileNotFoundError):  # nor can it make its output folders again
        (first / "preview").mkdir(exist_ok=True)
    with pytest.raises(ClaimLost):  # nor take the folder back
        take_over(folder, 1)
    assert _names(folder) == ["claim-2"] and not (tmp_path / "a.mkv").exists()


def test_folders_of_claims_that_lost_the_race_are_thrown_away(tmp_path: Path) -> None:
    folder = tmp_path / "7"
    for claim in (1, 3, 2):  # 1 and 2: made by workers that had lost their claim already
        (folder / f"claim-{claim}" / "archive").mkdir(parents=True)
    (folder / "claim-3" / "archive" / "s0.p0.mkv").write_bytes(b"the latest")
    (folder / ".discarded-1-abcd").mkdir()  # a throwing away a kill cut short
    mine = take_over(folder, 5)
    assert _names(folder) == ["claim-5"]
    assert (mine / "archive" / "s0.p0.mkv").read_bytes() == b"the latest"


def test_what_the_folder_held_before_claims_had_folders_is_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "7"
    (folder / "archive").mkdir(parents=True)
    (folder / "archive" / "s0.p0.mkv").write_bytes(b"part")
    (folder / SOURCE_MARKER).write_text("10:fp")
    mine = prepare(folder, 1, "10:fp")
    assert _names(folder) == ["claim-1"]
    assert (mine / "archive" / "s0.p0.mkv").read_bytes() == b"part"
    other = prepare(folder, 2, "11:other content")  # a folder of other content is emptied
    assert (
        _names(other) == [SOURCE_MARKER]
        and (other / SOURCE_MARKER).read_text() == "11:other content"
    )


def test_a_claim_over_removes_its_folder_and_the_files_once_empty(tmp_path: Path) -> None:
    folder = tmp_path / "7"
    take_over(folder, 1)
    remove(folder, 1)
    assert not folder.exists()
    take_over(folder, 2)
    (folder / "claim-3").mkdir()  # a later claim's (this one lost its claim meanwhile)
    remove(folder, 2)
    assert _names(folder) == ["claim-3"]
