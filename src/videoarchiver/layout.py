"""The folders of a root and the work files kept for each raw file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from videoarchiver.output_kinds import kind as output_kind
from videoarchiver.output_kinds import kinds

FOLDERS = ("raw", "work", "log")  # and each output kind's
CLAIM_PREFIX = "claim-"  # a claim's work folder is named for its number


@dataclass(frozen=True)
class Layout:
    root: Path
    state: str | None = None  # the state's URL (`postgresql://…`); None: SQLite in work/

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    def output_folders(self) -> tuple[Path, ...]:
        """Where each output kind is published."""
        return tuple(self.root / kind.folder for kind in kinds())

    def output_file(self, name: str, stem: str, stream: int | None = None) -> Path:
        """Where output kind `name` of the file whose outputs are named `stem` is published;
        per stream, that of video stream `stream` of several."""
        kind = output_kind(name)
        if stream is None:
            return self.root / kind.folder / f"{stem}{kind.suffix}"
        return self.root / kind.folder / stem / f"{stream}{kind.suffix}"

    def stream_files(self, name: str, stem: str, streams: Sequence[int]) -> dict[int, Path]:
        """Where a kind published per stream puts the file of each video stream: as the
        file of the kind for one stream, `<stem>/<stream><suffix>` for several."""
        if len(streams) == 1:
            return {streams[0]: self.output_file(name, stem)}
        return {stream: self.output_file(name, stem, stream) for stream in streams}

    def output_paths(self, stem: str) -> tuple[Path, ...]:
        """Every path the outputs of a stem may take: a stem is free only if none exists."""
        paths = [self.output_file(kind.name, stem) for kind in kinds()]
        return (*paths, *(self.root / kind.folder / stem for kind in kinds() if kind.per_stream))

    def done_file(self, rel: str) -> Path:
        """Where `after_done = "move"` puts the raw file at `rel` (relative to raw/)."""
        return self.root / "done" / rel

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def state_db(self) -> Path:
        return self.work / "state.sqlite3"

    @property
    def workers(self) -> Path:
        """One lock file per worker running on this machine, held while it lives."""
        return self.work / "workers"

    @property
    def files_work(self) -> Path:
        """The work folders of raw files in progress, one per file id."""
        return self.work / "files"

    def file_work(self, file_id: int) -> Path:
        """The work folder of one raw file: one folder in it per claim (`claim_work`)."""
        return self.files_work / str(file_id)

    def claim_work(self, file_id: int, claim: int) -> Path:
        """Where the claim numbered `claim` of a raw file keeps its intermediate files until
        they are published (one folder in it per output): `claim_folders` tells how a
        later claim takes it over."""
        return self.file_work(file_id) / f"{CLAIM_PREFIX}{claim}"

    def relative(self, path: Path) -> str:
        """How the store records a path under the root (never absolute)."""
        return path.relative_to(self.root).as_posix()

    def resolve(self, recorded: str) -> Path:
        """The path the store records as `recorded` (relative to the root), on this machine."""
        return self.root / recorded

    def create(self) -> None:
        for folder in (*(self.root / name for name in FOLDERS), *self.output_folders()):
            folder.mkdir(parents=True, exist_ok=True)


async def root_there(layout: Layout) -> bool:
    """raw/ and work/ are there to read and write (a share may hang: not inline)."""
    return await anyio.Path(layout.raw).is_dir() and await anyio.Path(layout.work).is_dir()
