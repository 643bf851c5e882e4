"""The archive shows exactly the raw's timing (issue 25): the frames a player shows of the
raw, at the raw's times, whether a stream is re-encoded or kept as it is."""

from __future__ import annotations

import itertools
import json
import struct
import subprocess
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from media import ffmpeg, probe, run_cli, span, status_json
from videoarchiver.outputs import output_problems, verify_file
from videoarchiver.planning.archive import Action, StreamDecision, metadata_args
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.packets import PacketTally
from videoarchiver.planning.probe import Probe
from videoarchiver.planning.timing import (
    audio_decoded_first,
    copy_timing_reason,
    count_samples,
    frame_times,
    hidden_reason,
    set_decoded,
)
from videoarchiver.planning.verify import audio_duration_differs, expected_streams, verify_output
from videoarchiver.probing import probe_file
from videoarchiver.processes import run_process
from videoarchiver.runtime import Source

KEEP_RAW = "ratio = 0.01\n"  # no encode saves enough: the ratio rule wants every raw stream


def _keep_raw_streams(root: Path) -> None:
    config = root / "videoarchiver.toml"
    config.write_text(config.read_text() + KEEP_RAW)


def shown(path: Path, stream: int = 0) -> list[float | None]:
    """The times of the frames a player shows of one stream (edit lists honoured); None for
    a frame ffprobe gives no time (the last of packed B-frames)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", str(stream), "-show_entries",
         "frame=best_effort_timestamp_time", "-of", "csv=p=0", f"file:{path}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return frame_times(out.split())


def timed(path: Path) -> list[float]:
    return [time for time in shown(path) if time is not None]


def video_notes(root: Path, name: str) -> list[str]:
    [file] = [f for f in status_json(root) if f["rel_path"] == name]
    [job] = [j for j in file["jobs"]["archive"] if j["stream_type"] == "video"]
    notes: list[str] = job["notes"]
    return notes


def shorten_edit_list(path: Path, milliseconds: int) -> None:
    """End the MP4's (only, version 0) edit list `milliseconds` early, as an iPhone's clip
    ends before its last sample."""
    data = bytearray(path.read_bytes())
    at = data.index(b"elst")
    assert data[at + 4] == 0, "a version 0 edit list"
    count = struct.unpack_from(">I", data, at + 8)[0]
    entry = at + 12 + 12 * (count - 1)  # segment_duration, media_time, media_rate
    (duration,) = struct.unpack_from(">I", data, entry)
    struct.pack_into(">I", data, entry, duration - milliseconds)
    path.write_bytes(bytes(data))


def _edited_clips(root: Path, tmp_path: Path) -> dict[str, int]:
    """Two MP4s whose edit lists hide frames, with how many each shows: one cut with `-ss`
    by stream copy (its first 15 packets hidden), one whose last sample is hidden."""
    whole = tmp_path / "whole.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=3", "-c:v", "libx264", "-preset",
           "fast", "-g", "30", whole)  # fmt: skip
    ffmpeg("-ss", "0.5", "-i", whole, "-c", "copy", root / "raw" / "cut.mp4")
    iphone = root / "raw" / "iphone.mp4"
    iphone.write_bytes(whole.read_bytes())
    shorten_edit_list(iphone, 40)
    return {"cut.mp4": 75, "iphone.mp4": 89}


def test_a_copy_that_would_show_frames_an_edit_list_hides_keeps_its_encode(
    root: Path, tmp_path: Path
) -> None:
    clips = _edited_clips(root, tmp_path)
    _keep_raw_streams(root)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, [f["error"] for f in status_json(root)]
    for name, frames in clips.items():
        raw, archive = root / "raw" / name, root / "archive" / f"{name[:-4]}.mkv"
        assert len(shown(raw)) == frames, "the raw as a player shows it"
        assert len(shown(archive)) == frames, name
        times, raw_times = timed(archive), timed(raw)
        assert all(b > a for a, b in itertools.pairwise(times))
        assert times[-1] - times[0] == pytest.approx(raw_times[-1] - raw_times[0], abs=0.002)
        shown_seconds = float(probe(raw)["streams"][0]["duration"])  # 2.960 s, not 3.000 s
        archived = probe(archive)
        assert float(archived["format"]["duration"]) == pytest.approx(shown_seconds, abs=0.01)
        [video] = archived["streams"]
        assert video["codec_name"] == "h264"
        notes = video_notes(root, name)
        assert any("edit list hides" in note and "ffmpeg 5.1" in note for note in notes), notes


def test_hidden_packets_are_no_part_of_the_tally() -> None:
    tally = PacketTally()
    tally.feed([f"0|{n / 10:.1f}|{n / 10:.1f}|0.1|100|{'K' if n == 0 else '_'}_" for n in range(5)])
    tally.feed(["0|0.5|0.5|0.1|100|_D", "0|0.6|0.6|0.1|100|__"])
    stream = tally.get(0)
    assert (stream.count, stream.nonempty, stream.hidden, stream.bytes) == (6, 6, 1, 600)
    assert stream.duration == pytest.approx(0.7)
    assert hidden_reason(stream) is not None and hidden_reason(tally.get(1)) is None
    raw = Probe.model_validate({"streams": [{"index": 0, "codec_type": "video"}]})
    [copied] = expected_streams(raw, [StreamDecision(0, "video", Action.COPY)], tally)
    assert copied.packets == 7, "a copy holds the hidden packets too"


def test_a_copy_is_kept_only_with_the_raws_frame_times() -> None:
    raw = frame_times(["0.100000", "0.133333", "0.166667,", "N/A"])
    assert raw == [0.1, 0.133333, 0.166667, None]
    assert copy_timing_reason(raw, [0.1, 0.133, 0.167, 0.2]) is None
    packed = copy_timing_reason(raw, [0.1, 0.133, 0.2, 0.2], ["... ('packed B-frames') ..."])
    assert packed is not None and "packed" in packed and "0.200 s after 0.200 s" in packed
    assert "frame 2 at 0.200 s" in str(copy_timing_reason(raw, [0.1, 0.133, 0.2, 0.3]))
    assert "3 frames" in str(copy_timing_reason(raw, [0.1, 0.133, 0.167]))


def _decode_warnings(path: Path) -> str:
    """What ffmpeg says while decoding the whole file (info level: packed B-frames)."""
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-i", f"file:{path}", "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stderr  # fmt: skip


def test_packed_b_frames_in_avi_keep_their_encode_with_increasing_timestamps(root: Path) -> None:
    raw = root / "raw" / "xvid.avi"
    # libxvid packs B-frames into AVI (DivX style) whenever it makes them.
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2", "-c:v", "libxvid", "-bf", "2",
           "-q:v", "5", raw)  # fmt: skip
    assert "packed B-frames" in _decode_warnings(raw)
    _keep_raw_streams(root)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, [f["error"] for f in status_json(root)]
    archive = root / "archive" / "xvid.mkv"
    times, raw_times = shown(archive), shown(raw)
    assert len(times) == len(raw_times) == 58  # two frames fewer: the encoder's B-frame delay
    assert [t for t, r in zip(times, raw_times, strict=True) if r is not None] == pytest.approx(
        timed(raw), abs=0.002
    ), "every frame at the raw's time"
    assert None not in times and all(b > a for a, b in itertools.pairwise(timed(archive)))
    assert "non monotonically increasing dts" not in _decode_warnings(archive)
    [video] = probe(archive)["streams"]
    assert video["codec_name"] == "h264"
    notes = video_notes(root, "xvid.avi")
    assert any("B-frames are packed" in note and "ffmpeg 5.1" in note for note in notes), notes


def decoded_seconds(path: Path, stream: str = "a:0") -> float:
    """How long one audio stream plays, in decoded samples (as ffmpeg decodes them)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
         "frame=nb_samples:stream=sample_rate", "-of", "json", f"file:{path}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    found = json.loads(out)
    rate = int(found["streams"][0]["sample_rate"])
    return sum(int(frame["nb_samples"]) for frame in found["frames"]) / rate


def _wma_in_long_packets(path: Path, tmp_path: Path) -> None:
    """WMA whose packets hold twelve WMA blocks each and whose header states a byte rate 8/7
    of the true one: its packets span 2.648 s of audio that decodes to 2.987 s, as WMA from
    the wild does (a WAV of WMA, or that WAV copied into ASF, by the suffix of `path`)."""
    wma, wav = tmp_path / "blocks.wma", tmp_path / "blocks.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=d=3:sample_rate=48000", "-c:a", "wmav2", "-b:a", "64k", wma)
    ffmpeg("-i", wma, "-c", "copy", wav)  # the WAV demuxer reads 4 KiB packets
    data = bytearray(wav.read_bytes())
    rate_at = data.index(b"fmt ") + 16  # nAvgBytesPerSec
    (rate,) = struct.unpack_from("<I", data, rate_at)
    struct.pack_into("<I", data, rate_at, rate * 8 // 7)
    wav.write_bytes(bytes(data))
    ffmpeg("-i", wav, "-c", "copy", path)


@pytest.mark.parametrize("name", ["talk.wma", "talk.wav"], ids=["asf-decoded-first", "at-verify"])
def test_wma_whose_packets_span_less_than_it_decodes_is_measured_by_its_samples(
    root: Path, tmp_path: Path, name: str
) -> None:
    raw = root / "raw" / name
    _wma_in_long_packets(raw, tmp_path)
    start, end = span(raw, 0)
    assert end - start == pytest.approx(2.648, abs=0.01)
    assert decoded_seconds(raw) == pytest.approx(2.987, abs=0.01)
    config = root / "videoarchiver.toml"
    config.write_text(config.read_text() + "ratio = 10\n")  # the encode kept, not the raw
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, [f["error"] for f in status_json(root)]
    for output in ("archive", "preview"):
        made = root / output / "talk.mkv"
        assert probe(made)["streams"][0]["codec_name"] == "opus"
        assert decoded_seconds(made) == pytest.approx(decoded_seconds(raw), abs=0.05), output
    measured = "measuring the audio by its samples" in result.stderr
    assert measured == (name == "talk.wav"), "ASF's audio is decoded from the start"


def test_audio_measured_by_its_samples_is_verified_by_them() -> None:
    """The figures of issue 25: packets spanning 0.895 s of audio that decodes to 1.024 s,
    archived as Opus whose packets span 0.997 s."""
    raw = Probe.model_validate(
        {"format": {"format_name": "asf", "duration": 0.895},
         "streams": [{"index": 0, "codec_type": "audio", "codec_name": "wmav2",
                      "sample_rate": 48000}]}
    )  # fmt: skip
    assert audio_decoded_first(raw)
    tally = PacketTally()
    tally.feed([f"0|{n * 0.0373:.4f}|{n * 0.0373:.4f}|0.0373|100|K_" for n in range(24)])
    archived = PacketTally()
    archived.feed([f"0|{n * 0.02:.3f}|{n * 0.02:.3f}|0.02|50|K_" for n in range(50)])
    decision = StreamDecision(0, "audio", Action.ENCODE, "libopus")
    opus = Probe.model_validate(
        {"format": {"format_name": "matroska,webm"},
         "streams": [{"index": 0, "codec_type": "audio", "codec_name": "opus",
                      "sample_rate": 48000}]}
    )  # fmt: skip
    before = verify_output(expected_streams(raw, [decision], tally), opus, archived)
    assert before == ["audio stream 0: duration 1.000 s, raw 0.895 s"]
    assert audio_duration_differs(before)
    samples: dict[int, int] = {}
    count_samples(samples, ["0,2048"] * 24)
    set_decoded(tally, raw, samples)
    set_decoded(archived, opus, {0: 48480})
    expected = expected_streams(raw, [decision], tally)
    assert expected[0].decoded and expected[0].duration == pytest.approx(1.024)
    assert verify_output(expected, opus, archived) == []


@pytest.mark.anyio
async def test_an_audio_duration_found_wrong_at_verify_is_measured_again_by_samples(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "talk.mka"  # no ASF: nothing decoded up front
    ffmpeg("-f", "lavfi", "-i", "sine=d=3:sample_rate=48000", "-c:a", "flac", "-bsf:a",
           "setts=pts=PTS*3/4:dts=DTS*3/4:duration=DURATION*3/4", raw)  # fmt: skip
    archived = tmp_path / "archive.mkv"  # as ffmpeg makes it when it counts the samples
    ffmpeg("-i", raw, "-af", "asetpts=N/SR/TB", "-c:a", "libopus", archived)
    raw_input = RawInput(raw, "matroska")
    probed = await probe_file(run_process, raw_input)
    assert probed.packets.get(0).decoded is None
    decisions = [StreamDecision(0, "audio", Action.ENCODE, "libopus")]
    expected = partial(expected_streams, probed.probe, decisions, probed.packets)
    assert audio_duration_differs(await output_problems(run_process, archived, expected()))
    source = SimpleNamespace(input=raw_input, probed=probed, name=raw.name)
    await verify_file(run_process, archived, expected, cast(Source, source))
    assert probed.packets.get(0).decoded == pytest.approx(3.0, abs=0.03)


def _idit_avi(path: Path, date: bytes) -> None:
    """An AVI whose header says when it was made in an IDIT chunk (cameras, old capture
    software: local time), written where ffmpeg put its INFO list."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120:r=25:d=1", "-c:v", "mpeg4", path)
    data = bytearray(path.read_bytes())
    at = data.index(b"LIST", 12)
    while data[at + 8 : at + 12] != b"INFO":
        at = data.index(b"LIST", at + 4)
    (size,) = struct.unpack_from("<I", data, at + 4)
    assert len(date) <= size
    data[at : at + 8 + size] = b"IDIT" + struct.pack("<I", size) + date.ljust(size, b"\0")
    path.write_bytes(bytes(data))


def _tagged_mkv(path: Path, tmp_path: Path, name: str, value: str) -> None:
    """A Matroska file with a global tag as other tools write them (mkvpropedit)."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120:r=25:d=1", "-c:v", "mpeg4", path)
    tags = tmp_path / "tags.xml"
    tags.write_text(
        f"<?xml version='1.0'?><Tags><Tag><Targets/><Simple><Name>{name}</Name>"
        f"<String>{value}</String></Simple></Tag></Tags>"
    )
    subprocess.run(["mkvpropedit", "-q", str(path), "--tags", f"global:{tags}"], check=True)


def test_a_start_timecode_and_a_creation_time_without_a_zone_are_kept(
    root: Path, tmp_path: Path
) -> None:
    raw = root / "raw"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120:r=25:d=1", "-c:v", "mpeg4",
           "-timecode", "01:02:03:04", raw / "camera.mov")  # fmt: skip
    # The video track no longer refers to its tmcd track: ffmpeg gives it no timecode.
    (raw / "loose.mov").write_bytes((raw / "camera.mov").read_bytes().replace(b"tref", b"free"))
    _idit_avi(raw / "capture.avi", b"Wed May 01 10:20:30 2024\n")
    _tagged_mkv(raw / "tagged.mkv", tmp_path, "CREATION_TIME", "2024-05-01T10:20:30")
    for name in ("camera.mov", "loose.mov"):
        [video, tmcd] = probe(raw / name)["streams"]
        assert tmcd["codec_tag_string"] == "tmcd" and tmcd["tags"]["timecode"] == "01:02:03:04"
    assert "timecode" not in probe(raw / "loose.mov")["streams"][0]["tags"]
    assert probe(raw / "capture.avi")["format"]["tags"]["creation_time"] == "2024-05-01 10:20:30"
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, [f["error"] for f in status_json(root)]
    files = {file["rel_path"]: file for file in status_json(root)}
    for name in ("camera", "loose"):
        [video] = probe(root / "archive" / f"{name}.mkv")["streams"]
        assert video["tags"]["TIMECODE"] == "01:02:03:04", name
        [warning] = files[f"{name}.mov"]["warnings"]
        assert "(data tmcd) dropped" in warning
        assert "start timecode 01:02:03:04 is kept as the first video track's TIMECODE" in warning
    for name, value in (("capture", "2024-05-01 10:20:30"), ("tagged", "2024-05-01T10:20:30")):
        tags = probe(root / "archive" / f"{name}.mkv")["format"]["tags"]
        assert tags["DATE_RECORDED"] == value, tags
        assert not any(key.lower() == "creation_time" for key in tags), "not turned into UTC"


@pytest.mark.parametrize(
    ("created", "kept"),
    [("2024-05-01T10:20:30.000000Z", False), ("2024-05-01T10:20:30+0200", False),
     ("2024-05-01 10:20:30", True), ("2024-05-01T10:20:30", True)],
)  # fmt: skip
def test_only_a_creation_time_without_a_zone_becomes_date_recorded(
    created: str, kept: bool
) -> None:
    video = {"index": 0, "codec_type": "video", "codec_name": "h264"}
    tmcd = {"index": 1, "codec_type": "data", "codec_name": "none", "codec_tag_string": "tmcd",
            "tags": {"timecode": "10:00:00;02"}}  # fmt: skip
    raw = Probe.model_validate(
        {"format": {"tags": {"creation_time": created}}, "streams": [video, tmcd]}
    )
    decisions = [StreamDecision(0, "video", Action.ENCODE), StreamDecision(1, "data", Action.DROP)]
    args = metadata_args(raw, decisions)
    assert args[:2] == ["-metadata:s:0", "timecode=10:00:00;02"]
    assert args[2:] == (
        ["-metadata", "creation_time=", "-metadata", f"DATE_RECORDED={created}"] if kept else []
    )


@pytest.mark.parametrize(
    ("format_name", "kinds", "first"),
    [("asf", ["video", "audio"], True), ("swf", ["audio"], True), ("asf", ["video"], False),
     ("mov,mp4,m4a,3gp,3g2,mj2", ["audio"], False)],
)  # fmt: skip
def test_only_asf_and_swf_audio_is_decoded_up_front(
    format_name: str, kinds: list[str], first: bool
) -> None:
    streams = [{"index": n, "codec_type": kind} for n, kind in enumerate(kinds)]
    raw = Probe.model_validate({"format": {"format_name": format_name}, "streams": streams})
    assert audio_decoded_first(raw) == first
