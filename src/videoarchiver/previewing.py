"""The preview output: AV1 video streams and one mixed Opus stream, muxed and
verified before they are published into `preview/`."""

from __future__ import annotations

import os
from functools import partial

import anyio

from videoarchiver.outputs import mux_verify_publish
from videoarchiver.planning.preview import (
    preview_audio_args,
    preview_expected,
    preview_mux_args,
    preview_size,
    preview_video_args,
    shown_size,
)
from videoarchiver.planning.shown import shown_frames
from videoarchiver.resuming import encode_part
from videoarchiver.runtime import Runtime, Source
from videoarchiver.stream_jobs import JobCall, StreamJob, run_jobs

OUTPUT = "preview"


async def make_preview(rt: Runtime, source: Source) -> None:
    """Build, verify and publish `preview/<stem>.mkv`; raises VideoArchiverError on failure."""
    probe, settings = source.probed.probe, rt.config.preview
    work = source.work / OUTPUT
    await anyio.Path(work).mkdir(exist_ok=True)  # never the claim's folder: a later claim's
    # SVT-AV1 prints its banner to stderr itself; SVT_LOG=1 keeps only its errors.
    env = {**os.environ, "SVT_LOG": "1"}
    jobs: list[tuple[StreamJob, JobCall]] = []
    parts = []
    for stream in (s for s in probe.streams if s.is_video):
        size = preview_size(*shown_size(stream), settings.max_side)
        notes = (f"{size[0]}x{size[1]}", *shown_frames(stream).notes)
        job = StreamJob(OUTPUT, stream.index, "video", "encode", notes)
        part = work / f"s{stream.index}.mkv"
        args_for = partial(preview_video_args, source.input, stream, settings)
        jobs.append((job, partial(encode_part, rt, source, job, args_for, part, env)))
        parts.append(part)
    audios = [s for s in probe.streams if s.is_audio]
    if audios:
        mix = [s.index for s in audios]
        notes = (f"mix of streams {', '.join(map(str, mix))}",) if len(mix) > 1 else ()
        job = StreamJob(OUTPUT, audios[0].index, "audio", "encode", notes)
        part = work / "audio.mkv"
        starts = {s.index: source.offset(s.index) for s in audios}
        args_for = partial(preview_audio_args, source.input, audios, starts, settings)
        jobs.append((job, partial(encode_part, rt, source, job, args_for, part, streams=mix)))
        parts.append(part)
    await run_jobs(rt, source, jobs)
    muxed = work / "preview.mkv"
    await mux_verify_publish(
        rt, source, OUTPUT, preview_mux_args(parts, muxed), muxed,
        lambda: preview_expected(probe, source.probed.packets),
        rt.layout.output_file(OUTPUT, source.row.stem),
    )  # fmt: skip
