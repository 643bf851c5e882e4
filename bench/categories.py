"""What each command the daemon (or the plain loop) ran was for, read from its arguments, and
which file it worked on."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

# Ours, in the order of the report; the loop's three commands are named by their output.
CATEGORIES = (
    "tool checks",
    "header probe",
    "packet pass",
    "stream facts (idet, frame times, decoded audio)",
    "archive video encode",
    "archive audio encode",
    "trial copy",
    "SSIM measurement",
    "preview video",
    "preview audio",
    "montage",
    "part packet counts",
    "mux archive",
    "mux preview",
    "verification probes",
    "propedit",
    "other",
)
LOOP_CATEGORIES = ("loop: archive", "loop: preview", "loop: montage")
# Our categories that make what the loop's command of that output makes.
ENCODES = {
    "loop: archive": ("archive video encode", "archive audio encode"),
    "loop: preview": ("preview video", "preview audio"),
    "loop: montage": ("montage",),
}
LOOP_SUFFIXES = {".archive.mkv": "loop: archive", ".preview.mkv": "loop: preview",
                 ".montage.jpg": "loop: montage"}  # fmt: skip
TOOL_CHECKS = {"-version", "-encoders", "-demuxers"}
RAW = re.compile(r"/raw/([^/]+)$")
WORK = re.compile(r"/work/files/(\d+)/")


def _probe(args: Sequence[str]) -> str:
    text, source = " ".join(args), args[-1]
    on_raw = RAW.search(source) is not None
    if "packet=pts_time,flags" in text:
        return "SSIM measurement"  # the keyframe search before a sample point
    if ".trial." in source:
        return "trial copy"
    if "frame=" in text or "-show_frames" in args:
        return "stream facts (idet, frame times, decoded audio)"
    if "packet=stream_index" in text:
        if on_raw:
            return "packet pass"
        return "part packet counts" if ".partial" in source else "verification probes"
    if "-show_format" in args:
        return "header probe" if on_raw else "verification probes"
    return "other"


def _output(args: Sequence[str]) -> str:
    output = Path(args[-1].removeprefix("file:"))
    folder, name = output.parent.name, output.name
    if "montage" in output.parts:  # its image, or one of the frames it is tiled from
        return "montage"
    if folder not in ("archive", "preview"):
        return "other"
    if name in ("archive.mkv", "preview.mkv"):
        return f"mux {folder}"
    if ".trial." in name:
        return "trial copy"
    if ".partial" in name:
        kind = "video" if "-c:v" in args else "audio"
        return f"archive {kind} encode" if folder == "archive" else f"preview {kind}"
    return "other"


def category(args: Sequence[str]) -> str:
    program, text = args[0], " ".join(args)
    for suffix, name in LOOP_SUFFIXES.items():
        if args[-1].endswith(suffix):
            return name
    if program == "mkvpropedit":
        return "propedit"
    if TOOL_CHECKS & set(args) and len(args) <= 3:
        return "tool checks"
    if program == "ffprobe":
        return _probe(args)
    if "idet" in text:
        return "stream facts (idet, frame times, decoded audio)"
    if "ssim" in text:
        return "SSIM measurement"
    return _output(args)


def files_of(commands: Sequence[Sequence[str]]) -> list[str | None]:
    """The raw file each command worked on (None: no file, the daemon's tool checks): named
    in its arguments, or, for a command on our own files only, the raw file of the commands
    that worked in the same folder of work/files/."""
    folders: dict[str, str] = {}
    found: list[tuple[str | None, str | None]] = []
    for args in commands:
        raw = next((match[1] for arg in args if (match := RAW.search(arg))), None)
        work = next((match[1] for arg in args if (match := WORK.search(arg))), None)
        if raw and work:
            folders[work] = raw
        found.append((raw, work))
    return [raw or (folders.get(work) if work else None) for raw, work in found]
