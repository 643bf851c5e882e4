"""What `verify` and `retry --missing` look at: every published output (archive, preview, each
montage sheet) against the size and SHA-256 recorded when it was published, and every
destination an output's publishing recorded but did not record done: a file there must be
the one that was to be published."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio

from videoarchiver.layout import Layout
from videoarchiver.publishing import sha256_file
from videoarchiver.state import JobState, OutputState, Store


@dataclass(frozen=True)
class Published:
    file_id: int
    kind: str  # archive, preview or montage
    stream: int | None  # the video stream of a montage sheet
    path: Path
    size: int | None
    sha256: str | None
    done: bool  # recorded published; else only its publishing's intent is recorded


async def recorded_outputs(state: Store, layout: Layout) -> list[Published]:
    """Every output recorded published, and every one whose publishing recorded an intent
    (its destination, size and SHA-256) but not its end."""
    found = [
        Published(o.file_id, o.kind, None, layout.resolve(o.path), o.size, o.sha256,
                  o.state is OutputState.DONE)
        for o in await state.all_outputs()
        if o.kind != "montage" and o.path
    ]  # fmt: skip
    found += [
        Published(file_id, output, job.stream_index, layout.resolve(job.figures.path),
                  job.figures.out_bytes, job.figures.sha256, job.state is JobState.DONE)
        for file_id, jobs in (await state.all_jobs()).items()
        for output, job in jobs
        if output == "montage" and job.figures.path
    ]  # fmt: skip
    return [output for output in found if output.done or output.sha256 is not None]


async def published_outputs(state: Store, layout: Layout) -> list[Published]:
    """Every output recorded published."""
    return [output for output in await recorded_outputs(state, layout) if output.done]


async def problem(output: Published) -> str | None:
    """`missing` (published, and gone), `changed` (published, and its bytes are not those
    recorded), `unrecorded` (not recorded published, yet the file at its destination is not
    the one its publishing recorded), or None when all is as recorded."""
    path = anyio.Path(output.path)
    if not await path.exists():
        return "missing" if output.done else None
    size = (await path.stat()).st_size
    if (output.size is None or size == output.size) and (
        await sha256_file(output.path) == output.sha256
    ):
        return None
    return "changed" if output.done else "unrecorded"
