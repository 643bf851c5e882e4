"""End to end: `videoarchiver run --once` on lavfi clips, checked with ffprobe as a user would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from held_encode import held_ffmpeg
from media import (
    ffmpeg,
    file_sha256,
    packets,
    probe,
    run_cli,
    span,
    status_json,
    stream_hash,
    traced,
)

SUBTITLES = "1\n00:00:00,500 --> 00:00:01,500\nHello\n\n2\n00:00:02,000 --> 00:00:02,800\nWorld\n"
CHAPTERS = """;FFMETADATA1
title=Holiday
[CHAPTER]
TIMEBASE=1/1000
START=0
END=1500
title=Intro
[CHAPTER]
TIMEBASE=1/1000
START=1500
END=3000
title=Main
"""


def _codecs(info: dict[str, Any]) -> list[str]:
    return [stream["codec_name"] for stream in info["streams"]]


def _jobs(root: Path, rel: str) -> dict[int, tuple[str, str, list[str]]]:
    """The archive stream jobs of the file at `rel`, by stream: decision, state, notes."""
    return {
        job["stream_index"]: (job["decision"], job["state"], job["notes"])
        for file in status_json(root)
        if file["rel_path"] == rel
        for job in file["jobs"]["archive"]
    }


@pytest.fixture
def full_mkv(root: Path, tmp_path: Path) -> Path:
    """ffv1 video, two PCM audio streams (44.1 kHz stereo, 48 kHz 5.1(side)), SRT, chapters."""
    (tmp_path / "subs.srt").write_text(SUBTITLES)
    (tmp_path / "chapters.txt").write_text(CHAPTERS)
    raw = root / "raw" / "full.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000:duration=3",
        "-i", tmp_path / "subs.srt", "-i", tmp_path / "chapters.txt",
        "-map", "0", "-map", "1", "-map", "2", "-map", "3",
        "-map_metadata", "4", "-map_chapters", "4",
        "-filter:a:1", "pan=5.1(side)|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
        "-c:v", "ffv1", "-c:a", "pcm_s16le", "-c:s", "srt",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=Commentary",
        "-metadata:s:a:1", "language=fre", "-metadata:s:s:0", "language=ger",
        "-disposition:a:0", "default", "-disposition:a:1", "0", "-disposition:s:0", "forced",
        raw,
    )  # fmt: skip
    return raw


def _trial_copies(trace: Path) -> list[str]:
    """The outputs of the trial copies (can the raw stream stand in?) a traced run made."""
    commands = [command["args"] for command in traced(trace)]
    return [args[-1] for args in commands if args[0] == "ffmpeg" and ".trial." in args[-1]]


def test_full_file_is_archived_with_streams_metadata_and_chapters(
    root: Path, full_mkv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw_sha = file_sha256(full_mkv)
    monkeypatch.setenv("VIDEOARCHIVER_TRACE", str(tmp_path / "trace.jsonl"))
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr

    archive = root / "archive" / "full.mkv"
    info = probe(archive)
    assert _codecs(info) == ["h264", "opus", "opus", "subrip"]
    video, stereo, surround, subtitle = info["streams"]
    assert video["pix_fmt"] == "yuv420p"
    assert len(packets(archive, 0)) == len(packets(full_mkv, 0)) == 75
    for index in range(3):
        start, end = span(archive, index)
        raw_start, raw_end = span(full_mkv, index)
        assert abs((end - start) - (raw_end - raw_start)) <= 0.1
    assert info["format"]["tags"]["title"] == "Holiday"
    assert stereo["tags"]["language"] == "eng"
    assert stereo["tags"]["title"] == "Commentary"
    assert surround["tags"]["language"] == "fre"
    assert subtitle["tags"]["language"] == "ger"
    assert stereo["disposition"]["default"] == 1
    assert surround["disposition"]["default"] == 0
    assert subtitle["disposition"]["forced"] == 1
    assert [c["tags"]["title"] for c in info["chapters"]] == ["Intro", "Main"]
    assert stereo["sample_rate"] == "48000"
    assert surround["channels"] == 6

    jobs = _jobs(root, "full.mkv")
    assert jobs[0][:2] == ("encode", "done")
    assert any("44100 Hz to 48000 Hz" in note for note in jobs[1][2])
    assert jobs[3][:2] == ("copy", "done")
    [(state, sha, size)] = [
        (output["state"], output["sha256"], output["size"])
        for file in status_json(root)
        for kind, output in file["outputs"].items()
        if kind == "archive"
    ]
    assert (state, sha, size) == ("done", file_sha256(archive), archive.stat().st_size)
    assert file_sha256(full_mkv) == raw_sha
    assert not list((root / "work" / "files").glob("*")), "work files left behind"
    assert _trial_copies(tmp_path / "trace.jsonl") == [], "every encode saved enough"


def test_mov_offsets_timecode_and_mov_text(root: Path, tmp_path: Path) -> None:
    (tmp_path / "subs.srt").write_text(SUBTITLES)
    raw = root / "raw" / "phone.mov"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=3",
        "-itsoffset", "0.5", "-f", "lavfi", "-i", "sine=duration=2.5:sample_rate=48000",
        "-i", tmp_path / "subs.srt",
        "-map", "0", "-map", "1", "-map", "2",
        "-c:v", "mpeg4", "-q:v", "1", "-c:a", "pcm_s16le", "-c:s", "mov_text",
        "-timecode", "01:00:00:00", raw,
    )  # fmt: skip
    assert [s["codec_type"] for s in probe(raw)["streams"]] == [
        "video", "audio", "subtitle", "data",
    ]  # fmt: skip
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr

    archive = root / "archive" / "phone.mkv"
    assert _codecs(probe(archive)) == ["h264", "opus", "subrip"]
    offset = span(archive, 1)[0] - span(archive, 0)[0]
    assert abs(offset - 0.5) <= 1 / 30 + 0.001
    [file] = status_json(root)
    warnings = "\n".join(file["warnings"])
    assert "tmcd" in warnings and "dropped" in warnings
    status = run_cli(root, "status")
    assert "tmcd" in status.stdout and "dropped" in status.stdout


def test_ten_bit_422_keeps_depth_chroma_and_colour_tags(root: Path) -> None:
    raw = root / "raw" / "tenbit.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
        "-pix_fmt", "yuv422p10le", "-c:v", "ffv1",
        "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
        "-color_range", "tv", raw,
    )  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    [video] = probe(root / "archive" / "tenbit.mkv")["streams"]
    assert video["codec_name"] == "h264"
    assert video["pix_fmt"] == "yuv422p10le"
    assert video["profile"] == "High 4:2:2"
    assert (video["color_primaries"], video["color_transfer"], video["color_space"]) == (
        "bt2020", "smpte2084", "bt2020nc",
    )  # fmt: skip
    assert video["color_range"] == "tv"


def test_incompressible_stream_falls_back_to_the_raw_stream(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = root / "raw" / "noise.avi"
    ffmpeg(
        "-f", "lavfi", "-i", "nullsrc=s=160x120:d=30:r=25,geq=lum='random(1)*255':cb=128:cr=128",
        "-c:v", "mpeg4", "-b:v", "200k", raw,
    )  # fmt: skip
    # The rule warns half its grace in, and asks whether the raw stream can stand in: the
    # encode is held from then until that trial is over, so that the rule meets it running
    # (on a busy machine an encode left to run could end first). A slow preset leaves it
    # most of its 30 s to go when the trial starts, and a few progress reports once let go.
    config = root / "videoarchiver.toml"
    config.write_text(config.read_text().replace('"ultrafast"', '"slow"'))
    for name, value in held_ffmpeg(tmp_path / "held", None).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VIDEOARCHIVER_TRACE", str(tmp_path / "trace.jsonl"))
    assert run_cli(root, "run", "--once").returncode == 0
    archive = root / "archive" / "noise.mkv"
    assert _codecs(probe(archive)) == ["mpeg4"]
    assert stream_hash(archive, 0) == stream_hash(raw, 0)
    decision, state, notes = _jobs(root, "noise.avi")[0]
    assert (decision, state) == ("copy", "done")
    assert "stopped at" in notes[-1], "the ratio rule should stop the encode, not finish it"
    [file] = status_json(root)
    [job] = [job for job in file["jobs"]["archive"] if job["stream_index"] == 0]
    raw_bytes = sum(int(packet["size"]) for packet in packets(raw, 0))
    assert (job["out_bytes"], job["ratio"]) == (raw_bytes, 1.0), "a kept stream: its raw size"
    [trial] = _trial_copies(tmp_path / "trace.jsonl")
    assert trial.endswith("/archive/s0.trial.mkv"), "asked once the rule warned"


def test_bad_inputs_fail_cleanly_and_the_rest_goes_on(root: Path) -> None:
    raw = root / "raw"
    good_names = ["-leading dash.mkv", 'it\'s "quoted" ünïcödé.mkv', "with spaces.mkv"]
    for name in good_names:
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1", "-c:v", "ffv1",
               raw / name)  # fmt: skip
    (raw / "notes.mp4").write_text("this is not a video\n")
    (raw / "empty.mov").write_bytes(b"")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:duration=2", "-c:v", "mpeg4",
           root / "whole.mp4")  # fmt: skip
    whole = (root / "whole.mp4").read_bytes()
    (raw / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (raw / ".hidden.mkv").write_bytes(whole)
    (raw / "download.mkv.part").write_bytes(whole)
    before = {path.name: file_sha256(path) for path in raw.iterdir()}

    result = run_cli(root, "run", "--once")
    assert result.returncode == 1
    files = status_json(root)
    states = {file["rel_path"]: file["state"] for file in files}
    assert states == {
        **{name: "done" for name in good_names},
        "notes.mp4": "failed",
        "empty.mov": "failed",
        "truncated.mp4": "failed",
    }
    for name in good_names:
        assert _codecs(probe(root / "archive" / name.replace(".mkv", ".mkv"))) == ["h264"]
    errors = {file["rel_path"]: file["error"] for file in files if file["state"] == "failed"}
    assert "empty file" in errors["empty.mov"]
    assert "not a readable media file" in errors["notes.mp4"]
    assert "moov atom not found" in errors["truncated.mp4"]
    assert {path.name: file_sha256(path) for path in raw.iterdir()} == before
    status = run_cli(root, "status").stdout
    assert "failed" in status and "empty file" in status
    log = (root / "log" / "videoarchiver.log").read_text()
    assert "failed: empty file" in log
    claims = re.findall(r"(\S+): claimed by worker", log)
    unreadable = {"notes.mp4", "truncated.mp4", "empty.mov"}  # they fail at once: first
    assert set(claims[:3]) == unreadable and not unreadable & set(claims[3:]), claims


def test_second_run_redoes_nothing(root: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1", "-c:v", "ffv1",
           root / "raw" / "clip.mkv")  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    archive = root / "archive" / "clip.mkv"
    published = archive.stat().st_mtime_ns
    again = run_cli(root, "run", "--once")
    assert again.returncode == 0
    assert "started" not in again.stderr
    assert archive.stat().st_mtime_ns == published


def test_colliding_names_never_overwrite(root: Path) -> None:
    for name in ("a.mkv", "a.avi", "b.mkv"):
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1", "-c:v", "ffv1",
               root / "raw" / name)  # fmt: skip
    (root / "archive").mkdir()
    (root / "archive" / "b.mkv").write_bytes(b"the user's own file")
    assert run_cli(root, "run", "--once").returncode == 0
    names = sorted(p.name for p in (root / "archive").iterdir())
    # Raw files are taken in path order: a.avi is first and gets the plain name.
    assert names == ["a.mkv", "a.mkv.mkv", "b.mkv", "b.mkv.mkv"]
    stems = {file["rel_path"]: file["stem"] for file in status_json(root)}
    assert stems == {"a.avi": "a", "a.mkv": "a.mkv", "b.mkv": "b.mkv"}
    assert (root / "archive" / "b.mkv").read_bytes() == b"the user's own file"


def test_audio_only_file_with_a_layout_opus_refuses(root: Path) -> None:
    raw = root / "raw" / "surround.wav"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=duration=3:sample_rate=22050",
        "-af", "pan=5.1(side)|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0", raw,
    )  # fmt: skip
    assert probe(raw)["streams"][0]["channel_layout"] == "5.1(side)"
    assert run_cli(root, "run", "--once").returncode == 0
    [audio] = probe(root / "archive" / "surround.mkv")["streams"]
    assert (audio["codec_name"], audio["sample_rate"]) == ("opus", "48000")
    assert audio["channel_layout"] == "5.1"
    notes = _jobs(root, "surround.wav")[0][2]
    assert "resampled 22050 Hz to 48000 Hz" in notes
    assert "channel layout 5.1(side) relabelled 5.1" in notes


def _cut_transport_stream(root: Path, raw: Path) -> None:
    """An MPEG-TS recording that starts mid-GOP, as a tuner capture does."""
    full = root / "full.ts"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:d=4:r=25", "-f", "lavfi", "-i", "sine=d=4",
           "-c:v", "libx264", "-g", "50", "-c:a", "mp2", "-f", "mpegts", full)  # fmt: skip
    raw.write_bytes(full.read_bytes()[188 * 300 :])


WILD_INPUTS = {
    # Old AVI: Motion JPEG (full range 4:2:2) with zero-size "dropped frame" packets, 8-bit PCM.
    "dropped.avi": ["-f", "lavfi", "-i", "testsrc2=s=320x240:d=3:r=25", "-f", "lavfi", "-i",
                    "sine=d=3:sample_rate=11025", "-vf", "select='not(between(n,10,20))'",
                    "-fps_mode", "passthrough", "-c:v", "mjpeg", "-q:v", "2", "-c:a", "pcm_u8"],
    # Odd-sized RGB at an odd frame rate.
    "odd.mkv": ["-f", "lavfi", "-i", "testsrc=s=321x241:d=2:r=7", "-c:v", "ffv1"],
    # A raw H.264 elementary stream (security cameras): no timestamps at all.
    "elementary.h264": ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-c:v", "libx264",
                        "-f", "h264"],
    # MPEG-PS (DVD): packets without pts, a start time that is not zero.
    "dvd.mpg": ["-f", "lavfi", "-i", "testsrc2=s=320x240:d=3:r=30000/1001", "-f", "lavfi", "-i",
                "sine=d=3", "-c:v", "mpeg2video", "-q:v", "2", "-c:a", "mp2", "-f", "vob"],
}  # fmt: skip


@pytest.mark.parametrize("name", [*WILD_INPUTS, "cut.ts"])
def test_footage_from_the_wild_is_archived_with_every_frame(root: Path, name: str) -> None:
    raw = root / "raw" / name
    if name == "cut.ts":
        _cut_transport_stream(root, raw)
    else:
        ffmpeg(*WILD_INPUTS[name], raw)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    archive = root / "archive" / f"{raw.stem}.mkv"
    raw_streams, archived = probe(raw)["streams"], probe(archive)["streams"]
    assert [s["codec_type"] for s in archived] == [s["codec_type"] for s in raw_streams]
    raw_frames = [p for p in packets(raw, 0) if int(p["size"]) > 0]
    assert len(packets(archive, 0)) == len(raw_frames)
    if archived[0]["codec_name"] == "h264":
        assert (archived[0]["width"], archived[0]["height"]) == (
            raw_streams[0]["width"], raw_streams[0]["height"],
        )  # fmt: skip


def test_cover_art_is_kept_bit_for_bit(root: Path) -> None:
    song, cover = root / "song.mp3", root / "cover.jpg"
    ffmpeg("-f", "lavfi", "-i", "sine=d=3", "-c:a", "libmp3lame", "-b:a", "320k", song)
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=300x300:d=1", "-frames:v", "1", cover)
    raw = root / "raw" / "song.mp3"
    ffmpeg("-i", song, "-i", cover, "-map", "0", "-map", "1", "-c", "copy",
           "-disposition:v", "attached_pic", raw)  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    archive = root / "archive" / "song.mkv"
    audio, picture = probe(archive)["streams"]
    assert audio["codec_name"] == "opus"
    assert picture["disposition"]["attached_pic"] == 1
    assert picture["tags"]["filename"] == "cover.jpg"
    assert stream_hash(archive, 1) == stream_hash(raw, 1)
    assert not (root / "screenshot" / "song.jpg").exists(), "cover art is not a video"
