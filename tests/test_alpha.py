"""A picture with an alpha channel keeps it: decoding the archive gives the raw's alpha plane."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from media import ffmpeg, probe, run_cli, status_json
from videoarchiver.config import ArchiveConfig
from videoarchiver.planning.alpha import (
    ALPHA_COPY_NOTE,
    ALPHA_NOTE,
    alpha_decoder_args,
    alpha_pixel_format,
    has_alpha,
)
from videoarchiver.planning.archive import Action, codec_args, plan_archive
from videoarchiver.planning.probe import Probe, Stream


def _stream(pix_fmt: str, codec: str = "qtrle", **tags: str) -> Stream:
    return Stream(index=1, codec_type="video", codec_name=codec, pix_fmt=pix_fmt, tags=tags)


@pytest.mark.parametrize(
    ("pix_fmt", "target"),
    [
        ("argb", "bgra"),
        ("rgba", "bgra"),
        ("gbrap", "bgra"),
        ("gbrap10le", "gbrap10le"),
        ("rgba64be", "gbrap16le"),
        ("yuva420p", "yuva420p"),
        ("yuva422p10le", "yuva422p10le"),
        ("yuva444p12le", "yuva444p16le"),  # ProRes 4444: FFV1 has no 12-bit YUVA
        ("ya8", "ya8"),
        ("ya16le", "yuva444p16le"),
        ("vuya", "yuva444p"),
    ],
)
def test_alpha_is_stored_in_a_format_ffv1_holds_without_a_loss(pix_fmt: str, target: str) -> None:
    assert has_alpha(_stream(pix_fmt))
    assert alpha_pixel_format(_stream(pix_fmt)) == target


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "rgb24", "gbrp10le", "gray", "pal8", "nv12"])
def test_pictures_without_alpha_are_not_taken_for_alpha(pix_fmt: str) -> None:
    assert not has_alpha(_stream(pix_fmt))


def test_vp9_alpha_is_found_by_its_tag_and_decoded_with_libvpx() -> None:
    stream = _stream("yuv420p", "vp9", ALPHA_MODE="1")
    assert has_alpha(stream)
    assert alpha_pixel_format(stream) == "yuva420p"
    assert alpha_decoder_args(stream) == ("-c:1", "libvpx-vp9")
    assert not has_alpha(_stream("yuv420p", "vp9", alpha_mode="0"))
    assert alpha_decoder_args(_stream("yuva420p")) == ()


def test_an_alpha_stream_is_encoded_with_ffv1_alone_and_says_what_a_copy_keeps() -> None:
    probe_ = Probe(streams=[_stream("argb")])
    config = ArchiveConfig()
    [decision] = plan_archive(probe_, config)
    assert (decision.action, decision.codec, decision.notes[0]) == (
        Action.ENCODE, "ffv1", ALPHA_NOTE,
    )  # fmt: skip
    assert "-crf" not in codec_args(decision, config), "x264's options are not FFV1's"
    copied = decision.fallback_to_copy("raw stream kept: the encode saved too little")
    assert copied.notes[-1] == ALPHA_COPY_NOTE
    assert copied.decoder_args == ()


def _frames(path: Path, decoded_as: str, decoder: tuple[str, ...] = ()) -> str:
    """The MD5 of every decoded frame (picture and alpha) at the raw's own pixel format."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", *decoder, "-i", f"file:{path}", "-map", "0:v:0",
         "-vf", f"format={decoded_as}", "-f", "framemd5", "-"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    lines = [line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if line[:1].isdigit()]
    assert lines, f"no frame decoded from {path}"
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _alpha_only(path: Path, decoded_as: str, decoder: tuple[str, ...] = ()) -> str:
    """The alpha plane alone, at the raw's depth."""
    return _frames(path, f"{decoded_as},alphaextract", decoder)


ALPHA_RAMP = "format=rgba,geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='X*255/W'"
TESTSRC = "testsrc2=s=160x120:r=25:d=1"
# name → (encoder options, pixel format decoded from the raw, libvpx needed to see the alpha)
SOURCES: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "vp9a.webm": (("-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-b:v", "300k"), "yuva420p",
                  True),
    "anim.mov": (("-c:v", "qtrle",), "argb", False),
    "anim.apng": (("-plays", "0",), "rgba", False),
    "prores.mov": (("-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le"),
                   "yuva444p12le", False),
}  # fmt: skip


def _jobs(root: Path) -> dict[str, dict[str, Any]]:
    return {file["rel_path"]: file["jobs"]["archive"][0] for file in status_json(root)}


def test_alpha_sources_keep_their_alpha_plane(root: Path) -> None:
    for name, (options, _, _) in SOURCES.items():
        ffmpeg("-f", "lavfi", "-i", f"{TESTSRC},{ALPHA_RAMP}", *options, root / "raw" / name)
    assert run_cli(root, "run", "--once").returncode == 0
    jobs = _jobs(root)
    for name, (_, decoded_as, libvpx) in SOURCES.items():
        raw, archive = root / "raw" / name, root / "archive" / f"{Path(name).stem}.mkv"
        decoder = ("-c:v", "libvpx-vp9") if libvpx else ()
        if libvpx:  # lossy VP9: FFV1 is larger, the raw stream (and its alpha) is kept
            assert jobs[name]["decision"] == "copy", jobs[name]
            assert jobs[name]["notes"][-1] == ALPHA_COPY_NOTE
            assert _alpha_only(archive, decoded_as, decoder) == _alpha_only(
                raw, decoded_as, decoder
            )
            continue
        [stream] = probe(archive)["streams"]
        assert stream["codec_name"] == "ffv1", name
        assert ALPHA_NOTE in jobs[name]["notes"]
        assert _frames(archive, decoded_as) == _frames(raw, decoded_as), name
        assert _alpha_only(archive, decoded_as) == _alpha_only(raw, decoded_as), name
