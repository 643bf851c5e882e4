"""Interlaced video (DV tapes, DVDs, broadcast, AVCHD 1080i), pure.

Such a stream's frames each hold two fields, taken a field period apart. The archive keeps
them as fields: x264 codes them interlaced (`+ildct+ilme`), top or bottom first as in the
raw, and the Matroska track says the raw's field order. The preview and montage show
deinterlaced frames (`bwdif`), one per frame, without the combing of woven fields.

The field order is the stream's (`tt`, `bb`, or `tb`/`bt` as older ffmpeg writes it);
where the stream does not say (raw DV, an uncompressed capture AVI), `idet` on a sample
of frames from its middle decides, and the decision is noted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from videoarchiver.planning.commands import FFMPEG, RawInput
from videoarchiver.planning.pixels import PixelChoice
from videoarchiver.planning.probe import NO_DECODER, FieldSample, Stream

INTERLACED = frozenset({"tt", "bb", "tb", "bt"})
KNOWN = INTERLACED | {"progressive"}
TOP_FIRST = "tt"
BOTTOM_FIRST = "bb"
# Ten seconds of PAL: 0.3 s of CPU for SD DV, 1.3 s for 1080-line H.264 (mostly decoding).
SAMPLE_FRAMES = 250
VERDICT_KEY = "lavfi.idet.multiple.current_frame"


@dataclass(frozen=True)
class Fields:
    """How a video stream's frames are coded: `order` is ffprobe's `field_order`."""

    order: str = "progressive"
    sampled: bool = False  # decided by `idet`: the frames' own flags are not trusted
    notes: tuple[str, ...] = ()

    @property
    def interlaced(self) -> bool:
        return self.order in INTERLACED

    @property
    def top_first(self) -> bool:
        return self.order.startswith("t")


# Animation and image codecs, which have no fields: a stream of them is never sampled.
NO_FIELDS = frozenset({"gif", "apng", "png", "webp", "bmp", "tiff"})


def needs_sample(stream: Stream) -> bool:
    """A decodable video stream that does not say whether, or how, it is interlaced (DV,
    MPEG-4 part 2 in MP4, MJPEG in AVI), of a codec that can hold fields."""
    return (
        stream.is_video
        and stream.codec_name not in NO_DECODER
        and stream.codec_name not in NO_FIELDS
        and (stream.field_order or "unknown") not in KNOWN
    )


def sample_start(offset: float, duration: float, frame_seconds: float | None) -> float:
    """Where the sample starts on ffmpeg's timeline: centred on the stream's middle, or at
    its start when it is shorter than the sample (`offset`: where the stream starts)."""
    span = SAMPLE_FRAMES * (frame_seconds or 1 / 25)
    return offset + max(0.0, (duration - span) / 2)


def sample_args(raw: RawInput, index: int, start: float) -> list[str]:
    """`idet` on SAMPLE_FRAMES frames of one stream from `start`: its verdict on each frame
    (with what it saw of the frames around it) printed as one `key=value` line to stdout."""
    return [
        *FFMPEG, "-ss", f"{start:.6f}", *raw.args(), "-map", f"0:{index}",
        "-vf", f"idet,metadata=mode=print:key={VERDICT_KEY}:file=-",
        "-frames:v", str(SAMPLE_FRAMES), "-an", "-sn", "-dn", "-f", "null", "-",
    ]  # fmt: skip


class FieldTally:
    """Counts the verdicts `sample_args` prints, fed a run of lines at a time."""

    def __init__(self) -> None:
        self.counts = {"tff": 0, "bff": 0, "progressive": 0, "undetermined": 0}

    def feed(self, lines: Sequence[str]) -> None:
        for line in lines:
            key, _, verdict = line.strip().partition("=")
            if key == VERDICT_KEY and verdict in self.counts:
                self.counts[verdict] += 1

    def sample(self) -> FieldSample:
        return FieldSample(**self.counts)


# Woven fields show one order throughout; progressive pictures with fine detail in motion
# fool idet into either order by turns (a moving test pattern: 41 top first, 24 bottom).
AGREEING = 4


def sampled_order(sample: FieldSample) -> str:
    """Interlaced when most of the frames idet could tell are woven fields and they agree
    on an order (at least AGREEING to one); progressive otherwise."""
    first, second = sorted((sample.tff, sample.bff), reverse=True)
    if first <= sample.progressive + second or first < AGREEING * second:
        return "progressive"
    return TOP_FIRST if sample.tff > sample.bff else BOTTOM_FIRST


def _describe(order: str) -> str:
    if order == "progressive":
        return "progressive frames"
    first = "top" if order.startswith("t") else "bottom"
    return f"interlaced, {first} field first ({order})"


def stream_fields(stream: Stream) -> Fields:
    """The stream's own field order when it says one, else the sample's decision."""
    order = stream.field_order or "unknown"
    if order in INTERLACED:
        return Fields(order, notes=(f"{_describe(order)}: coded as fields, as in the raw",))
    if order in KNOWN:
        return Fields(order)
    sample = stream.field_sample
    if stream.codec_name in NO_FIELDS:
        return Fields()
    if sample is None or not sample.frames:
        why = "no frame to measure" if sample else "not measured"
        return Fields(notes=(f"field order {order} and {why}: coded as progressive frames",))
    decided = sampled_order(sample)
    seen = (
        f"idet on {sample.frames} frames from its middle saw {sample.tff} top field first, "
        f"{sample.bff} bottom field first, {sample.progressive} progressive, "
        f"{sample.undetermined} undetermined"
    )
    note = f"field order {order} in the stream: {seen}; coded as {_describe(decided)}"
    return Fields(decided, sampled=True, notes=(note,))


def interlaced_args(fields: Fields) -> list[str]:
    """The encoder's options: fields coded as such, and the track's field order. ffmpeg
    5.1 would write `tb`/`bt` for them (what it calls a frame's top field first); the codec
    option `-field_order` overrides it. A sampled order is forced on the frames too, whose
    own flags said nothing."""
    if not fields.interlaced:
        return []
    args = ["-flags", "+ildct+ilme", "-field_order", fields.order]
    if fields.sampled:
        args += ["-top", "1" if fields.top_first else "0"]
    return args


def field_pixel_format(
    choice: PixelChoice | None, fields: Fields, height: int | None
) -> PixelChoice | None:
    """x264 codes 4:2:0 fields of a picture whose height is a multiple of 4 only (NTSC's
    486 lines are not): such a picture's chroma is stored as 4:2:2 (nothing is lost)."""
    if choice is None or not fields.interlaced or not height or height % 4 == 0:
        return choice
    if not choice.pix_fmt.startswith(("yuv420p", "yuvj420p")):
        return choice
    note = f"interlaced 4:2:0 of height {height}: chroma stored as 422 (x264 codes fields of"
    note += " 4:2:0 only at a height divisible by 4; nothing is lost)"
    pix_fmt = choice.pix_fmt.replace("420", "422", 1)
    return replace(choice, pix_fmt=pix_fmt, notes=(*choice.notes, note))


def deinterlace_filter(fields: Fields) -> str | None:
    """`bwdif` keeping one frame per frame, on every frame, in the stream's field order."""
    if not fields.interlaced:
        return None
    return f"bwdif=mode=send_frame:parity={'tff' if fields.top_first else 'bff'}:deint=all"
