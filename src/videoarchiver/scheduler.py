"""Wires discovery, probing and the output pipelines into one structured-concurrency run.

Every file is a task; inside it, every stream job is a task; the number of ffmpeg processes
at once is bounded by the runtime's CapacityLimiter, not by how the tasks are arranged. One
file's failure is recorded against that file and never reaches the others.
"""

from __future__ import annotations

import logging
import shutil
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from videoarchiver.archiving import make_archive
from videoarchiver.discovery import RawFile, scan
from videoarchiver.disposal import finish_raw_action, pending_action, planned
from videoarchiver.errors import (
    ProbeError,
    SourceChangedError,
    StateError,
    VerifyError,
    VideoArchiverError,
    describe_error,
    first_of,
    leaves,
    short_reason,
)
from videoarchiver.identity import fingerprint, same_content
from videoarchiver.montaging import make_montage
from videoarchiver.outputs import adopt
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.messages import one_line
from videoarchiver.planning.paths import output_paths, shown_name, shown_rel, stem_candidates
from videoarchiver.previewing import make_preview
from videoarchiver.probing import probe_file
from videoarchiver.runtime import Runtime, Source
from videoarchiver.service import listening, notify
from videoarchiver.space import SpaceBackoff, short_of_space, space_message
from videoarchiver.state import FileRow
from videoarchiver.state.database import DONE, FAILED, FINISHED, PENDING, RUNNING
from videoarchiver.ui import summary_line

log = logging.getLogger(__name__)
SPACE_BASE_SECONDS = 60.0
SOURCE_MARKER = "source"  # in a file's work folder: the identity of the content it holds
STALE_MTIME = -1  # a recorded mtime no file has: the next scan reads the fingerprint
OUTPUTS: tuple[tuple[str, Callable[[Runtime, Source], Awaitable[None]]], ...] = (
    ("archive", make_archive),
    ("preview", make_preview),
    ("montage", make_montage),
)


async def _explained(source: Source, exc: Exception) -> Exception:
    """A raw file that changed while it was processed explains any failure of its outputs."""
    try:
        await source.ensure_unchanged()
    except SourceChangedError as changed:
        return changed
    return exc


@dataclass
class _Failures:
    """What failed of one file, and whether the cause was a full disk."""

    reasons: list[str] = field(default_factory=list)  # one line each
    details: list[str] = field(default_factory=list)  # the whole texts
    for_space: bool = False

    def add(self, exc: BaseException, where: str = "") -> str:
        """Record one failure; returns its one-line reason."""
        reason = short_reason(exc)
        self.reasons.append(where + reason)
        self.details.append(where + describe_error(exc))
        self.for_space = self.for_space or short_of_space(exc)
        return reason


class Scheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._active: set[int] = set()
        # Retried from the first rescan on, then after doubling waits.
        self._space = SpaceBackoff(min(runtime.config.scan_interval, SPACE_BASE_SECONDS))

    async def _free_stem(self, raw: RawFile) -> str:
        for stem in stem_candidates(shown_rel(raw.key)):
            if await self.rt.state.stem_taken(stem):
                continue
            if any(path.exists() for path in output_paths(self.rt.layout.root, stem)):
                continue
            return stem
        raise AssertionError("stem_candidates never ends")

    async def register(self, raws: Sequence[RawFile]) -> list[tuple[FileRow, RawFile]]:
        """The state rows of settled raw files, created (output names reserved) for new ones.

        Known files are looked up together: a rescan of 100,000 files is a few hundred
        queries, not 100,000, and reads no file whose size and mtime are as recorded.
        """
        known = await self.rt.state.find_files([raw.key for raw in raws])
        rows = []
        for raw in raws:
            row = await self._identify(raw, known.get(raw.key, []))
            if row is not None:
                rows.append((row, raw))
        return rows

    async def _identify(self, raw: RawFile, recorded: list[FileRow]) -> FileRow | None:
        """The row for the content now at `raw.rel` (None if it vanished): size and mtime as
        recorded are taken on trust; anything else is fingerprinted, and new content is a new
        file. A file that cannot be read is recorded failed, with the reason."""
        hinted = recorded[-1] if recorded else None
        if hinted is None or (hinted.size, hinted.mtime_ns) != (raw.size, raw.mtime_ns):
            hinted = None
        # A file done before fingerprints existed is read only if it is needed again.
        legacy = hinted is not None and hinted.fingerprint is None
        if hinted is not None and (hinted.fingerprint or (legacy and hinted.state == DONE)):
            row = hinted
        else:
            try:
                content = await fingerprint(raw.path)
            except FileNotFoundError:
                return None  # gone since the scan
            except OSError as exc:
                if short_of_space(exc):
                    raise
                reason = f"cannot read it: {describe_error(exc)}"
                return hinted or await self._new_file(raw, recorded, "", reason)
            same = [r for r in recorded if (r.size, r.fingerprint) == (raw.size, content)]
            if legacy and hinted is not None:
                same = [hinted]  # known before fingerprints by its size and mtime
            if not same:
                return await self._new_file(raw, recorded, content)
            row = replace(same[-1], mtime_ns=raw.mtime_ns, fingerprint=content)
            await self.rt.state.set_identity(row.id, raw.mtime_ns, content)
        await self._forget_replaced(raw.key, recorded, keep=row.id)
        return row

    async def _new_file(
        self, raw: RawFile, recorded: list[FileRow], content: str, failure: str | None = None
    ) -> FileRow:
        await self._forget_replaced(raw.key, recorded, keep=None)
        state, name = self.rt.state, shown_name(raw.key)
        row = await state.add_file(
            raw.key, raw.size, raw.mtime_ns, content, await self._free_stem(raw)
        )
        log.info("%s: found, %d bytes, outputs named %r", name, raw.size, row.stem)
        if failure is not None:
            await state.set_file_state(row.id, FAILED, failure)
            log.error("%s: failed: %s", name, failure)
            row = replace(row, state=FAILED, error=failure)
        return row

    async def _forget_replaced(self, key: str, recorded: list[FileRow], keep: int | None) -> None:
        """Older contents at `key` that never finished nor published anything, and that no
        task works on, are forgotten with their work folders, and free their output names."""
        if any(r.id != keep and r.state in (PENDING, FAILED) for r in recorded):
            for gone in await self.rt.state.forget_replaced(key, keep or 0, self._active):
                await anyio.to_thread.run_sync(shutil.rmtree, self.rt.layout.file_work(gone), True)

    async def _output(
        self,
        kind: str,
        make: Callable[[Runtime, Source], Awaitable[None]],
        source: Source,
        failures: _Failures,
    ) -> None:
        """One output of one file; its failure is recorded and reported, not raised."""
        current = (await self.rt.state.outputs(source.row.id)).get(kind)
        if current is not None and current.state in FINISHED:
            return
        work = self.rt.layout.file_work(source.row.id, kind)
        try:
            # Published, then stopped (`pause --now`) before it was recorded: adopt it.
            if current is None or not await adopt(self.rt.state, current):
                await make(self.rt, source)
        except (VideoArchiverError, OSError) as exc:
            cause = await _explained(source, exc)
            reason = failures.add(cause, f"{kind}: ")
            await self.rt.state.set_output(source.row.id, kind, FAILED, error=reason)
            log.error("%s: %s failed: %s", source.name, kind, describe_error(cause))
            if isinstance(cause, VerifyError):  # what failed its check is kept to look at
                return
        await anyio.to_thread.run_sync(shutil.rmtree, work, True)

    async def _prepare_work(self, source: Source) -> None:
        """The file's work folder, holding only what was made from this very content: its
        identity is written in the folder, and a folder of other content is emptied."""
        folder = anyio.Path(self.rt.layout.file_work(source.row.id))
        marker = folder / SOURCE_MARKER
        if await folder.exists() and (
            not await marker.exists() or await marker.read_text() != source.identity
        ):
            await anyio.to_thread.run_sync(shutil.rmtree, Path(folder), True)
        if not await marker.exists():
            await folder.mkdir(parents=True, exist_ok=True)
            await marker.write_text(source.identity)

    async def _tidy_work(self, file_id: int) -> None:
        """A failed file's work folder goes when nothing is kept in it to look at."""
        folder = self.rt.layout.file_work(file_id)
        if await anyio.Path(folder).exists():
            names = [entry.name async for entry in anyio.Path(folder).iterdir()]
            if names == [SOURCE_MARKER]:
                await anyio.to_thread.run_sync(shutil.rmtree, folder, True)

    async def process(self, row: FileRow, raw: RawFile) -> None:
        """All outputs of one file, concurrently; any failure is recorded and logged."""
        state = self.rt.state
        failures = _Failures()
        try:
            if raw.size == 0:
                raise ProbeError("empty file (0 bytes)")
            await state.set_file_state(row.id, RUNNING)
            raw_input = RawInput(raw.path, self.rt.demuxers)
            async with self.rt.probe_slots:
                probed = await probe_file(raw_input)
            await state.set_probe(row.id, probed.json)
            mode = stat.S_IMODE((await anyio.Path(raw.path).stat()).st_mode) & 0o666
            source = Source(row=row, raw=raw, input=raw_input, probed=probed, mode=mode)
            await source.ensure_unchanged()
            await self._prepare_work(source)
            async with anyio.create_task_group() as group:
                for kind, make in OUTPUTS:
                    group.start_soon(self._output, kind, make, source, failures)
        except (VideoArchiverError, OSError) as exc:
            failures.add(exc)
        if failures.reasons:
            reason, detail = one_line("; ".join(failures.reasons)), "; ".join(failures.details)
            await state.set_file_state(row.id, FAILED, reason, detail)
            log.error("%s: failed: %s", shown_name(row.rel_path), detail)
            await self.rt.notifier.failed(shown_name(row.rel_path), reason)
            await self._tidy_work(row.id)
            if not await same_content(raw.path, row.size, row.fingerprint):
                # Replaced, perhaps with its size and mtime kept (`cp -p`): the next scan
                # must fingerprint what is there now, which is a new file.
                await state.set_identity(row.id, STALE_MTIME, row.fingerprint or "")
            if failures.for_space:
                self._short_of_space(shown_name(row.rel_path))
            return
        self._space.recovered()
        await anyio.to_thread.run_sync(shutil.rmtree, self.rt.layout.file_work(row.id), True)
        action = pending_action(self.rt.config.after_done)
        await state.set_done(row.id, action)
        log.info("%s: done", shown_name(row.rel_path))
        if action is not None:
            await self.finish_raw_action(await state.get_file(row.id))

    async def finish_raw_action(self, row: FileRow) -> None:
        """Carry out (and record) the pending `after_done` action of a done file."""
        try:
            action = await finish_raw_action(self.rt.layout, row)
        except (VideoArchiverError, OSError) as exc:
            action = f"{planned(row)} failed: {describe_error(exc)}"
            log.error("%s: raw file %s", shown_name(row.rel_path), action)
        await self.rt.state.set_raw_action(row.id, action)

    async def _process_and_release(self, row: FileRow, raw: RawFile) -> None:
        try:
            while True:
                with self.rt.gate.stoppable() as scope:
                    try:
                        async with self.rt.file_slots:
                            await self.process(row, raw)
                    except Exception as exc:
                        await self._after_escape(row, exc)
                if not scope.cancelled_caught:
                    break
                # `pause --now`, or the end of the working hours: it goes on from its parts.
                with anyio.CancelScope(shield=True):
                    await self.rt.state.requeue_interrupted(row.id)
                log.info("%s: stopped; it goes on when work may", shown_name(row.rel_path))
                await self.rt.gate.wait()
        finally:
            self._active.discard(row.id)
        if not self._active and self.rt.notifier.enabled:  # the queue is done: the totals
            summary = await self.rt.state.summary()
            await self.rt.notifier.send("videoarchiver: the queue is done", summary_line(summary))

    async def _after_escape(self, row: FileRow, exc: Exception) -> None:
        """What escaped `process` (a state write that failed while recording a failure, or a
        bug of ours) costs this file, never the daemon; a damaged state stops the daemon."""
        name = shown_name(row.rel_path)
        if first_of(exc, (StateError,)) is not None:
            raise exc
        if any(short_of_space(error) for error in leaves(exc)):
            # The state could not be written: it says running, and the file starts again
            # once the wait for space is over.
            self._short_of_space(name)
            return
        log.error("%s: internal error", name, exc_info=exc)
        try:
            with anyio.CancelScope(shield=True):
                await self.rt.state.set_file_state(row.id, FAILED, f"internal error: {exc!r}")
        except OSError as again:
            log.error("%s: cannot record the failure: %s", name, describe_error(again))

    async def _retry_space_failures(self) -> None:
        """Files that failed because a disk was full are tried again when no wait is on."""
        failed = await self.rt.state.files([FAILED])
        waiting = [r.rel_path for r in failed if space_message(r.error_detail or r.error or "")]
        for rel in await self.rt.state.retry(waiting) if waiting else []:
            log.info("%s: trying again (it failed for want of space)", shown_name(rel))

    def _short_of_space(self, name: str) -> None:
        wait = self._space.short()
        log.warning("%s: the disk is full; new work waits %g s, then it is tried again", name, wait)

    async def dispatch(self, group: TaskGroup) -> tuple[list[FileRow], float | None]:
        """Scan `raw/` and start every settled file that is neither finished nor running.

        Returns the rows of the settled files and the seconds until the next unsettled file
        settles (None when no file is waiting to settle).
        """
        self.rt.state.ensure_in_place()
        paused = self._space.remaining
        if not paused:
            await self._retry_space_failures()
        found = await scan(self.rt.layout.raw, self.rt.config.settle_seconds)
        pairs = await self.register(found.settled)
        for row, raw in pairs:
            if row.state not in (DONE, FAILED) and row.id not in self._active and not paused:
                self._active.add(row.id)
                group.start_soon(self._process_and_release, row, raw)
        await self._tell_systemd(paused)
        waits = [w for w in (found.next_settle, paused) if w]
        return [row for row, _raw in pairs], min(waits, default=None)

    async def _tell_systemd(self, paused: float) -> None:
        """A one-line status for `systemctl status`: what runs, what is done and failed."""
        if not listening():
            return
        counts = (await self.rt.state.summary()).files
        text = f"{len(self._active)} running, {counts.get(DONE, 0)} done, {counts.get(FAILED, 0)}"
        text += f" failed, {counts.get(PENDING, 0)} pending"
        notify(f"STATUS={text}" + (f"; disk full, waiting {paused:.0f} s" if paused else ""))

    async def run_once(self) -> bool:
        """Process every settled file not yet done or failed; True when all of them are done."""
        async with anyio.create_task_group() as group:
            rows, _next_settle = await self.dispatch(group)
        started = [row for row in rows if row.state not in (DONE, FAILED)]
        if any(row.state == FAILED for row in rows):
            return False
        now = [await self.rt.state.get_file(row.id) for row in started]
        return all(row.state == DONE for row in now)

    async def run_forever(self, wakeups: MemoryObjectReceiveStream[None]) -> None:
        """Dispatch at start, on every wake-up (a change in `raw/`), when a waiting file
        settles, and every `scan_interval` seconds; sleep in between."""
        interval = self.rt.config.scan_interval
        async with anyio.create_task_group() as group:
            while True:
                try:
                    _rows, next_settle = await self.dispatch(group)
                except OSError as exc:  # raw/ unreadable, or no space to record what is there
                    if not short_of_space(exc):
                        raise
                    self._short_of_space("raw/")
                    next_settle = self._space.remaining
                wait = interval if next_settle is None else min(interval, next_settle + 0.05)
                with anyio.move_on_after(wait):
                    await wakeups.receive()
