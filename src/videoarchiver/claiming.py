"""Claiming and holding files: one worker's claims, taken while an ffmpeg slot would idle.

A worker claims the next pending file from the store under its lease (in the store's claim
order) whenever an ffmpeg slot would otherwise sit idle, and runs each claimed file as a task
of its own. The heartbeat (`workers.keep_alive`) renews the leases and answers which files the
worker still holds: a file whose claim was lost (its lease ran out, another worker took it
over) is cancelled here, never recorded over the worker that holds it now. A pause that stops
running work, an unmounted root and a full disk give claims back; anything that escapes a
file's processing costs that file, never the worker.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from videoarchiver.discovery import RawFile
from videoarchiver.errors import (
    ClaimLost,
    StateError,
    StoreRefused,
    StoreUnavailable,
    describe_error,
    first_of,
    leaves,
)
from videoarchiver.layout import root_there
from videoarchiver.output_kinds import names
from videoarchiver.planning.claim_order import ABSENT
from videoarchiver.planning.paths import rel_from_key, shown_name
from videoarchiver.processing import Claims, Processor
from videoarchiver.runtime import Load, Runtime
from videoarchiver.service import listening
from videoarchiver.space import SpaceBackoff, passing, short_of_room, short_of_space
from videoarchiver.state import FileRow, IllegalMove
from videoarchiver.ui import human_size, summary_line

log = logging.getLogger(__name__)


def _claim_lost(name: str) -> None:
    log.warning("%s: this worker lost its claim (its lease ran out); another worker carries on",
                name)  # fmt: skip


@dataclass(frozen=True)
class _Claim:
    """A file this worker holds."""

    scope: anyio.CancelScope  # its task's
    at: float  # when it was claimed (monotonic clock)
    load: Load  # what it still asks of the ffmpeg slots


class Claimer(Claims):
    """This worker's claims: taken (`work`), run by the processor `make_processor` gives,
    kept or dropped by the heartbeat's answer (`keep_held`)."""

    def __init__(
        self,
        runtime: Runtime,
        space: SpaceBackoff,
        make_processor: Callable[[Runtime, Claims, SpaceBackoff], Processor],
    ) -> None:
        self.rt = runtime
        self.space = space
        self.processor = make_processor(runtime, self, space)
        self._held: dict[int, _Claim] = {}
        self._turns = itertools.count()  # the order of this worker's claims
        self._claiming = False  # a claim is on its way to the store
        self._settled: set[int] = set()  # held files recorded done or failed: their claim ended
        self._absent: set[int] = set()  # pending files not in raw/ as recorded: until a scan
        self._wake = anyio.Event()
        self._finished_any = False  # a file ended since the queue was last found empty
        self._drained = False  # the last claim found nothing pending
        self._ended = 0  # how many held files ended: one that ends during a claim (given
        # back: stopped from the page, say) may be pending again, though the claim skipped it
        self._raw_missing = False
        self._cramped = False  # a disk has less free than its headroom: no work is claimed

    @property
    def held(self) -> int:
        """How many files this worker holds now."""
        return len(self._held)

    def wake(self) -> None:
        """Look for work now (a file was registered, or another worker gave some back)."""
        self._wake.set()

    def rescanned(self) -> None:
        """raw/ was scanned again: files found absent at their claim may be there now."""
        self._absent.clear()
        self._wake.set()

    def ending(self, file_id: int) -> None:
        self._settled.add(file_id)

    async def give_back(self, file_id: int) -> bool:
        """Release a claim (False: this worker no longer held it); if the state cannot be
        reached, its lease runs out instead."""
        try:
            return bool(await self.rt.state.release(self.rt.worker.id, [file_id]))
        except (StoreUnavailable, OSError) as exc:  # the server away, or a full disk
            if not passing(exc):
                raise
            why = describe_error(exc)
            log.warning("cannot give file %d back now (%s): its lease runs out", file_id, why)
            return False

    async def keep_held(self, held: set[int], asked: float) -> None:
        """The heartbeat's answer (`held`, read at `asked` on the monotonic clock): stop
        working on files whose claim was lost, or that a user asked to stop (not those whose
        claim ended because they were recorded done or failed, nor those claimed since it
        asked), and give back claims no task works on (a failure that could not be recorded;
        never while a claim is being made: it may be that one)."""
        for file_id, claim in self._held.items():
            lost = file_id not in held and claim.at < asked
            if lost and file_id not in self._settled:
                claim.scope.cancel()
        if (stray := held - set(self._held)) and not self._claiming:
            await self.rt.state.release(self.rt.worker.id, stray)

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
                self.space.ran_out("claiming work")
            # Nothing held, and nothing to claim: a pause or a wait for space that no file
            # waits for is not waited out, nor a disk short of its headroom.
            idle = self._drained or self._cramped or not await self.rt.state.queue(1)
            if until_idle and not self._held and idle:
                return
            with anyio.move_on_after(self.rt.state.POLL_SECONDS):
                await self._wake.wait()

    async def claim_more(self, group: TaskGroup) -> None:
        """Claim and start files while this worker may take more."""
        rt = self.rt
        while await self._may_claim():
            ended = self._ended
            skip = sorted(self._absent | set(self._held))  # never a file it works on already
            self._claiming = True
            try:
                row = await rt.state.claim(rt.worker.id, rt.config.lease_seconds, skip)
            finally:
                self._claiming = False
            if row is None:
                self._drained = self._ended == ended
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
            load = Load(next(self._turns), set(names()), self.wake)
            self._held[row.id] = claim = _Claim(anyio.CancelScope(), time.monotonic(), load)
            group.start_soon(self._run_claimed, row, raw, claim)

    # -- whether to claim ----------------------------------------------------------------------

    async def _may_claim(self) -> bool:
        """Claim another file only while an ffmpeg slot would otherwise sit idle, work may
        start (no pause, no wait for space), raw/ is there to read and the disks have room."""
        if not self._slot_would_idle():
            return False  # decided without touching the disk: most wake-ups end here
        rt = self.rt
        raw_there = await root_there(rt.layout)
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
        folders = (layout.work, *layout.output_folders())
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
        return not rt.gate.paused and not self.space.remaining and making < 2 * jobs and not full

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

    async def _queue_done(self) -> None:
        """Nothing is left to claim and this worker holds nothing: say so, with the totals."""
        if self.rt.notifier.enabled:
            summary = await self.rt.state.summary()
            await self.rt.notifier.send("videoarchiver: the queue is done", summary_line(summary))

    # -- one claimed file ----------------------------------------------------------------------

    async def _run_claimed(self, row: FileRow, raw: RawFile, claim: _Claim) -> None:
        """Process a claimed file; a pause that stops running work (`pause --now`, the end
        of the working hours) gives the claim back: whoever claims it next (this worker
        or another) goes on from its parts. Its scope is cancelled if the lease is lost."""
        name = shown_name(row.rel_path)
        try:
            with claim.scope:
                with self.rt.gate.stoppable() as stop:
                    try:
                        await self.processor.process(row, raw, claim.load)
                    except Exception as exc:
                        await self._after_escape(row, exc)
                if stop.cancelled_caught:
                    with anyio.CancelScope(shield=True):
                        await self.give_back(row.id)
                    log.info("%s: stopped; it goes on when work may", name)
            if claim.scope.cancelled_caught:
                with anyio.CancelScope(shield=True):  # a stop asked: this worker holds it
                    stopped = await self.give_back(row.id)
                if stopped:
                    log.info("%s: stopped as asked from the web page", name)
                else:
                    _claim_lost(name)
            elif row.id in self._settled:  # what follows no pause stops (a stop does)
                try:
                    await self.processor.finish_pending(row.id)
                except Exception as exc:
                    await self._after_escape(row, exc)
        finally:
            if self._held.get(row.id) is claim:
                del self._held[row.id]
            self._settled.discard(row.id)
            self._finished_any = True
            self._ended += 1
            self._wake.set()

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
                await self.give_back(row.id)
            return
        state_error = first_of(exc, (StateError,))
        if state_error is not None and not isinstance(state_error, StoreRefused):
            raise exc  # the state itself is unusable: the daemon stops
        if any(short_of_space(error) for error in leaves(exc)):
            # The state could not be written: the file goes back to pending, and is claimed
            # again once the wait for space is over.
            self.space.ran_out(name)
            with anyio.CancelScope(shield=True):
                await self.give_back(row.id)
            return
        log.error("%s: internal error", name, exc_info=exc)
        try:
            with anyio.CancelScope(shield=True):
                await self.rt.state.fail_file(
                    row.id, f"internal error: {exc!r}", by=self.rt.worker.id
                )
        except (OSError, ClaimLost, StoreUnavailable) as again:
            log.error("%s: cannot record the failure: %s", name, describe_error(again))
