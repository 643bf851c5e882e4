"""Footage from the wild (issue 11): odd codecs and streams, made with ffmpeg, archived or
refused for a reason a user accepts."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from media import PREVIEW_ARGS, ffmpeg, probe, run_cli, status_json, traced
from videoarchiver.planning.packets import PacketTally


def decoded_seconds(path: Path) -> float:
    """How long the audio of `path` plays, counted in decoded samples."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", f"file:{path}", "-map", "0:a:0", "-f", "s16le",
         "-ac", "1", "-ar", "48000", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return len(pcm) / 2 / 48000


def _archive_notes(root: Path) -> dict[str, list[str]]:
    """Every archive stream job's notes, by raw file."""
    notes: dict[str, list[str]] = {}
    for file in status_json(root):
        for job in file["jobs"]["archive"]:  # by stream
            notes.setdefault(file["rel_path"], []).extend(job["notes"])
    return notes


@pytest.mark.parametrize(
    ("name", "args", "codec"),
    [
        ("voice.gsm", ["-ar", "8000", "-ac", "1", "-c:a", "libgsm", "-f", "gsm"], "gsm"),
        ("flash.flv", ["-ar", "22050", "-c:a", "nellymoser", "-f", "flv"], "nellymoser"),
    ],
)
def test_a_small_raw_stream_matroska_cannot_hold_keeps_its_encode(
    root: Path, name: str, args: list[str], codec: str
) -> None:
    ffmpeg("-f", "lavfi", "-i", "sine=d=3", *args, root / "raw" / name)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    stem = name.rsplit(".", 1)[0]
    [audio] = probe(root / "archive" / f"{stem}.mkv")["streams"]
    assert audio["codec_name"] == "opus"
    [notes] = _archive_notes(root).values()
    assert f"but Matroska cannot hold the raw {codec} stream as it is" in notes[-1]


def test_a_long_raw_stream_matroska_cannot_hold_is_not_stopped_for_it(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five minutes of GSM: its Opus encode is too large from the first progress update on;
    # the trial copy, asked then, finds Matroska cannot hold GSM, so the encode runs to its end.
    ffmpeg("-f", "lavfi", "-i", "sine=d=300", "-ar", "8000", "-ac", "1", "-c:a", "libgsm",
           "-f", "gsm", root / "raw" / "voice.gsm")  # fmt: skip
    monkeypatch.setenv("VIDEOARCHIVER_TRACE", str(tmp_path / "trace.jsonl"))
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    archive = probe(root / "archive" / "voice.mkv")
    assert [stream["codec_name"] for stream in archive["streams"]] == ["opus"]
    assert float(archive["format"]["duration"]) == pytest.approx(300, abs=0.1)
    [notes] = _archive_notes(root).values()
    assert "encode kept: finished at" in notes[-1]
    assert "but Matroska cannot hold the raw gsm stream as it is" in notes[-1]
    ffmpegs = [c for c in traced(tmp_path / "trace.jsonl") if c["args"][0] == "ffmpeg"]
    [encode] = [c for c in ffmpegs if c["args"][-1].endswith("/archive/s0.partial0.mkv")]
    [trial] = [c for c in ffmpegs if c["args"][-1].endswith("/archive/s0.trial.mkv")]
    assert trial["at"] < encode["at"] + encode["wall"], "asked while the encode ran"


def test_streams_without_data_are_left_out_and_the_rest_archived(root: Path) -> None:
    raw = root / "raw" / "three.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=2", "-f", "lavfi", "-i",
           "testsrc=s=160x120:r=10:d=2", "-f", "lavfi", "-i", "sine=d=2",
           "-map", "0", "-map", "1", "-map", "2", "-c:v", "mpeg4", "-c:a", "aac",
           "-frames:v:1", "0", raw)  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    streams = probe(root / "archive" / "three.mkv")["streams"]
    assert [s["codec_type"] for s in streams] == ["video", "audio"]
    assert [s["codec_type"] for s in probe(root / "preview" / "three.mkv")["streams"]] == [
        "video", "audio"
    ]  # fmt: skip
    assert (root / "screenshot" / "three.jpg").exists(), "one video stream left: one sheet"
    [file] = status_json(root)
    dropped = "stream 1 (video mpeg4) dropped: it holds no data"
    assert any(dropped in warning for warning in file["warnings"]), file["warnings"]


def test_a_file_without_any_data_fails_fast_with_that_reason(root: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", "-frames:a", "0",
           root / "raw" / "book.m4a")  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 1
    [file] = status_json(root)
    assert file["state"] == "failed"
    assert file["error"].startswith("no audio or video data in the file")


@pytest.mark.parametrize(
    ("name", "codec"), [("lossless.caf", "alac"), ("lossless.mka", "alac"), ("pack.mka", "wavpack")]
)
def test_audio_whose_packets_carry_no_duration_is_measured_and_archived(
    root: Path, name: str, codec: str
) -> None:
    raw = root / "raw" / name
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", codec, raw)
    assert run_cli(root, "run", "--once").returncode == 0
    [file] = status_json(root)
    assert file["state"] == "done", file["warnings"]
    [notes] = _archive_notes(root).values()
    if "raw stream kept" in notes[-1]:
        assert notes == [notes[-1]], "what an encode that was not kept would do is no note"


def test_packets_without_duration_last_as_long_as_the_step_between_them() -> None:
    tally = PacketTally()
    for n in range(11):
        tally.feed_line(f"0|{n * 0.093:.3f}|N/A|N/A|9|__")
    assert tally.get(0).duration == pytest.approx(11 * 0.093)


def test_an_ordinary_attachment_and_cover_art_keep_their_own_names_and_types(
    root: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.gz"
    notes.write_bytes(gzip.compress(b"hello"))
    cover = tmp_path / "cover.jpg"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x64:d=1", "-frames:v", "1", cover)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-c:v", "mpeg4",
           "-attach", notes, "-metadata:s:t:0", "mimetype=application/gzip",
           "-attach", cover, "-metadata:s:t:1", "mimetype=image/jpeg",
           "-metadata:s:t:1", "filename=cover.jpg", root / "raw" / "both.mkv")  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    streams = probe(root / "archive" / "both.mkv")["streams"]
    tags = [(s["codec_type"], s.get("tags", {}).get("filename"), s.get("tags", {}).get("mimetype"))
            for s in streams]  # fmt: skip
    assert tags == [
        ("video", None, None),
        ("attachment", "notes.gz", "application/gzip"),
        ("video", "cover.jpg", "image/jpeg"),
    ]


def test_anamorphic_pictures_are_shown_in_square_pixels(root: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=720x576:r=25:d=2", "-vf", "setsar=64/45",
           "-c:v", "mpeg4", root / "raw" / "dvd.mkv")  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    [archive] = probe(root / "archive" / "dvd.mkv")["streams"]
    assert (archive["width"], archive["height"], archive["sample_aspect_ratio"]) == (
        720, 576, "64:45"
    ), "the archive keeps the raw's pixels and their shape"  # fmt: skip
    [preview] = probe(root / "preview" / "dvd.mkv")["streams"]
    assert (preview["width"], preview["height"]) == (512, 288)  # 1024×576 halved
    assert preview.get("sample_aspect_ratio", "1:1") == "1:1"
    [sheet] = probe(root / "screenshot" / "dvd.jpg")["streams"]
    assert (sheet["width"], sheet["height"]) == (1024, 576)


def test_a_failure_reads_as_one_line_naming_the_stream_and_the_cause(root: Path) -> None:
    config = root / "videoarchiver.toml"
    config.write_text(config.read_text().replace(PREVIEW_ARGS, '["-crf", "999"]'))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-c:v", "mpeg4",
           root / "raw" / "a.mp4")  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 1
    [file] = status_json(root)
    error, detail = file["error"], file["error_detail"]
    assert len(error) <= 200 and "\n" not in error
    assert error.startswith("preview: stream 0: ") and "for parameter 'crf' out of range" in error
    assert "@ 0x" not in error, "no ffmpeg context prefixes"
    assert "Error initializing output stream" in detail, "the whole text is kept for --json"


def test_a_camera_clip_cut_after_its_first_frame_is_archived_from_what_it_holds(
    root: Path, tmp_path: Path
) -> None:
    whole = tmp_path / "whole.mts"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25:d=2", "-f", "lavfi", "-i", "sine=d=2",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "ac3", "-f", "mpegts",
           "-mpegts_m2ts_mode", "1", whole)  # fmt: skip
    (root / "raw" / "CLIP0001.MTS").write_bytes(whole.read_bytes()[:8192])  # cut mid-write
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert [s["codec_type"] for s in probe(root / "archive" / "CLIP0001.mkv")["streams"]] == [
        "video"
    ]  # fmt: skip
    assert (root / "screenshot" / "CLIP0001.jpg").exists()
    [file] = status_json(root)
    dropped = "stream 1 (audio ac3) dropped: it holds no data"
    assert any(dropped in warning for warning in file["warnings"]), file["warnings"]


def test_an_mp4_cut_before_its_index_fails_fast_saying_so(root: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-c:v", "libx264", "-preset",
           "ultrafast", whole)  # fmt: skip
    (root / "raw" / "cut.mp4").write_bytes(whole.read_bytes()[:20000])
    assert run_cli(root, "run", "--once").returncode == 1
    [file] = status_json(root)
    assert file["error"] == (
        "not a readable media file: ffprobe failed: Invalid data found when processing input"
        " (moov atom not found)"
    )


def test_a_copy_matroska_takes_but_cannot_decode_is_no_fallback(root: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=2", "-f", "lavfi", "-i", "sine=d=2",
           "-c:v", "flv", "-c:a", "adpcm_swf", "-ar", "22050",
           root / "raw" / "swf.flv")  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    codecs = [s["codec_name"] for s in probe(root / "archive" / "swf.mkv")["streams"]]
    assert codecs[1] in ("opus", "adpcm_swf"), codecs
    assert "none" not in codecs and None not in codecs, "every archived stream decodes"


@pytest.mark.parametrize(
    ("name", "args"),
    [("tta.tta", ["-c:a", "tta"]), ("alac8k.m4a", ["-ar", "8000", "-c:a", "alac"])],
)  # fmt: skip
def test_audio_whose_last_frame_is_short_is_measured_as_the_stream_says(
    root: Path, name: str, args: list[str]
) -> None:
    ffmpeg("-f", "lavfi", "-i", "sine=d=4.3", *args, root / "raw" / name)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, [file["error"] for file in status_json(root)]
    assert decoded_seconds(root / "archive" / f"{name.split('.')[0]}.mkv") == pytest.approx(
        4.3, abs=0.05
    )


def test_a_late_second_audio_track_is_mixed_in_at_its_time(root: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=4", "-f", "lavfi", "-i", "sine=d=4",
           "-itsoffset", "2", "-f", "lavfi", "-i", "sine=f=660:d=2", "-map", "0", "-map", "1",
           "-map", "2", "-c:v", "mpeg4", "-c:a", "aac", root / "raw" / "late.mkv")  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    assert decoded_seconds(root / "preview" / "late.mkv") == pytest.approx(4.0, abs=0.1)


def test_a_photo_and_an_mp4_cut_mid_download_are_archived(root: Path, tmp_path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240", "-frames:v", "1", root / "raw" / "photo.jpg")
    whole = tmp_path / "whole.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=6", "-c:v", "libx264", "-preset",
           "veryfast", "-movflags", "+faststart", whole)  # fmt: skip
    data = whole.read_bytes()
    (root / "raw" / "cut.mp4").write_bytes(data[: len(data) // 2])
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, [(file["rel_path"], file["error"]) for file in status_json(root)]
    assert (root / "screenshot" / "photo.jpg").exists() and (root / "preview" / "cut.mkv").exists()


def test_a_stream_this_ffmpeg_cannot_decode_is_named_in_the_reason(root: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-c:v", "libwebp_anim",
           root / "raw" / "anim.webp")  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 1
    [file] = status_json(root)
    assert file["error"].startswith("nothing this ffmpeg can decode: stream 0 (video webp)")


def _channels(layout: str, count: int, path: Path) -> None:
    """A WAV of `count` sines (60 Hz on the third channel) in `layout`."""
    sines = [arg for n in range(count) for arg in
             ("-f", "lavfi", "-i", f"sine=f={60 if n == 2 else 300 + 100 * n}:d=2")]  # fmt: skip
    joined = "".join(f"[{n}]" for n in range(count))
    ffmpeg(*sines, "-filter_complex", f"{joined}join=inputs={count}:channel_layout={layout}[o]",
           "-map", "[o]", "-c:a", "pcm_s16le", path)  # fmt: skip


def _peak_db(path: Path, channel: int) -> float:
    result = subprocess.run(
        ["ffmpeg", "-i", f"file:{path}", "-af", f"pan=mono|c0=c{channel},volumedetect",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(result.stderr.split("max_volume: ")[1].split(" dB")[0])


@pytest.mark.parametrize(
    ("layout", "count"), [("2.1", 3), ("FL+FR+FC+LFE+BL+BR+FLC+FRC+BC+SL", 10)]
)
def test_every_channel_of_a_layout_opus_does_not_know_is_kept(
    root: Path, layout: str, count: int
) -> None:
    raw = root / "raw" / "mics.wav"
    _channels(layout, count, raw)
    assert run_cli(root, "run", "--once").returncode == 0
    [audio] = probe(root / "archive" / "mics.mkv")["streams"]
    assert (audio["codec_name"], audio["channels"]) == ("opus", count)
    assert _peak_db(root / "archive" / "mics.mkv", 2) == pytest.approx(_peak_db(raw, 2), abs=3)
    [notes] = _archive_notes(root).values()
    assert f"kept as {count} discrete channels" in notes[-1]
