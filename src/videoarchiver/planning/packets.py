"""Sums of one packet pass (`ffprobe -show_entries packet=...`), fed one line at a time.

Files can be hours long: the caller streams ffprobe's output through `PacketTally.feed_line`
so that memory stays constant. Durations come from packet times because Matroska inputs
often carry no stream duration at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PACKET_ENTRIES = "packet=stream_index,pts_time,dts_time,duration_time,size,flags"


@dataclass
class StreamPackets:
    """What one pass over a stream's packets tells: count, bytes, time span, keyframes."""

    count: int = 0
    nonempty: int = 0
    bytes: int = 0
    keyframes: int = 0
    start: float | None = None
    end: float | None = None
    key_start: float | None = None
    # Packets that carry no duration (ALAC, WavPack in Matroska …): the last one lasts as
    # long as the step between the packets before it.
    _last_time: float | None = None
    _last_undated: bool = False
    _step: float = 0.0
    last_span: float = 0.0  # how long the last packet lasts (its duration, else the step)

    @property
    def decodable_duration(self) -> float:
        """From the first keyframe on: what a decoder can show of a stream cut mid-GOP."""
        end = self._end()
        if self.key_start is None or end is None:
            return self.duration
        return max(0.0, end - self.key_start)

    @property
    def duration(self) -> float:
        """Last packet end minus first packet start (0 when no packet had a time)."""
        end = self._end()
        if self.start is None or end is None:
            return 0.0
        return max(0.0, end - self.start)

    def _end(self) -> float | None:
        if self._last_undated and self._last_time is not None and self.end is not None:
            return max(self.end, self._last_time + self._step)
        return self.end

    def add(self, time: float | None, duration: float, size: int, key: bool) -> None:
        self.count += 1
        self.bytes += size
        if size > 0:
            self.nonempty += 1
        if key:
            self.keyframes += 1
        if time is None:
            return
        if key:
            self.key_start = time if self.key_start is None else min(self.key_start, time)
        self.start = time if self.start is None else min(self.start, time)
        end = time + duration
        self.end = end if self.end is None else max(self.end, end)
        if self._last_time is not None and time > self._last_time:
            self._step = time - self._last_time
        self._last_time, self._last_undated = time, duration == 0
        self.last_span = duration or self._step


def _number(text: str | None) -> float | None:
    if text is None or text in ("", "N/A"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class PacketTally:
    """Accumulates `compact=p=0` packet lines (`key=value|key=value`) per stream index."""

    streams: dict[int, StreamPackets] = field(default_factory=dict)
    truncated: bool = False  # the file ends inside a packet (a download or copy cut short)

    def feed_line(self, line: str) -> None:
        fields = dict(part.split("=", 1) for part in line.strip().split("|") if "=" in part)
        index = _number(fields.get("stream_index"))
        if index is None:
            return
        time = _number(fields.get("pts_time"))
        if time is None:
            time = _number(fields.get("dts_time"))
        self.streams.setdefault(int(index), StreamPackets()).add(
            time=time,
            duration=_number(fields.get("duration_time")) or 0.0,
            size=int(_number(fields.get("size")) or 0),
            key="K" in fields.get("flags", ""),
        )

    def get(self, index: int) -> StreamPackets:
        """The stream's sums; an empty record for a stream without packets (attachments)."""
        return self.streams.get(index, StreamPackets())
