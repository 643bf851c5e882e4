"""The montage output: one N×N contact sheet per video stream, as JPEG.

Frames come either from one decode pass or from one seek each (the planner decides); every
sheet is checked for its pixel size before it is published into `screenshot/`.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import anyio

from videoarchiver.errors import VerifyError
from videoarchiver.outputs import in_place, publish_recorded
from videoarchiver.planning.commands import probe_args
from videoarchiver.planning.montage import (
    MontagePlan,
    frame_name,
    frame_times,
    grid_size,
    seek_args,
    single_pass,
    single_pass_args,
    tile_args,
    tile_size,
)
from videoarchiver.planning.preview import shown_size
from videoarchiver.planning.probe import Stream, parse_probe
from videoarchiver.planning.shown import shown_frames
from videoarchiver.processes import read_output
from videoarchiver.progress import Outcome
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state import Figures, JobState, OutputState
from videoarchiver.stream_jobs import JobCall, StreamJob, ffmpeg_slot, record, run_jobs, run_limited

OUTPUT = "montage"
log = logging.getLogger(__name__)


def plan_stream(
    source: Source, stream: Stream, max_tile_width: int, min_n: int, max_n: int
) -> MontagePlan:
    counted = source.probed.packets.get(stream.index)
    n = grid_size(counted.duration, min_n, max_n)
    return MontagePlan(
        index=stream.index,
        n=n,
        times=tuple(frame_times(counted.duration, n)),
        single_pass=single_pass(counted.duration, n, counted.keyframes),
        tile=tile_size(shown_size(stream), max_tile_width, n),
        shown=shown_frames(stream),
    )


async def _seek_frames(
    rt: Runtime, source: Source, plan: MontagePlan, offset: float, sheet: Path
) -> bool:
    """One seek per frame, then tile (one task, counted in frames, for all of them); False
    when a seek found no frame to decode."""
    what = f"montage of stream {plan.index}"
    label = f"s{plan.index} montage (seek)"
    if plan.n == 1:
        args = seek_args(source.input, plan, offset + plan.times[0], sheet)
        await run_limited(rt, args, what, source.task(OUTPUT, label), slot_held=True)
        return await anyio.Path(sheet).exists()
    frames = sheet.with_suffix(".frames")
    await anyio.Path(frames).mkdir(exist_ok=True)
    info = source.task(OUTPUT, label, total=len(plan.times), unit="frames")
    with rt.progress.counting(info) as counted:
        for number, time in enumerate(plan.times):
            frame = frames / frame_name(number)
            args = seek_args(source.input, plan, offset + time, frame)
            await run_limited(rt, args, what, None, slot_held=True)
            if not await anyio.Path(frame).exists():
                counted.end(Outcome.FAILED)  # the single pass is tried instead
                return False
            counted.advance()
        await run_limited(rt, tile_args(frames, plan.n, sheet), what, None, slot_held=True)
    return True


async def _render(rt: Runtime, source: Source, plan: MontagePlan, sheet: Path) -> None:
    """Write the contact sheet of one stream to `sheet` (in `work/`): a long step of its
    file, made of short commands run one after the other in one ffmpeg slot (one wait for a
    slot, not one each behind the encodes queued meanwhile)."""
    offset = source.offset(plan.index)
    with source.load.long_step():
        async with ffmpeg_slot(rt, source.place(rt.costs, OUTPUT)):
            if not plan.single_pass and await _seek_frames(rt, source, plan, offset, sheet):
                return
            args = single_pass_args(source.input, plan, offset, sheet)
            task = source.task(OUTPUT, f"s{plan.index} montage (single pass)")
            await run_limited(rt, args, f"montage of stream {plan.index}", task, slot_held=True)
            if plan.n == 1 and not await anyio.Path(sheet).exists():
                # Nothing decodes at its middle (a clip cut after a frame or two): its first frame.
                args = seek_args(source.input, plan, None, sheet)
                await run_limited(rt, args, f"montage of stream {plan.index}", task, slot_held=True)


async def _check(rt: Runtime, sheet: Path, plan: MontagePlan) -> None:
    if not await anyio.Path(sheet).exists():
        raise VerifyError(f"ffmpeg wrote no montage for stream {plan.index}")
    said = await read_output(rt.run_process, probe_args(sheet), "ffprobe of the montage")
    [image] = parse_probe(said).streams
    want = (plan.n * plan.tile[0], plan.n * plan.tile[1])
    if (image.width, image.height) != want:
        raise VerifyError(f"montage is {image.width}x{image.height}, expected {want[0]}x{want[1]}")


async def _montage_stream(
    rt: Runtime, source: Source, job: StreamJob, plan: MontagePlan, destination: Path
) -> None:
    recorded = (await rt.state.jobs(source.row.id, OUTPUT)).get(plan.index)
    if recorded is not None and recorded.state is JobState.DONE:
        return
    where = rt.layout.relative(destination)
    if recorded is not None and await in_place(
        rt.state, rt.layout, source.row.id, OUTPUT, where,
        (recorded.figures.out_bytes, recorded.figures.sha256), source.row.claims,
    ):  # fmt: skip
        # Published before a kill, not yet recorded: the recorded intent matches.
        await record(rt, source, job, JobState.DONE)
        return
    await record(rt, source, job, JobState.RUNNING)
    sheet = source.work / OUTPUT / f"s{plan.index}.jpg"
    await anyio.Path(sheet.parent).mkdir(exist_ok=True)  # never the claim's folder
    await _render(rt, source, plan, sheet)
    await _check(rt, sheet, plan)

    def published(size: int, sha256: str) -> Figures:
        return Figures(path=where, sha256=sha256, out_bytes=size)

    async def recorded_intent(size: int, sha256: str) -> None:
        await record(rt, source, job, JobState.RUNNING, published(size, sha256))

    size, sha256 = await publish_recorded(rt, source, OUTPUT, sheet, destination, recorded_intent)
    await record(rt, source, job, JobState.DONE, published(size, sha256))


async def make_montage(rt: Runtime, source: Source) -> None:
    """Publish one sheet per video stream; a file without video has no montage (skipped)."""
    videos = [s for s in source.probed.probe.streams if s.is_video]
    if not videos:
        await rt.state.set_output(
            source.row.id, OUTPUT, OutputState.SKIPPED, error="no video stream", by=rt.worker.id
        )
        return
    settings = rt.config.montage
    sheets = rt.layout.stream_files(OUTPUT, source.row.stem, [s.index for s in videos])
    jobs: list[tuple[StreamJob, JobCall]] = []
    for stream in videos:
        plan = plan_stream(source, stream, settings.max_tile_width, settings.min_n, settings.max_n)
        how = "single pass" if plan.single_pass else "seek"
        tiles = f"{plan.n}x{plan.n} tiles of {plan.tile[0]}x{plan.tile[1]}"
        job = StreamJob(OUTPUT, stream.index, "video", how, (tiles, *plan.shown.notes))
        jobs.append((job, partial(_montage_stream, rt, source, job, plan, sheets[stream.index])))
    await run_jobs(rt, source, jobs)
    published = list(sheets.values())
    total = sum([(await anyio.Path(path).stat()).st_size for path in published])
    where = published[0] if len(published) == 1 else published[0].parent
    await rt.state.set_output(
        source.row.id,
        OUTPUT,
        OutputState.DONE,
        path=rt.layout.relative(where),
        size=total,
        by=rt.worker.id,
    )
    log.info("%s: montage done, %d bytes → %s", source.name, total, where)
