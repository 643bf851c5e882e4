"""The folders of a root and the work files kept for each raw file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio

FOLDERS = ("raw", "archive", "preview", "screenshot", "work", "log")
CLAIM_PREFIX = "claim-"  # a claim's work folder is named for its number


@dataclass(frozen=True)
class Layout:
    root: Path
    state: str | None = None  # the state's URL (`postgresql://…`); None: SQLite in work/

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def preview(self) -> Path:
        return self.root / "preview"

    @property
    def screenshot(self) -> Path:
        return self.root / "screenshot"

    def archive_file(self, stem: str) -> Path:
        return self.archive / f"{stem}.mkv"

    def preview_file(self, stem: str) -> Path:
        return self.preview / f"{stem}.mkv"

    def screenshot_file(self, name: str) -> Path:
        """A montage sheet: `<stem>.jpg`, or `<stem>/<stream>.jpg` for several streams."""
        return self.screenshot / name

    def output_paths(self, stem: str) -> tuple[Path, ...]:
        """Every path the outputs of a stem may take: a stem is free only if none exists."""
        return (
            self.archive_file(stem),
            self.preview_file(stem),
            self.screenshot_file(f"{stem}.jpg"),
            self.screenshot_file(stem),
        )

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
        for name in FOLDERS:
            (self.root / name).mkdir(parents=True, exist_ok=True)


async def root_there(layout: Layout) -> bool:
    """raw/ and work/ are there to read and write (a share may hang: not inline)."""
    return await anyio.Path(layout.raw).is_dir() and await anyio.Path(layout.work).is_dir()
