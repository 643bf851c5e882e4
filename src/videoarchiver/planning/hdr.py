"""HDR video (PQ or HLG, BT.2020), pure: its static metadata kept, its pictures tone-mapped.

An HDR10 stream says how bright and how wide its mastering display was, and how bright its
brightest pixel and frame are (MaxCLL, MaxFALL). The raw says so in its container (the
stream's side data) or in its frames (HEVC SEI: ffprobe shows it on the first frame). The
archive says it twice: in the encoder's SEI (x264 `mastering-display`, `cll`) and in the
Matroska track's colour element, which ffmpeg 5.1's muxer only writes from the side data
of a stream it copies, so mkvpropedit sets it on the finished archive.

Dynamic metadata (Dolby Vision RPU, HDR10+) has no encoder option: it is named in a note.
The preview and montage are tone-mapped to BT.709 so that they are not shown washed out.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from videoarchiver.planning.commands import FFPROBE, RawInput
from videoarchiver.planning.probe import Stream

TONE_MAPPED = {"smpte2084": "PQ", "arib-std-b67": "HLG"}
MASTERING = "Mastering display metadata"
LIGHT_LEVEL = "Content light level metadata"
DOLBY_VISION = "DOVI configuration record"
# Frame side data of dynamic metadata (HDR10+, Dolby Vision RPU, HDR Vivid).
DYNAMIC = ("HDR Dynamic Metadata", "Dolby Vision")
# SEI units: chromaticity in 1/50000, luminance in 1/10000 cd/m².
CHROMATICITY_UNIT = 50000
LUMINANCE_UNIT = 10000
# (the option carrying the encoder's parameters, the mastering display's name, MaxCLL's).
ENCODER_PARAMS = {
    "libx264": ("-x264-params", "mastering-display", "cll"),
    "libx265": ("-x265-params", "master-display", "max-cll"),
}
# Names zscale takes for the input's matrix and primaries (others are read as BT.2020).
ZSCALE_MATRICES = frozenset({"bt709", "bt2020nc", "bt2020c", "smpte170m", "bt470bg"})
ZSCALE_PRIMARIES = frozenset({"bt709", "bt2020", "smpte170m", "bt470bg", "smpte432"})


def needs_frame_side_data(stream: Stream) -> bool:
    """An HDR video stream: its first frame may say what its container does not."""
    return stream.is_video and stream.color_transfer in TONE_MAPPED


def frame_side_data_args(raw: RawInput, index: int) -> list[str]:
    """ffprobe's JSON of the side data of one stream's first frame."""
    return [
        *FFPROBE, "-print_format", "json", "-select_streams", str(index),
        "-read_intervals", "%+#1", "-show_entries", "frame=:frame_side_data_list",
        *raw.args(),
    ]  # fmt: skip


def first_frame_side_data(document: dict[str, Any]) -> list[dict[str, Any]]:
    frames = document.get("frames") or [{}]
    side_data = frames[0].get("side_data_list") or []
    return [entry for entry in side_data if isinstance(entry, dict)]


def _side_data(stream: Stream, kind: str) -> dict[str, Any] | None:
    """The stream's own side data of `kind`, else its first frame's."""
    for entry in (*stream.side_data_list, *stream.frame_side_data):
        if entry.get("side_data_type") == kind:
            return entry
    return None


def _fraction(value: Any) -> Fraction:
    return Fraction(str(value))


@dataclass(frozen=True)
class Mastering:
    """The mastering display: (x, y) of green, blue, red and white, and luminance."""

    green: tuple[Fraction, Fraction]
    blue: tuple[Fraction, Fraction]
    red: tuple[Fraction, Fraction]
    white: tuple[Fraction, Fraction]
    max_luminance: Fraction
    min_luminance: Fraction

    def sei(self) -> str:
        """`G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)` in the SEI's units."""

        def point(xy: tuple[Fraction, Fraction]) -> str:
            return ",".join(str(round(c * CHROMATICITY_UNIT)) for c in xy)

        luminance = (round(v * LUMINANCE_UNIT) for v in (self.max_luminance, self.min_luminance))
        return (
            f"G({point(self.green)})B({point(self.blue)})R({point(self.red)})"
            f"WP({point(self.white)})L({','.join(map(str, luminance))})"
        )

    def track(self) -> list[str]:
        """mkvpropedit's settings of the track's colour element."""
        values = {
            "chromaticity-coordinates-red-x": self.red[0],
            "chromaticity-coordinates-red-y": self.red[1],
            "chromaticity-coordinates-green-x": self.green[0],
            "chromaticity-coordinates-green-y": self.green[1],
            "chromaticity-coordinates-blue-x": self.blue[0],
            "chromaticity-coordinates-blue-y": self.blue[1],
            "white-coordinates-x": self.white[0],
            "white-coordinates-y": self.white[1],
            "max-luminance": self.max_luminance,
            "min-luminance": self.min_luminance,
        }
        return [arg for name, v in values.items() for arg in ("--set", f"{name}={float(v):g}")]


def mastering(stream: Stream) -> Mastering | None:
    entry = _side_data(stream, MASTERING)
    if entry is None:
        return None
    try:

        def xy(colour: str) -> tuple[Fraction, Fraction]:
            return _fraction(entry[f"{colour}_x"]), _fraction(entry[f"{colour}_y"])

        return Mastering(
            xy("green"), xy("blue"), xy("red"), xy("white_point"),
            _fraction(entry["max_luminance"]), _fraction(entry["min_luminance"]),
        )  # fmt: skip
    except (KeyError, ValueError, ZeroDivisionError):
        return None


def light_level(stream: Stream) -> tuple[int, int] | None:
    """(MaxCLL, MaxFALL) in cd/m²."""
    entry = _side_data(stream, LIGHT_LEVEL)
    try:
        return (int(entry["max_content"]), int(entry["max_average"])) if entry else None
    except (KeyError, TypeError, ValueError):
        return None


def _dolby_vision(stream: Stream) -> tuple[str, bool] | None:
    """(its profile, whether its base layer shows right without the RPU) of a Dolby Vision
    stream; None for any other."""
    dovi = _side_data(stream, DOLBY_VISION)
    if dovi is None:
        return None
    compatible = str(dovi.get("dv_bl_signal_compatibility_id", "")) not in ("", "0")
    return str(dovi.get("dv_profile", "?")), compatible


def raw_only(stream: Stream) -> str | None:
    """Why no encode can keep the stream's pictures (then the raw stream is kept as it is):
    Dolby Vision without a compatible base layer (profile 5) is in IPT colours that only
    its RPU turns into a picture, and x264 cannot carry the RPU."""
    dolby = _dolby_vision(stream)
    if dolby is None or dolby[1]:
        return None
    return (
        f"Dolby Vision profile {dolby[0]} has no HDR10 or SDR compatible base layer, and x264"
        " cannot carry what shows it: kept as it is"
    )


def _dynamic_notes(stream: Stream) -> list[str]:
    notes = []
    dolby = _dolby_vision(stream)
    if dolby is not None:
        notes.append(
            f"Dolby Vision (profile {dolby[0]}) not carried (x264 cannot): the archive holds"
            " its base layer"
        )
    named = DYNAMIC if dolby is None else DYNAMIC[:1]  # its RPU: the note above says it
    seen = {
        str(entry.get("side_data_type"))
        for entry in stream.frame_side_data
        if str(entry.get("side_data_type", "")).startswith(named)
    }
    notes += [f"{kind} not carried (x264 cannot hold dynamic metadata)" for kind in sorted(seen)]
    return notes


@dataclass(frozen=True)
class HdrPlan:
    """What the archive's encode and track get of a stream's HDR metadata."""

    args: tuple[str, ...] = ()
    track: tuple[str, ...] = ()  # mkvpropedit's settings of the archive's track
    notes: tuple[str, ...] = ()


def hdr_plan(stream: Stream, codec: str | None) -> HdrPlan:
    """The static metadata into the encoder's SEI and the track; the rest named."""
    display, light = mastering(stream), light_level(stream)
    track: list[str] = [*display.track()] if display else []
    params = []
    if light:
        track += ["--set", f"max-content-light={light[0]}", "--set", f"max-frame-light={light[1]}"]
    option = ENCODER_PARAMS.get(codec or "")
    notes = _dynamic_notes(stream)
    if option and display:
        params.append(f"{option[1]}={display.sei()}")
    if option and light:
        params.append(f"{option[2]}={light[0]},{light[1]}")
    if track and not option:
        notes.append(f"HDR mastering metadata in the Matroska track only ({codec} takes none)")
    args = (option[0], ":".join(params)) if params and option else ()
    return HdrPlan(args, tuple(track), tuple(notes))


def tone_map_filters(stream: Stream) -> list[str]:
    """PQ or HLG to BT.709 (zscale to linear light, `tonemap`, back to BT.709, 8-bit
    4:2:0); nothing for other streams. The source's colour is given, not read from the
    frames: a decoder may leave it unset."""
    transfer = stream.color_transfer
    if transfer not in TONE_MAPPED:
        return []
    matrix = stream.color_space if stream.color_space in ZSCALE_MATRICES else "bt2020nc"
    primaries = stream.color_primaries
    primaries = primaries if primaries in ZSCALE_PRIMARIES else "bt2020"
    in_range = "pc" if stream.color_range == "pc" else "tv"
    return [
        f"zscale=tin={transfer}:min={matrix}:pin={primaries}:rin={in_range}:t=linear:npl=100",
        "format=gbrpf32le",
        "zscale=p=bt709",
        "tonemap=hable:desat=0",
        "zscale=t=bt709:m=bt709:r=tv",
        "format=yuv420p",
    ]
