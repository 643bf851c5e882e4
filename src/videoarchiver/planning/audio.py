"""What libopus can take as it is, and the conversion that makes any other audio fit.

libopus encodes 48/24/16/12/8 kHz and, above two channels, only the Vorbis channel orders of
up to eight channels (ffmpeg 5.1 refuses `5.1(side)` or `2.1` rather than remapping). The
conversion is an `aformat` filter so that it is one visible, recorded decision.
"""

from __future__ import annotations

from dataclasses import dataclass

OPUS_RATES = (48000, 24000, 16000, 12000, 8000)
# The channel layouts of the Vorbis mapping, indexed by channel count − 1.
VORBIS_LAYOUTS = ("mono", "stereo", "3.0", "quad", "5.0", "5.1", "6.1", "7.1")


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
    if sample_rate and sample_rate not in OPUS_RATES:
        options.append("sample_rates=48000")
        notes.append(f"resampled {sample_rate} Hz to 48000 Hz")
    if channels:
        target = VORBIS_LAYOUTS[min(channels, len(VORBIS_LAYOUTS)) - 1]
        known_layout = bool(layout) and layout != "unknown"
        if channels > len(VORBIS_LAYOUTS) or (known_layout and channels > 2 and layout != target):
            options.append(f"channel_layouts={target}")
            notes.append(f"channel layout {layout or f'{channels} channels'} remapped to {target}")
    if not options:
        return AudioConversion(args=(), notes=())
    return AudioConversion(args=("-af", "aformat=" + ":".join(options)), notes=tuple(notes))
