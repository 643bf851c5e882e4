"""Stream encodes that survive a kill: salvage the killed part, resume, join.

The parts of a job are recorded in its `stream_jobs` row before anything depends on them, so
a kill at any point leaves either a recorded part on disk or a partial file to salvage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anyio

from videoarchiver.errors import ProcessError
from videoarchiver.planning.commands import packet_args
from videoarchiver.planning.packets import StreamPackets
from videoarchiver.planning.progress import ProgressUpdate
from videoarchiver.planning.resume import (
    Part,
    SalvageTally,
    concat_list,
    cut_args,
    holds_whole,
    join_args,
    resume_args,
    resumes_from_parts,
)
from videoarchiver.probing import count_packets
from videoarchiver.processes import each_line
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state import NO_FIGURES, EventKind, Figures, JobState
from videoarchiver.stream_jobs import StreamJob, finished_part, record, run_job, run_limited

log = logging.getLogger(__name__)

# (bytes and seconds of the parts already kept, start of the new part's clock) → a check that
# stops the encode when it returns True.
StopFactory = Callable[[int, float, float], Callable[[ProgressUpdate], bool]]


@dataclass(frozen=True)
class Encoded:
    stopped: bool
    wall: float
    parts: list[Part]
    # The packets of the finished stream when this run made it in one part (the usual
    # case), so its caller need not read them again; None when it must count them itself.
    counted: StreamPackets | None = None


def partial_path(final: Path, attempt: int) -> Path:
    """Where an encode writes that starts with `attempt` parts kept: a partial is salvaged
    only while exactly that many parts are recorded, so a kill between recording its part
    and deleting it cannot salvage it twice."""
    return final.with_name(f"{final.stem}.partial{attempt}{final.suffix}")


def part_name(final: Path, number: int) -> str:
    """The file of part `number` (from 0) of the encode that ends as `final`."""
    return f"{final.stem}.p{number}{final.suffix}"


async def _recorded_parts(rt: Runtime, source: Source, job: StreamJob, work: Path) -> list[Part]:
    """The recorded parts, up to the first one whose file is gone or that was made from
    other content than the raw file's now."""
    row = (await rt.state.jobs(source.row.id, job.output)).get(job.index)
    kept: list[Part] = []
    for part in row.parts if row else ():
        if part.source != source.identity or not await anyio.Path(work / part.file).exists():
            break
        kept.append(part)
    return kept


async def _salvage(
    rt: Runtime, source: Source, job: StreamJob, partial: Path, parts: list[Part], final: Path
) -> list[Part]:
    """Keep the complete GOPs of a killed video encode as a new part."""
    tally = SalvageTally()
    name = part_name(final, len(parts))
    try:
        await each_line(
            rt.run_process, packet_args(partial), tally.feed, "ffprobe of a killed part"
        )
        salvaged = tally.salvaged(name, source.identity)
    except ProcessError:  # killed before its header was written: nothing to read
        salvaged = None
    if salvaged is None:
        log.info("%s: %s stream %d: nothing complete to salvage, starting over",
                 source.name, job.output, job.index)  # fmt: skip
    else:
        args = cut_args(partial, salvaged.packets, partial.with_name(name))
        task = source.task(job.output, f"s{job.index} {job.output} salvage")
        await run_limited(rt, args, "salvage of a killed part", task)
        parts = [*parts, salvaged]
        await record(rt, source, job, JobState.RUNNING, Figures(parts=tuple(parts)))
        log.info("%s: %s stream %d: salvaged %.2f s (%d packets) of a killed encode", source.name,
                 job.output, job.index, salvaged.seconds, salvaged.packets)  # fmt: skip
    await anyio.Path(partial).unlink()
    return parts


async def _join(
    rt: Runtime, source: Source, job: StreamJob, parts: list[Part], final: Path
) -> None:
    work = final.parent
    script = work / f"{final.stem}.concat"
    await anyio.Path(script).write_text(concat_list(parts))
    task = source.task(job.output, f"s{job.index} {job.output} join")
    joined = final.with_name(f"{final.stem}.joining{final.suffix}")
    await run_limited(rt, join_args(script, parts[0].start, joined), "join of parts", task)
    await anyio.Path(joined).rename(final)
    for path in (script, *(work / p.file for p in parts)):
        await anyio.Path(path).unlink(missing_ok=True)


async def encode_resumable(
    rt: Runtime,
    source: Source,
    job: StreamJob,
    args_for: Callable[[Path], Sequence[str]],
    final: Path,
    stop_for: StopFactory | None = None,
    env: Mapping[str, str] | None = None,
    figures: Figures = NO_FIGURES,
    streams: Sequence[int] = (),
) -> Encoded:
    """Encode one stream into `final`, carrying on from what a killed run left behind;
    `streams`: the raw streams it encodes, when more than the job's own (a mix)."""
    work = final.parent
    parts = await _recorded_parts(rt, source, job, work)
    salvages = resumes_from_parts(job.stream_type)
    if not salvages and parts and (len(parts) > 1 or not parts[0].last):
        # Salvaged audio parts, kept by an earlier version: the encode starts again.
        for kept in parts:
            await anyio.Path(work / kept.file).unlink(missing_ok=True)
        parts = []
    if parts and parts[-1].last:  # killed after the encode, before or while joining
        await _finish(rt, source, job, parts, final)
        return Encoded(False, 0.0, parts)
    pattern = f"{final.stem}.partial*{final.suffix}"
    for left in await anyio.to_thread.run_sync(lambda: sorted(work.glob(pattern))):
        attempt = left.name.removeprefix(f"{final.stem}.partial").removesuffix(final.suffix)
        if salvages and attempt == str(len(parts)):
            parts = await _salvage(rt, source, job, left, parts, final)
        else:  # already salvaged, or from before a part was lost
            await anyio.Path(left).unlink()
    ends = (source.probed.packets.get(index).end for index in streams or (job.index,))
    if holds_whole(parts, ends, source.probed.probe.format.start_time or 0.0):
        parts[-1] = parts[-1].model_copy(update={"last": True})
        await record(rt, source, job, JobState.RUNNING, Figures(parts=tuple(parts)))
        log.info("%s: %s stream %d: the salvaged parts hold the whole stream", source.name,
                 job.output, job.index)  # fmt: skip
        await _finish(rt, source, job, parts, final)
        return Encoded(False, 0.0, parts)
    partial = partial_path(final, len(parts))
    args = list(args_for(partial))
    if parts:
        salvaged = f"{len(parts)} salvaged part(s), to {parts[-1].end:.1f} s"
        said = f"{job.output} stream {job.index} ({job.stream_type}): goes on from {salvaged}"
        await rt.state.note(source.row.id, EventKind.RESUMED, said, rt.worker.id)
        args = resume_args(args, parts[-1].end)
        start = 0.0  # a resumed encode's progress clock starts at its seek point
    else:
        start = source.offset(job.index)
    stop_when = None
    if stop_for is not None:
        stop_when = stop_for(sum(p.bytes for p in parts), sum(p.seconds for p in parts), start)
    figures = replace(figures, parts=tuple(parts))
    stopped, wall = await run_job(rt, source, job, args, stop_when, env, figures)
    if stopped:
        await anyio.Path(partial).unlink(missing_ok=True)
        return Encoded(True, wall, parts)
    counted = (await count_packets(rt.run_process, partial)).get(0)
    last = Part(
        file=part_name(final, len(parts)), start=counted.start or 0.0,
        end=counted.end or 0.0, bytes=counted.bytes, packets=counted.count, last=True,
        source=source.identity,
    )  # fmt: skip
    await anyio.Path(partial).rename(work / last.file)
    parts = [*parts, last]
    await record(rt, source, job, JobState.RUNNING, Figures(parts=tuple(parts)))
    await _finish(rt, source, job, parts, final)
    return Encoded(False, wall, parts, counted if len(parts) == 1 else None)


async def _finish(
    rt: Runtime, source: Source, job: StreamJob, parts: list[Part], final: Path
) -> None:
    """The encode is complete: its one part becomes `final`, or its parts are joined."""
    if len(parts) == 1:
        await anyio.Path(final.parent / parts[0].file).rename(final)
    else:
        await _join(rt, source, job, parts, final)


async def encode_part(
    rt: Runtime,
    source: Source,
    job: StreamJob,
    args_for: Callable[[Path], Sequence[str]],
    final: Path,
    env: Mapping[str, str] | None = None,
    streams: Sequence[int] = (),
) -> None:
    """A resumable encode with no ratio rule (the preview); records the job done."""
    if await finished_part(rt, source, job, final):
        return
    encoded = await encode_resumable(rt, source, job, args_for, final, env=env, streams=streams)
    size = (await anyio.Path(final).stat()).st_size
    figures = Figures(out_bytes=size, wall_seconds=encoded.wall, parts=tuple(encoded.parts))
    await record(rt, source, job, JobState.DONE, figures)
