"""The quality measurement's plan, commands and parsers (`planning.quality`): no ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.quality import (
    BUDGET,
    FRAMES,
    MAX_POINTS,
    MIN_INTERVAL,
    Comparison,
    keyframe_args,
    lead_frames,
    parse_keyframes,
    parse_ssim,
    pixel_format,
    point_cost,
    preroll,
    sample_plan,
    shortfall,
    summarize,
)

HD, SD = 1920 * 1080, 720 * 576


@pytest.mark.parametrize("pixels", [HD, SD, 320 * 240])
@pytest.mark.parametrize("encode_cpu_per_second", [0.05, 0.3, 1.5, 7.5])  # ultrafast … veryslow
@pytest.mark.parametrize("duration", [30.0, 600.0, 3600.0])
def test_a_plan_costs_at_most_its_share_of_the_encode(
    pixels: int, encode_cpu_per_second: float, duration: float
) -> None:
    encode_cpu = encode_cpu_per_second * duration
    plan = sample_plan(5.0, duration, pixels, lead_frames(25, 0.0, 0.04), encode_cpu)
    assert plan.budget == pytest.approx(BUDGET * encode_cpu)
    assert 1 <= len(plan.targets) <= min(MAX_POINTS, duration / MIN_INTERVAL)
    if len(plan.targets) > 1:  # one point is taken whatever it costs
        assert plan.cost <= plan.budget
        assert plan.interval >= MIN_INTERVAL
    # Spread evenly over the stream, on its timeline (it starts at 5 s).
    assert 5.0 < plan.targets[0] <= plan.targets[-1] < 5.0 + duration
    gaps = {round(b - a, 3) for a, b in zip(plan.targets, plan.targets[1:], strict=False)}
    assert len(gaps) <= 1


def test_more_points_when_the_encode_costs_more_and_fewer_for_bigger_frames() -> None:
    slow = sample_plan(0.0, 3600.0, HD, 12.0, 7.5 * 3600)
    fast = sample_plan(0.0, 3600.0, HD, 12.0, 0.3 * 3600)
    small = sample_plan(0.0, 3600.0, SD, 12.0, 0.3 * 3600)
    assert len(slow.targets) > len(fast.targets) > 1
    assert len(small.targets) > len(fast.targets)
    assert point_cost(HD, 24.0) > point_cost(HD, 0.0) > point_cost(SD, 0.0)


def test_a_short_or_cheap_stream_still_gets_one_point_in_its_middle() -> None:
    plan = sample_plan(1.5, 3.0, HD, 0.0, 0.1)
    assert plan.targets == (3.0,)


def test_the_preroll_is_for_containers_without_an_index() -> None:
    assert preroll("matroska,webm", 50, 0.04) == 0.0
    assert preroll("mov,mp4,m4a,3gp,3g2,mj2", 50, 0.04) == 0.0
    assert preroll("mpegts", 50, 0.04) == pytest.approx(3.0)
    assert lead_frames(1, 0.0, 0.04) == 0.0  # intra only: nothing before the frame
    assert lead_frames(25, 1.0, 0.04) == pytest.approx(12 + 25)


def test_keyframes_are_found_without_decoding_and_read_back_once_each() -> None:
    args = keyframe_args(Path("/w/s0.mkv"), [1.0, 12.5])
    assert args[0] == "ffprobe" and args[-1] == "file:/w/s0.mkv"
    assert args[args.index("-read_intervals") + 1] == "1.000000%+#1,12.500000%+#1"
    found = "0.000000,K_\n10.000000,K_\n10.000000,K_\n10.040000,__\nN/A,K_\n"
    assert parse_keyframes(found) == [0.0, 10.0]


def test_the_comparison_seeks_both_to_the_same_time_on_the_raw_timeline() -> None:
    raw = RawInput(Path("/raw/a.ts"), "mpegts")
    how = Comparison(Path("/w/s1.mkv"), raw, 1, 1.4, 0.04, "yuv420p10le", preroll=2.0)
    args = how.args([0.0, 10.0])
    seeks = [float(args[i + 1]) for i, arg in enumerate(args) if arg == "-ss"]
    # The part at its keyframe; the raw at the same time plus its file's start, less preroll.
    assert seeks == pytest.approx([0.0, 0.0 + 1.4 - 2.0, 10.0, 10.0 + 1.4 - 2.0])
    assert args.count("-seek_timestamp") == 4 and args.count("-noaccurate_seek") == 2
    assert args.count("file:/raw/a.ts") == 2 and args.count("file:/w/s1.mkv") == 2
    graph = args[args.index("-filter_complex") + 1]
    assert "[1:1]select='gte(t,1.990000)'" in graph and "[3:1]" in graph, "raw stream 1"
    assert graph.count(f"trim=end_frame={FRAMES},setpts=N/TB") == 4, "paired in order"
    assert graph.count("format=yuv420p10le") == 4 and "scale2ref" in graph
    assert graph.count("ssim=stats_file=-") == 2
    assert args[-5:] == ["-map", "[s1]", "-f", "null", "-"]
    shifted = how.args([10.0], shift=0.04)
    assert [float(shifted[i + 1]) for i, a in enumerate(shifted) if a == "-ss"][1] == (
        pytest.approx(10.0 + 1.4 - 2.0 + 0.04))  # fmt: skip


def test_ssim_lines_are_read_for_every_plane_layout() -> None:
    printed = (
        "n:1 Y:0.988642 U:0.992227 V:0.992514 All:0.989885 (19.950376)\n"
        "n:1 G:0.95 B:0.96 R:0.97 All:0.960000 (13.979400)\n"
        "n:2 Y:1.000000 All:1.000000 (inf)\n"
    )
    assert parse_ssim(printed) == [0.989885, 0.96, 1.0]
    quality = summarize(parse_ssim(printed))
    assert quality is not None
    assert (quality.worst, quality.frames) == (0.96, 3)
    assert quality.mean == pytest.approx((0.989885 + 0.96 + 1.0) / 3)
    assert summarize([]) is None


def test_the_archives_pixel_format_is_the_last_given() -> None:
    assert pixel_format(["-crf", "18", "-pix_fmt", "yuv422p", "-pix_fmt", "yuv444p"], "x") == (
        "yuv444p")  # fmt: skip
    assert pixel_format(["-crf", "18"], "yuv420p10le") == "yuv420p10le"


def test_a_shortfall_names_the_stream_and_its_figures() -> None:
    assert shortfall(0, 0.99, 0.95, None, 0.98) is None
    assert shortfall(2, 0.91234, 0.8, None, 0.98) == (
        "stream 2: SSIM 0.9123 (worst frame 0.8000) below archive.min_ssim 0.98")  # fmt: skip
    assert shortfall(1, None, None, "ffmpeg failed", 0.5) == (
        "stream 1: quality not measured: ffmpeg failed")  # fmt: skip
    assert shortfall(1, None, None, "", 0.5) == (
        "stream 1: quality not measured: no figure recorded")  # fmt: skip


def test_a_raw_stream_without_timestamps_is_read_from_its_start_and_counted() -> None:
    raw = RawInput(Path("/raw/cam.h264"), "h264")
    how = Comparison(Path("/w/s0.mkv"), raw, 0, 0.0, 0.04, "yuv420p", untimed_start=0.0)
    args = how.args([2.0, 4.0])
    assert [float(args[i + 1]) for i, arg in enumerate(args) if arg == "-ss"] == [2.0, 4.0]
    graph = args[args.index("-filter_complex") + 1]
    assert "[1:0]select='gte(n,50)'" in graph and "[3:0]select='gte(n,100)'" in graph
