"""How much work a file or a stream is, roughly: the claim order sorts files by it and a
file's encodes wait for a slot in its order (the costliest first), so a batch does not end
with one long encode on an otherwise idle machine.

Pixels × seconds for each video stream (what x264 and SVT-AV1 spend their time on), plus a
small weight per second of audio. The encoder settings are the same for every file of a root,
so they change no order and are left out.
"""

from __future__ import annotations

from videoarchiver.planning.probe import Probe, Stream

AUDIO_WEIGHT = 1_000.0  # a second of audio costs about as much as 1,000 pixels of video


def estimate_cost(probe: Probe) -> float:
    return sum(stream_cost(probe, stream) for stream in probe.streams)


def stream_cost(probe: Probe, stream: Stream) -> float:
    length = stream.duration or probe.format.duration or 0.0
    if stream.is_video and stream.width and stream.height:
        return stream.width * stream.height * length
    return AUDIO_WEIGHT * length if stream.is_audio else 0.0
