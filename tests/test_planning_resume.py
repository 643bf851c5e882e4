"""Salvage and resume-point arithmetic, without processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from videoarchiver.planning.resume import (
    Part,
    SalvageTally,
    concat_list,
    cut_args,
    holds_whole,
    join_args,
    resume_args,
    resumes_from_parts,
)


def _line(pts: float, duration: float, key: bool, size: int = 10) -> str:
    flags = "K_" if key else "__"
    return f"0|{pts:.6f}|{pts:.6f}|{duration:.6f}|{size}|{flags}"


def _gops(*lengths: int, fps: float = 25.0) -> list[str]:
    """Packets of closed GOPs in decode order: I then P/B frames, B-frames reordered."""
    lines, frame = [], 0
    for length in lengths:
        order = [0, *range(2, length), 1] if length > 2 else list(range(length))
        lines += [_line((frame + n) / fps, 1 / fps, n == 0) for n in order]
        frame += length
    return lines


@pytest.mark.parametrize(
    ("lines", "keep", "end"),
    [
        (_gops(25, 25, 10), 50, 2.0),  # the last GOP is cut: it may be incomplete
        (_gops(25, 3), 25, 1.0),
        (_gops(25), 0, None),  # inside the first GOP: nothing to salvage
        ([], 0, None),
    ],
)
def test_video_keeps_every_complete_gop(lines: list[str], keep: int, end: float | None) -> None:
    tally = SalvageTally()
    for line in lines:
        tally.feed_line(line)
    part = tally.salvaged("s0.p0.mkv", "9:abc")
    if end is None:
        assert part is None
    else:
        assert part is not None
        assert (part.packets, part.start, part.bytes) == (keep, 0.0, keep * 10)
        assert part.end == pytest.approx(end)


def test_packets_without_a_time_are_ignored() -> None:
    tally = SalvageTally()
    for line in [*_gops(25, 25)[:30], "0|N/A|N/A|N/A|3|__"]:
        tally.feed_line(line)
    part = tally.salvaged("s0.p0.mkv", "9:abc")
    assert part is not None and (part.packets, tally.packets) == (25, 30)


def test_only_video_goes_on_from_its_parts() -> None:
    """Audio encoders prime every run: a join would add samples, so audio starts again."""
    assert resumes_from_parts("video")
    assert not resumes_from_parts("audio") and not resumes_from_parts("subtitle")


def test_resume_seeks_and_keeps_the_raw_timeline() -> None:
    encode = ["ffmpeg", "-y", "-i", "file:/r.mkv", "-map", "0:0", "-c:v", "libx264",
              "-f", "matroska", "file:/w/s0.partial.mkv"]  # fmt: skip
    args = resume_args(encode, 12.04)
    assert args[:4] == ["ffmpeg", "-y", "-ss", "12.039500"]
    assert args[-5:] == [
        "-output_ts_offset",
        "12.039500",
        "-f",
        "matroska",
        "file:/w/s0.partial.mkv",
    ]
    assert resume_args(encode, 0.0)[3] == "0.000000"


def test_concat_places_parts_end_to_end_and_join_keeps_the_start() -> None:
    parts = [
        Part(file="s0.p0.mkv", start=0.5, end=10.5, bytes=1, packets=250),
        Part(file="it's.p1.mkv", start=10.5, end=20.0, bytes=1, packets=1),
    ]
    assert concat_list(parts).splitlines() == [
        "ffconcat version 1.0",
        "file 's0.p0.mkv'",
        "duration 10.000000",
        "file 'it'\\''s.p1.mkv'",
    ]
    join = join_args(Path("/w/list"), 0.5, Path("/w/s0.mkv"))
    assert join[join.index("-output_ts_offset") + 1] == "0.500000"
    assert join[join.index("-c") + 1] == "copy"
    cut = cut_args(Path("/w/p.mkv"), 250, Path("/w/s0.p0.mkv"))
    assert cut[cut.index("-frames:v") + 1] == "250"


def test_parts_that_reach_the_end_of_what_they_encode_hold_it_whole() -> None:
    def parts(end: float) -> list[Part]:
        return [Part(file="s0.p0.mkv", start=0.0, end=end, bytes=1, packets=1)]

    assert holds_whole(parts(120.0), [120.0], 0.0), "killed after the encode ended"
    assert holds_whole(parts(119.996), [120.0], 0.0), "within 5 ms: nothing to encode"
    assert not holds_whole(parts(119.98), [120.0], 0.0), "one Opus frame left: resumed"
    # An MPEG-TS clock starts at 1.4 s; the parts count from the file's start.
    assert holds_whole(parts(30.0), [31.4], 1.4)
    assert not holds_whole(parts(30.0), [32.4], 1.4), "a second is left"
    # A mix ends with its longest stream; a stream without times says nothing.
    assert not holds_whole(parts(60.0), [60.0, 75.0], 0.0)
    assert holds_whole(parts(75.0), [60.0, None, 75.0], 0.0)
    assert not holds_whole([], [0.0], 0.0) and not holds_whole(parts(1.0), [None], 0.0)
