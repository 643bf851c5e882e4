"""The statistics page's plot of saved space over time: SVG drawn from the days' totals."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from videoarchiver.state import Day, Summary
from videoarchiver.ui import human_size

WIDTH, HEIGHT = 600, 200


@dataclass(frozen=True)
class Plot:
    points: str  # an SVG polyline's points
    first_day: int
    last_day: int
    saved_bytes: int  # at the end: the top of the plot


def saved_plot(days: Sequence[Day]) -> Plot | None:
    """Saved bytes summed day by day, scaled into WIDTH × HEIGHT (y grows downwards)."""
    if not days:
        return None
    saved = list(itertools.accumulate(d.raw_bytes - d.archive_bytes for d in days))
    first, last = days[0].day, days[-1].day
    top = max(max(saved), 1)
    span = max(last - first, 1)
    points = [(0.0, float(HEIGHT))] + [
        ((d.day - first) / span * WIDTH, HEIGHT - max(total, 0) / top * HEIGHT)
        for d, total in zip(days, saved, strict=True)
    ]
    points.append((float(WIDTH), points[-1][1]))  # the total holds until today
    return Plot(" ".join(f"{x:.1f},{y:.1f}" for x, y in points), first, last, saved[-1])


BAR_WIDTH = 180  # the longest bar, in the SVG's units: beside its label …
WIDE_BAR = 230  # … or under it (a long label: a name, a reason)


@dataclass(frozen=True)
class Bar:
    label: str
    width: float  # the bar's, in the SVG's units
    shown: str  # the value as read
    state: str  # its colour
    href: str = ""  # the page it stands for, if any


def bars(rows: Sequence[tuple[str, float, str, str] | tuple[str, float, str, str, str]],
         longest: float = BAR_WIDTH) -> list[Bar]:  # fmt: skip
    """Horizontal bars (label, value, value shown, state, and a link), scaled so that the
    largest value's is `longest`."""
    top = max([row[1] for row in rows] + [1])
    return [Bar(label, longest * max(value, 0) / top, shown, state, *link)
            for label, value, shown, state, *link in rows]  # fmt: skip


def summary_bars(summary: Summary) -> tuple[list[Bar], list[Bar]]:
    """Files by state, and bytes archived (raw in, archives out) and waiting."""
    files = [(state, count, str(count), state) for state, count in sorted(summary.files.items())]
    sizes = [("raw done", summary.raw_bytes, "done"),
             ("archives", summary.archive_bytes, "running"),
             ("waiting", summary.waiting_bytes, "pending")]  # fmt: skip
    return bars(files), bars([(label, size, human_size(size), state)
                              for label, size, state in sizes])  # fmt: skip
