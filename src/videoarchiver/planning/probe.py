"""Pydantic models of `ffprobe -show_format -show_streams -show_chapters` JSON.

ffprobe prints many numbers as strings and leaves out whatever it does not know, so every
field is optional and lax; the properties answer the questions the planners ask.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from videoarchiver.errors import ProbeError
from videoarchiver.planning.packets import PacketTally


class _Lax(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FieldSample(_Lax):
    """What ffmpeg's `idet` made of a sample of a stream's frames, counted per verdict."""

    tff: int = 0
    bff: int = 0
    progressive: int = 0
    undetermined: int = 0

    @property
    def frames(self) -> int:
        return self.tff + self.bff + self.progressive + self.undetermined


class Stream(_Lax):
    index: int
    codec_type: str = "unknown"
    codec_name: str | None = None
    codec_tag_string: str | None = None
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    bits_per_raw_sample: int | None = None
    color_range: str | None = None
    color_space: str | None = None
    color_transfer: str | None = None
    color_primaries: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    channel_layout: str | None = None
    avg_frame_rate: str | None = None
    r_frame_rate: str | None = None
    sample_aspect_ratio: str | None = None
    start_time: float | None = None
    duration: float | None = None
    disposition: dict[str, int] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    side_data_list: list[dict[str, Any]] = Field(default_factory=list)
    field_order: str | None = None
    # Not in ffprobe's stream JSON; the probe step adds them where the planners need them:
    # the side data of the first frame (HDR metadata a codec carries in its frames) and an
    # `idet` verdict on a sample (a stream that does not say how its fields are ordered).
    frame_side_data: list[dict[str, Any]] = Field(default_factory=list)
    field_sample: FieldSample | None = None

    @property
    def is_attached_picture(self) -> bool:
        return self.codec_type == "video" and bool(self.disposition.get("attached_pic"))

    @property
    def is_video(self) -> bool:
        """A moving-picture stream: video that is not cover art."""
        return self.codec_type == "video" and not self.is_attached_picture

    @property
    def is_audio(self) -> bool:
        return self.codec_type == "audio"

    @property
    def frame_seconds(self) -> float | None:
        """Duration of one frame from the average (else nominal) frame rate, if known."""
        for rate in (self.avg_frame_rate, self.r_frame_rate):
            fps = parse_rate(rate)
            if fps:
                return float(1 / fps)
        return None

    @property
    def pixel_aspect(self) -> Fraction:
        """Width of a pixel over its height (64:45 for 16:9 PAL DVD); 1 when unknown."""
        ratio = parse_rate((self.sample_aspect_ratio or "").replace(":", "/"))
        return ratio if ratio and ratio > 0 else Fraction(1)

    @property
    def rotation(self) -> int:
        """Display rotation in degrees (counter-clockwise, as ffprobe reports it), 0 if none
        or if it is no number (a tag may say anything: `nan`, `1e400`)."""
        for side_data in self.side_data_list:
            if "rotation" in side_data:
                return _degrees(side_data["rotation"])
        rotate = self.tags.get("rotate")
        return _degrees(rotate) if rotate else 0


def _degrees(value: Any) -> int:
    try:
        degrees = float(value)
    except (TypeError, ValueError):
        return 0
    return int(degrees) if math.isfinite(degrees) else 0


class Format(_Lax):
    format_name: str | None = None
    start_time: float | None = None
    duration: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class Chapter(_Lax):
    id: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)


# What ffprobe calls a codec it has no decoder for (such a stream is kept as it is).
NO_DECODER = frozenset({None, "none", "unknown"})


class Probe(_Lax):
    streams: list[Stream] = Field(default_factory=list)
    format: Format = Field(default_factory=Format)
    chapters: list[Chapter] = Field(default_factory=list)

    @property
    def has_media(self) -> bool:
        return any(s.is_video or s.is_audio for s in self.streams)

    def stream(self, index: int) -> Stream:
        return next(stream for stream in self.streams if stream.index == index)

    def without_empty(self, packets: PacketTally) -> tuple[Probe, list[str]]:
        """The file as far as it holds data: video and audio streams without a single packet
        (a camera clip cut mid-write, an unused track) are left out, each with a note, and
        so are video streams this ffmpeg cannot decode (no picture size: animated WebP)."""
        notes = []
        gone = set()
        for s in self.streams:
            why = None
            if (s.is_video or s.is_audio) and not packets.get(s.index).count:
                why = "it holds no data"
            elif s.is_video and s.codec_name not in NO_DECODER and not (s.width and s.height):
                why = "this ffmpeg cannot decode it (no picture size)"
            if why:
                notes.append(f"stream {s.index} ({s.codec_type} {s.codec_name}) dropped: {why}")
                gone.add(s.index)
        kept = [s for s in self.streams if s.index not in gone]
        return self.model_copy(update={"streams": kept}), notes


def parse_rate(text: str | None) -> Fraction | None:
    """Parse ffprobe's `num/den` rates; `0/0` and garbage give None."""
    if not text:
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def parse_probe(raw_json: bytes | str) -> Probe:
    """Validate ffprobe's JSON; a file ffprobe describes but we cannot model is a ProbeError."""
    try:
        return Probe.model_validate_json(raw_json)
    except ValidationError as exc:
        raise ProbeError(f"unexpected ffprobe output: {exc.errors()[0]['msg']}") from exc


def without_filename(raw_json: bytes) -> bytes:
    """ffprobe's JSON without the path it opened (`format.filename`): what is recorded must
    not name one machine's folders, and the file's own record says which file it is. JSON
    that does not parse is left as it is (reading it says what is wrong)."""
    text = raw_json.decode("utf-8", "surrogateescape")
    try:
        data = json.loads(text)
        del data["format"]["filename"]
    except (ValueError, TypeError, KeyError):
        return raw_json
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogateescape")
