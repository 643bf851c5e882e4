"""ffmpeg's words, made into a reason a user can read: the decisive line of its stderr.

ffmpeg ends a failure with lines that say only that something failed ("Conversion failed!",
"Error initializing output stream …"); the cause is usually the first line that is not one
of those, or, when it gave up on a file, its verdict on it (`file:…: End of file`) with the
last complaint before it. The whole text stays in the log and in `status --json`.
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


# ffmpeg's last word on a file it gave up reading or writing: `file:/path: End of file`.
VERDICT = re.compile(r"^(?:file|pipe):.*: ([^:]+)$")


def decisive_line(lines: Sequence[str]) -> str:
    """The line of ffmpeg's stderr that says why (its `[muxer @ 0x…]` prefix removed): its
    verdict on a file, with the last complaint of a demuxer or codec before it (a damaged
    header warns of much before the read ends), else the first line that is not generic."""
    verdicts = [number for number, line in enumerate(lines) if VERDICT.match(line.strip())]
    if verdicts:
        last = verdicts[-1]
        verdict = VERDICT.match(lines[last].strip())
        assert verdict is not None
        complaints = [
            SOURCE_PREFIX.sub("", line).strip() for line in lines[:last]
            if SOURCE_PREFIX.match(line) and not SOURCE_PREFIX.sub("", line).startswith(GENERIC)
        ]  # fmt: skip
        return f"{verdict[1]} ({complaints[-1]})" if complaints else verdict[1]
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
