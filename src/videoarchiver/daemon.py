"""`videoarchiver run`: the scheduler, the watcher of `raw/` and the signal handling.

On SIGTERM, SIGINT or SIGHUP (a closed terminal) the daemon stops starting work and cancels
what runs: every ffmpeg gets SIGTERM (it then closes its output cleanly), the states of
interrupted jobs go back to pending, and the daemon exits 0. A second signal ends it at
once; its ffmpeg children die with it (they run under PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from watchfiles import awatch

from videoarchiver import __version__
from videoarchiver.config import Config
from videoarchiver.disposal import PENDING as PENDING_ACTION
from videoarchiver.exitcodes import EXIT_FAILED, EXIT_KILLED, EXIT_OK
from videoarchiver.layout import Layout
from videoarchiver.outputs import adopt_published
from videoarchiver.pausing import apply_pause, follow_hours, follow_pause
from videoarchiver.runtime import Runtime
from videoarchiver.scheduler import Scheduler
from videoarchiver.service import feed_watchdog, notify, watchdog_seconds
from videoarchiver.state import StateDB
from videoarchiver.state.database import FAILED, PENDING, RUNNING
from videoarchiver.tools import check_tools
from videoarchiver.ui import Reporter

WATCH_TIMEOUT_MS = 10_000
log = logging.getLogger(__name__)


async def watch_raw(raw: Path, wake: MemoryObjectSendStream[None], stop: anyio.Event) -> None:
    """Wake the scheduler on every change in `raw/`; rescans cover what this misses."""
    try:
        async for _changes in awatch(raw, stop_event=stop, rust_timeout=WATCH_TIMEOUT_MS):
            with contextlib.suppress(anyio.WouldBlock):  # a wake-up is already pending
                wake.send_nowait(None)
    except (OSError, RuntimeError) as exc:
        log.warning("cannot watch %s (%s): relying on rescans every scan_interval", raw, exc)


async def _on_signals(work: anyio.CancelScope, stopping: anyio.Event) -> None:
    # SIGHUP (a closed terminal) stops it too, unless it was started to ignore it (nohup).
    hangup = () if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else (signal.SIGHUP,)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, *hangup) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if stopping.is_set():
                log.warning("%s again: stopping at once", name)
                os._exit(EXIT_KILLED)
            log.info("%s: stopping; running ffmpeg processes are asked to finish", name)
            stopping.set()
            work.cancel()


async def _forever(scheduler: Scheduler, raw: Path, stopping: anyio.Event) -> None:
    send, receive = anyio.create_memory_object_stream[None](1)
    async with anyio.create_task_group() as group:
        group.start_soon(watch_raw, raw, send, stopping)
        await scheduler.run_forever(receive)


async def remove_stale_work(layout: Layout, state: StateDB) -> None:
    """Work folders of files that are done or no longer known are left-overs of a kill;
    those of pending files hold parts to resume, those of failed ones what failed its check."""
    keep = {str(row.id) for row in await state.files([PENDING, RUNNING, FAILED])}
    folder = layout.files_work
    if not await anyio.Path(folder).exists():
        return
    async for entry in anyio.Path(folder).iterdir():
        if entry.name not in keep:
            log.info("removing stale work files %s", entry)
            await anyio.to_thread.run_sync(shutil.rmtree, Path(entry), True)


def _log_resources() -> None:
    """The daemon's own cost against its ffmpeg children's (bench/ reads this line)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    log.info(
        "resources: own CPU %.2f s, children CPU %.2f s, peak RSS %.1f MiB",
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
        own.ru_maxrss / 1024,
    )


async def run_daemon(layout: Layout, config: Config, once: bool, reporter: Reporter) -> int:
    """Exit code: 0 when stopped or (with `once`) all done, 1 when a file failed."""
    tools = await check_tools(config)
    log.info(
        "videoarchiver %s on %s: %d ffmpeg jobs at once, %s; %s",
        __version__, layout.root, config.effective_jobs, tools.version,
        "processing raw/ once" if once else "watching raw/",
    )  # fmt: skip
    async with StateDB.open(layout.state_db) as state:
        await state.requeue_interrupted()
        await adopt_published(state)
        await remove_stale_work(layout, state)
        scheduler = Scheduler(Runtime.create(layout, config, state, reporter, tools.demuxers))
        for row in await state.with_pending_raw_action(PENDING_ACTION):
            await scheduler.finish_raw_action(row)
        await apply_pause(state, scheduler.rt.gate)
        stopping = anyio.Event()
        result = EXIT_OK
        async with anyio.create_task_group() as outer:
            with anyio.CancelScope() as work:
                outer.start_soon(_on_signals, work, stopping)
                if (every := watchdog_seconds()) is not None:
                    outer.start_soon(feed_watchdog, every)
                outer.start_soon(follow_pause, state, scheduler.rt.gate)
                if config.active_hours:
                    outer.start_soon(follow_hours, config.active_hours, scheduler.rt.gate)
                notify("READY=1")
                if once:
                    result = EXIT_OK if await scheduler.run_once() else EXIT_FAILED
                else:
                    await _forever(scheduler, layout.raw, stopping)
            notify("STOPPING=1")
            outer.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await state.requeue_interrupted()
    _log_resources()
    if stopping.is_set():
        log.info("stopped; interrupted work will carry on at the next start")
        return EXIT_OK
    return result
