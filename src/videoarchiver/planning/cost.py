"""How much work a file is, roughly: the claim order sorts by it (the costliest first), so a
batch does not end with one long encode on an otherwise idle machine.

Pixels × seconds for each video stream (what x264 and SVT-AV1 spend their time on), plus a
small weight per second of audio. The encoder settings are the same for every file of a root,
so they change no order and are left out.
"""

from __future__ import annotations

from videoarchiver.planning.probe import Probe

AUDIO_WEIGHT = 1_000.0  # a second of audio costs about as much as 1,000 pixels of video


def estimate_cost(probe: Probe) -> float:
    seconds = probe.format.duration or 0.0
    cost = 0.0
    for stream in probe.streams:
        length = stream.duration or seconds
        if stream.is_video and stream.width and stream.height:
            cost += stream.width * stream.height * length
        elif stream.is_audio:
            cost += AUDIO_WEIGHT * length
    return cost
