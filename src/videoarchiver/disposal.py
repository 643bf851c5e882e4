"""What happens to a raw file once all its outputs are verified and recorded (`after_done`).

Nothing is moved or deleted unless the file is still exactly the one that was processed: a
file replaced in the meantime is new footage and stays.
"""

from __future__ import annotations

import logging

import anyio

from videoarchiver.discovery import RawFile, unchanged
from videoarchiver.layout import Layout
from videoarchiver.publishing import publish

log = logging.getLogger(__name__)


async def dispose_raw(layout: Layout, after_done: str, raw: RawFile) -> str | None:
    """Keep, move to `done/<rel>` or delete the raw file; returns what was done, if anything."""
    if after_done == "keep":
        return None
    if not await unchanged(raw):
        action = "kept: it changed after it was processed"
    elif after_done == "move":
        destination = layout.root / "done" / raw.rel
        await publish(raw.path, destination)
        action = f"moved to done/{raw.rel}"
    else:
        await anyio.Path(raw.path).unlink()
        action = "deleted"
    log.info("%s: raw file %s", raw.rel, action)
    return action
