"""The archive shows exactly the raw's timing (issue 25): the frames a player shows of the
raw, at the raw's times, whether a stream is re-encoded or kept as it is."""

from __future__ import annotations

import itertools
import struct
import subprocess
from pathlib import Path

import pytest

from media import ffmpeg, probe, run_cli, status_json
from videoarchiver.planning.packets import PacketTally
from videoarchiver.planning.timing import copy_timing_reason, frame_times, hidden_reason

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
        [video] = probe(archive)["streams"]
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
