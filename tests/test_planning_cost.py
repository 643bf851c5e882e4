"""What a file costs, in the order files are claimed and encodes take their slots."""

from __future__ import annotations

import pytest

from test_planning_archive import AUDIO, COVER, VIDEO, make_probe
from videoarchiver.config import ArchiveConfig, PreviewConfig
from videoarchiver.planning.claim_order import Rank, claim_key
from videoarchiver.planning.cost import MOST, X264, Costs, encoder_cost


@pytest.mark.parametrize(
    ("codec", "args", "figure"),
    [
        ("libx264", ["-crf", "18", "-preset", "veryslow"], X264["veryslow"]),
        ("libx264", ["-preset:v", "fast", "-crf", "18"], X264["fast"]),
        ("libx264", ["-crf", "18"], X264["medium"]),  # x264's own default
        ("libx264", ["-preset", "nonesuch"], X264["medium"]),
        ("libx265", ["-preset", "veryslow"], X264["medium"]),  # an encoder of no table
        ("libx264", ["-preset"], X264["medium"]),  # no value: ffmpeg will say so
        ("libx264", ["-preset", "fast", "-preset", "slow"], X264["slow"]),  # the last counts
    ],
)
def test_an_encoder_is_priced_by_its_preset(codec: str, args: list[str], figure: float) -> None:
    assert encoder_cost(codec, args) == figure


def _costs(preset: str) -> Costs:
    return Costs.of(ArchiveConfig(video_args=["-crf", "18", "-preset", preset]), PreviewConfig())


def _seconds(costs: Costs, **stream: object) -> float:
    probe = make_probe(stream)
    return costs.stream(probe, probe.streams[0])


HD = {**VIDEO, "width": 1920, "height": 1080}


def test_audio_weighs_against_video_by_the_archive_preset() -> None:
    for preset, seconds_of_hd in (("veryslow", 13), ("medium", 50)):
        costs = _costs(preset)
        hour_of_audio = _seconds(costs, **AUDIO, duration=3600.0)
        assert hour_of_audio == pytest.approx(108.0)  # 30 ms a second
        hd = _seconds(costs, **HD, duration=float(seconds_of_hd))
        assert hd == pytest.approx(hour_of_audio, rel=0.1), preset


def test_frames_and_sizes_count() -> None:
    costs = _costs("medium")
    base = _seconds(costs, **HD, duration=10.0)
    assert _seconds(costs, **{**HD, "avg_frame_rate": "50/1"}, duration=10.0) == 2 * base
    assert _seconds(costs, **{**HD, "avg_frame_rate": "1000/1"}, duration=10.0) == pytest.approx(
        base * 120 / 25
    ), "a variable rate read as 1,000 frames a second counts as 120"
    assert _seconds(costs, **{**HD, "avg_frame_rate": "0/0", "r_frame_rate": "0/0"},
                    duration=10.0) == base  # fmt: skip
    # 4K has four times the pixels; its preview is halved twice (960×540), as 1080p's once.
    uhd = _seconds(costs, **{**HD, "width": 3840, "height": 2160}, duration=10.0)
    assert base < uhd < 4 * base
    assert _seconds(costs, **HD) == 0.0, "no duration, no cost: it is claimed last"
    cover = {**COVER, "width": 600, "height": 600}
    assert _seconds(costs, **cover, duration=10.0) == 0.0, "cover art is copied"


def test_files_without_video_are_claimed_first_then_the_costliest() -> None:
    costs = _costs("medium")
    big = make_probe({**HD, "duration": 10.0}, {**AUDIO, "duration": 10.0})
    small = make_probe({**HD, "width": 640, "height": 360, "duration": 10.0})
    album = make_probe({**AUDIO, "duration": 3600.0}, {**AUDIO, "duration": 600.0})
    song = make_probe({**AUDIO, "duration": 60.0}, {**COVER, "width": 600, "height": 600})
    order = sorted(
        [small, song, big, album, make_probe()],
        key=lambda probe: claim_key(costs.claim_order(probe), 0),
    )
    assert order == [album, song, big, small, make_probe()]
    video = _seconds(costs, **HD, duration=10.0)
    estimate = costs.claim_order(big)
    assert estimate.rank is Rank.VIDEO
    assert estimate.cpu_seconds == pytest.approx(video + 0.3), "its streams' sum"
    assert costs.claim_order(song).rank is Rank.AUDIO_ONLY, "cover art is no video"


@pytest.mark.parametrize(
    "stream",
    [
        {**HD, "duration": -30.0},
        {**HD, "duration": float("nan")},
        {**HD, "width": -1920, "duration": 10.0},
        {**HD, "width": 2**31, "height": 2**31, "duration": 1e300},
        {**HD, "avg_frame_rate": "-25/1", "r_frame_rate": "1/0", "duration": 10.0},
        {**HD, "tags": {"rotate": "1e400"}, "duration": 10.0},
        {**AUDIO, "duration": float("inf")},
        {"codec_type": "data", "duration": 10.0},
    ],
)
def test_a_header_that_says_anything_costs_from_nothing_to_the_most(
    stream: dict[str, object],
) -> None:
    costs = _costs("veryslow")
    probe = make_probe(stream)
    cost = costs.stream(probe, probe.streams[0])
    assert 0.0 <= cost <= MOST
    estimate = costs.claim_order(make_probe(stream, stream, stream))
    assert estimate.cpu_seconds is not None and 0.0 <= estimate.cpu_seconds <= MOST
    if stream["codec_type"] != "audio":  # still after any file without video
        audio = costs.claim_order(make_probe({**AUDIO, "duration": -5.0}))
        assert claim_key(audio, 1) < claim_key(estimate, 0)
