"""Per-stream jobs shared by every output: record, run one ffmpeg under the limiter, gather.

A job's failure is recorded against the job and reported to its output once every sibling
job has finished, so one bad stream neither hides the others' errors nor wastes their work.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from videoarchiver.errors import StreamFailures, VideoArchiverError, short_reason
from videoarchiver.planning.commands import output_of
from videoarchiver.planning.progress import ProgressParser, ProgressUpdate
from videoarchiver.processes import ProcessResult, Watchdog
from videoarchiver.progress import Outcome, TaskInfo
from videoarchiver.runtime import Runtime, Source
from videoarchiver.slots import Place
from videoarchiver.state import NO_FIGURES, Figures, JobState
from videoarchiver.ui import plural

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamJob:
    """One stream of one output: what is recorded in the `stream_jobs` table."""

    output: str
    index: int
    stream_type: str
    decision: str
    notes: tuple[str, ...] = ()


def _figure(key: str, value: object) -> str:
    """One figure of a log line: numbers short, parts counted (their list is in the state)."""
    if isinstance(value, tuple):
        return plural(len(value), "part")
    return f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"


async def record(
    rt: Runtime, source: Source, job: StreamJob, state: JobState, figures: Figures = NO_FIGURES
) -> None:
    """Save the job's state; a finished job is also one log line with its figures."""
    if state is JobState.DONE:
        shown = ", ".join(
            _figure(key, value) for key, value in figures.shown().items() if key != "sha256"
        )
        log.info("%s: %s stream %d %s %s done%s", source.name, job.output, job.index,
                 job.stream_type, job.decision, f" ({shown})" if shown else "")  # fmt: skip
    await rt.state.save_job(
        source.row.id,
        job.output,
        job.index,
        stream_type=job.stream_type,
        decision=job.decision,
        state=state,
        notes=job.notes,
        figures=figures,
        by=rt.worker.id,
    )


async def finished_part(rt: Runtime, source: Source, job: StreamJob, part: Path) -> bool:
    """True when an earlier run recorded this job done and its part is still in `work/`."""
    recorded = (await rt.state.jobs(source.row.id, job.output)).get(job.index)
    return (
        recorded is not None and recorded.state is JobState.DONE and await anyio.Path(part).exists()
    )


def outcome_of(result: ProcessResult | None) -> Outcome:
    """How a task ended: its ffmpeg succeeded, was stopped by the ratio rule, or failed."""
    if result is not None and result.stopped:
        return Outcome.KEPT_RAW
    return Outcome.DONE if result is not None and result.returncode == 0 else Outcome.FAILED


@asynccontextmanager
async def ffmpeg_slot(rt: Runtime, place: Place | None = None) -> AsyncIterator[None]:
    """Hold an ffmpeg slot, once work may start (no pause) and one is free (`place`: a long
    step's, served after the short steps waiting: `Source.place`)."""
    await rt.gate.wait()
    async with rt.ffmpeg_slots.slot(place):
        yield


async def run_limited(
    rt: Runtime,
    args: Sequence[str],
    what: str,
    task: TaskInfo | None,
    stop_when: Callable[[ProgressUpdate], bool] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    place: Place | None = None,
    slot_held: bool = False,
) -> tuple[bool, float]:
    """Run one ffmpeg in an ffmpeg slot of its own (`ffmpeg_slot` at `place`), or in the one
    its caller holds (`slot_held`: several short ones in a row wait for a slot once), its
    `-progress` shown as `task` (None: the caller shows a task of its own) and checked by
    `stop_when`: (stopped by `stop_when`, wall seconds). It starts only while work may (no
    pause). Its output is always a new file: whatever a killed run left at that name is
    removed first."""
    async with contextlib.nullcontext() if slot_held else ffmpeg_slot(rt, place):
        parser = ProgressParser()
        await anyio.Path(output_of(args)).unlink(missing_ok=True)
        await rt.gate.wait()
        view = rt.progress.start(task) if task is not None else None
        watchdog = Watchdog(rt.config.stall_seconds)
        last: tuple[object, ...] = ()

        def on_stdout(chunk: bytes) -> bool:
            nonlocal last
            stop = False
            for update in parser.feed(chunk):
                if view is not None:
                    view.update(update)
                stop = bool(stop_when and stop_when(update)) or stop
                if (now := (update.out_seconds, update.total_size, update.frame)) != last:
                    watchdog.moved()
                    last = now
            return stop

        started = time.monotonic()
        result = None
        outcome = None
        try:
            result = await rt.run_process(args, on_stdout, env, watchdog)
        except anyio.get_cancelled_exc_class():
            outcome = Outcome.INTERRUPTED
            raise
        finally:
            if view is not None:
                view.end(outcome or outcome_of(result))
        wall = time.monotonic() - started
        result.check(what)
        return result.stopped, wall


async def run_job(
    rt: Runtime,
    source: Source,
    job: StreamJob,
    args: Sequence[str],
    stop_when: Callable[[ProgressUpdate], bool] | None = None,
    env: Mapping[str, str] | None = None,
    figures: Figures = NO_FIGURES,
) -> tuple[bool, float]:
    """Record the job running (with `figures`), then run its ffmpeg under the limiter."""
    await record(rt, source, job, JobState.RUNNING, figures)
    log.info("%s: %s stream %d %s started", source.name, job.output, job.index, job.stream_type)
    what = f"{job.output} {job.decision} of stream {job.index}"
    total = source.probed.packets.get(job.index).duration or None
    salvaged = sum(part.seconds for part in figures.parts or ())  # a resumed encode's
    task = source.task(job.output, f"s{job.index} {job.output} {job.stream_type}", total,
                       start=salvaged)  # fmt: skip
    with source.load.long_step():
        return await run_limited(
            rt,
            args,
            what,
            task,
            stop_when,
            env,
            place=source.place(rt.costs, job.output, job.index),
        )


JobCall = Callable[[], Awaitable[None]]


async def run_jobs(rt: Runtime, source: Source, jobs: Sequence[tuple[StreamJob, JobCall]]) -> None:
    """Run every job concurrently; record each failure; raise them together (StreamFailures)
    once all have ended. Their output then only assembles what they made."""
    failures: list[tuple[int, Exception]] = []

    async def guarded(job: StreamJob, call: JobCall) -> None:
        try:
            await call()
        except (VideoArchiverError, OSError) as exc:
            failures.append((job.index, exc))
            message = f"stream {job.index}: {short_reason(exc)}"
            await record(rt, source, job, JobState.FAILED, Figures(error=message))

    try:
        async with anyio.create_task_group() as group:
            for job, call in jobs:
                group.start_soon(guarded, job, call)
    finally:
        for output in {job.output for job, _ in jobs}:
            source.load.made(output)
    if failures:
        raise StreamFailures.of(sorted(failures, key=lambda failure: failure[0]))
