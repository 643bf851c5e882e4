"""Sums of one packet pass (`ffprobe -show_entries packet=...`), fed one line at a time.

Files can be hours long: the caller streams ffprobe's output through `PacketTally.feed_line`
so that memory stays constant. Durations come from packet times because Matroska inputs
often carry no stream duration at all.

A packet flagged `D` (discard: an MP4/MOV edit list hides it) is never shown; it is counted
apart, as `hidden`, and is otherwise no part of the stream's sums.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

# ffprobe prints the chosen entries in its own order, which this is; without their keys
# (`compact=p=0:nk=1`) a line is `0|1.040000|0.960000|0.040000|5123|K__`. Hours of packets
# go through here: splitting a line at fixed places costs a third of reading `key=value`s.
PACKET_ENTRIES = "packet=stream_index,pts_time,dts_time,duration_time,size,flags"
PACKET_FORMAT = "compact=p=0:nk=1"
PACKET_FIELDS = 6


class PacketLine(NamedTuple):
    """One packet of a packet pass; times in seconds, None when ffprobe has none."""

    stream: int
    pts: float | None
    dts: float | None
    duration: float  # 0 when unknown
    size: int
    key: bool
    hidden: bool = False  # flagged discard: an edit list hides it


def parse_packet_line(line: str) -> PacketLine | None:
    """A packet pass's line, or None for anything else (a blank or garbled line)."""
    fields = line.split("|")
    if len(fields) < PACKET_FIELDS:
        return None
    # A packet with side data (MPEG-TS stream ids …) ends in `|`: its empty section.
    index, pts, dts, duration, size, flags = fields[:PACKET_FIELDS]
    try:
        number = int(index)
    except ValueError:
        return None
    return PacketLine(
        number, _number(pts), _number(dts), _number(duration) or 0.0,
        int(size) if size.isdigit() else 0, "K" in flags, "D" in flags,
    )  # fmt: skip


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
    hidden: int = 0  # packets an edit list hides (flagged discard), in no other sum
    # Audio: the seconds its samples decode to, where measured (`planning.timing`).
    decoded: float | None = None
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
        if self.key_start is None or end is None or self.start is None:
            return self.duration
        # A hidden keyframe (`hide`) before the first shown packet decodes all that follows.
        return max(0.0, end - max(self.key_start, self.start))

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

    def hide(self, time: float | None, key: bool) -> None:
        """A packet an edit list hides: counted apart; a keyframe still starts decoding."""
        self.hidden += 1
        if key and time is not None:
            self.key_start = time if self.key_start is None else min(self.key_start, time)

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

    def add_timed(
        self, times: Sequence[float], durations: Sequence[float], sizes: Sequence[int],
        keys: Sequence[bool],
    ) -> None:  # fmt: skip
        """`add` of a run of packets in order, every one with a time, at once (the same sums,
        in builtins rather than one call a packet)."""
        count = len(times)
        self.count += count
        self.bytes += sum(sizes)
        self.nonempty += count - sizes.count(0)
        keyed = [time for time, key in zip(times, keys, strict=True) if key]
        self.keyframes += len(keyed)
        if keyed:
            first_key = min(keyed)
            self.key_start = first_key if self.key_start is None else min(self.key_start, first_key)
        start, end = min(times), max(map(operator.add, times, durations))
        self.start = start if self.start is None else min(self.start, start)
        self.end = end if self.end is None else max(self.end, end)
        for number in range(count - 1, -1, -1):  # the last rise from one packet to the next
            before = times[number - 1] if number else self._last_time
            if before is not None and times[number] > before:
                self._step = times[number] - before
                break
        self._last_time, self._last_undated = times[-1], durations[-1] == 0
        self.last_span = durations[-1] or self._step


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # N/A, or nothing
        return None


# times, durations, sizes, keys of the packets shown; (time, key) of those hidden
Run = tuple[list[float], list[float], list[int], list[bool], list[tuple[float, bool]]]


def _runs(lines: Sequence[str]) -> dict[int, Run]:
    """The packets of whole lines, stream by stream in order; ValueError if any line is not
    whole (an entry missing or garbled: `parse_packet_line` reads it). A blank line (what
    follows a packet with side data) is no packet."""
    rows: dict[str, list[list[str]]] = {}
    for line in lines:
        if not line:
            continue
        fields = line.split("|")
        if len(fields) < PACKET_FIELDS:
            raise ValueError(line)
        rows.setdefault(fields[0], []).append(fields)
    runs = {}
    for index, stream in rows.items():
        number = int(index)
        if number in runs:  # " 0" beside "0": one stream, two spellings
            raise ValueError(index)
        hidden = [(float(row[1]), "K" in row[5]) for row in stream if "D" in row[5]]
        if hidden:
            stream = [row for row in stream if "D" not in row[5]]
        columns = (
            list(zip(*stream, strict=False))[:PACKET_FIELDS] if stream else [()] * PACKET_FIELDS
        )
        _, pts, _dts, durations, sizes, flags = columns
        if not all(map(str.isdigit, sizes)):
            raise ValueError(sizes)
        runs[number] = (
            list(map(float, pts)), list(map(float, durations)), list(map(int, sizes)),
            ["K" in flag for flag in flags], hidden,
        )  # fmt: skip
    return runs


@dataclass
class PacketTally:
    """Accumulates a packet pass's lines per stream index."""

    streams: dict[int, StreamPackets] = field(default_factory=dict)
    truncated: bool = False  # the file ends inside a packet (a download or copy cut short)

    def feed(self, lines: Sequence[str]) -> None:
        """A run of a packet pass's lines, in order. When every line is whole and has its
        times, size and flags (the usual run), their sums are taken stream by stream at
        once; otherwise line by line."""
        try:
            runs = _runs(lines)
        except ValueError:  # a line with an entry missing (N/A), or garbled
            for line in lines:
                self.feed_line(line)
            return
        for index, (times, durations, sizes, keys, hidden) in runs.items():
            stream = self.get_or_add(index)
            for time, key in hidden:
                stream.hide(time, key)
            if times:
                stream.add_timed(times, durations, sizes, keys)

    def feed_line(self, line: str) -> None:
        packet = parse_packet_line(line)
        if packet is None:
            return
        stream = self.get_or_add(packet.stream)
        time = packet.pts if packet.pts is not None else packet.dts
        if packet.hidden:
            stream.hide(time, packet.key)
            return
        stream.add(time, packet.duration, packet.size, packet.key)

    def get_or_add(self, index: int) -> StreamPackets:
        stream = self.streams.get(index)
        if stream is None:
            stream = self.streams[index] = StreamPackets()
        return stream

    def get(self, index: int) -> StreamPackets:
        """The stream's sums; an empty record for a stream without packets (attachments)."""
        return self.streams.get(index, StreamPackets())
