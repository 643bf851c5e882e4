"""Wires discovery, registration, claims and processing into one structured-concurrency run.

Three parts, each with one job: the registrar (`registration.py`) records what a scan of
`raw/` found and estimates its cost; the claimer (`claiming.py`) claims pending files from the
store under this worker's lease whenever an ffmpeg slot would otherwise sit idle, and holds
them; the processor (`processing.py`) runs one claimed file through its outputs. Discovery
scans and watches `raw/` beside the work. Several workers on one store share the files; one
file's failure is recorded against that file and never reaches the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from videoarchiver.claiming import Claimer
from videoarchiver.discovery import scan
from videoarchiver.errors import StoreUnavailable
from videoarchiver.planning.paths import shown_name
from videoarchiver.processing import Claims, Processor
from videoarchiver.registration import HeaderReader, Registrar
from videoarchiver.runtime import Runtime
from videoarchiver.service import status_text
from videoarchiver.space import SpaceBackoff, short_of_space, space_message
from videoarchiver.state import FileRow, FileState

log = logging.getLogger(__name__)
SPACE_BASE_SECONDS = 60.0
RESCAN_AFTER_TROUBLE = 2.0  # seconds before `run --once` scans again after a lost registration


class Scheduler:
    """One worker: its registrar, claimer and processor. Tests give their own processor
    (`make_processor`, a `Processor` whose `process` is faked) and header reader."""

    def __init__(
        self,
        runtime: Runtime,
        make_processor: Callable[[Runtime, Claims, SpaceBackoff], Processor] = Processor,
        read_header: HeaderReader | None = None,
    ) -> None:
        self.rt = runtime
        # Retried from the first rescan on, then after doubling waits.
        self.space = SpaceBackoff(min(runtime.config.scan_interval, SPACE_BASE_SECONDS))
        self.claims = Claimer(runtime, self.space, make_processor)
        self.processor = self.claims.processor
        self.registrar = Registrar(runtime, self.claims.wake, read_header)

    async def discover(self) -> tuple[list[FileRow], float | None]:
        """Scan `raw/` and register every settled file; wake the claimer.

        Returns the rows of the settled files and the seconds until the next unsettled file
        settles or the wait for space ends (None when neither is waited for).
        """
        self.rt.state.ensure_in_place()
        paused = self.space.remaining
        if not paused:
            await self._retry_space_failures()
        found = await scan(self.rt.layout.raw, self.rt.config.settle_seconds)
        pairs = await self.registrar.register(found.settled)
        self.claims.rescanned()
        waits = [w for w in (found.next_settle, paused) if w]
        return [row for row, _raw in pairs], min(waits, default=None)

    def systemd_status(self) -> str:
        """The line `systemctl status` shows (`service.status_text`)."""
        progress = self.rt.progress
        return status_text(progress.tasks(), self.claims.held, progress.queue.summary,
                           self.space.remaining)  # fmt: skip

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
            if await self.registrar.estimate():  # as `run_forever` does before its first claim
                group.start_soon(self.registrar.estimate_rest)
            await self.claims.work(group, until_idle=True)
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

    async def run_forever(self, wakeups: MemoryObjectReceiveStream[None]) -> None:
        """Discovery and work side by side until cancelled."""
        # Before the first claim, a batch of the pending files left without a cost (by a
        # migration, a worker that died estimating, a large scan); the rest beside the work.
        more = await self.registrar.estimate()
        async with anyio.create_task_group() as group:
            group.start_soon(self._discover_forever, wakeups)
            group.start_soon(self.registrar.estimate_forever, more)
            group.start_soon(self.rt.state.watch, self.claims.wake)
            await self.claims.work(group, until_idle=False)

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
                self.space.ran_out("raw/")
                next_settle = self.space.remaining
            wait = interval if next_settle is None else min(interval, next_settle + 0.05)
            with anyio.move_on_after(wait):
                await wakeups.receive()

    async def _retry_space_failures(self) -> None:
        """Files that failed because a disk was full are tried again when no wait is on."""
        failed = await self.rt.state.files([FileState.FAILED])
        waiting = [r.rel_path for r in failed if space_message(r.error_detail or r.error or "")]
        for rel in await self.rt.state.retry(waiting) if waiting else []:
            log.info("%s: trying again (it failed for want of space)", shown_name(rel))
