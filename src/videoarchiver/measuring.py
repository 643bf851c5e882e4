"""The measured quality of a re-encoded video stream: its SSIM against the raw stream on
sampled frames (`planning.quality`), run in an ffmpeg slot once the encode is kept.

What it finds is recorded with the stream job; a measurement that fails (an ffmpeg error)
never fails the archive: it is recorded as not measured, and `after_done` then keeps the raw
file (`disposal.quality_shortfall`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from videoarchiver.errors import VideoArchiverError, short_reason
from videoarchiver.planning.alpha import ALPHA_CODEC
from videoarchiver.planning.archive import StreamDecision
from videoarchiver.planning.quality import (
    BATCH,
    LOSSLESS_NOTE,
    Comparison,
    keyframe_args,
    lead_frames,
    parse_keyframes,
    parse_ssim,
    pixel_format,
    preroll,
    sample_plan,
    summarize,
)
from videoarchiver.processes import read_output
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state import CLEARED, Figures
from videoarchiver.stream_jobs import ffmpeg_slot
from videoarchiver.ui import plural

log = logging.getLogger(__name__)
DEFAULT_FRAME_SECONDS = 1 / 25


def comparison(
    rt: Runtime, source: Source, decision: StreamDecision, part: Path, codec_args: Sequence[str]
) -> tuple[Comparison, tuple[float, ...]]:
    """How the part of `decision`'s stream is compared with the raw, and at which target
    times (each becomes the part's keyframe at or before it)."""
    probe, index = source.probed.probe, decision.index
    stream, packets = probe.stream(index), source.probed.packets.get(index)
    frame_seconds = stream.frame_seconds or DEFAULT_FRAME_SECONDS
    raw_gop = packets.count / max(1, packets.keyframes)
    early = preroll(probe.format.format_name or "", raw_gop, frame_seconds)
    untimed = packets.start is None  # no seek: read from its start, half of it on average
    length = packets.duration or packets.count * frame_seconds  # (untimed: 0 s)
    pixels = (stream.width or 0) * (stream.height or 0)
    plan = sample_plan(
        source.offset(index), length, pixels,
        lead_frames(raw_gop, length / 2 if untimed else early, frame_seconds),
        rt.costs.archive_encode(stream, length),
    )  # fmt: skip
    how = Comparison(
        part, source.input, index, probe.format.start_time or 0.0, frame_seconds,
        pixel_format([*codec_args, *decision.args], stream.pix_fmt), early,
        source.offset(index) if untimed else None,
    )  # fmt: skip
    return how, plan.targets


async def measure_quality(
    rt: Runtime, source: Source, decision: StreamDecision, part: Path, codec_args: Sequence[str]
) -> Figures:
    """The SSIM figures of a kept video encode (a lossless FFV1 one: 1.0, not measured);
    a failure is a note, never an error."""
    if decision.codec == ALPHA_CODEC:
        return Figures(ssim_mean=1.0, ssim_worst=1.0, ssim_note=LOSSLESS_NOTE)
    index = decision.index
    try:
        how, targets = comparison(rt, source, decision, part, codec_args)
        async with ffmpeg_slot(rt):
            found = await read_output(
                rt.run_process, keyframe_args(part, targets),
                f"ffprobe of stream {index}'s keyframes",
            )  # fmt: skip
            points = parse_keyframes(found.decode("utf-8", "replace"))
            values: list[float] = []
            for at in range(0, len(points), BATCH):
                printed = await read_output(
                    rt.run_process, how.args(points[at : at + BATCH]), f"SSIM of stream {index}"
                )
                values += parse_ssim(printed.decode("utf-8", "replace"))
    except (VideoArchiverError, OSError) as exc:
        log.warning("%s: archive stream %d: quality not measured: %s", source.name, index,
                    short_reason(exc))  # fmt: skip
        return Figures(ssim_mean=CLEARED, ssim_worst=CLEARED, ssim_note=short_reason(exc))
    quality = summarize(values)
    if quality is None:
        note = f"no frame compared at {plural(len(points), 'sample point')}"
        return Figures(ssim_mean=CLEARED, ssim_worst=CLEARED, ssim_note=note)
    note = f"{plural(quality.frames, 'frame')} at {plural(len(points), 'sample point')}"
    return Figures(ssim_mean=quality.mean, ssim_worst=quality.worst, ssim_note=note)
