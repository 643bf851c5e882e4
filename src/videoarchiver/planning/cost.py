"""How much work a file or a stream is, in estimated CPU seconds: the claim order sorts files
of one rank by it (`claim_order`) and a file's encodes wait for a slot in its order (the
costliest first), so a batch does not end with one long encode on an otherwise idle machine.

A video stream costs its pixels × frames times what its encoders spend on one, by their
preset (the archive at the stream's size, the preview at its smaller one; sizes as stored: a
turn or an anamorphic shape changes little); an audio stream its seconds times what Opus
spends on one for both outputs. An hour of audio weighs about as much as 13 s of 1080p at
the shipped `veryslow`, 50 s at `medium`.

The figures: CPU µs per pixel of one second of 25 fps video, measured with ffmpeg 5.1
(x264 164, SVT-AV1 1.4) on 720p test patterns. Real footage costs more or less than these;
what counts here is the proportion between presets and between video and audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from videoarchiver.config import ArchiveConfig, PreviewConfig
from videoarchiver.planning.claim_order import Estimate, Rank
from videoarchiver.planning.preview import preview_size
from videoarchiver.planning.probe import Probe, Stream

X264 = {
    "ultrafast": 0.10, "superfast": 0.24, "veryfast": 0.33, "faster": 0.54, "fast": 0.65,
    "medium": 0.74, "slow": 1.35, "slower": 2.18, "veryslow": 3.62, "placebo": 11.1,
}  # fmt: skip
# Presets 0–2 of SVT-AV1 extrapolated (each about 1.7× the next).
SVT_AV1 = {
    "0": 60.0, "1": 35.0, "2": 19.0, "3": 10.7, "4": 6.5, "5": 3.9, "6": 2.2, "7": 1.5,
    "8": 1.05, "9": 0.76, "10": 0.54, "11": 0.36, "12": 0.26, "13": 0.17,
}  # fmt: skip
ENCODERS = {"libx264": (X264, "medium"), "libsvtav1": (SVT_AV1, "10")}  # and their defaults
UNKNOWN_ENCODER = X264["medium"]
AUDIO_SECOND = 0.03  # Opus at 128 kb/s for the archive, at 10 kb/s for the preview
MEASURED_AT = 25.0  # frames a second of the figures above
FRAME_RATES = (1.0, 120.0)  # what a stream's rate is taken to be at least and at most
MOST = 1e11  # no file costs more (about 3,000 years), whatever its header says


def encoder_cost(codec: str, args: Sequence[str]) -> float:
    """CPU µs that `codec` with `args` spends on a pixel-second, by its `-preset` (the
    last one given, as ffmpeg takes it)."""
    presets, default = ENCODERS.get(codec, ({}, ""))
    given = [value for option, value in pairwise(args) if option.split(":")[0] == "-preset"]
    return presets.get(given[-1] if given else default, presets.get(default, UNKNOWN_ENCODER))


@dataclass(frozen=True)
class Costs:
    """The encoders of a root's settings, priced."""

    archive: float  # µs a pixel-second of the archive's video costs
    preview: float  # … of the preview's
    max_side: int  # the preview's largest side

    @classmethod
    def of(cls, archive: ArchiveConfig, preview: PreviewConfig) -> Costs:
        return cls(
            encoder_cost(archive.video_codec, archive.video_args),
            encoder_cost(preview.video_codec, preview.video_args),
            preview.max_side,
        )

    def claim_order(self, probe: Probe) -> Estimate:
        """Where a file is claimed: its rank (files without video before the others) and its
        cost."""
        cost = min(sum(self.stream(probe, stream) for stream in probe.streams), MOST)
        video = any(stream.is_video for stream in probe.streams)
        return Estimate(Rank.AUDIO_ONLY if probe.has_media and not video else Rank.VIDEO, cost)

    def stream(self, probe: Probe, stream: Stream) -> float:
        """From 0 to MOST, whatever the header says (a negative or NaN duration: 0)."""
        length = stream.duration or probe.format.duration or 0.0
        cost = 0.0
        if stream.is_video and stream.width and stream.height:
            small = preview_size(stream.width, stream.height, self.max_side)
            pixels = (
                stream.width * stream.height * self.archive + small[0] * small[1] * self.preview
            )
            cost = _video_seconds(pixels, length, stream)
        elif stream.is_audio:
            cost = AUDIO_SECOND * length
        return min(cost, MOST) if cost > 0 else 0.0

    def archive_encode(self, stream: Stream, length: float) -> float:
        """Estimated CPU seconds of the archive's encode of `length` s of a video stream."""
        return _video_seconds((stream.width or 0) * (stream.height or 0) * self.archive,
                              length, stream)  # fmt: skip


def _video_seconds(weighted_pixels: float, length: float, stream: Stream) -> float:
    """CPU seconds of `length` s of video whose frames cost `weighted_pixels` µs."""
    return weighted_pixels * length * _frame_rate(stream) / MEASURED_AT / 1e6


def _frame_rate(stream: Stream) -> float:
    """The stream's frames a second, within reason (a variable rate may read as 1,000)."""
    if stream.frame_seconds is None:
        return MEASURED_AT
    low, high = FRAME_RATES
    return min(max(1 / stream.frame_seconds, low), high)
