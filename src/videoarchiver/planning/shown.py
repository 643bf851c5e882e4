"""The frames of a video stream as a viewer sees them, for the preview and the montage.

Woven fields are deinterlaced first (on the pixels as decoded), the picture is scaled to
square pixels of the size wanted, and a PQ or HLG picture is then tone-mapped to BT.709
(at the small size: tone-mapping works in 32-bit floats on every pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

from videoarchiver.planning.hdr import TONE_MAPPED, tone_map_filters
from videoarchiver.planning.interlace import deinterlace_filter, stream_fields
from videoarchiver.planning.probe import Stream


@dataclass(frozen=True)
class Shown:
    """The filters before and after the scale."""

    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what is done to the frames, for the user to read

    def graph(self, size: tuple[int, int]) -> str:
        """The filter chain that shows the frames at `size`."""
        scale = (f"scale={size[0]}:{size[1]}", "setsar=1")
        return ",".join((*self.before, *scale, *self.after))

    @property
    def tone_mapped(self) -> bool:
        return bool(self.after)


AS_DECODED = Shown()


def shown_frames(stream: Stream) -> Shown:
    fields = stream_fields(stream)
    deinterlace = deinterlace_filter(fields)
    tone_map = tuple(tone_map_filters(stream))
    notes = []
    if deinterlace:
        notes.append(f"deinterlaced ({'top' if fields.top_first else 'bottom'} field first)")
    if tone_map:
        notes.append(f"tone-mapped from {TONE_MAPPED[str(stream.color_transfer)]} to BT.709")
    return Shown((deinterlace,) if deinterlace else (), tone_map, tuple(notes))
