"""Pixel formats: keep the raw video's bit depth and chroma subsampling in the archive.

x264 (and x265) take 4:2:0, 4:2:2 and 4:4:4 at 8 or 10 bits, and grey. Every other source
format is mapped to the closest of those that loses nothing the eye could see: deeper sources
to 10 bits, RGB and 4:4:0 to 4:4:4, 4:1:1 to 4:2:2. A source with alpha never comes here: it
is kept losslessly (`planning.alpha`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Formats whose names do not spell their layout: (chroma, bits).
_SPECIAL: dict[str, tuple[str, int]] = {
    "nv12": ("420", 8),
    "nv21": ("420", 8),
    "nv16": ("422", 8),
    "nv24": ("444", 8),
    "nv42": ("444", 8),
    "nv20le": ("422", 10),
    "nv20be": ("422", 10),
    "p010le": ("420", 10),
    "p010be": ("420", 10),
    "p016le": ("420", 16),
    "p016be": ("420", 16),
    "p210le": ("422", 10),
    "p216le": ("422", 16),
    "p410le": ("444", 10),
    "p416le": ("444", 16),
    "y210le": ("422", 10),
    "yuyv422": ("422", 8),
    "yvyu422": ("422", 8),
    "uyvy422": ("422", 8),
    "uyyvyy411": ("411", 8),
    "ayuv64le": ("444", 16),
    "vuya": ("444", 8),
    "xyz12le": ("444", 12),
}
_RGB = re.compile(r"^(a|x|0)?(rgb|bgr|gbr|pal|argb|abgr|rgba|bgra)")
_CHROMA_TARGET = {
    "444": "444",
    "440": "444",
    "422": "422",
    "411": "422",
    "420": "420",
    "410": "420",
}


@dataclass(frozen=True)
class PixelChoice:
    pix_fmt: str
    notes: tuple[str, ...] = ()
    from_rgb: bool = False


def _rgb_bits(name: str) -> int:
    match = re.match(r"^gbra?p(\d+)", name)
    if match:
        return int(match.group(1))
    if re.search(r"(48|64)", name):
        return 16
    return 10 if name.startswith(("x2rgb", "x2bgr")) else 8


def pixel_layout(name: str) -> tuple[str, int, bool] | None:
    """(chroma, bits, is_rgb) of a format name, None when the name is not understood."""
    if name in _SPECIAL:
        chroma, bits = _SPECIAL[name]
        return chroma, bits, False
    gray = re.match(r"^(?:gray|ya)(\d*)", name)
    if gray:
        return "gray", int(gray.group(1) or 8), False
    if _RGB.match(name) or name.startswith(("x2rgb", "x2bgr")):
        return "444", _rgb_bits(name), True
    match = re.match(r"^yuvj?a?(\d{3})p(\d{0,2})", name)
    if match:
        return match.group(1), int(match.group(2) or 8), False
    return None


def _fits(chroma: str, width: int | None, height: int | None) -> bool:
    """x264 needs an even width for 4:2:x and an even height for 4:2:0."""
    odd_width, odd_height = bool((width or 0) % 2), bool((height or 0) % 2)
    return not (chroma in ("420", "422") and odd_width) and not (chroma == "420" and odd_height)


def source_bits(source: str | None) -> int:
    """Bits per component of a pixel format (8 when the format is unknown)."""
    layout = pixel_layout(source) if source else None
    return layout[1] if layout else 8


def archive_pixel_format(
    source: str | None, width: int | None = None, height: int | None = None
) -> PixelChoice | None:
    """The x264 pixel format for a source format; None lets ffmpeg choose (format unknown).

    An odd-sized picture keeps all its pixels: its chroma is stored at 4:4:4 rather than cut.
    """
    if not source:
        return None
    layout = pixel_layout(source)
    if layout is None:
        return None
    chroma, bits, is_rgb = layout
    notes: list[str] = []
    target_bits = 10 if bits > 8 else 8
    if bits > 10:
        notes.append(f"{bits}-bit video stored at 10 bits (the encoder's maximum)")
    if chroma == "gray":
        target = "gray" if target_bits == 8 else "gray10le"
    else:
        target_chroma = _CHROMA_TARGET.get(chroma, "444")
        if target_chroma != chroma:
            notes.append(f"chroma {chroma} stored as {target_chroma} (nothing is lost)")
        if not _fits(target_chroma, width, height):
            notes.append(f"odd size {width}x{height}: chroma stored as 444 (nothing is cut)")
            target_chroma = "444"
        if is_rgb:
            notes.append("RGB stored as YUV 4:4:4")
        jpeg_range = source.startswith("yuvj") and target_bits == 8
        target = f"yuv{'j' if jpeg_range else ''}{target_chroma}p"
        if target_bits == 10:
            target += "10le"
    return PixelChoice(pix_fmt=target, notes=tuple(notes), from_rgb=is_rgb)
