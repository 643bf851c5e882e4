"""Preview planning: small AV1 video streams and one mixed Opus stream.

Sizes are computed on the displayed picture (after rotation, which ffmpeg applies while
decoding), halved until both sides fit `max_side`, and always even because SVT-AV1 codes
4:2:0 only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

from videoarchiver.config import PreviewConfig
from videoarchiver.planning.commands import FFMPEG, PROGRESS, RawInput, url
from videoarchiver.planning.packets import PacketTally
from videoarchiver.planning.pixels import source_bits
from videoarchiver.planning.probe import Probe, Stream
from videoarchiver.planning.shown import shown_frames
from videoarchiver.planning.verify import ExpectedStream, raw_duration

# Opus takes these rates, and at 10 kb/s more than two channels would only waste bits.
PREVIEW_AUDIO_FORMAT = (
    "aformat=sample_rates=48000|24000|16000|12000|8000:channel_layouts=stereo|mono"
)


def displayed_size(
    width: int, height: int, rotation: int, pixel_aspect: Fraction
) -> tuple[int, int]:
    """The picture as shown, in square pixels (a 720×576 frame of 16:9 PAL is 1024×576);
    width and height swap for a quarter turn."""
    shown = (round(width * pixel_aspect), height)
    return (shown[1], shown[0]) if rotation % 180 else shown


def shown_size(stream: Stream) -> tuple[int, int]:
    """A video stream's picture as shown."""
    return displayed_size(
        stream.width or 0, stream.height or 0, stream.rotation, stream.pixel_aspect
    )


def even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def even_up(value: float) -> int:
    return math.ceil(value / 2) * 2


# SVT-AV1 refuses pictures narrower or lower than this.
SVT_MIN_SIDE = 64


def preview_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Halve until both sides are ≤ max_side (smallest number of halvings), then round down
    each side to an even number: 1920×1080 → 960×540, 1002×750 → 500×374. A picture smaller
    than SVT-AV1's minimum is scaled up to it, keeping its shape."""
    divisor = 1.0
    while width / divisor > max_side or height / divisor > max_side:
        divisor *= 2
    if 0 < min(width, height) / divisor < SVT_MIN_SIDE:
        factor = SVT_MIN_SIDE / min(width, height)
        return even_up(width * factor), even_up(height * factor)
    return even(width / divisor), even(height / divisor)


def preview_pixel_format(stream: Stream) -> str:
    """SVT-AV1 takes 8- or 10-bit 4:2:0; deeper sources keep as much as it can hold, but for
    HDR, tone-mapped to 8-bit BT.709."""
    deep = source_bits(stream.pix_fmt) > 8 and not shown_frames(stream).tone_mapped
    return "yuv420p10le" if deep else "yuv420p"


def preview_video_args(
    raw: RawInput, stream: Stream, config: PreviewConfig, output: Path
) -> list[str]:
    target = preview_size(*shown_size(stream), config.max_side)
    return [
        *FFMPEG, *raw.args(), "-map", f"0:{stream.index}",
        "-map_metadata", "-1", "-map_chapters", "-1",
        "-vf", shown_frames(stream).graph(target), "-pix_fmt", preview_pixel_format(stream),
        "-c:v", config.video_codec, *config.video_args, "-fps_mode", "passthrough",
        *PROGRESS, "-f", "matroska", url(output),
    ]  # fmt: skip


# More channels than this, in layouts swresample may not know how to fold (ten microphones):
# the preview takes the first two as left and right.
FOLDABLE_CHANNELS = 8


def _pre_mix(stream: Stream) -> str:
    return "pan=stereo|c0=c0|c1=c1," if (stream.channels or 0) > FOLDABLE_CHANNELS else ""


def _downmix(stream: Stream) -> str:
    return _pre_mix(stream) + PREVIEW_AUDIO_FORMAT


def preview_audio_args(
    raw: RawInput,
    streams: Sequence[Stream],
    starts: Mapping[int, float],
    config: PreviewConfig,
    output: Path,
) -> list[str]:
    """All audio streams mixed into one (no amix for a single stream). amix ignores when its
    inputs start, so a track that starts later (`starts`: seconds from the earliest) is
    delayed by that much first."""
    if len(streams) == 1:
        graph = ["-map", f"0:{streams[0].index}", "-af", _downmix(streams[0])]
    else:
        first = min(starts[s.index] for s in streams)
        delays = {s.index: round((starts[s.index] - first) * 1000) for s in streams}
        delayed = "".join(
            f"[0:{s.index}]{_pre_mix(s)}adelay=delays={delays[s.index]}:all=1[d{s.index}];"
            for s in streams
        )
        inputs = "".join(f"[d{i}]" for i in delays)
        mix = f"{delayed}{inputs}amix=inputs={len(streams)}:duration=longest"
        mix += f",{PREVIEW_AUDIO_FORMAT}[mix]"
        graph = ["-filter_complex", mix, "-map", "[mix]"]
    return [
        *FFMPEG, *raw.args(), *graph, "-map_metadata", "-1", "-map_chapters", "-1",
        "-c:a", config.audio_codec, *config.audio_args, *PROGRESS, "-f", "matroska", url(output),
    ]  # fmt: skip


def preview_mux_args(parts: Sequence[Path], output: Path) -> list[str]:
    """Parts in the order given (videos, then the audio), nothing else, no metadata."""
    inputs = [arg for part in parts for arg in ("-i", url(part))]
    maps = [arg for number in range(len(parts)) for arg in ("-map", f"{number}:0")]
    return [
        *FFMPEG, "-copyts", *inputs, *maps, "-c", "copy",
        "-map_metadata", "-1", "-map_chapters", "-1", *PROGRESS, "-f", "matroska", url(output),
    ]  # fmt: skip


def preview_expected(probe: Probe, packets: PacketTally) -> list[ExpectedStream]:
    """Each video as long as what can be decoded of its raw stream, then one audio as long as
    the longest raw one."""
    videos = [s for s in probe.streams if s.is_video]
    audios = [s for s in probe.streams if s.is_audio]
    expected = [
        ExpectedStream(
            "video",
            raw_duration(s, packets.get(s.index), probe.format.duration, True, packets.truncated),
            s.frame_seconds,
            truncated=packets.truncated,
        )
        for s in videos
    ]
    if audios:
        first = min(packets.get(s.index).start or 0.0 for s in audios)
        end = max(
            (packets.get(s.index).start or 0.0)
            + raw_duration(s, packets.get(s.index), probe.format.duration)
            for s in audios
        )
        decoded = any(packets.get(s.index).decoded is not None for s in audios)
        expected.append(
            ExpectedStream("audio", end - first, truncated=packets.truncated, decoded=decoded)
        )
    return expected
