"""What libopus can take as it is, and the conversion that makes any other audio fit.

libopus encodes 48/24/16/12/8 kHz and, above two channels, only the Vorbis channel orders of
up to eight channels (ffmpeg 5.1 refuses `5.1(side)` or `2.1` rather than remapping). A layout
that is only another name for a Vorbis one (`5.1(side)`) is relabelled; any other (2.1, 7.1
wide, 16 microphones) would lose channels in a remix, so its channels are kept as they are,
discrete (Opus channel mapping family 255), and the layout's name is recorded in the note.
The conversion is an `aformat` filter so that it is one visible, recorded decision.
"""

from __future__ import annotations

from dataclasses import dataclass

OPUS_RATES = (48000, 24000, 16000, 12000, 8000)
# The channel layouts of the Vorbis mapping, indexed by channel count − 1.
VORBIS_LAYOUTS = ("mono", "stereo", "3.0", "quad", "5.0", "5.1", "6.1", "7.1")
# Layouts with the same speakers as a Vorbis one under another name (sides for backs).
RELABELS = {"quad(side)": "quad", "5.0(side)": "5.0", "5.1(side)": "5.1"}


@dataclass(frozen=True)
class AudioConversion:
    args: tuple[str, ...]
    notes: tuple[str, ...]


def opus_conversion(
    sample_rate: int | None, channels: int | None, layout: str | None
) -> AudioConversion:
    """`-af aformat=...` arguments (empty when none is needed) and what they change."""
    options: list[str] = []
    notes: list[str] = []
    discrete: tuple[str, ...] = ()
    if sample_rate and sample_rate not in OPUS_RATES:
        options.append("sample_rates=48000")
        notes.append(f"resampled {sample_rate} Hz to 48000 Hz")
    if channels and channels > 2:
        target = VORBIS_LAYOUTS[channels - 1] if channels <= len(VORBIS_LAYOUTS) else None
        known_layout = bool(layout) and layout != "unknown"
        if layout in RELABELS and RELABELS[layout] == target:
            options.append(f"channel_layouts={target}")
            notes.append(f"channel layout {layout} relabelled {target}")
        elif target is None or (known_layout and layout != target):
            discrete = ("-mapping_family", "255")
            name = layout if known_layout else f"{channels} channels"
            notes.append(f"channel layout {name} kept as {channels} discrete channels")
    af = ("-af", "aformat=" + ":".join(options)) if options else ()
    return AudioConversion(args=(*af, *discrete), notes=tuple(notes))
