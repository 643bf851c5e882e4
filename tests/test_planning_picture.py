"""Interlaced and HDR video, planned: field order, HDR metadata, frames as shown."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from videoarchiver.config import ArchiveConfig, PreviewConfig
from videoarchiver.planning.archive import (
    Action,
    decide_stream,
    encode_args,
    joined_params,
    projection_args,
)
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.hdr import hdr_plan, light_level, mastering, tone_map_filters
from videoarchiver.planning.interlace import (
    VERDICT_KEY,
    Fields,
    FieldTally,
    deinterlace_filter,
    interlaced_args,
    needs_sample,
    sample_args,
    sample_start,
    stream_fields,
)
from videoarchiver.planning.montage import MontagePlan, seek_args
from videoarchiver.planning.preview import preview_video_args
from videoarchiver.planning.probe import FieldSample, Stream
from videoarchiver.planning.shown import shown_frames

RAW = RawInput(Path("/raw/tape.dv"), "dv,mpeg")
VIDEO: dict[str, Any] = {
    "index": 0, "codec_type": "video", "codec_name": "mpeg2video", "pix_fmt": "yuv420p",
    "width": 720, "height": 576, "avg_frame_rate": "25/1",
}  # fmt: skip
MASTERING = {
    "side_data_type": "Mastering display metadata",
    "red_x": "34000/50000", "red_y": "16000/50000", "green_x": "13250/50000",
    "green_y": "34500/50000", "blue_x": "7500/50000", "blue_y": "3000/50000",
    "white_point_x": "15635/50000", "white_point_y": "16450/50000",
    "min_luminance": "1/10000", "max_luminance": "10000000/10000",
}  # fmt: skip
LIGHT = {"side_data_type": "Content light level metadata", "max_content": 1000, "max_average": 400}
PQ = {"pix_fmt": "yuv420p10le", "color_transfer": "smpte2084", "color_primaries": "bt2020",
      "color_space": "bt2020nc", "color_range": "tv"}  # fmt: skip
SEI = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def video(**fields: Any) -> Stream:
    return Stream.model_validate({**VIDEO, **fields})


@pytest.mark.parametrize(
    ("order", "args", "parity"),
    [
        ("tt", ["-flags", "+ildct+ilme", "-field_order", "tt"], "tff"),
        ("bb", ["-flags", "+ildct+ilme", "-field_order", "bb"], "bff"),
        ("tb", ["-flags", "+ildct+ilme", "-field_order", "tb"], "tff"),
        ("bt", ["-flags", "+ildct+ilme", "-field_order", "bt"], "bff"),
    ],
)
def test_a_stream_that_says_its_field_order_is_coded_in_it(
    order: str, args: list[str], parity: str
) -> None:
    fields = stream_fields(video(field_order=order))
    assert not needs_sample(video(field_order=order))
    assert interlaced_args(fields) == args
    assert deinterlace_filter(fields) == f"bwdif=mode=send_frame:parity={parity}:deint=all"
    assert "coded as fields" in fields.notes[0]


def test_progressive_is_left_alone() -> None:
    fields = stream_fields(video(field_order="progressive"))
    assert (interlaced_args(fields), deinterlace_filter(fields), fields.notes) == ([], None, ())


@pytest.mark.parametrize(
    ("sample", "order", "top"),
    [
        (FieldSample(bff=240, undetermined=10), "bb", ["-top", "0"]),
        (FieldSample(tff=200, bff=20, progressive=30), "tt", ["-top", "1"]),
        (FieldSample(tff=10, bff=10, progressive=230), "progressive", []),
        (FieldSample(tff=41, bff=24, progressive=10), "progressive", []),  # orders disagree
        (FieldSample(tff=90, bff=10, progressive=80), "progressive", []),  # mostly whole
        (FieldSample(undetermined=250), "progressive", []),
    ],
)
def test_a_stream_that_does_not_say_is_decided_by_its_sample(
    sample: FieldSample, order: str, top: list[str]
) -> None:
    assert needs_sample(video(field_order="unknown")) and needs_sample(video())
    fields = stream_fields(video(field_order="unknown", field_sample=sample))
    assert fields.order == order
    if top:
        assert interlaced_args(fields) == ["-flags", "+ildct+ilme", "-field_order", order, *top]
    else:
        assert interlaced_args(fields) == []
    [note] = fields.notes
    assert note.startswith(f"field order unknown in the stream: idet on {sample.frames} frames")
    assert note.endswith(f"({order})" if top else "progressive frames")


def test_an_unmeasured_stream_is_coded_progressive_with_a_note() -> None:
    fields = stream_fields(video())
    assert fields.order == "progressive"
    assert fields.notes == ("field order unknown and not measured: coded as progressive frames",)


def test_an_animation_has_no_fields() -> None:
    gif = video(codec_name="gif", field_order="unknown")
    assert not needs_sample(gif)
    assert stream_fields(gif) == Fields()


def test_the_sample_is_idet_on_frames_from_the_middle() -> None:
    # 60 s from 2 s on at 25 fps: 10 s around its middle (32 s) start at 27 s.
    assert sample_start(2.0, 60.0, 0.04) == pytest.approx(27.0)
    assert sample_start(0.5, 3.0, 0.04) == 0.5  # shorter than the sample: from its start
    args = sample_args(RAW, 3, 27.0)
    assert args[args.index("-ss") + 1] == "27.000000"
    assert args.index("-ss") < args.index("-i")
    assert args[args.index("-map") + 1] == "0:3"
    assert args[args.index("-frames:v") + 1] == "250"
    assert args[-3:] == ["-f", "null", "-"]


def test_the_tally_counts_idet_verdicts() -> None:
    tally = FieldTally()
    tally.feed(["frame:0    pts:0       pts_time:0", f"{VERDICT_KEY}=bff", f"{VERDICT_KEY}=bff"])
    tally.feed([f"{VERDICT_KEY}=undetermined", f"{VERDICT_KEY}=tff", "lavfi.idet.single.tff=1"])
    assert tally.sample() == FieldSample(tff=1, bff=2, undetermined=1)


def test_hdr10_metadata_from_the_stream_or_its_first_frame() -> None:
    in_frames = video(**PQ, frame_side_data=[MASTERING, LIGHT])
    in_stream = video(**PQ, side_data_list=[LIGHT, MASTERING])
    for stream in (in_frames, in_stream):
        display = mastering(stream)
        assert display is not None
        assert display.sei() == SEI
        assert light_level(stream) == (1000, 400)
    plan = hdr_plan(in_frames, "libx264")
    assert plan.args == ("-x264-params", f"mastering-display={SEI}:cll=1000,400")
    settings = dict(s.split("=") for s in plan.track if s != "--set")
    assert settings["chromaticity-coordinates-red-x"] == "0.68"
    assert settings["white-coordinates-y"] == "0.329"
    assert (settings["max-luminance"], settings["min-luminance"]) == ("1000", "0.0001")
    assert (settings["max-content-light"], settings["max-frame-light"]) == ("1000", "400")
    assert plan.notes == ()
    assert hdr_plan(in_frames, "libx265").args == (
        "-x265-params", f"master-display={SEI}:max-cll=1000,400"
    )  # fmt: skip
    assert hdr_plan(in_frames, "ffv1").notes == (
        "HDR mastering metadata in the Matroska track only (ffv1 takes none)",
    )


def test_matroska_floats_give_the_same_sei() -> None:
    """Matroska keeps the coordinates as floats: ffprobe prints them with other denominators."""
    floats = {**MASTERING, "red_x": "11408507/16777216", "min_luminance": "209800/2098000053"}
    display = mastering(video(**PQ, side_data_list=[floats]))
    assert display is not None and display.sei() == SEI
    assert display.red[0] == Fraction(11408507, 16777216)


def test_dynamic_metadata_is_named() -> None:
    dovi = {"side_data_type": "DOVI configuration record", "dv_profile": 8,
            "dv_bl_signal_compatibility_id": 1}  # fmt: skip
    hdr10_plus = {"side_data_type": "HDR Dynamic Metadata SMPTE2094-40 (HDR10+)"}
    rpu = {"side_data_type": "Dolby Vision RPU Data"}
    stream = video(**PQ, side_data_list=[dovi], frame_side_data=[MASTERING, hdr10_plus, rpu])
    notes = hdr_plan(stream, "libx264").notes
    assert notes == (
        "Dolby Vision (profile 8) not carried (x264 cannot): the archive holds its base layer",
        "HDR Dynamic Metadata SMPTE2094-40 (HDR10+) not carried "
        "(x264 cannot hold dynamic metadata)",
    )
    assert hdr_plan(video(**PQ, frame_side_data=[rpu]), "libx264").notes == (
        "Dolby Vision RPU Data not carried (x264 cannot hold dynamic metadata)",
    )
    assert decide_stream(stream, ArchiveConfig()).action is Action.ENCODE
    # Profile 5's base layer is in IPT colours only its RPU shows right: kept as it is.
    profile5 = {**dovi, "dv_profile": 5, "dv_bl_signal_compatibility_id": 0}
    decision = decide_stream(video(side_data_list=[profile5]), ArchiveConfig())
    assert (decision.action, decision.args) == (Action.COPY, ())
    assert decision.notes == (
        "Dolby Vision profile 5 has no HDR10 or SDR compatible base layer, and x264 cannot"
        " carry what shows it: kept as it is",
    )


def test_no_hdr_metadata_no_args() -> None:
    assert hdr_plan(video(**PQ), "libx264") == hdr_plan(video(), "libx264")
    assert hdr_plan(video(), "libx264").args == ()


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])
def test_pq_and_hlg_are_tone_mapped(transfer: str) -> None:
    filters = tone_map_filters(video(**{**PQ, "color_transfer": transfer}))
    assert filters[0] == f"zscale=tin={transfer}:min=bt2020nc:pin=bt2020:rin=tv:t=linear:npl=100"
    assert "tonemap=hable:desat=0" in filters and filters[-1] == "format=yuv420p"
    assert tone_map_filters(video(color_transfer="bt709")) == []


def test_decision_carries_fields_and_hdr() -> None:
    stream = video(**PQ, field_order="tt", frame_side_data=[MASTERING, LIGHT])
    decision = decide_stream(stream, ArchiveConfig())
    args = list(decision.args)
    assert args[args.index("-field_order") + 1] == "tt"
    assert args[args.index("-x264-params") + 1] == f"mastering-display={SEI}:cll=1000,400"
    assert args[args.index("-color_trc") + 1] == "smpte2084"
    command = projection_args([decision], Path("/work/archive.mkv"))
    assert command is not None
    assert command[3:6] == ["--edit", "track:v1", "--set"]
    assert "max-content-light=1000" in command
    # The raw stream kept instead: its track gets the same colour element.
    copied = projection_args([decision.fallback_to_copy("ratio")], Path("/work/a.mkv"))
    assert copied == [*command[:2], "/work/a.mkv", *command[3:]]
    assert decision.action is Action.ENCODE


def test_preview_and_montage_show_deinterlaced_tone_mapped_frames() -> None:
    stream = video(**PQ, field_order="bb")
    shown = shown_frames(stream)
    graph = shown.graph((360, 288))
    assert graph.startswith("bwdif=mode=send_frame:parity=bff:deint=all,scale=360:288,setsar=1,")
    assert graph.endswith("zscale=t=bt709:m=bt709:r=tv,format=yuv420p")
    args = preview_video_args(RAW, stream, PreviewConfig(), Path("/work/p.mkv"))
    assert args[args.index("-vf") + 1] == shown_frames(stream).graph((720, 576))
    assert args[args.index("-pix_fmt") + 1] == "yuv420p"  # tone-mapped to 8-bit BT.709
    plan = MontagePlan(0, 1, (1.0,), False, (360, 288), shown)
    montage = seek_args(RAW, plan, 1.0, Path("/work/m.jpg"))
    assert montage[montage.index("-vf") + 1] == graph
    assert shown.notes == ("deinterlaced (bottom field first)", "tone-mapped from PQ to BT.709")
    plain = shown_frames(video(field_order="progressive"))
    assert plain.notes == ()
    assert plain.graph((360, 288)) == "scale=360:288,setsar=1"


def test_ntsc_fields_keep_their_chroma_at_422() -> None:
    """x264 codes 4:2:0 fields only at a height divisible by 4: NTSC's 486 lines are not."""
    decision = decide_stream(video(height=486, field_order="bb"), ArchiveConfig())
    args = list(decision.args)
    assert args[args.index("-pix_fmt") + 1] == "yuv422p"
    assert any("height 486: chroma stored as 422" in note for note in decision.notes)
    for fields in ({"field_order": "progressive"}, {"field_order": "bb", "height": 480}):
        args = list(decide_stream(video(**{"height": 486, **fields}), ArchiveConfig()).args)
        assert args[args.index("-pix_fmt") + 1] == "yuv420p"


def test_configured_x264_params_are_kept_with_the_hdr_ones() -> None:
    decision = decide_stream(video(**PQ, frame_side_data=[MASTERING, LIGHT]), ArchiveConfig())
    configured = ["-crf", "18", "-x264-params", "aq-mode=3", "-preset", "slow"]
    args = encode_args(RAW, decision, configured, Path("/work/s0.mkv"))
    assert args.count("-x264-params") == 1
    assert args[args.index("-x264-params") + 1] == (
        f"aq-mode=3:mastering-display={SEI}:cll=1000,400"
    )
    assert joined_params(["-crf", "18"], ["-x264-params", "a=1"]) == [
        "-crf", "18", "-x264-params", "a=1"
    ]  # fmt: skip
