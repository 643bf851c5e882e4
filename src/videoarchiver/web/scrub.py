"""A montage's tiles as moments of the video: what the gallery's scrub and the file page's
seek need. The sheet is N×N tiles of W×H (its job's note), taken at the times
`planning.montage.frame_times` chose from the stream's duration (its archive job's)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from videoarchiver.planning.montage import frame_times
from videoarchiver.state import JobState, StreamJobRow

TILES = re.compile(r"(\d+)x\1 tiles of (\d+)x(\d+)")  # `montaging`'s note


@dataclass(frozen=True)
class Sheet:
    n: int  # tiles a side
    width: int  # of a tile, pixels
    height: int
    times: tuple[float, ...]  # of each tile, row by row, seconds from the start

    @property
    def shown_times(self) -> str:
        """The times as a data attribute holds them."""
        return ",".join(f"{time:.2f}" for time in self.times)


def sheet_of(jobs: Sequence[tuple[str, StreamJobRow]]) -> Sheet | None:
    """The sheet the page serves as a file's montage (its first video stream's), or None
    when a figure is missing (a montage made before its notes said its grid)."""
    sheets = [job for output, job in jobs if output == "montage" and job.state is JobState.DONE]
    if not sheets:
        return None
    first = min(sheets, key=lambda job: job.stream_index)
    grid = next(filter(None, (TILES.fullmatch(note) for note in first.notes)), None)
    archive = [job for output, job in jobs if output == "archive"]
    duration = next((job.figures.raw_seconds for job in archive
                     if job.stream_index == first.stream_index), None)  # fmt: skip
    if grid is None or not duration:
        return None
    n = int(grid[1])
    return Sheet(n, int(grid[2]), int(grid[3]), tuple(frame_times(duration, n)))
