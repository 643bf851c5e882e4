"""The statistics page's groupings: bytes saved by container and by video codec, the
largest savings, the failures by reason; each as bars for `plot`'s SVG."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from videoarchiver.planning.paths import shown_name
from videoarchiver.state import FileRow, Listed
from videoarchiver.ui import human_size, percent_saved
from videoarchiver.web.plot import WIDE_BAR, Bar, bars

TOP = 10  # bars at most in a chart
LABEL = 44  # characters of a label, the rest cut to `…`


def _cut(text: str) -> str:
    return text if len(text) <= LABEL else text[: LABEL - 1] + "…"


def container(listed: Listed) -> str:
    """A raw file's container, as its name says (`mp4`, `mov`)."""
    return PurePosixPath(listed.file.rel_path).suffix.lstrip(".").lower() or "no extension"


def video_codec(listed: Listed) -> str:
    return listed.codec or "no video"


def _saved(raw: int, archived: int) -> str:
    return f"{human_size(raw - archived)} · {percent_saved(raw, archived)}"


def saved_by(listed: Sequence[Listed], key: Callable[[Listed], str]) -> list[Bar]:
    """Bytes saved by each value of `key` over the files with a done archive, the most
    first (TOP of them)."""
    raw: Counter[str] = Counter()
    archived: Counter[str] = Counter()
    for each in listed:
        if each.archive_bytes is not None:
            raw[key(each)] += each.file.size
            archived[key(each)] += each.archive_bytes
    order = sorted(raw, key=lambda name: (archived[name] - raw[name], name))[:TOP]
    return bars([(name, raw[name] - archived[name], _saved(raw[name], archived[name]), "done")
                 for name in order], WIDE_BAR)  # fmt: skip


def largest_savings(listed: Sequence[Listed]) -> list[Bar]:
    """The files listed (the largest savings first), each a bar to its page."""
    rows = [each for each in listed if each.archive_bytes is not None]
    return bars([(_cut(shown_name(each.file.rel_path)), each.file.size - (each.archive_bytes or 0),
                  _saved(each.file.size, each.archive_bytes or 0), "done", f"/files/{each.file.id}")
                 for each in rows], WIDE_BAR)  # fmt: skip


def reason(error: str | None) -> str:
    """What a failure's reason is about: its first reason's first clause (`not a readable
    media file: moov atom not found` → `not a readable media file`)."""
    first = (error or "no reason recorded").split("; ")[0]
    return first.split(": ")[0].strip() or first


def failures_by_reason(failed: Sequence[FileRow]) -> list[Bar]:
    counts = Counter(reason(row.error) for row in failed)
    return bars([(_cut(name), count, str(count), "failed")
                 for name, count in counts.most_common(TOP)], WIDE_BAR)  # fmt: skip
