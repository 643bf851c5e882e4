from __future__ import annotations

import pytest

from videoarchiver.planning.progress import ProgressParser, ProgressUpdate
from videoarchiver.planning.ratio import (
    RatioWatch,
    allowed_bytes,
    exceeds_during_encode,
    exceeds_when_finished,
    fallback_reason,
)

BLOCK = (
    b"frame=10\nfps=0.0\ntotal_size=%b\nout_time_us=%b\nout_time_ms=%b\nout_time=%b\n"
    b"speed=%b\nprogress=%b\n"
)


def block(
    size: bytes, us: bytes, clock: bytes = b"N/A", speed: bytes = b"2.5x", end: bytes = b"continue"
) -> bytes:
    return BLOCK % (size, us, us, clock, speed, end)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (block(b"1000", b"2000000"), ProgressUpdate(2.0, 1000, 10, 2.5, False)),
        (block(b"N/A", b"N/A", speed=b"N/A"), ProgressUpdate(None, None, 10, None, False)),
        (block(b"5", b"-40000"), ProgressUpdate(0.0, 5, 10, 2.5, False)),
        (
            block(b"7", b"N/A", b"00:01:02.500000", end=b"end"),
            ProgressUpdate(62.5, 7, 10, 2.5, True),
        ),
        (block(b"7", b"N/A", b"-00:00:00.040000"), ProgressUpdate(0.0, 7, 10, 2.5, False)),
    ],
)
def test_progress_blocks(data: bytes, expected: ProgressUpdate) -> None:
    assert ProgressParser().feed(data) == [expected]


def test_progress_split_anywhere_gives_the_same_updates() -> None:
    data = block(b"100", b"1000000") + block(b"200", b"2000000", end=b"end")
    whole = ProgressParser().feed(data)
    for cut in range(1, len(data)):
        parser = ProgressParser()
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == whole
    assert [u.total_size for u in whole] == [100, 200]


@pytest.mark.parametrize(
    ("out_bytes", "out_seconds", "raw_bytes", "raw_seconds", "expected"),
    [
        (None, 20.0, 1000, 100.0, False),  # size unknown yet
        (1000, None, 1000, 100.0, False),  # time unknown yet
        (10_000, 9.9, 1000, 100.0, False),  # inside the grace period
        (90, 10.0, 1000, 100.0, False),  # exactly 0.9 × prorated: allowed
        (91, 10.0, 1000, 100.0, True),
        (450, 50.0, 1000, 100.0, False),
        (451, 50.0, 1000, 100.0, True),
        (901, 200.0, 1000, 100.0, True),  # past the raw length: budget stops growing
        (901, 20.0, 1000, 0.0, True),  # raw without a time: the whole budget
    ],
)
def test_ratio_during_encode(
    out_bytes: int | None,
    out_seconds: float | None,
    raw_bytes: int,
    raw_seconds: float,
    expected: bool,
) -> None:
    assert (
        exceeds_during_encode(out_bytes, out_seconds, raw_bytes, raw_seconds, 0.9, 10) is expected
    )


@pytest.mark.parametrize(("out_bytes", "expected"), [(899, False), (900, False), (901, True)])
def test_ratio_when_finished_is_not_prorated(out_bytes: int, expected: bool) -> None:
    assert exceeds_when_finished(out_bytes, 1000, 0.9) is expected
    assert allowed_bytes(1000, 100.0, 50.0, 0.9) == pytest.approx(450)


def test_ratio_watch_counts_media_time_from_the_stream_start() -> None:
    # An audio stream that starts 5 s into its file: 14 s of output clock is 9 s of media.
    watch = RatioWatch(raw_bytes=1000, raw_seconds=100.0, ratio=0.9, grace=10, start=5.0)
    assert watch.check(ProgressUpdate(14.0, 500, None, None, False)) is False
    assert watch.check(ProgressUpdate(16.0, 500, None, None, False)) is True
    assert watch.reason is not None and "stopped at 11.0 s" in watch.reason
    assert watch.check(ProgressUpdate(17.0, 1, None, None, True)) is True, "a decision stays"


def test_ratio_watch_warns_half_a_grace_before_it_may_stop() -> None:
    watch = RatioWatch(raw_bytes=1000, raw_seconds=100.0, ratio=0.9, grace=10)
    assert watch.check(ProgressUpdate(4.9, 500, None, None, False)) is False
    assert not watch.warned, "before half the grace, the first keyframes weigh too much"
    assert watch.check(ProgressUpdate(5.0, 40, None, None, False)) is False
    assert not watch.warned, "within the budget"
    assert watch.check(ProgressUpdate(5.0, 46, None, None, False)) is False
    assert watch.warned and watch.reason is None, "too large, but the grace is not over"
    assert watch.check(ProgressUpdate(9.0, 1, None, None, False)) is False
    assert watch.warned, "a warning stays"
    assert watch.check(ProgressUpdate(10.0, 91, None, None, False)) is True


def test_fallback_reason_of_a_finished_encode() -> None:
    assert fallback_reason(800, 1000, 0.9, 25, 25) is None
    assert fallback_reason(901, 1000, 0.9, 25, 25) == "finished at 901 bytes > 0.9 × 1000"
    assert fallback_reason(800, 1000, 0.9, 24, 25) == "decoder gave 24 of 25 frames"
    assert fallback_reason(800, 1000, 0.9, None, 25) is None, "audio: frames are not compared"
