"""Working hours (config `active_hours = "22:00-07:00"`): whether a time of day is inside."""

from __future__ import annotations

from datetime import time


def parse_window(window: str) -> tuple[time, time]:
    """`"22:00-07:00"` → (22:00, 07:00); ValueError when it is not two HH:MM times."""
    start, _, end = window.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def within(window: str, at: time) -> bool:
    """True when `at` is inside the window; a window ending before it starts spans midnight,
    and one that starts and ends at the same time is the whole day."""
    start, end = parse_window(window)
    if start == end:
        return True
    if start < end:
        return start <= at < end
    return at >= start or at < end
