from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from videoarchiver.config import ArchiveConfig
from videoarchiver.planning.archive import Action, encode_args, mux_args, plan_archive
from videoarchiver.planning.commands import RawInput, safe_demuxers, url
from videoarchiver.planning.packets import PacketTally
from videoarchiver.planning.probe import Probe, parse_probe, without_filename
from videoarchiver.planning.verify import ExpectedStream, expected_streams, verify_output


def make_probe(*streams: dict[str, Any], start: float = 0.0) -> Probe:
    return Probe.model_validate(
        {
            "streams": [{"index": i, **s} for i, s in enumerate(streams)],
            "format": {"start_time": str(start)},
        }
    )


VIDEO = {
    "codec_type": "video",
    "codec_name": "h264",
    "pix_fmt": "yuv420p",
    "avg_frame_rate": "25/1",
}
AUDIO = {"codec_type": "audio", "codec_name": "aac", "sample_rate": "48000", "channels": 2,
         "channel_layout": "stereo"}  # fmt: skip
COVER = {"codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}}


@pytest.mark.parametrize(
    ("stream", "kind", "action", "codec"),
    [
        (VIDEO, "video", Action.ENCODE, "libx264"),
        (AUDIO, "audio", Action.ENCODE, "libopus"),
        (COVER, "attached_pic", Action.ATTACH, "mjpeg"),
        ({"codec_type": "subtitle", "codec_name": "subrip"}, "subtitle", Action.COPY, None),
        ({"codec_type": "subtitle", "codec_name": "hdmv_pgs_subtitle"}, "subtitle", Action.COPY,
         None),
        ({"codec_type": "subtitle", "codec_name": "mov_text"}, "subtitle", Action.CONVERT, "srt"),
        ({"codec_type": "subtitle", "codec_name": "xsub"}, "subtitle", Action.DROP, None),
        ({"codec_type": "data", "codec_name": "unknown", "codec_tag_string": "tmcd"}, "data",
         Action.DROP, None),
        ({"codec_type": "attachment", "codec_name": "ttf"}, "attachment", Action.COPY, None),
        ({"codec_type": "video", "codec_name": None}, "video", Action.COPY, None),
    ],
)  # fmt: skip
def test_stream_decisions(
    stream: dict[str, Any], kind: str, action: Action, codec: str | None
) -> None:
    [decision] = plan_archive(make_probe(stream), ArchiveConfig())
    assert (decision.kind, decision.action, decision.codec) == (kind, action, codec)
    if action in (Action.DROP, Action.CONVERT):
        assert decision.notes, "every conversion or drop is explained"


def test_dropped_data_stream_names_its_tag() -> None:
    tmcd = {"codec_type": "data", "codec_name": "unknown", "codec_tag_string": "tmcd"}
    [decision] = plan_archive(make_probe(tmcd), ArchiveConfig())
    assert "tmcd" in decision.notes[0]


def test_video_encode_args_keep_format_colour_and_every_frame() -> None:
    hdr = {
        **VIDEO, "pix_fmt": "yuv420p10le", "color_primaries": "bt2020",
        "color_transfer": "smpte2084", "color_space": "bt2020nc", "color_range": "tv",
    }  # fmt: skip
    [decision] = plan_archive(make_probe(hdr), ArchiveConfig())
    args = encode_args(
        RawInput(Path("/r/-a.mp4"), "mov"), decision, ["-crf", "18"], Path("/w/s0.mkv")
    )
    assert args[0] == "ffmpeg"
    assert args[args.index("-i") + 1] == "file:/r/-a.mp4"
    assert args[-1] == "file:/w/s0.mkv"
    pairs = dict(itertools.pairwise(args))
    assert pairs["-map"] == "0:0"
    assert pairs["-c:v"] == "libx264"
    assert pairs["-pix_fmt"] == "yuv420p10le"
    assert (pairs["-color_primaries"], pairs["-color_trc"], pairs["-colorspace"]) == (
        "bt2020", "smpte2084", "bt2020nc",
    )  # fmt: skip
    assert pairs["-fps_mode"] == "passthrough"
    assert pairs["-progress"] == "pipe:1"


def test_rgb_source_is_tagged_with_the_matrix_it_was_converted_with() -> None:
    [decision] = plan_archive(make_probe({**VIDEO, "pix_fmt": "rgb24"}), ArchiveConfig())
    pairs = dict(itertools.pairwise(decision.args))
    assert (pairs["-pix_fmt"], pairs["-colorspace"], pairs["-color_range"]) == (
        "yuv444p", "smpte170m", "tv",
    )  # fmt: skip


def test_mux_maps_parts_and_raw_streams_in_raw_order() -> None:
    tmcd = {"codec_type": "data", "codec_name": "unknown", "codec_tag_string": "tmcd"}
    subs = {"codec_type": "subtitle", "codec_name": "mov_text",
            "disposition": {"default": 1, "forced": 1}}  # fmt: skip
    video = {**VIDEO, "tags": {"BPS": "1000", "language": "eng"}}
    probe = make_probe(video, AUDIO, tmcd, subs, start=1.5)
    decisions = plan_archive(probe, ArchiveConfig())
    decisions[1] = decisions[1].fallback_to_copy("ratio")
    args = mux_args(
        RawInput(Path("/r/a.mov"), "mov"),
        probe,
        decisions,
        {0: Path("/w/s0.mkv")},
        Path("/w/out.mkv"),
    )
    assert args[args.index("-itsoffset") + 1] == "-1.500000"
    inputs = [args[i + 1] for i, a in enumerate(args) if a == "-i"]
    assert inputs == [url(Path("/r/a.mov")), url(Path("/w/s0.mkv"))]
    assert [args[i + 1] for i, a in enumerate(args) if a == "-map"] == ["1:0", "0:1", "0:3"]
    pairs = dict(itertools.pairwise(args))
    assert pairs["-c:2"] == "srt"
    assert pairs["-disposition:2"] == "default+forced"
    assert pairs["-disposition:0"] == "0"
    assert pairs["-map_metadata:s:2"] == "0:s:3"
    assert pairs["-metadata:s:0"] == "BPS=", "statistics of the raw encoding are not carried over"
    assert pairs["-map_chapters"] == "0"


def test_cover_art_is_attached_as_matroska_cover() -> None:
    cover = {**COVER, "tags": {"title": "Front"}}
    probe = make_probe(AUDIO, cover)
    decisions = plan_archive(probe, ArchiveConfig())
    pictures = {1: Path("/w/s1.jpg")}
    args = mux_args(
        RawInput(Path("/r/a.mp3"), "mov"), probe, decisions, {}, Path("/w/out.mkv"), pictures
    )
    assert [args[i + 1] for i, a in enumerate(args) if a == "-map"] == ["0:0"]
    assert args[args.index("-attach") + 1] == "file:/w/s1.jpg"
    metadata = [args[i + 1] for i, a in enumerate(args) if a == "-metadata:s:t:0"]
    assert metadata == ["mimetype=image/jpeg", "filename=cover.jpg", "title=Front"]


def test_every_attachment_has_a_filename_and_mimetype_and_covers_come_after_them() -> None:
    font = {"codec_type": "attachment", "tags": {"filename": "a.ttf", "mimetype": "font/ttf"}}
    bare = {"codec_type": "attachment"}  # an APE tag's binary item
    named = {"codec_type": "attachment", "tags": {"filename": "notes.gz"}}
    probe = make_probe(AUDIO, font, bare, named, COVER)
    decisions = plan_archive(probe, ArchiveConfig())
    args = mux_args(
        RawInput(Path("/r/a.mka"), "matroska"), probe, decisions, {}, Path("/w/o.mkv"),
        {4: Path("/w/s4.jpg")},
    )  # fmt: skip
    tags = [(a, args[i + 1]) for i, a in enumerate(args) if a.startswith("-metadata:s:t:")]
    assert tags == [
        ("-metadata:s:t:1", "filename=attachment_2.bin"),
        ("-metadata:s:t:1", "mimetype=application/octet-stream"),
        ("-metadata:s:t:2", "mimetype=application/gzip"),
        ("-metadata:s:t:3", "mimetype=image/jpeg"),
        ("-metadata:s:t:3", "filename=cover.jpg"),
    ]


def _tally(*streams: tuple[int, float, int]) -> PacketTally:
    """(stream index, duration, frames) → a tally of 1-byte packets at 25 fps."""
    tally = PacketTally()
    for index, duration, frames in streams:
        step = duration / frames
        for n in range(frames):
            tally.feed_line(f"{index}|{n * step}|N/A|{step}|1|__")
    return tally


def test_expected_streams_skip_drops_and_count_frames_of_encoded_video() -> None:
    tmcd = {"codec_type": "data", "codec_name": "unknown", "codec_tag_string": "tmcd"}
    probe = make_probe(VIDEO, AUDIO, tmcd)
    decisions = plan_archive(probe, ArchiveConfig())
    expected = expected_streams(probe, decisions, _tally((0, 4.0, 100), (1, 4.0, 200)))
    assert [(e.kind, e.frames) for e in expected] == [("video", 100), ("audio", None)]
    assert expected[0].tolerance == pytest.approx(0.1)
    assert ExpectedStream("video", 1.0, frame_seconds=0.5).tolerance == 1.0


@pytest.mark.parametrize(
    ("archive_streams", "tally", "problem"),
    [
        ((VIDEO, AUDIO), ((0, 4.0, 100), (1, 4.0, 200)), None),
        ((VIDEO, AUDIO), ((0, 4.0, 100), (1, 4.09, 200)), None),
        ((VIDEO, AUDIO, COVER), ((0, 4.0, 100), (1, 4.0, 200)), "pictures"),
        ((AUDIO, VIDEO), ((0, 4.0, 200), (1, 4.0, 100)), "streams are"),
        ((VIDEO,), ((0, 4.0, 100),), "streams are"),
        ((VIDEO, AUDIO), ((0, 4.0, 99), (1, 4.0, 200)), "99 frames"),
        ((VIDEO, AUDIO), ((0, 4.0, 100), (1, 3.5, 200)), "duration"),
    ],
)
def test_verify_output(
    archive_streams: tuple[dict[str, Any], ...],
    tally: tuple[tuple[int, float, int], ...],
    problem: str | None,
) -> None:
    raw = make_probe(VIDEO, AUDIO)
    expected = expected_streams(
        raw, plan_archive(raw, ArchiveConfig()), _tally((0, 4.0, 100), (1, 4.0, 200))
    )
    problems = verify_output(expected, make_probe(*archive_streams), _tally(*tally))
    if problem is None:
        assert problems == []
    else:
        assert any(problem in text for text in problems), problems


def test_raw_files_are_read_as_themselves_only() -> None:
    listing = (
        " D. = Demuxing supported\n --\n D  aac             raw ADTS AAC\n"
        " D  concat          Virtual concatenation script\n D  hls             Apple HTTP Live\n"
        " DE matroska,webm   Matroska / WebM\n D  mov,mp4,m4a,3gp,3g2,mj2 QuickTime / MOV\n"
    )
    allowed = safe_demuxers(listing)
    assert allowed == "3g2,3gp,aac,m4a,matroska,mj2,mov,mp4,webm"
    args = RawInput(Path("/r/a.mp4"), allowed).args()
    assert args == ["-protocol_whitelist", "file", "-format_whitelist", allowed, "-i",
                    "file:/r/a.mp4"]  # fmt: skip


def test_recorded_probes_name_no_machine_s_folders() -> None:
    header = (
        b'{"streams": [{"index": 0, "codec_type": "attachment", "tags": {"filename": "f.ttf"}}],'
        b' "format": {"filename": "file:/srv/machine1/raw/caf\xe9.mov", "duration": "1.5"}}'
    )
    stored = without_filename(header)
    assert b"machine1" not in stored and b"f.ttf" in stored, "an attachment's name stays"
    assert parse_probe(stored).format.duration == 1.5
    assert without_filename(b"not json") == b"not json"
