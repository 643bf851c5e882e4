"""What `verify` and `retry --missing` look at: every published output (archive, preview, each
montage sheet) against the SHA-256 recorded when it was published."""

from __future__ import annotations

from collections.abc import Sequence
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
    sha256: str | None
    recorded: str  # `path` as the store records it (relative to the root)
    size: int | None


async def published_outputs(
    state: Store, layout: Layout, file_ids: Sequence[int] | None = None
) -> list[Published]:
    """Every published output (of `file_ids`, or of every file): each montage sheet on its
    own, in stream order."""
    outputs = [
        Published(o.file_id, o.kind, None, layout.resolve(o.path), o.sha256, o.path, o.size)
        for o in await state.all_outputs(file_ids)
        if o.kind != "montage" and o.state is OutputState.DONE and o.path
    ]
    sheets = [
        Published(file_id, output, job.stream_index, layout.resolve(path), job.figures.sha256,
                  path, job.figures.out_bytes)
        for file_id, jobs in (await state.all_jobs(file_ids)).items()
        for output, job in jobs  # in stream order
        if output == "montage" and job.state is JobState.DONE and (path := job.figures.path)
    ]  # fmt: skip
    return outputs + sheets


async def problem(output: Published) -> str | None:
    """`missing`, `changed` (its bytes are not those published), or None when it is intact."""
    if not await anyio.Path(output.path).exists():
        return "missing"
    return None if await sha256_file(output.path) == output.sha256 else "changed"
