"""`videoarchiver run`: one worker — the scheduler, the watcher of `raw/`, the heartbeat and
the signal handling. Several may run on one root: they share the work through the store.

On SIGTERM, SIGINT or SIGHUP (a closed terminal) the worker stops starting work and cancels
what runs: every ffmpeg gets SIGTERM (it then closes its output cleanly), its claims go back
to pending, and it exits 0. A second signal ends it at once; its ffmpeg children die with it
(they run under PR_SET_PDEATHSIG), and its claims are released by the next worker to look.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
from datetime import datetime
from pathlib import Path

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream
from watchfiles import awatch

from videoarchiver import __version__
from videoarchiver.config import Config
from videoarchiver.errors import StoreUnavailable, describe_error
from videoarchiver.exitcodes import EXIT_FAILED, EXIT_KILLED, EXIT_OK
from videoarchiver.layout import Layout
from videoarchiver.outputs import adopt_published
from videoarchiver.pausing import apply_hours, apply_pause, follow_hours, follow_pause
from videoarchiver.progress import ProgressHub, write_progress
from videoarchiver.runtime import Runtime
from videoarchiver.scheduler import Scheduler
from videoarchiver.service import feed_watchdog, follow_status, listening, notify, watchdog_seconds
from videoarchiver.space import passing
from videoarchiver.state import FileState, Store, Worker, open_store
from videoarchiver.tools import check_tools
from videoarchiver.workers import Steadiness, bury_dead, holding_life, keep_alive, new_worker

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


async def _on_signals(
    work: anyio.CancelScope,
    stopping: anyio.Event,
    progress: ProgressHub,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    # SIGHUP (a closed terminal) stops it too, unless it was started to ignore it (nohup).
    hangup = () if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else (signal.SIGHUP,)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, *hangup) as signals:
        task_status.started()  # handled from here on: readiness may be told
        async for signum in signals:
            name = signal.Signals(signum).name
            if stopping.is_set():
                log.warning("%s again: stopping at once", name)
                os._exit(EXIT_KILLED)
            log.info("%s: stopping; running ffmpeg processes are asked to finish", name)
            running = len(progress.tasks())
            progress.announce(f"stopping: waiting for {running} ffmpeg to close their parts"
                              if running else "stopping")  # fmt: skip
            stopping.set()
            work.cancel()


async def _forever(scheduler: Scheduler, raw: Path) -> None:
    send, receive = anyio.create_memory_object_stream[None](1)
    # However the work ends (a signal, or an error that stops the daemon), the watcher's
    # thread ends with it, not at its next timeout.
    ended = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(watch_raw, raw, send, ended)
        try:
            await scheduler.run_forever(receive)
        finally:
            ended.set()


async def remove_stale_work(layout: Layout, state: Store) -> None:
    """Work folders of files that are done or no longer known are left-overs of a kill;
    those of pending files hold parts to resume, those of running ones belong to another
    worker, those of failed ones hold what failed its check. The folders are listed before
    the files are read, so a folder another worker makes meanwhile is never touched."""
    folder = layout.files_work
    if not await anyio.Path(folder).exists():
        return
    entries = [entry async for entry in anyio.Path(folder).iterdir()]
    wanted = (FileState.PENDING, FileState.RUNNING, FileState.FAILED)
    keep = {str(row.id) for row in await state.files(wanted)}
    for entry in entries:
        if entry.name not in keep:
            log.info("removing stale work files %s", entry)
            await anyio.to_thread.run_sync(shutil.rmtree, Path(entry), True)


def _tell_systemd(trouble: str | None) -> None:
    """The state's server stopped answering (or answers again): `systemctl status` says so."""
    notify(f"STATUS={trouble or 'the state database answers again'}")


def _peak_rss_kib(own: resource.struct_rusage) -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec (getrusage's maxrss
    keeps the peak of the process that started us)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return float(own.ru_maxrss)
    return next((float(line.split()[1]) for line in status.splitlines()
                 if line.startswith("VmHWM:")), float(own.ru_maxrss))  # fmt: skip


def _log_resources() -> None:
    """The daemon's own cost against its ffmpeg children's (bench/ reads this line)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    log.info(
        "resources: own CPU %.2f s, children CPU %.2f s, peak RSS %.1f MiB",
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
        _peak_rss_kib(own) / 1024,
    )


async def run_daemon(layout: Layout, config: Config, once: bool, progress: ProgressHub) -> int:
    """Exit code: 0 when stopped or (with `once`) all done, 1 when a file failed."""
    tools = await check_tools(config)
    worker, lease = new_worker(), config.lease_seconds
    log.info(
        "videoarchiver %s on %s: worker %s, %d ffmpeg jobs at once, %s; %s",
        __version__, layout.root, worker.id, config.effective_jobs, tools.version,
        "processing raw/ once" if once else "watching raw/",
    )  # fmt: skip
    async with open_store(
        layout.root, layout.state, trouble=_tell_systemd, say_after=config.lock_warning_seconds
    ) as state:
        with holding_life(layout, worker) as gave_back:
            steady = Steadiness(lease)
            await state.heartbeat(worker, lease)
            steady.beat()
            try:
                return await _work(
                    layout, config, once, progress, state, worker, tools.demuxers, steady
                )
            finally:
                with anyio.CancelScope(shield=True):
                    try:
                        await state.remove_worker(worker.id)
                        gave_back()
                    except (StoreUnavailable, OSError) as exc:  # its leases run out instead
                        if not passing(exc):
                            raise
                        why = describe_error(exc)
                        log.warning("cannot give this worker's files back: %s", why)
                _log_resources()


async def _work(
    layout: Layout,
    config: Config,
    once: bool,
    progress: ProgressHub,
    state: Store,
    worker: Worker,
    demuxers: str,
    steady: Steadiness,
) -> int:
    lease = config.lease_seconds
    # What a killed worker of this machine held goes back to pending now (no lease wait).
    await bury_dead(state, layout, worker, lease, steady)
    await adopt_published(state, layout)
    await remove_stale_work(layout, state)
    scheduler = Scheduler(Runtime.create(layout, config, state, worker, progress, demuxers))
    await apply_pause(state, scheduler.rt.gate)
    if config.active_hours:  # before anything may start, however late its follower runs
        apply_hours(config.active_hours, scheduler.rt.gate, datetime.now())
    stopping = anyio.Event()
    result = EXIT_OK
    async with anyio.create_task_group() as outer:
        with anyio.CancelScope() as work:
            await outer.start(_on_signals, work, stopping, progress)
            if (every := watchdog_seconds()) is not None:
                outer.start_soon(feed_watchdog, every)
            if listening():
                outer.start_soon(follow_status, scheduler.systemd_status)
            outer.start_soon(follow_pause, state, scheduler.rt.gate)
            outer.start_soon(
                keep_alive, state, layout, worker, lease, scheduler.claims.keep_held, steady
            )
            outer.start_soon(write_progress, state, progress, worker.id)
            if config.active_hours:
                outer.start_soon(follow_hours, config.active_hours, scheduler.rt.gate)
            notify("READY=1")
            if once:
                await scheduler.processor.finish_pending_raw_actions()
                result = EXIT_OK if await scheduler.run_once() else EXIT_FAILED
            else:
                outer.start_soon(scheduler.processor.finish_pending_raw_actions)
                await _forever(scheduler, layout.raw)
        notify("STOPPING=1")
        outer.cancel_scope.cancel()
    if stopping.is_set():
        log.info("stopped; interrupted work will carry on at the next start")
        return EXIT_OK
    return result
