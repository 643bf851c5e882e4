"""What happens to a raw file once all its outputs are verified and recorded (`after_done`).

The action is recorded as pending in the same write that records the file done, then carried
out, then recorded as done; a kill in between leaves it pending, and the next start finishes
it from where it stopped.

The raw file is first taken out of the way: renamed, as one step that never replaces a name,
to a hidden name of its own in its folder (which scans never take), and only if what is
under its name still has the size of the file archived. Whatever arrives under the
old name from then on (a camera's new `VID_0001.mp4`) is new footage, found by the next scan
and never touched here. What was taken is then proven to be what was archived: the SHA-256
of its whole content must be the one recorded while the file was processed. Only then is it
deleted or moved into `done/`; anything else is put back (beside the old name if that is
taken again) and kept, with the reason. Nothing is acted on through a folder that resolves
outside `raw/`, and a symlink is acted on as the link, never its target.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import anyio
from anyio import to_thread

from videoarchiver.errors import StateError, VideoArchiverError, describe_error
from videoarchiver.identity import whole_sha256
from videoarchiver.layout import Layout
from videoarchiver.planning.messages import printable
from videoarchiver.planning.paths import fit_name, rel_from_key, shown_name
from videoarchiver.planning.quality import shortfall
from videoarchiver.publishing import fsync_dir, publish, rename_no_replace
from videoarchiver.state import FileRow, StreamJobRow

log = logging.getLogger(__name__)
PENDING = " pending"
ACTIONS = ("move", "delete")
ENCODE = "encode"  # a stream job's decision when the archive holds its re-encode
OTHER_FOOTAGE = "the file now under its name is other footage (of another size)"


class Outcome(NamedTuple):
    """What was done with the raw file; `other_content`: what was found is not what was
    archived (it was put back, to be taken as new footage)."""

    action: str
    other_content: bool = False


def quality_shortfall(jobs: Iterable[StreamJobRow], minimum: float) -> str | None:
    """Why the archive's measured quality does not let its raw file go (None: every
    re-encoded video stream reaches `minimum`)."""
    reasons = [
        why
        for job in jobs
        if job.stream_type == "video" and job.decision == ENCODE
        and (why := shortfall(job.stream_index, job.figures.ssim_mean, job.figures.ssim_worst,
                              job.figures.ssim_note, minimum))
    ]  # fmt: skip
    return "; ".join(reasons) or None


def pending_action(after_done: str) -> str | None:
    """What to record with the file done: `move pending`, `delete pending`, or nothing."""
    return None if after_done == "keep" else after_done + PENDING


def planned(row: FileRow) -> str:
    """The action a done file's row has pending: `move` or `delete`."""
    return (row.raw_action or "").removesuffix(PENDING)


def taken_path(path: Path, file_id: int) -> Path:
    """The hidden name the raw file at `path` (file `file_id`) is taken aside to."""
    return path.with_name(f".videoarchiver-taken-{file_id}")


def _inside(path: Path, folder: Path) -> bool:
    return path.parent.resolve().is_relative_to(folder.resolve())


def _exists(path: Path) -> bool:
    """True when there is a name `path` (a dangling symlink too)."""
    return os.path.lexists(path)


def _may_be_archived_file(path: Path, row: FileRow) -> bool:
    """What is under `path` has the size of the file archived (a file of another size, or
    none, is not it; one of the same size is told by its whole content: an edit in place
    changes the time, not the size)."""
    try:
        return path.stat().st_size == row.size  # through a symlink, as it was found
    except OSError:
        return False


def _put_back(taken: Path, path: Path, file_id: int) -> Path:
    """The taken file back under its name, or beside it when new footage took the name
    meanwhile (under a shortened name if a longer one does not fit); returns where it is."""
    kept = f"{fit_name(path.name, len(f'.kept-{file_id}'))}.kept-{file_id}"
    for candidate in (path, path.with_name(kept)):
        try:
            rename_no_replace(taken, candidate)
        except FileExistsError:
            if not os.path.samestat(os.lstat(taken), os.lstat(candidate)):
                continue
            taken.unlink()  # put back before a kill, its hidden name left
        fsync_dir(path.parent)
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name to put it back under", os.fspath(path))


async def _vanished(what: str, row: FileRow, destination: Path) -> str:
    """Neither the raw file nor its taken copy is there: done before a kill, or gone."""
    if what == "delete":
        return "deleted"
    try:
        moved = row.sha256 is not None and await whole_sha256(destination) == row.sha256
    except OSError:
        moved = False
    return f"moved to done/{shown_name(row.rel_path)}" if moved else "kept: no longer in raw/"


async def _not_archived(taken: Path, row: FileRow) -> Outcome | None:
    """Why the taken file may not go (None: its whole content is what was archived)."""
    if row.sha256 is None:
        return Outcome("no SHA-256 of its whole content was recorded when it was processed")
    try:
        content = await whole_sha256(taken)  # through a symlink: its target's content
    except OSError as exc:
        return Outcome(f"cannot read it to prove its content ({describe_error(exc)})")
    if content != row.sha256:
        why = "its content is not what was archived (it changed after it was processed)"
        return Outcome(why, other_content=True)
    return None


async def _dispose(what: str, taken: Path, destination: Path, row: FileRow) -> str:
    if what == "delete":
        await anyio.Path(taken).unlink()
        await to_thread.run_sync(fsync_dir, taken.parent)
        return "deleted"
    await publish(taken, destination, row.sha256)
    return f"moved to done/{shown_name(row.rel_path)}"


async def finish_raw_action(
    layout: Layout, row: FileRow, ensure: Callable[[], None] = lambda: None
) -> Outcome | None:
    """Carry out the pending `after_done` of a done file; returns what was done (None: not
    now, as raw/ is not there: it stays pending). `ensure` raises when the state can no
    longer record it: called again right before the raw file goes."""
    what = planned(row)
    if what not in ACTIONS:
        raise AssertionError(f"no raw action pending for {row.rel_path}: {row.raw_action!r}")
    rel, name = rel_from_key(row.rel_path), shown_name(row.rel_path)
    if not await anyio.Path(layout.raw).is_dir():
        log.warning("%s: raw/ is not there (unmounted?): its raw file is %s later", name,
                    f"{what}d")  # fmt: skip
        return None
    path = layout.raw / rel
    taken = taken_path(path, row.id)
    destination = layout.done_file(rel)
    if not _inside(path, layout.raw):
        outcome = Outcome("kept: its folder resolves outside raw/")
    elif _exists(taken) or await _take(path, taken, row):
        outcome = await _act_on_taken(what, row, path, taken, destination, ensure)
    elif _exists(path):  # (a file of another size took its name since: not touched)
        outcome = Outcome(f"not {what}d: {OTHER_FOOTAGE}")
    else:
        outcome = Outcome(await _vanished(what, row, destination))
    log.info("%s: raw file %s", name, outcome.action)
    return outcome


async def _take(path: Path, taken: Path, row: FileRow) -> bool:
    """Rename the raw file aside (a symlink: the link) if it may still be the file archived;
    False when it is not there (or another worker took it first)."""
    if not await to_thread.run_sync(_may_be_archived_file, path, row):
        return False
    try:
        await to_thread.run_sync(rename_no_replace, path, taken)
    except (FileNotFoundError, FileExistsError):
        return _exists(taken)
    return True


async def _act_on_taken(
    what: str,
    row: FileRow,
    path: Path,
    taken: Path,
    destination: Path,
    ensure: Callable[[], None],
) -> Outcome:
    """Delete or move what was taken if it is proven to be what was archived; else (or if
    that fails) put it back and say why it is kept."""
    try:
        why = await _not_archived(taken, row)
        if why is None:
            ensure()
            return Outcome(await _dispose(what, taken, destination, row))
    except StateError:  # nothing can record it: back where it was, and stop
        with anyio.CancelScope(shield=True):
            await to_thread.run_sync(_put_back, taken, path, row.id)
        raise
    except (VideoArchiverError, OSError) as exc:
        why = Outcome(f"{what} failed: {describe_error(exc)}")
    if not _exists(taken):  # (another worker finished it meanwhile)
        return Outcome(await _vanished(what, row, destination))
    back = await to_thread.run_sync(_put_back, taken, path, row.id)
    where = "" if back == path else f"; it is at {printable(back.name)}"
    return why._replace(action=f"kept: {why.action}{where}")
