"""Wires discovery, probing and the output pipelines into one structured-concurrency run.

Every file is a task; inside it, every stream job is a task; the number of ffmpeg processes
at once is bounded by the runtime's CapacityLimiter, not by how the tasks are arranged. One
file's failure is recorded against that file and never reaches the others.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable, Sequence

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from videoarchiver.archiving import make_archive
from videoarchiver.discovery import RawFile, scan
from videoarchiver.disposal import dispose_raw
from videoarchiver.errors import ProbeError, SourceChangedError, VerifyError, VideoArchiverError
from videoarchiver.montaging import make_montage
from videoarchiver.planning.paths import output_paths, stem_candidates
from videoarchiver.previewing import make_preview
from videoarchiver.probing import probe_file
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state import FileRow
from videoarchiver.state.database import DONE, FAILED, FINISHED, RUNNING

log = logging.getLogger(__name__)
OUTPUTS: tuple[tuple[str, Callable[[Runtime, Source], Awaitable[None]]], ...] = (
    ("archive", make_archive),
    ("preview", make_preview),
    ("montage", make_montage),
)


def describe_error(exc: Exception) -> str:
    """A one-line reason for `status` and the log."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


async def _explained(source: Source, exc: Exception) -> Exception:
    """A raw file that changed while it was processed explains any failure of its outputs."""
    try:
        await source.ensure_unchanged()
    except SourceChangedError as changed:
        return changed
    return exc


class Scheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._active: set[int] = set()

    async def _free_stem(self, raw: RawFile) -> str:
        for stem in stem_candidates(raw.rel_path):
            if await self.rt.state.stem_taken(stem):
                continue
            if any(path.exists() for path in output_paths(self.rt.layout.root, stem)):
                continue
            return stem
        raise AssertionError("stem_candidates never ends")

    async def register(self, raws: Sequence[RawFile]) -> list[FileRow]:
        """The state rows of settled raw files, created (output names reserved) for new ones.

        Known files are looked up together: a rescan of 100,000 files is a few hundred
        queries, not 100,000.
        """
        known = await self.rt.state.find_files([raw.rel for raw in raws])
        rows = []
        for raw in raws:
            rel = raw.rel
            row = known.get((rel, raw.size, raw.mtime_ns))
            if row is None:
                stem = await self._free_stem(raw)
                row = await self.rt.state.add_file(rel, raw.size, raw.mtime_ns, stem)
                log.info("%s: found, %d bytes, outputs named %r", rel, raw.size, row.stem)
            rows.append(row)
        return rows

    async def _output(
        self,
        kind: str,
        make: Callable[[Runtime, Source], Awaitable[None]],
        source: Source,
        failures: list[str],
    ) -> None:
        """One output of one file; its failure is recorded and reported, not raised."""
        current = (await self.rt.state.outputs(source.row.id)).get(kind)
        if current is not None and current.state in FINISHED:
            return
        work = self.rt.layout.file_work(source.row.id, kind)
        try:
            await make(self.rt, source)
        except (VideoArchiverError, OSError) as exc:
            cause = await _explained(source, exc)
            reason = describe_error(cause)
            failures.append(f"{kind}: {reason}")
            await self.rt.state.set_output(source.row.id, kind, FAILED, error=reason)
            log.error("%s: %s failed: %s", source.name, kind, reason)
            if isinstance(cause, VerifyError):  # what failed its check is kept to look at
                return
        await anyio.to_thread.run_sync(shutil.rmtree, work, True)

    async def process(self, row: FileRow, raw: RawFile) -> None:
        """All outputs of one file, concurrently; any failure is recorded and logged."""
        state = self.rt.state
        failures: list[str] = []
        try:
            if raw.size == 0:
                raise ProbeError("empty file (0 bytes)")
            await state.set_file_state(row.id, RUNNING)
            async with self.rt.probe_slots:
                probed = await probe_file(raw.path)
            await state.set_probe(row.id, probed.json)
            source = Source(row=row, raw=raw, probed=probed)
            async with anyio.create_task_group() as group:
                for kind, make in OUTPUTS:
                    group.start_soon(self._output, kind, make, source, failures)
        except (VideoArchiverError, OSError) as exc:
            failures.append(describe_error(exc))
        if failures:
            reason = "; ".join(failures)
            await state.set_file_state(row.id, FAILED, reason)
            log.error("%s: failed: %s", row.rel_path, reason)
            return
        await anyio.to_thread.run_sync(shutil.rmtree, self.rt.layout.file_work(row.id), True)
        await state.set_file_state(row.id, DONE)
        log.info("%s: done", row.rel_path)
        try:
            action = await dispose_raw(self.rt.layout, self.rt.config.after_done, raw)
        except (VideoArchiverError, OSError) as exc:
            action = f"{self.rt.config.after_done} failed: {describe_error(exc)}"
            log.error("%s: raw file %s", row.rel_path, action)
        if action:
            await state.set_raw_action(row.id, action)

    async def _process_and_release(self, row: FileRow, raw: RawFile) -> None:
        try:
            async with self.rt.file_slots:
                await self.process(row, raw)
        except Exception as exc:  # a bug of ours must cost one file, never the daemon
            log.exception("%s: internal error", row.rel_path)
            with anyio.CancelScope(shield=True):
                await self.rt.state.set_file_state(row.id, FAILED, f"internal error: {exc!r}")
        finally:
            self._active.discard(row.id)

    async def dispatch(self, group: TaskGroup) -> tuple[list[FileRow], float | None]:
        """Scan `raw/` and start every settled file that is neither finished nor running.

        Returns the rows of the settled files and the seconds until the next unsettled file
        settles (None when no file is waiting to settle).
        """
        found = await scan(self.rt.layout.raw, self.rt.config.settle_seconds)
        rows = await self.register(found.settled)
        for row, raw in zip(rows, found.settled, strict=True):
            if row.state not in (DONE, FAILED) and row.id not in self._active:
                self._active.add(row.id)
                group.start_soon(self._process_and_release, row, raw)
        return rows, found.next_settle

    async def run_once(self) -> bool:
        """Process every settled file not yet done or failed; True when all of them are done."""
        async with anyio.create_task_group() as group:
            rows, _next_settle = await self.dispatch(group)
        started = [row for row in rows if row.state not in (DONE, FAILED)]
        if any(row.state == FAILED for row in rows):
            return False
        now = await self.rt.state.find_files([row.rel_path for row in started])
        return all(now[(row.rel_path, row.size, row.mtime_ns)].state == DONE for row in started)

    async def run_forever(self, wakeups: MemoryObjectReceiveStream[None]) -> None:
        """Dispatch at start, on every wake-up (a change in `raw/`), when a waiting file
        settles, and every `scan_interval` seconds; sleep in between."""
        interval = self.rt.config.scan_interval
        async with anyio.create_task_group() as group:
            while True:
                _rows, next_settle = await self.dispatch(group)
                wait = interval if next_settle is None else min(interval, next_settle + 0.05)
                with anyio.move_on_after(wait):
                    await wakeups.receive()
