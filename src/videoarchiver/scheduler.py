"""Wires discovery, probing and the output pipelines into one structured-concurrency run.

Every file is a task; inside it, every stream job is a task; the number of ffmpeg processes
at once is bounded by the runtime's CapacityLimiter, not by how the tasks are arranged. One
file's failure is recorded against that file and never reaches the others.
"""

from __future__ import annotations

import logging
import shutil

import anyio

from videoarchiver.archiving import make_archive
from videoarchiver.discovery import RawFile, scan
from videoarchiver.errors import ProbeError, VideoArchiverError
from videoarchiver.planning.paths import archive_path, stem_candidates
from videoarchiver.probing import probe_file
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state import FileRow
from videoarchiver.state.database import DONE, FAILED, RUNNING

log = logging.getLogger(__name__)


def describe_error(exc: Exception) -> str:
    """A one-line reason for `status` and the log."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


class Scheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def _free_stem(self, raw: RawFile) -> str:
        for stem in stem_candidates(raw.rel):
            if await self.rt.state.stem_taken(stem):
                continue
            if archive_path(self.rt.layout.root, stem).exists():
                continue
            return stem
        raise AssertionError("stem_candidates never ends")

    async def register(self, raw: RawFile) -> FileRow:
        """The state row of a settled raw file, created (and its output name reserved) if new."""
        rel = raw.rel.as_posix()
        row = await self.rt.state.find_file(rel, raw.size, raw.mtime_ns)
        if row is None:
            row = await self.rt.state.add_file(
                rel, raw.size, raw.mtime_ns, await self._free_stem(raw)
            )
            log.info("%s: found, %d bytes, outputs named %r", rel, raw.size, row.stem)
        return row

    async def process(self, row: FileRow, raw: RawFile) -> None:
        """All outputs of one file; any failure is recorded and logged, never raised."""
        state = self.rt.state
        try:
            if raw.size == 0:
                raise ProbeError("empty file (0 bytes)")
            await state.set_file_state(row.id, RUNNING)
            async with self.rt.probe_slots:
                probed = await probe_file(raw.path)
            await state.set_probe(row.id, probed.json)
            await make_archive(self.rt, Source(row=row, path=raw.path, probed=probed))
        except (VideoArchiverError, OSError) as exc:
            reason = describe_error(exc)
            await state.set_file_state(row.id, FAILED, reason)
            log.error("%s: failed: %s", row.rel_path, reason)
            return
        await anyio.to_thread.run_sync(
            shutil.rmtree, self.rt.layout.work / "files" / str(row.id), True
        )
        await state.set_file_state(row.id, DONE)
        log.info("%s: done", row.rel_path)

    async def run_once(self) -> bool:
        """Process every settled file not yet done or failed; True when all of them are done."""
        found = await scan(self.rt.layout.raw, self.rt.config.settle_seconds)
        rows = [(await self.register(raw), raw) for raw in found]
        async with anyio.create_task_group() as group:
            for row, raw in rows:
                if row.state not in (DONE, FAILED):
                    group.start_soon(self.process, row, raw)
        states = [(await self.rt.state.get_file(row.id)).state for row, _ in rows]
        return all(state == DONE for state in states)
