"""End to end: interlaced and HDR footage, checked with ffprobe as a user would.

The interlaced sources are woven from a moving test pattern at 50 fields a second (so that
fields differ and a wrong order or woven frames show); the HDR ones are HEVC from libx265
with its HDR10 SEI, as cameras and grading tools write them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from media import ffmpeg, probe, run_cli, ssim, status_json

MOVING_FIELDS = "testsrc2=s=720x576:r=50:d=2"
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
TONE_MAP = (
    "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,"
    "zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
)
HDR_VALUES = ("red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y", "white_point_x",
              "white_point_y", "min_luminance", "max_luminance")  # fmt: skip


def _ffprobe_json(*args: str | Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", *map(str, args)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def _frames(path: Path, count: int = 12) -> list[dict[str, Any]]:
    """The first frames of the first video stream: flags and side data."""
    frames: list[dict[str, Any]] = _ffprobe_json(
        "-select_streams", "v:0", "-read_intervals", f"%+#{count}", "-show_frames", path
    )["frames"]
    return frames


def _video(path: Path) -> dict[str, Any]:
    return next(s for s in probe(path)["streams"] if s["codec_type"] == "video")


def _notes(files: list[dict[str, Any]], rel: str, output: str) -> list[str]:
    """The notes of the one video stream job of `output` of the file at `rel`."""
    [file] = [file for file in files if file["rel_path"] == rel]
    [job] = [job for job in file["jobs"][output] if job["stream_type"] == "video"]
    notes: list[str] = job["notes"]
    return notes


def _idet(path: Path) -> dict[str, int]:
    """idet's multi-frame verdicts on every frame of a file."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", f"file:{path}", "-map", "0:v:0",
         "-vf", "idet", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(line for line in result.stderr.splitlines() if "Multi frame detection" in line)
    return {key.lower(): int(n) for key, n in re.findall(r"(\w+):\s+(\d+)", line)}


def _reference(raw: Path, graph: str, output: Path, *args: str) -> Path:
    ffmpeg("-i", raw, "-map", "0:v:0", "-vf", graph, *args, output)
    return output


def test_interlaced_footage_keeps_its_fields_and_is_shown_deinterlaced(
    root: Path, tmp_path: Path
) -> None:
    raw = root / "raw"
    interlaced = ["-c:v", "mpeg2video", "-flags", "+ilme+ildct", "-q:v", "1", "-qmin", "1"]
    ffmpeg("-f", "lavfi", "-i", MOVING_FIELDS, "-vf", "interlace=scan=tff", *interlaced,
           "-top", "1", "-f", "mpeg", raw / "dvd.mpg")  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", MOVING_FIELDS, "-vf", "interlace=scan=bff", *interlaced,
           "-top", "0", "-f", "mpegts", raw / "broadcast.ts")  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", MOVING_FIELDS, "-vf", "interlace=scan=bff", "-target", "pal-dv",
           raw / "tape.dv")  # fmt: skip
    # NTSC's 486 lines: x264 codes 4:2:0 fields only at a height divisible by 4.
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=720x486:r=60000/1001:d=2", "-vf",
           "interlace=scan=bff", *interlaced, "-top", "0", raw / "ntsc.mpg")  # fmt: skip
    # A capture card's uncompressed AVI: neither the stream nor its frames say anything.
    ffmpeg("-f", "lavfi", "-i", MOVING_FIELDS, "-vf", "interlace=scan=tff", "-c:v", "rawvideo",
           "-pix_fmt", "yuv420p", raw / "capture.avi")  # fmt: skip
    said = {name: _video(raw / name)["field_order"] for name in ("dvd.mpg", "broadcast.ts")}
    assert said == {"dvd.mpg": "tt", "broadcast.ts": "bb"}
    assert "field_order" not in _video(raw / "tape.dv")  # raw DV does not say

    assert run_cli(root, "run", "--once").returncode == 0

    expected = {"dvd.mpg": ("dvd", "tt", 1), "broadcast.ts": ("broadcast", "bb", 0),
                "tape.dv": ("tape", "bb", 0), "ntsc.mpg": ("ntsc", "bb", 0),
                "capture.avi": ("capture", "tt", 1)}  # fmt: skip
    for name, (stem, order, top_first) in expected.items():
        archive = root / "archive" / f"{stem}.mkv"
        video = _video(archive)
        assert (video["codec_name"], video["field_order"]) == ("h264", order), name
        # Coded as fields, in the raw's order, as the raw's frames are.
        raw_flags = {(f["interlaced_frame"], f["top_field_first"]) for f in _frames(raw / name)}
        assert raw_flags == ({(0, 0)} if name == "capture.avi" else {(1, top_first)}), name
        flags = {(f["interlaced_frame"], f["top_field_first"]) for f in _frames(archive)}
        assert flags == {(1, top_first)}, name
        # The preview is whole frames: idet finds no woven fields, and it looks like the raw
        # deinterlaced more than like the raw's woven frames.
        preview = root / "preview" / f"{stem}.mkv"
        verdicts = _idet(preview)
        assert verdicts["progressive"] > 10 * (verdicts["tff"] + verdicts["bff"]), name
        deinterlaced = _reference(raw / name, "bwdif=mode=send_frame", tmp_path / f"{stem}.d.mkv",
                                  "-c:v", "ffv1")  # fmt: skip
        woven = _reference(raw / name, "null", tmp_path / f"{stem}.w.mkv", "-c:v", "ffv1")
        assert ssim(preview, deinterlaced) > ssim(preview, woven) + 0.01, name
        # The montage's one tile (a 2 s clip) is the frame at 1 s, deinterlaced.
        montage = root / "screenshot" / f"{stem}.jpg"
        at = ("-ss", "1.0", "-frames:v", "1")
        tile = tmp_path / f"{stem}.d.png"
        ffmpeg(*at[:2], "-i", raw / name, "-vf", "bwdif=mode=send_frame", *at[2:], tile)
        woven_tile = tmp_path / f"{stem}.w.png"
        ffmpeg(*at[:2], "-i", raw / name, *at[2:], woven_tile)
        assert ssim(montage, tile) > ssim(montage, woven_tile) + 0.01, name

    assert _video(root / "archive" / "ntsc.mkv")["pix_fmt"] == "yuv422p"
    files = status_json(root)
    assert _notes(files, "dvd.mpg", "archive") == [
        "interlaced, top field first (tt): coded as fields, as in the raw"
    ]
    [decided] = [note for note in _notes(files, "tape.dv", "archive") if "idet" in note]
    assert decided.startswith("field order unknown in the stream: idet on ")
    assert decided.endswith("coded as interlaced, bottom field first (bb)")
    [decided] = [note for note in _notes(files, "capture.avi", "archive") if "idet" in note]
    assert decided.endswith("coded as interlaced, top field first (tt)")
    for name, (_stem, order, _top) in expected.items():
        first = "top" if order == "tt" else "bottom"
        for output in ("preview", "montage"):
            assert f"deinterlaced ({first} field first)" in _notes(files, name, output)


def _means(path: Path, graph: str = "null") -> tuple[float, float]:
    """Mean luma and mean saturation of a file's first picture (8-bit scale)."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{path}", "-map", "0:v:0", "-vf",
         f"{graph},signalstats,metadata=mode=print:file=-", "-frames:v", "1", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    values = dict(re.findall(r"lavfi\.signalstats\.(YAVG|SATAVG)=([0-9.]+)", out))
    return float(values["YAVG"]), float(values["SATAVG"])


def _distance(have: tuple[float, float], want: tuple[float, float]) -> float:
    return max(abs(a - b) for a, b in zip(have, want, strict=True))


def _close(have: tuple[float, float], want: tuple[float, float], within: float) -> bool:
    return _distance(have, want) <= within


def _tone_mapped_like_reference(picture: Path, raw: Path, tmp_path: Path, *args: str) -> None:
    """`picture` has the brightness and colour of the raw tone-mapped to BT.709, not those
    of the raw's PQ/HLG code values shown as they are (washed out); the references are
    written as `picture` is (its suffix, `args`)."""
    size = f"{_video(picture)['width']}:{_video(picture)['height']}"
    name = tmp_path / f"{raw.stem}{picture.suffix}"
    mapped = _reference(raw, f"scale={size},{TONE_MAP}", name.with_stem(f"{raw.stem}.tm"), *args)
    flat = _reference(raw, f"scale={size},format=yuv420p", name, *args)
    have, want, washed_out = _means(picture), _means(mapped), _means(flat)
    assert _close(have, want, 4), (have, want)
    # Far from the code values shown as they are: at least twice as far as from the
    # reference (they lie 8 to 14 apart on this test's pictures, the reference within 1).
    near, far = _distance(have, want), _distance(have, washed_out)
    assert far > max(2 * near, 5), (have, want, washed_out)


def test_hdr10_metadata_is_carried_and_previews_are_tone_mapped(root: Path, tmp_path: Path) -> None:
    raw = root / "raw"
    hevc = ["-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=2", "-pix_fmt", "yuv420p10le",
            "-c:v", "libx265", "-preset", "ultrafast"]  # fmt: skip
    bt2020 = "colorprim=bt2020:colormatrix=bt2020nc:qp=4:log-level=error"
    hdr10 = f"hdr10=1:master-display={MASTER_DISPLAY}:max-cll=1000,400:transfer=smpte2084"
    ffmpeg(*hevc, "-x265-params", f"{hdr10}:{bt2020}", raw / "pq.mkv")
    ffmpeg(*hevc, "-x265-params", f"transfer=arib-std-b67:{bt2020}", "-tag:v", "hvc1",
           raw / "hlg.mp4")  # fmt: skip
    # libx265 writes them as SEI: ffprobe shows them on the frames, not the stream.
    raw_side = {d["side_data_type"]: d for d in _frames(raw / "pq.mkv", 1)[0]["side_data_list"]}
    assert "side_data_list" not in _video(raw / "pq.mkv")

    assert run_cli(root, "run", "--once").returncode == 0

    archive = root / "archive" / "pq.mkv"
    video = _video(archive)
    colour = ("color_transfer", "color_primaries", "color_space", "pix_fmt")
    assert [video[key] for key in colour] == ["smpte2084", "bt2020", "bt2020nc", "yuv420p10le"]
    assert video["codec_name"] == "h264"
    side = {d["side_data_type"]: d for d in video["side_data_list"]}
    display = side["Mastering display metadata"]
    want = raw_side["Mastering display metadata"]
    for key in HDR_VALUES:  # Matroska keeps floats: the same values, other denominators
        assert abs(_number(display[key]) - _number(want[key])) < 1e-6 * _number(want[key]), key
    light = side["Content light level metadata"]
    assert (light["max_content"], light["max_average"]) == (1000, 400)
    # In the H.264 stream too: SEI 137 (mastering display) and 144 (content light level),
    # which ffmpeg 5.1's H.264 decoder reads past without exporting.
    assert {137, 144} <= _sei_types(archive)
    assert _video(root / "archive" / "hlg.mkv")["color_transfer"] == "arib-std-b67"

    files = status_json(root)
    for name, curve in (("pq.mkv", "PQ"), ("hlg.mp4", "HLG")):
        for output in ("preview", "montage"):
            assert f"tone-mapped from {curve} to BT.709" in _notes(files, name, output)
    for stem, name in (("pq", "pq.mkv"), ("hlg", "hlg.mp4")):
        preview = root / "preview" / f"{stem}.mkv"
        video = _video(preview)
        assert (video["color_transfer"], video["pix_fmt"]) == ("bt709", "yuv420p"), stem
        _tone_mapped_like_reference(preview, raw / name, tmp_path, "-frames:v", "1", "-c:v", "ffv1")
        montage = root / "screenshot" / f"{stem}.jpg"
        _tone_mapped_like_reference(
            montage, raw / name, tmp_path, "-ss", "1.0", "-frames:v", "1", "-pix_fmt", "yuvj420p"
        )


def _number(text: str | int) -> float:
    numerator, _, denominator = str(text).partition("/")
    return float(numerator) / float(denominator or 1)


def _sei_types(path: Path) -> set[int]:
    """The SEI payload types in the first frames of a file's H.264 stream."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "trace", "-i", f"file:{path}", "-map", "0:v:0", "-c", "copy",
         "-bsf:v", "trace_headers", "-frames:v", "2", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {int(n) for n in re.findall(r"last_payload_type_byte\s+\S+ = (\d+)", result.stderr)}
