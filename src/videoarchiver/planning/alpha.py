"""Video with an alpha channel: the alpha plane is part of the picture and stays in the archive.

x264 has no alpha, so such a stream is encoded losslessly with FFV1 in a format that holds
the alpha plane at the source's depth (or deeper, which gives the same values back). The ratio
rule then keeps the raw stream itself wherever FFV1 saves too little (a lossy VP9 or ProRes
stream is smaller as it is), and a raw stream Matroska cannot hold (APNG) keeps its FFV1 encode.

VP8 and VP9 keep their alpha beside the picture (Matroska's BlockAdditional), which ffmpeg's own
decoders ignore: those streams are decoded with libvpx, which returns it.
"""

from __future__ import annotations

import re

from videoarchiver.planning.pixels import pixel_layout
from videoarchiver.planning.probe import Stream

ALPHA_CODEC = "ffv1"
# Level 3 checks each slice with a CRC; every frame a keyframe, so a damaged frame stays one.
ALPHA_CODEC_ARGS = ("-level", "3", "-slicecrc", "1", "-g", "1")
ALPHA_NOTE = "alpha channel kept: encoded losslessly with FFV1 (x264 has no alpha)"
ALPHA_COPY_NOTE = "alpha channel kept with the raw stream"

# libvpx's decoders return the alpha that VP8/VP9 carry beside the picture.
SIDE_ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
_ALPHA_NAME = re.compile(r"^(yuva|gbrap|ya\d|ayuv|vuya)|rgba|bgra|argb|abgr")
# FFV1's YUV-with-alpha depths; deeper or odd ones go to the next it holds.
_YUVA_BITS = {8: "", 9: "9le", 10: "10le"}


def _side_alpha(stream: Stream) -> bool:
    """A VP8/VP9 stream whose alpha Matroska or WebM keep beside it (`ALPHA_MODE` 1)."""
    mode = next((v for k, v in stream.tags.items() if k.lower() == "alpha_mode"), None)
    return stream.codec_name in SIDE_ALPHA_DECODERS and mode == "1"


def has_alpha(stream: Stream) -> bool:
    return _side_alpha(stream) or bool(_ALPHA_NAME.search(stream.pix_fmt or ""))


def alpha_decoder_args(stream: Stream) -> tuple[str, ...]:
    """Input options that make ffmpeg decode the stream's alpha too (libvpx for VP8/VP9)."""
    if _side_alpha(stream):
        return (f"-c:{stream.index}", SIDE_ALPHA_DECODERS[str(stream.codec_name)])
    return ()


def alpha_pixel_format(stream: Stream) -> str:
    """The FFV1 pixel format that holds the stream's picture and alpha without a loss."""
    if _side_alpha(stream):
        return "yuva420p"  # what libvpx decodes an alpha stream to
    layout = pixel_layout(stream.pix_fmt or "")
    chroma, bits, is_rgb = layout if layout else ("444", 16, False)
    if is_rgb:
        return "bgra" if bits <= 8 else {10: "gbrap10le", 12: "gbrap12le"}.get(bits, "gbrap16le")
    if chroma == "gray" and bits <= 8:
        return "ya8"
    target = chroma if chroma in ("420", "422", "444") else "444"
    return f"yuva{target}p{_YUVA_BITS.get(bits, '16le')}"
