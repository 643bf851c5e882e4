"""Wires discovery, claims and the output pipelines into one structured-concurrency run.

Two roles share the loop. Discovery scans and watches `raw/` and registers settled files in
the store. Work claims pending files from the store under this worker's lease (the costliest
first) whenever an ffmpeg slot would otherwise sit idle, and processes each claimed file as a
task; inside it every stream job is a task, and the number of ffmpeg processes at once is
bounded by the runtime's ffmpeg slots (`slots.py`). Several workers on one store share the
files; one file's failure is recorded against that file and never reaches the others.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from videoarchiver import claim_folders
from videoarchiver.archiving import make_archive
from videoarchiver.claim_folders import SOURCE_MARKER
from videoarchiver.discovery import RawFile, scan
from videoarchiver.disposal import PENDING as PENDING_ACTION
from videoarchiver.disposal import (
    Outcome,
    finish_raw_action,
    pending_action,
    planned,
    quality_shortfall,
)
from videoarchiver.errors import (
    ClaimLost,
    ProbeError,
    SourceChangedError,
    StateError,
    StoreRefused,
    StoreUnavailable,
    StreamFailures,
    VerifyError,
    VideoArchiverError,
    describe_error,
    first_of,
    leaves,
    short_reason,
)
from videoarchiver.identity import Content, check_content, fingerprint, whole_sha256
from videoarchiver.montaging import make_montage
from videoarchiver.outputs import adopt
from videoarchiver.planning.claim_order import ABSENT, UNREADABLE, Estimate
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.messages import one_line
from videoarchiver.planning.paths import (
    rel_from_key,
    shown_name,
    shown_rel,
    stem_candidates,
)
from videoarchiver.planning.probe import parse_probe
from videoarchiver.previewing import make_preview
from videoarchiver.probing import probe_file, read_header
from videoarchiver.runtime import PROBE_SLOTS, Load, Runtime, Source
from videoarchiver.service import listening, status_text
from videoarchiver.space import (
    SpaceBackoff,
    passing,
    short_of_room,
    short_of_space,
    space_message,
)
from videoarchiver.state import (
    FINISHED,
    OUTPUT_KINDS,
    FileRow,
    FileState,
    IllegalMove,
    OutputState,
)
from videoarchiver.together import together
from videoarchiver.ui import human_size, summary_line

log = logging.getLogger(__name__)
SPACE_BASE_SECONDS = 60.0
STALE_MTIME = -1  # a recorded mtime no file has: the next scan reads the fingerprint
OTHER_CONTENT = ""  # a recorded fingerprint no file has: what is there is new content
RESCAN_AFTER_TROUBLE = 2.0  # seconds before `run --once` scans again after a lost registration
ESTIMATE_BATCH = 64  # new files of a scan estimated before they are registered
READ_TOGETHER = 2 * PROBE_SLOTS  # files of a scan read at once before they are registered
MAKERS: dict[str, Callable[[Runtime, Source], Awaitable[None]]] = {
    "archive": make_archive,
    "preview": make_preview,
    "montage": make_montage,
}
assert tuple(MAKERS) == OUTPUT_KINDS


async def _explained(source: Source, exc: BaseException) -> BaseException:
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


@dataclass(frozen=True)
class _Read:
    """What reading a raw file found: its fingerprint or why it cannot be read, and for
    new content its header (ffprobe's JSON) and cost, read before it is registered so that
    no worker claims it unestimated."""

    content: str
    failure: str | None = None
    header: str | None = None
    cost: Estimate | None = None


def _hinted(raw: RawFile, recorded: list[FileRow]) -> FileRow | None:
    """The newest row at the path if its size and mtime are those of the file found."""
    hinted = recorded[-1] if recorded else None
    if hinted is None or (hinted.size, hinted.mtime_ns) != (raw.size, raw.mtime_ns):
        return None
    return hinted


def _trusted(raw: RawFile, recorded: list[FileRow]) -> FileRow | None:
    """The row a file is taken for on trust by size and mtime, unread (a file done before
    fingerprints existed is read only if it is needed again)."""
    hinted = _hinted(raw, recorded)
    if hinted is not None and (hinted.fingerprint or hinted.state is FileState.DONE):
        return hinted
    return None


def _claim_lost(name: str) -> None:
    log.warning("%s: this worker lost its claim (its lease ran out); another worker carries on",
                name)  # fmt: skip


@dataclass(frozen=True)
class _Claim:
    """A file this worker holds."""

    scope: anyio.CancelScope  # its task's
    at: float  # when it was claimed (monotonic clock)
    load: Load  # what it still asks of the ffmpeg slots


class Scheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._held: dict[int, _Claim] = {}
        self._turns = itertools.count()  # the order of this worker's claims
        self._claiming = False  # a claim is on its way to the store
        self._settled: set[int] = set()  # held files recorded done or failed: their claim ended
        self._absent: set[int] = set()  # pending files not in raw/ as recorded: until a scan
        self._wake = anyio.Event()
        self._registered = anyio.Event()  # files were registered that are not estimated
        self._finished_any = False  # a file ended since the queue was last found empty
        self._drained = False  # the last claim found nothing pending
        self._raw_missing = False
        self._cramped = False  # a disk has less free than its headroom: no work is claimed
        # Retried from the first rescan on, then after doubling waits.
        self._space = SpaceBackoff(min(runtime.config.scan_interval, SPACE_BASE_SECONDS))

    # -- discovery -----------------------------------------------------------------------------

    async def _free_stem(self, raw: RawFile) -> str:
        for stem in stem_candidates(shown_rel(raw.key)):
            if await self.rt.state.stem_taken(stem):
                continue
            if any(path.exists() for path in self.rt.layout.output_paths(stem)):
                continue
            return stem
        raise AssertionError("stem_candidates never ends")

    async def register(self, raws: Sequence[RawFile]) -> list[tuple[FileRow, RawFile]]:
        """The state rows of settled raw files, created (output names reserved) for new ones.

        Known files are looked up together: a rescan of 100,000 files is a few hundred
        queries, not 100,000, and reads no file whose size and mtime are as recorded. A
        file's row is made in a transaction that looks again first, so two workers
        scanning together register it once.
        """
        known = await self.rt.state.find_files([raw.key for raw in raws])
        rows = []
        headers = ESTIMATE_BATCH  # new files read whole before they are registered
        for start in range(0, len(raws), READ_TOGETHER):
            chunk = raws[start : start + READ_TOGETHER]
            # Read outside the transactions (a slow share must not hold the others up),
            # several files at once: each ffprobe of a header mostly waits for its start.
            new = [raw for raw in chunk if _trusted(raw, known.get(raw.key, [])) is None]
            reads = dict(zip(new, await together([
                partial(self._read, raw, known.get(raw.key, []), headers > 0) for raw in new
            ]), strict=True))  # fmt: skip
            headers -= sum(read is not None and read.header is not None for read in reads.values())
            for raw in chunk:
                try:
                    row = await self._register_one(raw, known.get(raw.key, []), reads.get(raw))
                except StoreRefused as exc:  # this file's (a path too long for an index …)
                    log.error("%s: cannot be registered: %s", shown_name(raw.key), exc)
                    continue
                if row is not None:
                    rows.append((row, raw))
                    if row.state is FileState.PENDING:
                        self._wake.set()  # a long first scan does not keep the slots idle
        return rows

    async def _register_one(
        self, raw: RawFile, recorded: list[FileRow], read: _Read | None
    ) -> FileRow | None:
        """One settled file's row, from what reading it found unless it is known by size
        and mtime (None: it is gone since the scan)."""
        row = _trusted(raw, recorded)
        if row is not None:
            forgotten = await self._forget_replaced(raw.key, recorded, keep=row.id)
        else:
            if read is None:
                return None
            async with self.rt.state.registering():
                recorded = (await self.rt.state.find_files([raw.key])).get(raw.key, [])
                row, forgotten = await self._identify(raw, recorded, read)
        for gone in forgotten:
            await anyio.to_thread.run_sync(shutil.rmtree, self.rt.layout.file_work(gone), True)
        return row

    async def _read(self, raw: RawFile, recorded: list[FileRow], estimate: bool) -> _Read | None:
        """Fingerprint the file (None: it is gone); new content is also estimated, when
        `estimate`, from ffprobe's reading of its header (kept for its processing)."""
        try:
            content = await fingerprint(raw.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if short_of_space(exc):
                raise
            return _Read("", f"cannot read it: {describe_error(exc)}")
        known = any((r.size, r.fingerprint) == (raw.size, content) for r in recorded)
        if known or not estimate:
            return _Read(content)
        header, cost = await self._header(raw.path)
        return _Read(content, None, header, cost)

    async def _header(self, path: Path) -> tuple[str | None, Estimate]:
        """ffprobe's JSON of a raw file's header and the cost it implies (no JSON: it cannot
        be read, which its processing says first of all)."""
        try:
            async with self.rt.probe_slots:
                header = await read_header(RawInput(path, self.rt.demuxers))
            return header.decode("utf-8", "replace"), self.rt.costs.claim_order(parse_probe(header))
        except (VideoArchiverError, OSError, ValueError, ArithmeticError):
            return None, UNREADABLE  # ArithmeticError: a header whose numbers no float holds

    async def _identify(
        self, raw: RawFile, recorded: list[FileRow], read: _Read
    ) -> tuple[FileRow, list[int]]:
        """The row for the content now at `raw.rel` (as `read`): a known one, or a new file;
        a file that cannot be read is recorded failed with the reason. Also the ids of older
        contents forgotten, whose work folders go."""
        hinted = _hinted(raw, recorded)
        if read.failure is not None and hinted is not None:
            return hinted, []
        same = [r for r in recorded if (r.size, r.fingerprint) == (raw.size, read.content)]
        if hinted is not None and hinted.fingerprint is None:
            same = [hinted]  # known before fingerprints by its size and mtime
        if read.failure is not None or not same:
            return await self._new_file(raw, recorded, read)
        row = replace(same[-1], mtime_ns=raw.mtime_ns, fingerprint=read.content)
        await self.rt.state.set_identity(row.id, raw.mtime_ns, read.content)
        return row, await self._forget_replaced(raw.key, recorded, keep=row.id)

    async def _new_file(
        self, raw: RawFile, recorded: list[FileRow], read: _Read
    ) -> tuple[FileRow, list[int]]:
        forgotten = await self._forget_replaced(raw.key, recorded, keep=None)
        state, name = self.rt.state, shown_name(raw.key)
        stem = await self._free_stem(raw)
        row = await state.add_file(
            raw.key, raw.size, raw.mtime_ns, read.content, stem, read.cost, read.header
        )
        log.info("%s: found, %d bytes, outputs named %r", name, raw.size, row.stem)
        if read.failure is not None:
            await state.fail_file(row.id, read.failure)
            log.error("%s: failed: %s", name, read.failure)
            row = replace(row, state=FileState.FAILED, error=read.failure)
        elif read.cost is None:
            self._registered.set()  # the estimator has work
        return row, forgotten

    async def _forget_replaced(
        self, key: str, recorded: list[FileRow], keep: int | None
    ) -> list[int]:
        """Older contents at `key` that no worker holds are forgotten (freeing their output
        names) if they never finished nor published anything, else failed as replaced;
        returns the ids of both (their work folders are to go)."""
        idle = (FileState.PENDING, FileState.FAILED)
        if not any(r.id != keep and r.state in idle for r in recorded):
            return []
        return await self.rt.state.forget_replaced(key, keep or 0)

    async def _output(self, kind: str, source: Source, failures: _Failures) -> None:
        """One output of one file; its failure is recorded and reported, not raised. Once
        it ends (made, failed, or made before) the file asks no more long steps for it."""
        try:
            await self._make_output(kind, source, failures)
        finally:
            source.load.made(kind)

    async def _make_output(self, kind: str, source: Source, failures: _Failures) -> None:
        current = (await self.rt.state.outputs(source.row.id)).get(kind)
        if current is not None and current.state in FINISHED:
            return
        by = self.rt.worker.id
        try:
            # Published, then stopped (`pause --now`) before it was recorded: adopt it.
            adopted = current is not None and await adopt(
                self.rt.state, self.rt.layout, current, by, source.row.claims
            )
            if not adopted:
                await self.rt.state.set_output(source.row.id, kind, OutputState.RUNNING, by=by)
                await MAKERS[kind](self.rt, source)
        except (VideoArchiverError, OSError, StreamFailures) as exc:
            if first_of(exc, (StoreUnavailable,)):
                raise  # no failure of this output: the state's server is away
            if short_of_space(exc):  # what it wrote is of no use, and the disk needs room
                await anyio.to_thread.run_sync(shutil.rmtree, source.work / kind, True)
            cause = await _explained(source, exc)
            reason = failures.add(cause, f"{kind}: ")
            await self.rt.state.set_output(
                source.row.id, kind, OutputState.FAILED, error=reason, by=by
            )
            log.error("%s: %s failed: %s", source.name, kind, describe_error(cause))
            if first_of(cause, (VerifyError,)):  # what failed its check is kept to look at
                return
        await anyio.to_thread.run_sync(shutil.rmtree, source.work / kind, True)

    async def _hash_whole(self, source: Source) -> None:
        """Record the SHA-256 of the raw file's whole content, read beside its encodes the
        first time it is processed (without it, `after_done` keeps the raw file)."""
        try:
            sha256 = await whole_sha256(source.path)
        except OSError as exc:  # its outputs say it too, if it is gone
            log.warning("%s: cannot hash the raw file: %s", source.name, describe_error(exc))
            return
        await self.rt.state.set_sha256(source.row.id, sha256)
        # What this claim makes is now of hashed content: a later claim keeps its parts
        # (unless this cannot be said: then they are made again).
        with contextlib.suppress(OSError):
            await anyio.Path(source.work / SOURCE_MARKER).write_text(source.identity)

    async def _tidy_work(self, row: FileRow) -> None:
        """A failed file's claim folder goes when nothing is kept in it to look at."""
        folder = anyio.Path(self.rt.layout.claim_work(row.id, row.claims))
        if await folder.exists():
            names = [entry.name async for entry in folder.iterdir()]
            if names in ([], [SOURCE_MARKER]):
                await self._remove_work(row)

    async def _remove_work(self, row: FileRow) -> None:
        await anyio.to_thread.run_sync(
            claim_folders.remove, self.rt.layout.file_work(row.id), row.claims
        )

    async def process(self, row: FileRow, raw: RawFile, load: Load) -> None:
        """All outputs of one claimed file, concurrently; any failure is recorded and logged."""
        state = self.rt.state
        failures = _Failures()
        try:
            if raw.size == 0:
                raise ProbeError("empty file (0 bytes)")
            raw_input = RawInput(raw.path, self.rt.demuxers)
            async with self.rt.probe_slots:
                header = await state.probe_of(row.id)
                probed = await probe_file(raw_input, header.encode() if header else None)
            await state.set_probe(row.id, probed.json)
            mode = stat.S_IMODE((await anyio.Path(raw.path).stat()).st_mode) & 0o666
            work = self.rt.layout.claim_work(row.id, row.claims)
            source = Source(row, raw, raw_input, probed, mode, load, work)
            await source.ensure_unchanged()
            # Before anything else: what the claims before this one left is this one's.
            # Parts made before the whole content was hashed (by a claim stopped first) are
            # of content nothing proves: they are not kept.
            made_from = source.identity if row.sha256 else f"{source.identity}:{row.claims}"
            await anyio.to_thread.run_sync(
                claim_folders.prepare, work.parent, row.claims, made_from
            )
            async with anyio.create_task_group() as group:
                if row.sha256 is None:
                    group.start_soon(self._hash_whole, source)
                for kind in OUTPUT_KINDS:
                    group.start_soon(self._output, kind, source, failures)
        except (VideoArchiverError, OSError) as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            failures.add(exc)
        if failures.reasons and not await self._root_there():
            # An unmounted share fails everything: no failure of this file. It goes back.
            name, root = shown_name(row.rel_path), self.rt.layout.root
            log.warning("%s: stopped: the root folder %s is not there (unmounted?); the file"
                        " goes on once it is", name, root)  # fmt: skip
            await self._give_back(row.id)
            return
        if failures.reasons:
            reason, detail = one_line("; ".join(failures.reasons)), "; ".join(failures.details)
            self._settled.add(row.id)
            await state.fail_file(row.id, reason, detail, by=self.rt.worker.id)
            log.error("%s: failed: %s", shown_name(row.rel_path), detail)
            await self.rt.notifier.failed(shown_name(row.rel_path), reason)
            await self._tidy_work(row)
            if await check_content(raw.path, row.size, row.fingerprint) is Content.OTHER:
                # Replaced, perhaps with its size and mtime kept (`cp -p`): the next scan
                # must fingerprint what is there now, which is a new file.
                await state.set_identity(row.id, STALE_MTIME, row.fingerprint or OTHER_CONTENT)
            if failures.for_space:
                self._short_of_space(shown_name(row.rel_path))
            return
        self._space.recovered()
        await self._remove_work(row)
        await self.settle(row, pending_action(self.rt.config.after_done))
        log.info("%s: done", shown_name(row.rel_path))

    async def settle(self, row: FileRow, raw_action: str | None) -> None:
        """Record a held file done: its claim ends, but what follows (the raw action) is no
        longer work another worker could take over, so the heartbeat leaves it be."""
        self._settled.add(row.id)
        await self.rt.state.finish_file(row.id, raw_action, by=self.rt.worker.id)

    async def _finish_pending(self, file_id: int) -> None:
        """The raw action of a file just recorded done, if one is pending."""
        row = await self.rt.state.get_file(file_id)
        if row.state is FileState.DONE and (row.raw_action or "").endswith(PENDING_ACTION):
            await self.finish_raw_action(row)

    async def finish_pending_raw_actions(self) -> None:
        """Those a kill or a stop left pending (at start)."""
        for row in await self.rt.state.with_pending_raw_action(PENDING_ACTION):
            await self.finish_raw_action(row)

    async def finish_raw_action(self, row: FileRow) -> None:
        """Carry out (and record) the pending `after_done` action of a done file; never
        while the state database is not the one opened (StateError: the daemon stops),
        since what is done to a raw file must be recorded where it can be read again."""
        state = self.rt.state
        state.ensure_in_place()
        # Only when every re-encoded video stream reaches the quality asked for.
        jobs = (await state.jobs(row.id, "archive")).values()
        held = quality_shortfall(jobs, self.rt.config.archive.min_ssim)
        try:
            if held is not None:
                outcome: Outcome | None = Outcome(f"kept: {held}")
                log.warning("%s: raw file kept: %s", shown_name(row.rel_path), held)
            else:
                outcome = await finish_raw_action(self.rt.layout, row, state.ensure_in_place)
        except StateError:
            raise
        except (VideoArchiverError, OSError) as exc:
            outcome = Outcome(f"{planned(row)} failed: {describe_error(exc)}")
            log.error("%s: raw file %s", shown_name(row.rel_path), outcome.action)
        if outcome is None:  # raw/ is not there: still pending
            return
        if outcome.other_content:  # the next scan reads what is there as new footage
            await self.rt.state.set_identity(row.id, STALE_MTIME, OTHER_CONTENT)
        await self.rt.state.set_raw_action(row.id, outcome.action)

    async def _run_claimed(self, row: FileRow, raw: RawFile, claim: _Claim) -> None:
        """Process a claimed file; a pause that stops running work (`pause --now`, the end
        of the working hours) gives the claim back: whoever claims it next (this worker
        or another) goes on from its parts. Its scope is cancelled if the lease is lost."""
        name = shown_name(row.rel_path)
        try:
            with claim.scope:
                with self.rt.gate.stoppable() as stop:
                    try:
                        await self.process(row, raw, claim.load)
                    except Exception as exc:
                        await self._after_escape(row, exc)
                if stop.cancelled_caught:
                    with anyio.CancelScope(shield=True):
                        await self._give_back(row.id)
                    log.info("%s: stopped; it goes on when work may", name)
            if claim.scope.cancelled_caught:
                _claim_lost(name)
            elif row.id in self._settled:  # what follows no pause stops (a stop does)
                try:
                    await self._finish_pending(row.id)
                except Exception as exc:
                    await self._after_escape(row, exc)
        finally:
            if self._held.get(row.id) is claim:
                del self._held[row.id]
            self._settled.discard(row.id)
            self._finished_any = True
            self._wake.set()

    async def _give_back(self, file_id: int) -> None:
        """Release a claim; if the state cannot be reached, its lease runs out instead."""
        try:
            await self.rt.state.release(self.rt.worker.id, [file_id])
        except (StoreUnavailable, OSError) as exc:  # the server away, or a full disk
            if not passing(exc):
                raise
            why = describe_error(exc)
            log.warning("cannot give file %d back now (%s): its lease runs out", file_id, why)

    def wake(self) -> None:
        """Look for work now (another worker registered or gave back some)."""
        self._wake.set()

    async def keep_held(self, held: set[int], asked: float) -> None:
        """The heartbeat's answer (`held`, read at `asked` on the monotonic clock): stop
        working on files whose claim was lost (not those whose claim ended because they were
        recorded done or failed, nor those claimed since it asked), and give back claims no
        task works on (a failure that could not be recorded; never while a claim is being
        made: it may be that one)."""
        for file_id, claim in self._held.items():
            lost = file_id not in held and claim.at < asked
            if lost and file_id not in self._settled:
                claim.scope.cancel()
        if (stray := held - set(self._held)) and not self._claiming:
            await self.rt.state.release(self.rt.worker.id, stray)

    async def _after_escape(self, row: FileRow, exc: Exception) -> None:
        """What escaped `process` (a state write that failed while recording a failure, or a
        bug of ours) costs this file, never the daemon; a damaged state stops the daemon."""
        name = shown_name(row.rel_path)
        if first_of(exc, (ClaimLost,)) is not None:
            _claim_lost(name)
            return
        if first_of(exc, (StoreUnavailable,)) is not None:
            log.warning("%s: stopped: the state database cannot be reached; the file goes"
                        " on once it answers (its lease runs out meanwhile)", name)  # fmt: skip
            return
        if first_of(exc, (IllegalMove,)) is not None:  # a bug of ours: this file, not all
            log.error("%s: internal error; the file is given back", name, exc_info=exc)
            with anyio.CancelScope(shield=True):
                await self._give_back(row.id)
            return
        state_error = first_of(exc, (StateError,))
        if state_error is not None and not isinstance(state_error, StoreRefused):
            raise exc  # the state itself is unusable: the daemon stops
        if any(short_of_space(error) for error in leaves(exc)):
            # The state could not be written: the file goes back to pending, and is claimed
            # again once the wait for space is over.
            self._short_of_space(name)
            with anyio.CancelScope(shield=True):
                await self._give_back(row.id)
            return
        log.error("%s: internal error", name, exc_info=exc)
        try:
            with anyio.CancelScope(shield=True):
                await self.rt.state.fail_file(
                    row.id, f"internal error: {exc!r}", by=self.rt.worker.id
                )
        except (OSError, ClaimLost, StoreUnavailable) as again:
            log.error("%s: cannot record the failure: %s", name, describe_error(again))

    async def _retry_space_failures(self) -> None:
        """Files that failed because a disk was full are tried again when no wait is on."""
        failed = await self.rt.state.files([FileState.FAILED])
        waiting = [r.rel_path for r in failed if space_message(r.error_detail or r.error or "")]
        for rel in await self.rt.state.retry(waiting) if waiting else []:
            log.info("%s: trying again (it failed for want of space)", shown_name(rel))

    def _short_of_space(self, name: str) -> None:
        wait = self._space.short()
        log.warning("%s: the disk is full; new work waits %g s, then it is tried again", name, wait)

    async def estimate(self) -> bool:
        """Estimate the cost of up to ESTIMATE_BATCH pending files (from ffprobe's header
        reading, not the packet pass); True when there may be more to estimate."""
        rows = await self.rt.state.to_estimate(ESTIMATE_BATCH)

        async def one(row: FileRow) -> None:
            header, cost = await self._header(self.rt.layout.raw / rel_from_key(row.rel_path))
            if header is not None:  # kept: processing starts from it
                await self.rt.state.set_probe(row.id, header)
            await self.rt.state.set_cost(row.id, cost)

        async with anyio.create_task_group() as group:
            for row in rows:
                group.start_soon(one, row)
        return len(rows) == ESTIMATE_BATCH

    async def _estimate_rest(self) -> None:
        """Estimate pending files without a cost until none is left."""
        while await self.estimate():
            self._wake.set()

    async def _estimate_forever(self) -> None:
        """Costs of what the first estimate of a scan left (a first scan of a large raw/)."""
        while True:
            await self._registered.wait()
            self._registered = anyio.Event()
            await self._estimate_rest()

    async def discover(self) -> tuple[list[FileRow], float | None]:
        """Scan `raw/` and register every settled file; wake the claimer.

        Returns the rows of the settled files and the seconds until the next unsettled file
        settles or the wait for space ends (None when neither is waited for).
        """
        self.rt.state.ensure_in_place()
        paused = self._space.remaining
        if not paused:
            await self._retry_space_failures()
        found = await scan(self.rt.layout.raw, self.rt.config.settle_seconds)
        pairs = await self.register(found.settled)
        self._absent.clear()
        self._wake.set()
        waits = [w for w in (found.next_settle, paused) if w]
        return [row for row, _raw in pairs], min(waits, default=None)

    def systemd_status(self) -> str:
        """The line `systemctl status` shows (`service.status_text`)."""
        progress = self.rt.progress
        return status_text(progress.tasks(), len(self._held), progress.queue.summary,
                           self._space.remaining)  # fmt: skip

    # -- work ----------------------------------------------------------------------------------

    async def _root_there(self) -> bool:
        """raw/ and work/ are there to read and write (a share may hang: not inline)."""
        layout = self.rt.layout
        return await anyio.Path(layout.raw).is_dir() and await anyio.Path(layout.work).is_dir()

    async def _may_claim(self) -> bool:
        """Claim another file only while an ffmpeg slot would otherwise sit idle, work may
        start (no pause, no wait for space), raw/ is there to read and the disks have room."""
        if not self._slot_would_idle():
            return False  # decided without touching the disk: most wake-ups end here
        rt = self.rt
        raw_there = await self._root_there()
        if raw_there == self._raw_missing:
            self._raw_missing = not raw_there
            if raw_there:
                log.info("the root folder is back: claiming work again")
            else:
                log.warning("the root folder %s (raw/ and work/) is not there (unmounted?):"
                            " claiming no work until it is", rt.layout.root)  # fmt: skip
        # Read again after the waits above: a pause may have come meanwhile.
        return raw_there and await self._room_left() and self._slot_would_idle()

    async def _room_left(self) -> bool:
        """Every disk the root writes to has more free than its headroom (said once when
        one runs short, once when there is room again)."""
        layout = self.rt.layout
        folders = (layout.work, layout.archive, layout.preview, layout.screenshot)
        short = await anyio.to_thread.run_sync(
            short_of_room, folders, self.rt.config.min_free_space
        )
        if (short is not None) != self._cramped:
            self._cramped = short is not None
            if short is None:
                log.info("the disks have room again: claiming work again")
            else:
                folder, free, kept = short
                log.warning("%s has %s free, less than the %s kept (min_free_space): no new"
                            " work starts until there is more", folder, human_size(free),
                            human_size(kept))  # fmt: skip
        return short is None

    def _slot_would_idle(self) -> bool:
        """Work may start (no pause, no wait for space), fewer than twice as many files held
        as there are slots still have long steps to run (encodes, montage sheets; one past
        them only assembles its outputs, a few short steps: it does not count), and a slot
        would idle: no step waits for one, or only short ones do (the files held have fewer
        long steps waiting or running than there are slots)."""
        rt, jobs = self.rt, self.rt.config.effective_jobs
        loads = [claim.load for claim in self._held.values()]
        full = rt.ffmpeg_slots.waiting > 0 and sum(load.long_steps for load in loads) >= jobs
        making = sum(1 for load in loads if load.making)
        return not rt.gate.paused and not self._space.remaining and making < 2 * jobs and not full

    async def _raw_of(self, row: FileRow) -> RawFile | None:
        """The claimed file as it is in raw/ now, if it is there with its recorded size."""
        raw = self.rt.layout.raw
        rel = rel_from_key(row.rel_path)
        try:
            info = await anyio.Path(raw / rel).stat()
        except OSError:
            return None
        if info.st_size != row.size:
            return None
        return RawFile(raw, rel, info.st_size, info.st_mtime_ns)

    async def claim_more(self, group: TaskGroup) -> None:
        """Claim and start files while this worker may take more."""
        rt = self.rt
        while await self._may_claim():
            skip = sorted(self._absent | set(self._held))  # never a file it works on already
            self._claiming = True
            try:
                row = await rt.state.claim(rt.worker.id, rt.config.lease_seconds, skip)
            finally:
                self._claiming = False
            if row is None:
                self._drained = True
                if self._finished_any and not self._held:
                    self._finished_any = False
                    await self._queue_done()
                return
            raw = await self._raw_of(row)
            if raw is None:  # moved or replaced since it was registered: the scan will tell
                await rt.state.release(rt.worker.id, [row.id])
                await rt.state.set_cost(row.id, ABSENT)  # claimed after all the others
                if row.id in self._absent:  # more absent files than a claim skips: all
                    self._drained = True  # that are there have been claimed
                    return
                self._absent.add(row.id)
                continue
            log.info("%s: claimed by worker %s", shown_name(row.rel_path), rt.worker.id)
            load = Load(next(self._turns), set(OUTPUT_KINDS), self.wake)
            self._held[row.id] = claim = _Claim(anyio.CancelScope(), time.monotonic(), load)
            group.start_soon(self._run_claimed, row, raw, claim)

    async def _queue_done(self) -> None:
        """Nothing is left to claim and this worker holds nothing: say so, with the totals."""
        if self.rt.notifier.enabled:
            summary = await self.rt.state.summary()
            await self.rt.notifier.send("videoarchiver: the queue is done", summary_line(summary))

    async def work(self, group: TaskGroup, until_idle: bool) -> None:
        """Claim work whenever woken (a file ended, a scan registered files, another worker
        said so) or every `POLL_SECONDS` of the store; with `until_idle`, return once this
        worker holds nothing and found nothing to claim (a pause, or a wait for space, is
        waited out)."""
        while True:
            self._wake = anyio.Event()
            if self.rt.progress.listened or listening():  # the display's queue line, systemd's
                self.rt.progress.queue_changed(await self.rt.state.summary())
            self._drained = False
            try:
                await self.claim_more(group)
            except OSError as exc:  # a claim could not be recorded: the disk is full
                if not short_of_space(exc):
                    raise
                self._short_of_space("claiming work")
            # Nothing held, and nothing to claim: a pause or a wait for space that no file
            # waits for is not waited out, nor a disk short of its headroom.
            idle = self._drained or self._cramped or not await self._waiting()
            if until_idle and not self._held and idle:
                return
            with anyio.move_on_after(self.rt.state.POLL_SECONDS):
                await self._wake.wait()

    async def _waiting(self) -> bool:
        """Whether any file waits to be claimed."""
        return bool(await self.rt.state.queue(1))

    async def run_once(self) -> bool:
        """Process every settled file not yet done or failed; True when none of them failed
        and each is done (or still running under another worker's claim: one this worker
        still holds, as it could not record the end of its work, is left unfinished)."""
        async with anyio.create_task_group() as group:
            while True:
                try:
                    rows, _next_settle = await self.discover()
                    break
                except StoreUnavailable as exc:  # a server restart cut a registration short
                    log.warning("scan stopped: %s; scanning again", exc)
                    await anyio.sleep(RESCAN_AFTER_TROUBLE)
            if await self.estimate():  # as `run_forever` does before its first claim
                group.start_soon(self._estimate_rest)
            await self.work(group, until_idle=True)
        if any(row.state is FileState.FAILED for row in rows):
            return False
        # Only those that were to be done are read again (a rescan of 100,000 done files
        # must not be 100,000 queries).
        started = [row.id for row in rows if row.state is not FileState.DONE]
        now = [await self.rt.state.get_file(file_id) for file_id in started]
        me = self.rt.worker.id
        unfinished = [
            row for row in now
            if row.state is not FileState.DONE
            and not (row.state is FileState.RUNNING and row.worker != me)
        ]  # fmt: skip
        for row in unfinished:
            if row.state is not FileState.FAILED:
                log.warning(
                    "%s: left unfinished; it goes on at the next run", shown_name(row.rel_path)
                )
        return not unfinished

    async def _discover_forever(self, wakeups: MemoryObjectReceiveStream[None]) -> None:
        """Scan at start, on every wake-up (a change in `raw/`), when a waiting file
        settles, and every `scan_interval` seconds; sleep in between."""
        interval = self.rt.config.scan_interval
        while True:
            try:
                _rows, next_settle = await self.discover()
            except StoreUnavailable as exc:
                log.warning("scan stopped: %s; scanning again later", exc)
                next_settle = None
            except OSError as exc:  # raw/ unreadable, or no space to record what is there
                if not short_of_space(exc):
                    raise
                self._short_of_space("raw/")
                next_settle = self._space.remaining
            wait = interval if next_settle is None else min(interval, next_settle + 0.05)
            with anyio.move_on_after(wait):
                await wakeups.receive()

    async def run_forever(self, wakeups: MemoryObjectReceiveStream[None]) -> None:
        """Discovery and work side by side until cancelled."""
        # Before the first claim, a batch of the pending files left without a cost (by a
        # migration, a worker that died estimating, a large scan); the rest beside the work.
        if await self.estimate():
            self._registered.set()
        async with anyio.create_task_group() as group:
            group.start_soon(self._discover_forever, wakeups)
            group.start_soon(self._estimate_forever)
            group.start_soon(self.rt.state.watch, self.wake)
            await self.work(group, until_idle=False)
