"""Phone clips: a video stream shown turned (a display matrix) is archived so that it still
shows as filmed, whether it is re-encoded (pixels turned) or kept as it is (the turn kept
in the Matroska track); previews and montages are upright."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from media import ffmpeg, probe, run_cli, ssim, status_json
from videoarchiver.planning.archive import Action, StreamDecision, projection_args
from videoarchiver.planning.orientation import UPRIGHT, Turn, matrix_turn, stream_turn
from videoarchiver.planning.packets import PacketTally
from videoarchiver.planning.probe import Probe, Stream
from videoarchiver.planning.verify import expected_streams, verify_output

# ffmpeg 5.1 turns `rotate=N` into a display matrix; ffprobe then reports its rotation.
ROTATIONS = {90: 90, 180: 180, 270: -90}  # rotate tag → the roll the track keeps
ONE = 65536


def _video(path: Path) -> dict[str, Any]:
    streams: list[dict[str, Any]] = probe(path)["streams"]
    [stream] = [s for s in streams if s["codec_type"] == "video"]
    return stream


def _rotation(stream: dict[str, Any]) -> int | None:
    """ffprobe's rotation of a video stream, in degrees from 0 to 359 (None: upright)."""
    found = [d["rotation"] for d in stream.get("side_data_list", []) if "rotation" in d]
    return round(found[0]) % 360 if found else None


def _portrait(stream: dict[str, Any]) -> bool:
    return int(stream["height"]) > int(stream["width"])


@pytest.mark.parametrize("kept", [False, True], ids=["re-encoded", "kept-by-the-ratio-rule"])
def test_phone_clips_show_as_filmed(root: Path, tmp_path: Path, kept: bool) -> None:
    landscape = tmp_path / "landscape.mp4"  # colour bars: upside down they differ
    ffmpeg("-f", "lavfi", "-i", "smptebars=s=320x240:r=25:d=2", "-c:v", "mpeg4", "-q:v", "2",
           landscape)  # fmt: skip
    for degrees in ROTATIONS:
        ffmpeg("-i", landscape, "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}",
               root / "raw" / f"phone{degrees}.mp4")  # fmt: skip
    if kept:  # no encode saves enough: every video stream is kept as it is
        config = root / "videoarchiver.toml"
        config.write_text(config.read_text() + "ratio = 0.01\n")
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    files = {file["rel_path"]: file for file in status_json(root)}
    if kept:  # the reason comes first, the rotation kept after it
        assert "stream 0: raw stream kept (ratio rule)" in run_cli(root, "status").stdout
    for degrees, roll in ROTATIONS.items():
        raw = root / "raw" / f"phone{degrees}.mp4"
        assert _rotation(_video(raw)) == roll % 360
        archive = root / "archive" / f"phone{degrees}.mkv"
        video = _video(archive)
        [job] = [j for j in files[raw.name]["jobs"]["archive"] if j["stream_type"] == "video"]
        if kept:
            assert (video["codec_name"], video["width"], video["height"]) == ("mpeg4", 320, 240)
            assert _rotation(video) == roll % 360, "the track keeps the raw's turn"
            assert f"rotation {roll}° kept in the track" in job["notes"]
        else:
            assert video["codec_name"] == "h264" and _rotation(video) is None
            assert _portrait(video) == (degrees != 180)
            assert f"rotation {roll}° applied to the pixels" in job["notes"]
        assert ssim(archive, raw) >= 0.98, "the archive shows as the raw does"
        preview = _video(root / "preview" / f"phone{degrees}.mkv")
        assert _rotation(preview) is None and _portrait(preview) == (degrees != 180)
        assert ssim(root / "preview" / f"phone{degrees}.mkv", raw) >= 0.9
        montage = root / "screenshot" / f"phone{degrees}.jpg"
        assert _portrait(_video(montage)) == (degrees != 180)
        assert ssim(montage, raw) >= 0.9, "the montage is upright"


def _matrix(m0: int, m1: int, m3: int, m4: int) -> list[int]:
    return [m0, m1, 0, m3, m4, 0, 0, 0, 1 << 30]


def test_display_matrices_read_as_newer_ffmpeg_writes_them_to_matroska() -> None:
    assert matrix_turn(_matrix(ONE, 0, 0, ONE)) == UPRIGHT
    assert matrix_turn(_matrix(0, -ONE, ONE, 0)) == Turn(90)
    assert matrix_turn(_matrix(0, ONE, -ONE, 0)) == Turn(-90)
    assert matrix_turn(_matrix(-ONE, 0, 0, -ONE)) == Turn(180)
    assert matrix_turn(_matrix(-ONE, 0, 0, ONE)) == Turn(0, mirrored=True)  # hflip
    assert matrix_turn(_matrix(ONE, 0, 0, -ONE)) == Turn(180, mirrored=True)  # vflip
    assert matrix_turn(_matrix(0, ONE, ONE, 0)) == Turn(90, mirrored=True)
    assert matrix_turn(_matrix(ONE, ONE // 2, 0, ONE)) is None, "a shear is no turn"
    assert matrix_turn(_matrix(2 * ONE, 0, 0, ONE)) is None, "nor a stretch"


def _phone(side_data: list[dict[str, Any]], codec: str = "hevc") -> Stream:
    return Stream.model_validate({
        "index": 0, "codec_type": "video", "codec_name": codec, "width": 1920,
        "height": 1080, "side_data_list": side_data,
    })  # fmt: skip


def test_a_turn_is_read_from_ffprobes_matrix_and_kept_by_a_copy_only() -> None:
    text = "\n00000000:            0       65536           0\n00000001:      -65536           0"
    text += "           0\n00000002:            0           0  1073741824\n"
    stream = _phone([{"side_data_type": "Display Matrix", "displaymatrix": text}])
    assert stream_turn(stream) == Turn(-90)
    assert stream_turn(_phone([])) == UPRIGHT
    turned = StreamDecision(0, "video", Action.ENCODE, "libx264", turn=Turn(-90, True))
    kept = turned.fallback_to_copy("raw stream kept (ratio rule)")
    assert kept.notes[-1] == "rotation -90°, mirrored kept in the track"
    upright = StreamDecision(1, "video", Action.COPY)
    assert projection_args([upright, turned], Path("/w/a.mkv")) is None, "an encode: no edit"
    assert projection_args([upright, kept], Path("/w/a.mkv")) == [
        "mkvpropedit", "--quiet", "/w/a.mkv", "--edit", "track:v2",
        "--set", "projection-pose-yaw=180", "--set", "projection-pose-roll=-90",
    ]  # fmt: skip


def test_a_file_whose_rotate_tag_is_no_number_is_archived_upright(
    root: Path, tmp_path: Path
) -> None:
    raw = root / "raw" / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-c:v", "mpeg4", raw)
    tags = tmp_path / "tags.xml"
    tags.write_text("<Tags><Tag><Simple><Name>rotate</Name><String>1e400</String></Simple>"
                    "</Tag></Tags>")  # fmt: skip
    subprocess.run(["mkvpropedit", "-q", raw, "--tags", f"track:v1:{tags}"], check=True)
    assert _video(raw)["tags"]["rotate"] == "1e400"
    before = raw.read_bytes()
    assert run_cli(root, "run", "--once").returncode == 0
    [file] = status_json(root)
    assert file["state"] == "done"
    archive = _video(root / "archive" / "odd.mkv")
    assert (archive["codec_name"], archive["width"], archive["height"]) == ("h264", 160, 120)
    assert raw.read_bytes() == before


@pytest.mark.parametrize("tag", ["nan", "1e400", "-inf", "ninety"])
def test_a_rotate_tag_that_is_no_number_turns_nothing(tag: str) -> None:
    stream = _phone([]).model_copy(update={"tags": {"rotate": tag}})
    assert stream.rotation == 0
    assert stream_turn(stream) is None  # as a matrix that is no turn: said, not applied
    matrix = _phone([{"side_data_type": "Display Matrix", "rotation": tag}])
    assert matrix.rotation == 0


def test_verification_refuses_an_archive_shown_otherwise_than_the_raw() -> None:
    quarter = {"side_data_type": "Display Matrix", "rotation": -90,
               "displaymatrix": "0: 0 65536 0\n1: -65536 0 0\n2: 0 0 1073741824"}  # fmt: skip
    raw = Probe(streams=[_phone([quarter])])
    packets = PacketTally()
    packets.feed_line("0|0.0|0.0|1.0|100|K_")
    copied = StreamDecision(0, "video", Action.COPY, turn=stream_turn(raw.streams[0]))
    expected = expected_streams(raw, [copied], packets)
    assert verify_output(expected, raw, packets) == []
    lost = Probe(streams=[_phone([])])
    assert verify_output(expected, lost, packets) == [
        "video stream 0: shown with upright, raw rotation -90°",
        "video stream 0: shown 1920x1080, raw 1080x1920",
    ]
    encode = StreamDecision(0, "video", Action.ENCODE, turn=Turn(-90))
    encoded = expected_streams(raw, [encode], packets)
    upright = Probe(streams=[_phone([]).model_copy(update={"width": 1080, "height": 1920})])
    assert verify_output(encoded, upright, packets) == []
