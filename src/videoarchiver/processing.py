"""Running one claimed file through its outputs, then what follows its end (the raw action).

Each output of the file is made concurrently by its maker; a failure of one is recorded
against it and the file, never raised to the others or to the worker. A file whose outputs
are all made is recorded done with its raw action pending (`after_done`), which is carried
out next and recorded in its turn: a kill in between leaves it pending, to be finished at
the next start.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import stat
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from videoarchiver import claim_folders
from videoarchiver.claim_folders import SOURCE_MARKER
from videoarchiver.discovery import RawFile
from videoarchiver.disposal import PENDING as PENDING_ACTION
from videoarchiver.disposal import (
    Outcome,
    finish_raw_action,
    pending_action,
    planned,
    quality_shortfall,
)
from videoarchiver.errors import (
    ProbeError,
    SourceChangedError,
    StateError,
    StoreUnavailable,
    StreamFailures,
    VerifyError,
    VideoArchiverError,
    describe_error,
    first_of,
    short_reason,
)
from videoarchiver.identity import Content, check_content, whole_sha256
from videoarchiver.layout import root_there
from videoarchiver.output_kinds import kind as output_kind
from videoarchiver.output_kinds import names
from videoarchiver.outputs import adopt
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.messages import one_line
from videoarchiver.planning.paths import shown_name
from videoarchiver.probing import probe_file
from videoarchiver.runtime import Load, Runtime, Source
from videoarchiver.space import SpaceBackoff, short_of_space
from videoarchiver.state import FINISHED, EventKind, FileRow, FileState, OutputState

log = logging.getLogger(__name__)
STALE_MTIME = -1  # a recorded mtime no file has: the next scan reads the fingerprint
OTHER_CONTENT = ""  # a recorded fingerprint no file has: what is there is new content


class Claims(Protocol):
    """What processing tells the claims of its worker."""

    def ending(self, file_id: int) -> None:
        """The held file is about to be recorded done or failed, which ends its claim: the
        heartbeat must not take that for a lost claim."""

    async def give_back(self, file_id: int) -> bool:
        """Release the file's claim: another claim goes on from its parts (False: this
        worker no longer held it, or the state could not be reached)."""


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


class Processor:
    """Processes the files one worker claims (`process`) and records their end."""

    def __init__(self, runtime: Runtime, claims: Claims, space: SpaceBackoff) -> None:
        self.rt = runtime
        self.claims = claims
        self.space = space  # the wait for space, which a file that fails for it starts

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
                probed = await probe_file(
                    self.rt.run_process, raw_input, header.encode() if header else None
                )
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
                for kind in names():
                    group.start_soon(self._output, kind, source, failures)
        except (VideoArchiverError, OSError) as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            failures.add(exc)
        if failures.reasons and not await root_there(self.rt.layout):
            # An unmounted share fails everything: no failure of this file. It goes back.
            name, root = shown_name(row.rel_path), self.rt.layout.root
            log.warning("%s: stopped: the root folder %s is not there (unmounted?); the file"
                        " goes on once it is", name, root)  # fmt: skip
            await self.claims.give_back(row.id)
            return
        if failures.reasons:
            await self._fail(row, raw, failures)
            return
        self.space.recovered()
        await self._remove_work(row)
        await self.settle(row, pending_action(self.rt.config.after_done))
        log.info("%s: done", shown_name(row.rel_path))

    async def settle(self, row: FileRow, raw_action: str | None) -> None:
        """Record a held file done: its claim ends, but what follows (the raw action) is no
        longer work another worker could take over, so the heartbeat leaves it be."""
        self.claims.ending(row.id)
        await self.rt.state.finish_file(row.id, raw_action, by=self.rt.worker.id)

    async def finish_pending(self, file_id: int) -> None:
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
            await state.set_identity(row.id, STALE_MTIME, OTHER_CONTENT)
        await state.set_raw_action(row.id, outcome.action)
        await state.note(row.id, EventKind.RAW, f"raw file {outcome.action}")

    # -- one file's steps ----------------------------------------------------------------------

    async def _fail(self, row: FileRow, raw: RawFile, failures: _Failures) -> None:
        state, name = self.rt.state, shown_name(row.rel_path)
        reason, detail = one_line("; ".join(failures.reasons)), "; ".join(failures.details)
        self.claims.ending(row.id)
        await state.fail_file(row.id, reason, detail, by=self.rt.worker.id)
        log.error("%s: failed: %s", name, detail)
        await self.rt.notifier.failed(name, reason)
        await self._tidy_work(row)
        if await check_content(raw.path, row.size, row.fingerprint) is Content.OTHER:
            # Replaced, perhaps with its size and mtime kept (`cp -p`): the next scan must
            # fingerprint what is there now, which is a new file.
            await state.set_identity(row.id, STALE_MTIME, row.fingerprint or OTHER_CONTENT)
        if failures.for_space:
            self.space.ran_out(name)

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
                await output_kind(kind).maker(self.rt, source)
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
