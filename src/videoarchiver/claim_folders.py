"""Each claim of a raw file works in a folder of its own, `work/files/<id>/claim-<n>/` (n: the
claim's number; the store counts a file's claims, each one higher than the one before), and
keeps its intermediate files there until it publishes them.

Before anything else a claimant takes over what the claims before it left: the folder of the
latest is renamed to its own, with the parts to salvage, and any other is thrown away. A
folder is only ever renamed to a higher number, and a claimant that finds a folder of a
higher number than its own has lost its claim (ClaimLost). So a worker whose claim ran out
while it was suspended finds its folder gone when it wakes: each later step it takes by path
— the link of an output into `archive/`, an ffmpeg writing a new file, the rename of a part —
fails instead of reaching into the work of the claim that took over, and it cannot make its
folder again (claim folders are made only here; output folders never with their parents).

What its ffmpeg, still running, writes goes on into the files it has open: names the new
claimant never uses as they are. A partial encode is only read (its salvage copies its
complete packets into a part of its own) and every ffmpeg output name is cleared before a new
ffmpeg writes it (`run_limited`), so no part a stale worker may still be writing is used.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from pathlib import Path

from videoarchiver.errors import ClaimLost
from videoarchiver.layout import CLAIM_PREFIX
from videoarchiver.output_kinds import names

SOURCE_MARKER = "source"  # in a claim's folder: the identity of the content it holds
DISCARDED = ".discarded-"  # a folder being thrown away, under a name no claim takes over


def claim_of(name: str) -> int | None:
    """The number of the claim whose folder is called `name` (None: no claim's)."""
    number = name.removeprefix(CLAIM_PREFIX)
    return int(number) if name != number and number.isdigit() else None


def _claims(folder: Path) -> set[int]:
    try:
        names = [entry.name for entry in folder.iterdir()]
    except FileNotFoundError:
        return set()
    return {number for name in names if (number := claim_of(name)) is not None}


def _claim_folder(folder: Path, claim: int) -> Path:
    return folder / f"{CLAIM_PREFIX}{claim}"


def take_over(folder: Path, claim: int) -> Path:
    """The folder of claim number `claim` of the file whose work folder is `folder`: the
    latest earlier claim's, renamed, else a new one (holding what the file's folder held
    before claims had folders). ClaimLost when a later claim has a folder already."""
    mine = _claim_folder(folder, claim)
    while True:
        numbers = _claims(folder)
        if any(number > claim for number in numbers):
            raise ClaimLost(f"claim {claim} of file {folder.name} was taken over by a later one")
        earlier = [number for number in numbers if number < claim]
        if claim in numbers:
            break
        if not earlier:
            mine.mkdir(parents=True)
            # What a file's work folder held before claims had folders: taken over.
            for name in (SOURCE_MARKER, *names()):
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).rename(mine / name)
            break
        try:
            _claim_folder(folder, max(earlier)).rename(mine)
            break
        except FileNotFoundError:  # a later claim took it first: look again
            continue
    discard_earlier(folder, claim)
    return mine


def discard_earlier(folder: Path, claim: int) -> None:
    """Throw away the folders of claims before `claim` (left by workers that lost their
    claim), and what a throwing away cut short left: each is first renamed to a name of its
    own, so that no claim takes it over while it is being removed."""
    for entry in list(folder.iterdir()):
        number = claim_of(entry.name)
        if number is not None and number < claim:
            gone = folder / f"{DISCARDED}{number}-{secrets.token_hex(4)}"
            try:
                entry.rename(gone)
            except FileNotFoundError:  # another claim took it or threw it away
                continue
            shutil.rmtree(gone, ignore_errors=True)
        elif entry.name.startswith(DISCARDED):
            shutil.rmtree(entry, ignore_errors=True)


def prepare(folder: Path, claim: int, identity: str) -> Path:
    """Claim `claim`'s folder (`take_over`), holding only what was made from this very
    content: its identity is written in it, and a folder of other content is emptied."""
    mine = take_over(folder, claim)
    marker = mine / SOURCE_MARKER
    if not marker.exists() or marker.read_text() != identity:
        for entry in mine.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        marker.write_text(identity)
    return mine


def remove(folder: Path, claim: int) -> None:
    """Claim `claim` is over and kept nothing: its folder goes, and so does the file's
    work folder once nothing else is in it."""
    shutil.rmtree(_claim_folder(folder, claim), ignore_errors=True)
    try:
        discard_earlier(folder, claim)
        folder.rmdir()
    except OSError:  # a later claim's folder is in it, or it is gone already
        pass
