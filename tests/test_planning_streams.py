from __future__ import annotations

import itertools
import os
import random
from pathlib import PurePosixPath

import pytest

from videoarchiver.planning.audio import opus_conversion
from videoarchiver.planning.packets import PacketTally
from videoarchiver.planning.paths import (
    fit_name,
    is_ignored,
    rel_from_key,
    rel_key,
    shown_name,
    stem_candidates,
)
from videoarchiver.planning.pixels import archive_pixel_format


@pytest.mark.parametrize(
    ("source", "target", "note"),
    [
        ("yuv420p", "yuv420p", None),
        ("yuvj420p", "yuvj420p", None),
        ("yuv422p10le", "yuv422p10le", None),
        ("yuv444p12le", "yuv444p10le", "12-bit"),
        ("rgb24", "yuv444p", "RGB"),
        ("bgr0", "yuv444p", "RGB"),
        ("pal8", "yuv444p", "RGB"),
        ("gbrp10le", "yuv444p10le", "RGB"),
        ("rgb48le", "yuv444p10le", "16-bit"),
        ("gray", "gray", None),
        ("gray12le", "gray10le", "12-bit"),
        ("nv12", "yuv420p", None),
        ("p010le", "yuv420p10le", None),
        ("uyvy422", "yuv422p", None),
        ("yuv411p", "yuv422p", "411"),
        ("yuv410p", "yuv420p", "410"),
        ("yuv440p", "yuv444p", "440"),
    ],
)
def test_pixel_format_keeps_depth_and_chroma(source: str, target: str, note: str | None) -> None:
    choice = archive_pixel_format(source)
    assert choice is not None and choice.pix_fmt == target
    if note is None:
        assert choice.notes == ()
    else:
        assert any(note in text for text in choice.notes)


@pytest.mark.parametrize("source", [None, "", "some_future_format"])
def test_unknown_pixel_format_is_left_to_ffmpeg(source: str | None) -> None:
    assert archive_pixel_format(source) is None


@pytest.mark.parametrize(
    ("rate", "channels", "layout", "expected"),
    [
        (48000, 2, "stereo", ()),
        (24000, 1, "mono", ()),
        (48000, 6, "5.1", ()),
        (48000, 4, None, ()),  # unknown layout: libopus uses the Vorbis order itself
        (44100, 2, "stereo", ("-af", "aformat=sample_rates=48000")),
        (48000, 6, "5.1(side)", ("-af", "aformat=channel_layouts=5.1")),
        (48000, 3, "2.1", ("-mapping_family", "255")),  # a remix to 3.0 would lose the LFE
        (22050, 16, "hexadecagonal",
         ("-af", "aformat=sample_rates=48000", "-mapping_family", "255")),
        (48000, 10, None, ("-mapping_family", "255")),
    ],
)  # fmt: skip
def test_opus_conversion(
    rate: int, channels: int, layout: str | None, expected: tuple[str, ...]
) -> None:
    conversion = opus_conversion(rate, channels, layout)
    assert conversion.args == expected
    changes = [a for a in expected if a.startswith("aformat=")]
    options = changes[0].removeprefix("aformat=").split(":") if changes else []
    assert len(conversion.notes) == len(options) + ("255" in expected), "every change recorded"


def test_packet_tally_spans_reordered_and_missing_times() -> None:
    tally = PacketTally()
    for line in [
        "0|0.000000|-0.080000|0.040000|900|K__",
        "0|0.120000|-0.040000|0.040000|100|___",
        "0|0.040000|0.000000|0.040000|0|___",
        "1|N/A|0.500000|N/A|10|K_",
        "1|N/A|N/A|N/A|10|K_|",  # with side data (MPEG-TS)
        "garbage line",
        "",
    ]:
        tally.feed_line(line)
    video, audio = tally.get(0), tally.get(1)
    assert (video.count, video.nonempty, video.bytes, video.keyframes) == (3, 2, 1000, 1)
    assert video.duration == pytest.approx(0.16)
    assert (audio.count, audio.start, audio.duration) == (2, 0.5, 0.0)
    assert tally.get(7).duration == 0.0


def _packet_lines(rng: random.Random, clock: list[float], plain: bool) -> list[str]:
    """A packet pass's line as ffprobe prints one (a packet with side data ends in `|` and
    is followed by the blank line of its section); unless `plain`, now and then with an
    entry missing (N/A), garbled or blank."""
    missing = 0.0 if plain else 0.05
    stream = rng.choice("0012")
    clock[0] += rng.choice([0.02, 0.04, 0.04, -0.08, 0.0])  # reordered, equal, or on
    pts = f"{clock[0]:.6f}" if rng.random() >= missing else "N/A"
    dts = f"{clock[0] - 0.04:.6f}" if rng.random() > 0.3 else "N/A"
    duration = rng.choice(["0.040000", "0.020000", "0.000000", *(["N/A"] * (not plain))])
    size = rng.choice(["900", "0", "17", *(["N/A"] * (not plain))])
    flags = rng.choice(["K__", "___", "KD_"])
    line = f"{stream}|{pts}|{dts}|{duration}|{size}|{flags}"
    lines = [f"{line}|", ""] if rng.random() < 0.05 else [line]
    odd = rng.random()
    return ["garbled"] if odd < 2 * missing / 5 else [""] if odd < 3 * missing / 5 else lines


@pytest.mark.parametrize("seed", range(40))
def test_runs_of_lines_sum_as_line_by_line(seed: int) -> None:
    rng, clock = random.Random(seed), [0.0]
    plain = seed % 2 == 0  # every entry there: the quick way
    lines = [
        line for _ in range(rng.randrange(1, 400)) for line in _packet_lines(rng, clock, plain)
    ]
    by_line, by_run = PacketTally(), PacketTally()
    for line in lines:
        by_line.feed_line(line)
    if plain:  # whole lines, and the blank ones after side data, all go the quick way
        by_run.feed_line = lambda line: pytest.fail(f"read line by line: {line!r}")  # type: ignore[method-assign]
    cut = sorted(rng.sample(range(len(lines) + 1), min(5, len(lines) + 1)))
    for start, end in itertools.pairwise([0, *cut, len(lines)]):
        by_run.feed(lines[start:end])
    assert by_run.streams == by_line.streams  # every sum, the last packet's too


@pytest.mark.parametrize(
    ("rel", "ignored"),
    [
        ("a.mp4", False),
        ("sub/dir/a b.mkv", False),
        (".hidden.mp4", True),
        ("sub/.cache/a.mp4", True),
        ("a.mp4.part", True),
        ("a.crdownload", True),
        ("a.MP4.TMP", True),
        ("a.mp4~", True),
    ],
)
def test_ignored_names(rel: str, ignored: bool) -> None:
    assert is_ignored(PurePosixPath(rel)) is ignored


def test_stem_candidates() -> None:
    candidates = stem_candidates(PurePosixPath("sub/a.mov"))
    assert [next(candidates) for _ in range(4)] == [
        "sub/a",
        "sub/a.mov",
        "sub/a.mov.2",
        "sub/a.mov.3",
    ]
    no_suffix = stem_candidates(PurePosixPath("README"))
    assert [next(no_suffix) for _ in range(2)] == ["README", "README.2"]


def test_names_that_are_not_utf8_are_recorded_reversibly_as_text() -> None:
    name = os.fsdecode(b"dir\\sub/caf\xe9.mp4")
    key = rel_key(name)
    assert key == "/dir\\\\sub/caf\\xe9.mp4" and key.encode("utf-8")
    assert rel_from_key(key) == name
    assert rel_key("dir\\sub/café.mp4") == "dir\\sub/café.mp4", "valid names stay as they are"
    assert rel_from_key("dir\\sub/café.mp4") == "dir\\sub/café.mp4"
    assert shown_name(key) == "dir\\\\sub/caf\\xe9.mp4"


def test_long_names_are_shortened_recognisably_and_distinctly() -> None:
    long = "é" * 126 + ".ts"  # 255 bytes: its stem and `.mkv` would be 256
    [first, second, third] = itertools.islice(stem_candidates(PurePosixPath(f"d/{long}")), 3)
    for stem in (first, second, third):
        name = stem.split("/")[-1]
        assert len((name + ".mkv").encode()) <= 255 and name.startswith("é" * 100)
    assert len({first, second, third}) == 3
    assert fit_name("short") == "short"
