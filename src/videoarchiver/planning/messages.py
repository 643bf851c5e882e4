"""ffmpeg's words, made into a reason a user can read: the decisive line of its stderr.

ffmpeg ends a failure with lines that say only that something failed ("Conversion failed!",
"Error initializing output stream …"); the cause is usually the first line that is not one
of those. The whole text stays in the log and in `status --json`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REASON_CHARS = 200
SOURCE_PREFIX = re.compile(r"^(\[[^\]]* @ 0x[0-9a-f]+\] )+")
GENERIC = (
    "Conversion failed",
    "Error initializing output stream",
    "Could not write header for output file",
    "Error while opening encoder",
    "Last message repeated",
    "Error while filtering",
    "Error reinitializing filters",
    "Error configuring filter graph",
    "Error applying options to the filter",
    "Failed to inject frame into filter network",
    "Error while processing the decoded data",
    "Nothing was written into output file",
    "Error opening output file",
    "Error opening output files",
)


def decisive_line(lines: Sequence[str]) -> str:
    """The line of ffmpeg's stderr that says why (its `[muxer @ 0x…]` prefix removed)."""
    stripped = [SOURCE_PREFIX.sub("", line).strip() for line in lines]
    stripped = [line for line in stripped if line]
    specific = [line for line in stripped if not line.startswith(GENERIC)]
    return (specific or stripped or ["no message"])[0]


def one_line(text: str, limit: int = REASON_CHARS) -> str:
    """`text` on one line of at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    if "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8, as Python decodes names
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]  # \n, \t, \x1b, \ud800


def printable(text: str) -> str:
    """`text` with control characters and undecodable bytes written as escapes."""
    return UNPRINTABLE.sub(_escape, text)
