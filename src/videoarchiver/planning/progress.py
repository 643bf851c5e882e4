"""Sans-I/O parser for ffmpeg's `-progress` output: feed bytes, get one update per block.

ffmpeg writes `key=value` lines and closes each block with `progress=continue|end`. Early
blocks carry `N/A` and sometimes negative times; `out_time_ms` is in microseconds despite its
name (an old ffmpeg quirk), so `out_time_us` is preferred and `out_time` is the last resort.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressUpdate:
    out_seconds: float | None
    total_size: int | None
    frame: int | None
    speed: float | None
    ended: bool


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _clock_seconds(text: str | None) -> float | None:
    """`-00:00:01.500000` / `01:02:03.25` → seconds; None for N/A."""
    if not text or text.strip() == "N/A":
        return None
    text = text.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    try:
        hours, minutes, seconds = text.lstrip("-").split(":")
        return sign * (int(hours) * 3600 + int(minutes) * 60 + float(seconds))
    except ValueError:
        return None


def _out_seconds(block: dict[str, str]) -> float | None:
    for key in ("out_time_us", "out_time_ms"):
        micros = _int(block.get(key))
        if micros is not None:
            return max(0.0, micros / 1_000_000)
    seconds = _clock_seconds(block.get("out_time"))
    return None if seconds is None else max(0.0, seconds)


def _speed(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text.strip().rstrip("x"))
    except ValueError:
        return None


class ProgressParser:
    """Buffers partial lines between `feed` calls; returns the blocks completed so far."""

    def __init__(self) -> None:
        self._buffer = b""
        self._block: dict[str, str] = {}

    def feed(self, data: bytes) -> list[ProgressUpdate]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        updates = []
        for raw in lines:
            key, sep, value = raw.decode("utf-8", "replace").strip().partition("=")
            if not sep:
                continue
            if key != "progress":
                self._block[key] = value
                continue
            block, self._block = self._block, {}
            updates.append(
                ProgressUpdate(
                    out_seconds=_out_seconds(block),
                    total_size=_int(block.get("total_size")),
                    frame=_int(block.get("frame")),
                    speed=_speed(block.get("speed")),
                    ended=value.strip() == "end",
                )
            )
        return updates
