"""What happens to a raw file once all its outputs are verified and recorded (`after_done`).

The action is recorded as pending in the same write that records the file done, then carried
out, then recorded as done; a kill in between leaves it pending, and the next start finishes
it. Nothing is moved or deleted unless the file is still exactly the content that was
processed (a file replaced in the meantime is new footage and stays), nor through a folder
that resolves outside `raw/`; a symlink is acted on as the link, never its target.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio

from videoarchiver.identity import same_content
from videoarchiver.layout import Layout
from videoarchiver.planning.paths import rel_from_key, shown_name
from videoarchiver.publishing import publish
from videoarchiver.state import FileRow

log = logging.getLogger(__name__)
PENDING = " pending"


def pending_action(after_done: str) -> str | None:
    """What to record with the file done: `move pending`, `delete pending`, or nothing."""
    return None if after_done == "keep" else after_done + PENDING


def planned(row: FileRow) -> str:
    """The action a done file's row has pending: `move` or `delete`."""
    return (row.raw_action or "").removesuffix(PENDING)


def _inside(path: Path, folder: Path) -> bool:
    return path.parent.resolve().is_relative_to(folder.resolve())


async def finish_raw_action(layout: Layout, row: FileRow) -> str:
    """Carry out the pending `after_done` of a done file; returns what was done."""
    what = planned(row)
    rel, name = rel_from_key(row.rel_path), shown_name(row.rel_path)
    path = layout.raw / rel
    destination = layout.done_file(rel)
    present = await anyio.Path(path).is_symlink() or await anyio.Path(path).exists()
    if present and not _inside(path, layout.raw):
        action = "kept: its folder resolves outside raw/"
    elif present and not await same_content(path, row.size, row.fingerprint):
        action = "kept: it changed after it was processed"
    elif what == "move" and present:
        await publish(path, destination)
        action = f"moved to done/{name}"
    elif what == "move":
        moved = await same_content(destination, row.size, row.fingerprint)
        action = f"moved to done/{name}" if moved else "kept: no longer in raw/"
    elif what == "delete":
        if present:
            await anyio.Path(path).unlink()
        action = "deleted"
    else:
        raise AssertionError(f"no raw action pending for {row.rel_path}: {row.raw_action!r}")
    log.info("%s: raw file %s", name, action)
    return action
