"""Preview and montage planning: sizes, grid, frame times, path rule, filter graphs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from videoarchiver.config import PreviewConfig
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.montage import (
    MontagePlan,
    frame_times,
    grid_size,
    single_pass,
    single_pass_args,
    tile_size,
)
from videoarchiver.planning.preview import (
    displayed_size,
    preview_audio_args,
    preview_pixel_format,
    preview_size,
)
from videoarchiver.planning.probe import Stream


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (960, 540)),
        ((2400, 1200), (600, 300)),
        ((1080, 1920), (540, 960)),
        ((1002, 750), (500, 374)),
        ((1000, 562), (1000, 562)),
        ((1000, 1000), (1000, 1000)),
        ((321, 241), (320, 240)),
        ((4096, 2160), (512, 270)),
        ((7680, 4320), (960, 540)),
        ((64, 48), (86, 64)),  # SVT-AV1 needs 64 pixels a side: scaled up, same shape
        ((16, 16), (64, 64)),
    ],
)
def test_preview_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert preview_size(*size, max_side=1000) == expected


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [(0, (640, 360)), (90, (360, 640)), (-90, (360, 640)), (180, (640, 360))],
)
def test_displayed_size_after_rotation(rotation: int, expected: tuple[int, int]) -> None:
    assert displayed_size(640, 360, rotation, Fraction(1)) == expected


def test_displayed_size_in_square_pixels() -> None:
    assert displayed_size(720, 576, 0, Fraction(64, 45)) == (1024, 576)  # 16:9 PAL
    assert displayed_size(176, 144, 0, Fraction(12, 11)) == (192, 144)
    assert displayed_size(720, 480, 90, Fraction(32, 27)) == (480, 853)


@pytest.mark.parametrize(
    ("pix_fmt", "expected"),
    [("yuv420p", "yuv420p"), ("yuv422p10le", "yuv420p10le"), ("rgb24", "yuv420p"),
     ("yuv444p12le", "yuv420p10le"), (None, "yuv420p")],
)  # fmt: skip
def test_preview_pixel_format(pix_fmt: str | None, expected: str) -> None:
    assert preview_pixel_format(Stream(index=0, codec_type="video", pix_fmt=pix_fmt)) == expected


def test_preview_audio_mixes_only_several_streams_each_at_its_start() -> None:
    raw = RawInput(Path("/r.mkv"), "mov")
    one = preview_audio_args(raw, [Stream(index=1)], {1: 0.5}, PreviewConfig(), Path("/o.mkv"))
    assert "amix" not in " ".join(one) and one[one.index("-map") + 1] == "0:1"
    two = preview_audio_args(
        raw, [Stream(index=1), Stream(index=3)], {1: 0.0, 3: 2.0}, PreviewConfig(),
        Path("/o.mkv"),
    )  # fmt: skip
    graph = two[two.index("-filter_complex") + 1]
    assert graph.startswith(
        "[0:1]adelay=delays=0:all=1[d1];[0:3]adelay=delays=2000:all=1[d3];"
        "[d1][d3]amix=inputs=2:duration=longest,"
    )
    assert two[two.index("-b:a") + 1] == "10000"


@pytest.mark.parametrize(
    ("duration", "min_n", "max_n", "expected"),
    [(0.0, 1, 10, 1), (1.0, 1, 10, 1), (12.7, 1, 10, 1), (12.8, 1, 10, 2), (60.0, 1, 10, 3),
     (3600.0, 1, 10, 7), (10**6, 1, 10, 10), (60.0, 4, 10, 4), (3600.0, 1, 5, 5)],
)  # fmt: skip
def test_grid_size(duration: float, min_n: int, max_n: int, expected: int) -> None:
    assert grid_size(duration, min_n, max_n) == expected


def test_frame_times() -> None:
    assert frame_times(10.0, 1) == [5.0]
    assert frame_times(90.0, 3) == [k * 10.0 for k in range(9)]


@pytest.mark.parametrize(
    ("duration", "n", "keyframes", "expected"),
    [(600.0, 3, 3, True), (600.0, 3, 600, False), (600.0, 3, 9, False), (600.0, 3, 8, True),
     (600.0, 1, 1, False), (600.0, 3, 0, False)],
)  # fmt: skip
def test_single_pass_when_frames_are_closer_than_a_gop(
    duration: float, n: int, keyframes: int, expected: bool
) -> None:
    assert single_pass(duration, n, keyframes) is expected


@pytest.mark.parametrize(
    ("source", "rotation", "cap", "n", "expected"),
    [((1920, 1080), 0, 0, 3, (1920, 1080)), ((1920, 1080), 0, 320, 3, (320, 180)),
     ((1920, 1080), 90, 0, 3, (1080, 1920)), ((1920, 1080), 90, 540, 3, (540, 960)),
     ((8000, 4000), 0, 0, 10, (6552, 3276)), ((321, 241), 0, 0, 2, (321, 241))],
)  # fmt: skip
def test_tile_size(
    source: tuple[int, int], rotation: int, cap: int, n: int, expected: tuple[int, int]
) -> None:
    assert tile_size(displayed_size(*source, rotation, Fraction(1)), cap, n) == expected


def test_single_pass_graph_selects_each_time_then_tiles() -> None:
    plan = MontagePlan(index=1, n=2, times=(0.0, 5.0, 10.0, 15.0), single_pass=True, tile=(64, 48))
    args = single_pass_args(RawInput(Path("/r.ts"), "mov"), plan, offset=0.5, output=Path("/o.jpg"))
    graph = args[args.index("-vf") + 1]
    assert "gte(t\\,0.500000+ld(0))" in graph and "ld(0)+5.000000" in graph
    assert graph.endswith(",scale=64:48,setsar=1,tile=2x2")
    assert args[args.index("-map") + 1] == "0:1"
