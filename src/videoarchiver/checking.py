"""What `verify` and `retry --missing` look at: every published output (archive, preview, each
montage sheet) against the size and SHA-256 recorded when it was published, and every
destination an output's publishing recorded but did not record done: a file there must be
the one that was to be published."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from videoarchiver.layout import Layout
from videoarchiver.output_kinds import kind as output_kind
from videoarchiver.publishing import sha256_file
from videoarchiver.state import JobState, OutputState, Store


@dataclass(frozen=True)
class Published:
    file_id: int
    kind: str  # its output kind's name
    stream: int | None  # the video stream of a montage sheet
    path: Path
    size: int | None
    sha256: str | None
    recorded: str  # `path` as the store records it (relative to the root)
    done: bool  # recorded published; else only its publishing's intent is recorded


async def recorded_outputs(
    state: Store, layout: Layout, file_ids: Sequence[int] | None = None
) -> list[Published]:
    """Every output (of `file_ids`, or of every file) recorded published, and every one
    whose publishing recorded an intent (its destination, size and SHA-256) but not its
    end: each montage sheet on its own, in stream order."""
    found = [
        Published(o.file_id, o.kind, None, layout.resolve(o.path), o.size, o.sha256, o.path,
                  o.state is OutputState.DONE)
        for o in await state.all_outputs(file_ids)
        if not output_kind(o.kind).per_stream and o.path
    ]  # fmt: skip
    found += [
        Published(file_id, output, job.stream_index, layout.resolve(path),
                  job.figures.out_bytes, job.figures.sha256, path, job.state is JobState.DONE)
        for file_id, jobs in (await state.all_jobs(file_ids)).items()
        for output, job in jobs  # in stream order
        if output_kind(output).per_stream and (path := job.figures.path)
    ]  # fmt: skip
    return [output for output in found if output.done or output.sha256 is not None]


async def published_outputs(
    state: Store, layout: Layout, file_ids: Sequence[int] | None = None
) -> list[Published]:
    """Every output (of `file_ids`, or of every file) recorded published."""
    return [o for o in await recorded_outputs(state, layout, file_ids) if o.done]


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
