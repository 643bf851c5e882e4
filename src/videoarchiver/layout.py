"""The folders of a root (SPEC §1) and the work files kept for each raw file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FOLDERS = ("raw", "archive", "preview", "screenshot", "work", "log")


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

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
    def lock(self) -> Path:
        return self.work / "videoarchiver.lock"

    @property
    def files_work(self) -> Path:
        """The work folders of raw files in progress, one per file id."""
        return self.work / "files"

    def file_work(self, file_id: int, output: str | None = None) -> Path:
        """Where one raw file's intermediate files (for one output) live until published."""
        folder = self.files_work / str(file_id)
        return folder / output if output else folder

    def create(self) -> None:
        for name in FOLDERS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
