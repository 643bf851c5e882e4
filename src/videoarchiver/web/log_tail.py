"""The log's last lines for the page: the end of `log/videoarchiver.log`, never all of it.

The file is found from the root, never from the request, and opened as the media are (no
link followed, a regular file of one name). Only its last TAIL_BYTES are read; the first
line read, cut by that start, is left out; bytes that are not UTF-8 are shown as `\\xNN`.
A line that does not start with a time and a level (a traceback's) belongs to the line
before it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from videoarchiver.web.descriptors import open_plain

LOG = "log/videoarchiver.log"  # under the root, as `logs.configure_logging` writes it
TAIL_BYTES = 256 * 1024
SHOWN = 500  # lines at most, the newest
LEVELS = {"INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
FILTERS = ("INFO", "WARNING", "ERROR")  # what the page offers: this level and above
HEAD = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?) ([A-Z]+) (.*)")

LogVersion = tuple[int, int, int, int]  # inode, device, size, mtime: it changed when these do


@dataclass(frozen=True)
class LogLine:
    time: str  # as written: `2026-12-07T18:00:00.123`, local time
    level: str
    text: str  # with the lines that followed it (a traceback)

    @property
    def clock(self) -> str:
        """`18:00:00`: what the page shows (the whole time on hover)."""
        return self.time[11:19]


@dataclass(frozen=True)
class LogFilter:
    level: str = "INFO"  # this level and above
    name: str = ""  # a part of a file's name (any line holding it, in any case)

    def keeps(self, line: LogLine) -> bool:
        return LEVELS.get(line.level, 0) >= LEVELS[self.level] and (
            self.name.casefold() in line.text.casefold()
        )


def _read_end(fd: int) -> tuple[bytes, bool]:
    """The file's last TAIL_BYTES, and whether that is not the whole file."""
    size = os.fstat(fd).st_size
    start = max(0, size - TAIL_BYTES)
    return os.pread(fd, size - start, start), start > 0


def parse(data: bytes, cut: bool) -> list[LogLine]:
    """The lines of the log's end (`cut`: its first line is a part of one)."""
    raw = data.split(b"\n")
    if cut:
        raw = raw[1:]
    lines: list[LogLine] = []
    for text in (part.decode("utf-8", "backslashreplace").rstrip("\r") for part in raw):
        head = HEAD.fullmatch(text)
        if head:
            lines.append(LogLine(head[1], head[2], head[3]))
        elif text and lines:
            last = lines[-1]
            lines[-1] = LogLine(last.time, last.level, f"{last.text}\n{text}")
    return lines


def last_lines(root: Path, wanted: LogFilter) -> list[LogLine] | None:
    """The newest SHOWN lines `wanted` keeps, the newest last; None when there is no log."""
    fd = open_plain(root, LOG)
    if fd is None:
        return None
    try:
        data, cut = _read_end(fd)
    finally:
        os.close(fd)
    return [line for line in parse(data, cut) if wanted.keeps(line)][-SHOWN:]


def log_version(root: Path) -> LogVersion | None:
    """What tells a log that changed (or rotated) from the one read before."""
    try:
        info = (root / LOG).lstat()
    except OSError:
        return None
    return info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns
