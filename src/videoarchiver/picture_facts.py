"""What a raw file's header does not say of its video pictures, read from the frames.

An HDR stream's mastering display and light levels may be only in its frames (HEVC SEI):
the first frame's side data is read. A stream that does not say how its fields are ordered
(raw DV) gets `idet`'s verdict on a sample of frames from its middle. Other streams cost
nothing here.
"""

from __future__ import annotations

import contextlib
import json

from videoarchiver.errors import ProcessError
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.hdr import (
    first_frame_side_data,
    frame_side_data_args,
    needs_frame_side_data,
)
from videoarchiver.planning.interlace import FieldTally, needs_sample, sample_args, sample_start
from videoarchiver.planning.packets import PacketTally
from videoarchiver.planning.probe import Probe, Stream
from videoarchiver.processes import ProcessRunner, each_line, read_output


async def _frame_side_data(run: ProcessRunner, raw: RawInput, stream: Stream) -> Stream:
    """The stream with its first frame's side data; as it was when that frame does not
    decode (the encode then finds out what is wrong)."""
    what = f"ffprobe of the first frame of stream {stream.index}"
    try:
        document = json.loads(await read_output(run, frame_side_data_args(raw, stream.index), what))
    except (ProcessError, ValueError):
        return stream
    return stream.model_copy(update={"frame_side_data": first_frame_side_data(document)})


async def _field_sample(
    run: ProcessRunner, raw: RawInput, stream: Stream, offset: float, duration: float
) -> Stream:
    """The stream with idet's verdicts on its sample (none when nothing decodes there)."""
    tally = FieldTally()
    start = sample_start(offset, duration, stream.frame_seconds)
    # What was counted before it failed (a damaged middle) is still a verdict.
    with contextlib.suppress(ProcessError):
        await each_line(run, sample_args(raw, stream.index, start), tally.feed, "idet sample")
    return stream.model_copy(update={"field_sample": tally.sample()})


async def with_picture_facts(
    run: ProcessRunner, raw: RawInput, probe: Probe, packets: PacketTally
) -> Probe:
    """The probe with what the frames say that the header does not (each ffprobe or
    ffmpeg run by `run`)."""
    streams = []
    for stream in probe.streams:
        if needs_frame_side_data(stream):
            stream = await _frame_side_data(run, raw, stream)
        if needs_sample(stream):
            counted = packets.get(stream.index)
            offset = (counted.start or 0.0) - (probe.format.start_time or 0.0)
            stream = await _field_sample(run, raw, stream, offset, counted.duration)
        streams.append(stream)
    return probe.model_copy(update={"streams": streams})
