"""End to end: previews and montages of real clips, checked with ffprobe and pixel values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from media import PREVIEW_ARGS, ffmpeg, probe, run_cli, span, status_json


def _size(path: Path) -> tuple[int, int]:
    [stream] = probe(path)["streams"]
    return stream["width"], stream["height"]


def _video(path: Path, size: str, seconds: float = 1) -> None:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r=10:d={seconds}",
           "-c:v", "mpeg4", "-q:v", "5", path)  # fmt: skip


def test_preview_and_montage_sizes(root: Path) -> None:
    cases = {"wide": "2400x1200", "tall": "1080x1920", "exact": "1000x562", "odd": "1002x750"}
    for name, size in cases.items():
        _video(root / "raw" / f"{name}.mp4", size)
    assert run_cli(root, "run", "--once").returncode == 0
    expected = {"wide": (600, 300), "tall": (540, 960), "exact": (1000, 562), "odd": (500, 374)}
    for name, (width, height) in expected.items():
        preview = probe(root / "preview" / f"{name}.mkv")
        [video] = preview["streams"]
        assert (video["codec_name"], video["width"], video["height"]) == ("av1", width, height)
        assert video["pix_fmt"] == "yuv420p"
        # One second of video: N = 1, one frame at the source resolution.
        source = tuple(int(side) for side in cases[name].split("x"))
        assert _size(root / "screenshot" / f"{name}.jpg") == source


def test_rotation_is_applied_to_preview_and_montage(root: Path) -> None:
    unrotated, raw = root / "phone.mp4", root / "raw" / "phone.mp4"
    _video(unrotated, "640x360")
    ffmpeg("-i", unrotated, "-c", "copy", "-metadata:s:v:0", "rotate=90", raw)
    assert probe(raw)["streams"][0]["side_data_list"][0]["rotation"] in (90, -90)
    assert run_cli(root, "run", "--once").returncode == 0
    assert _size(root / "preview" / "phone.mkv") == (360, 640)
    assert _size(root / "screenshot" / "phone.jpg") == (360, 640)


def test_several_video_and_audio_streams(root: Path) -> None:
    raw = root / "raw" / "multi.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=10:d=2",
        "-f", "lavfi", "-i", "sine=frequency=300:d=2",
        "-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=2",
        "-f", "lavfi", "-i", "sine=frequency=500:d=2:sample_rate=44100",
        "-map", "0", "-map", "1", "-map", "2", "-map", "3",
        "-c:v", "mpeg4", "-c:a", "pcm_s16le", "-metadata", "title=Secret title", raw,
    )  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    preview = probe(root / "preview" / "multi.mkv")
    assert [s["codec_name"] for s in preview["streams"]] == ["av1", "av1", "opus"]
    assert [(s.get("width"), s.get("height")) for s in preview["streams"][:2]] == [
        (320, 240), (160, 120),
    ]  # fmt: skip
    assert "title" not in preview["format"].get("tags", {})
    assert preview["chapters"] == []
    assert span(root / "preview" / "multi.mkv", 2)[1] == pytest.approx(2.0, abs=0.1)
    archive = probe(root / "archive" / "multi.mkv")
    assert [s["codec_type"] for s in archive["streams"]] == ["video", "audio", "video", "audio"]
    assert _size(root / "screenshot" / "multi" / "0.jpg") == (320, 240)
    assert _size(root / "screenshot" / "multi" / "2.jpg") == (160, 120)
    [notes] = [
        job["notes"]
        for file in status_json(root)
        for job in file["jobs"]["preview"]
        if job["stream_type"] == "audio"
    ]
    assert any("mix of streams 1, 3" in note for note in notes), notes


def test_audio_only_file_has_an_opus_preview_and_no_montage(root: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "sine=d=2", "-c:a", "flac", root / "raw" / "song.flac")
    assert run_cli(root, "run", "--once").returncode == 0
    [audio] = probe(root / "preview" / "song.mkv")["streams"]
    assert audio["codec_name"] == "opus"
    assert not any((root / "screenshot").iterdir())
    files = status_json(root)
    states = {kind: output["state"] for file in files for kind, output in file["outputs"].items()}
    assert states == {"archive": "done", "preview": "done", "montage": "skipped"}
    assert [file["state"] for file in files] == ["done"]


def _tile_brightness(path: Path, n: int) -> list[float]:
    """Mean luma of each tile of an N×N sheet, row by row."""
    width, height = _size(path)
    gray = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    tile_w, tile_h = width // n, height // n
    means = []
    for row in range(n):
        for column in range(n):
            values = [
                gray[(row * tile_h + y) * width + column * tile_w + x]
                for y in range(tile_h) for x in range(tile_w)
            ]  # fmt: skip
            means.append(sum(values) / len(values))
    return means


ONE_GOP = ("-c:v", "libx264", "-crf", "10", "-x264-params", "keyint=400:scenecut=0")
GOP_OF_ONE_SECOND = ("-c:v", "mpeg4", "-q:v", "2", "-g", "5")


@pytest.mark.parametrize(("codec", "how"), [(ONE_GOP, "single pass"), (GOP_OF_ONE_SECOND, "seek")])
def test_montage_takes_the_frames_at_k_d_over_n_squared(
    root: Path, codec: tuple[str, ...], how: str
) -> None:
    # 40 s at 5 fps, luma rising with the frame number: N = floor(ln(21)) = 3.
    raw = root / "raw" / "ramp.mkv"
    ffmpeg("-f", "lavfi", "-i", "nullsrc=s=64x48:r=5:d=40,geq=lum='N*255/200':cb=128:cr=128",
           *codec, raw)  # fmt: skip
    (root / "videoarchiver.toml").write_text(
        (root / "videoarchiver.toml").read_text() + "[montage]\nmax_tile_width = 32\n"
    )
    assert run_cli(root, "run", "--once").returncode == 0
    sheet = root / "screenshot" / "ramp.jpg"
    assert _size(sheet) == (3 * 32, 3 * 24)
    [decision] = [job["decision"] for file in status_json(root) for job in file["jobs"]["montage"]]
    assert decision == how
    # Tile k shows the frame at k × 40 / 9 s, i.e. frame number ceil(k × 200 / 9), whose
    # limited-range luma n × 255 / 200 reads back from the JPEG as (Y − 16) × 255 / 219.
    lumas = [-(-k * 200 // 9) * 255 / 200 for k in range(9)]
    expected = [max(0.0, (luma - 16) * 255 / 219) for luma in lumas]
    measured = _tile_brightness(sheet, 3)
    assert measured == pytest.approx(expected, abs=4)


@pytest.mark.parametrize(("seconds", "n"), [(13, 2), (2, 1)])
def test_montage_grid_grows_with_duration(root: Path, seconds: int, n: int) -> None:
    _video(root / "raw" / "clip.mp4", "160x120", seconds=seconds)
    assert run_cli(root, "run", "--once").returncode == 0
    assert _size(root / "screenshot" / "clip.jpg") == (n * 160, n * 120)


def test_a_failing_output_does_not_stop_the_others(root: Path) -> None:
    (root / "videoarchiver.toml").write_text(
        (root / "videoarchiver.toml").read_text().replace(PREVIEW_ARGS, '["-crf", "9999"]')
    )  # SVT-AV1 refuses this
    _video(root / "raw" / "a.mp4", "160x120")
    _video(root / "raw" / "b.mp4", "160x120")
    result = run_cli(root, "run", "--once")
    assert result.returncode == 1
    files = status_json(root)
    states = [
        (file["rel_path"], kind, output["state"])
        for file in files
        for kind, output in file["outputs"].items()
    ]
    for name in ("a.mp4", "b.mp4"):
        assert {(kind, state) for path, kind, state in states if path == name} == {
            ("archive", "done"), ("preview", "failed"), ("montage", "done"),
        }  # fmt: skip
    assert (root / "archive" / "a.mkv").exists() and (root / "screenshot" / "b.jpg").exists()
    assert not any((root / "preview").iterdir())
    errors = [file["error"] for file in files]
    assert all(error.startswith("preview: ") for error in errors)
