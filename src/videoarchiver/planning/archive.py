"""Archive planning: one decision per raw stream, and the ffmpeg commands they need.

Video and audio are encoded each in its own process into a part file; everything else is
muxed straight from the raw file, so that nothing is copied twice. A stream that the ratio
rule rejects becomes a COPY decision and is muxed from the raw file as well.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from videoarchiver.config import ArchiveConfig
from videoarchiver.planning.alpha import (
    ALPHA_CODEC,
    ALPHA_CODEC_ARGS,
    ALPHA_COPY_NOTE,
    ALPHA_NOTE,
    alpha_decoder_args,
    alpha_pixel_format,
    has_alpha,
)
from videoarchiver.planning.audio import opus_conversion
from videoarchiver.planning.commands import FFMPEG, PROGRESS, RawInput, url
from videoarchiver.planning.hdr import hdr_plan, raw_only
from videoarchiver.planning.interlace import field_pixel_format, interlaced_args, stream_fields
from videoarchiver.planning.orientation import UPRIGHT, Turn, stream_turn
from videoarchiver.planning.pixels import archive_pixel_format
from videoarchiver.planning.probe import NO_DECODER, Probe, Stream


class Action(StrEnum):
    ENCODE = "encode"
    COPY = "copy"
    CONVERT = "convert"
    ATTACH = "attach"  # cover art, stored the Matroska way: an image attachment
    DROP = "drop"


@dataclass(frozen=True)
class StreamDecision:
    """What happens to one raw stream; `notes` are recorded for the user to read."""

    index: int
    kind: str
    action: Action
    codec: str | None = None
    args: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # How a video stream is shown (None: its display matrix is no rotation or mirror).
    turn: Turn | None = UPRIGHT
    # Input options the encode needs to decode the whole stream (its alpha channel).
    decoder_args: tuple[str, ...] = ()
    # What stays true of the stream when the raw stream is kept instead of the encode.
    copy_notes: tuple[str, ...] = ()
    # mkvpropedit's settings of the archive's track (what ffmpeg 5.1's muxer cannot write).
    track: tuple[str, ...] = ()

    def fallback_to_copy(self, reason: str) -> StreamDecision:
        """The raw stream kept as it is: what the encode would have changed is no note."""
        notes = (reason, *turn_notes(self.turn, Action.COPY), *self.copy_notes)
        return replace(self, action=Action.COPY, codec=None, args=(), notes=notes, decoder_args=())


def turn_notes(turn: Turn | None, action: Action) -> tuple[str, ...]:
    """What becomes of a video stream's display rotation (the archive is shown as
    the raw is): an encode turns the pixels upright, a copy keeps it in the track."""
    if turn is None:
        if action is Action.COPY:
            return ("its display matrix is no rotation or mirror: Matroska cannot keep it",)
        return ("its display matrix is no rotation or mirror: encoded as ffmpeg shows it",)
    if turn.upright:
        return ()
    if action is Action.COPY:
        return (f"{turn.describe} kept in the track",)
    return (f"{turn.describe} applied to the pixels",)


# Subtitle codecs Matroska holds as they are.
MATROSKA_SUBTITLES = frozenset(
    {"subrip", "ass", "ssa", "webvtt", "text", "dvd_subtitle", "hdmv_pgs_subtitle",
     "dvb_subtitle", "hdmv_text_subtitle", "arib_caption"}
)  # fmt: skip
# Text subtitles Matroska cannot hold but ffmpeg can rewrite as SubRip without losing text.
TEXT_SUBTITLES = frozenset(
    {"mov_text", "microdvd", "subviewer", "subviewer1", "sami", "realtext", "jacosub", "mpl2",
     "pjs", "stl", "vplayer", "eia_608"}
)  # fmt: skip
# Cover-art codecs → (file extension, MIME type): Matroska keeps cover art as an attachment,
# and ffmpeg reads attachments of these types back as cover art.
PICTURES = {
    "mjpeg": ("jpg", "image/jpeg"),
    "png": ("png", "image/png"),
    "bmp": ("bmp", "image/bmp"),
    "gif": ("gif", "image/gif"),
    "tiff": ("tif", "image/tiff"),
    "webp": ("webp", "image/webp"),
}
# Dispositions ffmpeg's `-disposition` accepts (ffprobe may print newer ones).
DISPOSITIONS = (
    "default", "dub", "original", "comment", "lyrics", "karaoke", "forced", "hearing_impaired",
    "visual_impaired", "clean_effects", "attached_pic", "timed_thumbnails", "captions",
    "descriptions", "metadata", "dependent", "still_image",
)  # fmt: skip
# Statistics tags (mkvmerge, ffmpeg) that describe the raw encoding and would lie afterwards.
STALE_TAGS = frozenset(
    {"DURATION", "BPS", "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES", "ENCODER", "_STATISTICS_TAGS",
     "_STATISTICS_WRITING_APP", "_STATISTICS_WRITING_DATE_UTC"}
)  # fmt: skip
# ffprobe's colour names → ffmpeg's option names, for every value the options accept.
_SAME = ("bt709", "smpte170m", "smpte240m", "bt470bg")
COLOUR_NAMES: dict[str, tuple[str, dict[str, str]]] = {
    "color_primaries": (
        "-color_primaries",
        {n: n for n in (*_SAME, "bt470m", "film", "bt2020", "smpte428", "smpte431", "smpte432",
                        "jedec-p22", "ebu3213")},
    ),
    "color_transfer": (
        "-color_trc",
        {n: n for n in (*_SAME, "gamma22", "gamma28", "linear", "log100", "log316",
                        "iec61966-2-4", "bt1361e", "iec61966-2-1", "bt2020-10", "bt2020-12",
                        "smpte2084", "smpte428", "arib-std-b67")},
    ),
    "color_space": (
        "-colorspace",
        {"gbr": "rgb"} | {n: n for n in (*_SAME, "fcc", "ycgco", "bt2020nc", "bt2020c",
                                         "smpte2085", "chroma-derived-nc", "chroma-derived-c",
                                         "ictcp")},
    ),
    "color_range": ("-color_range", {"tv": "tv", "pc": "pc"}),
}  # fmt: skip


# swscale converts RGB with the BT.601 matrix into limited range: the archive says so.
RGB_CONVERSION = {"color_space": "smpte170m", "color_range": "tv"}


def _colour_args(stream: Stream, from_rgb: bool) -> list[str]:
    """Carry the colour tags over; an RGB source gets the matrix and range swscale gives it."""
    overrides = RGB_CONVERSION if from_rgb else {}
    args: list[str] = []
    for field, (option, names) in COLOUR_NAMES.items():
        value = overrides.get(field) or names.get(getattr(stream, field) or "")
        if value:
            args += [option, value]
    return args


def stream_kind(stream: Stream) -> str:
    return "attached_pic" if stream.is_attached_picture else stream.codec_type


def _video(stream: Stream, config: ArchiveConfig) -> StreamDecision:
    turn = stream_turn(stream)
    kept = raw_only(stream)
    if kept is not None:
        why = (kept, *turn_notes(turn, Action.COPY))
        return StreamDecision(stream.index, "video", Action.COPY, notes=why, turn=turn)
    args: list[str] = []
    notes: list[str] = []
    fields, hdr = stream_fields(stream), hdr_plan(stream, config.video_codec)
    choice = archive_pixel_format(stream.pix_fmt, stream.width, stream.height)
    choice = field_pixel_format(choice, fields, stream.height)
    if choice is not None:
        args += ["-pix_fmt", choice.pix_fmt]
        notes += choice.notes
    args += _colour_args(stream, from_rgb=choice is not None and choice.from_rgb)
    args += ["-fps_mode", "passthrough"]
    args += [*interlaced_args(fields), *hdr.args]
    notes += [*fields.notes, *hdr.notes, *turn_notes(turn, Action.ENCODE)]
    return StreamDecision(
        stream.index, "video", Action.ENCODE, config.video_codec, tuple(args), tuple(notes), turn,
        track=hdr.track,
    )  # fmt: skip


def _alpha_video(stream: Stream) -> StreamDecision:
    """A picture with an alpha channel, kept whole: FFV1, lossless (or the raw stream, by the
    ratio rule)."""
    args = ["-pix_fmt", alpha_pixel_format(stream), *_colour_args(stream, from_rgb=False)]
    turn = stream_turn(stream)
    return StreamDecision(
        stream.index, "video", Action.ENCODE, ALPHA_CODEC,
        (*ALPHA_CODEC_ARGS, *args, "-fps_mode", "passthrough"),
        (ALPHA_NOTE, *turn_notes(turn, Action.ENCODE)), turn,
        decoder_args=alpha_decoder_args(stream), copy_notes=(ALPHA_COPY_NOTE,),
    )  # fmt: skip


def _audio(stream: Stream, config: ArchiveConfig) -> StreamDecision:
    if config.audio_codec != "libopus":
        return StreamDecision(stream.index, "audio", Action.ENCODE, config.audio_codec)
    conversion = opus_conversion(stream.sample_rate, stream.channels, stream.channel_layout)
    return StreamDecision(
        stream.index, "audio", Action.ENCODE, config.audio_codec, conversion.args, conversion.notes
    )


def decide_stream(stream: Stream, config: ArchiveConfig) -> StreamDecision:
    kind = stream_kind(stream)
    if stream.codec_name in NO_DECODER and kind in ("video", "audio"):
        note = "ffmpeg knows no decoder for this stream: kept as it is"
        turn = stream_turn(stream) if kind == "video" else UPRIGHT
        notes = (note, *turn_notes(turn, Action.COPY))
        return StreamDecision(stream.index, kind, Action.COPY, notes=notes, turn=turn)
    if kind == "video":
        return _alpha_video(stream) if has_alpha(stream) else _video(stream, config)
    if kind == "audio":
        return _audio(stream, config)
    if kind == "attached_pic" and stream.codec_name in PICTURES:
        return StreamDecision(stream.index, kind, Action.ATTACH, stream.codec_name)
    if kind == "attachment":
        return StreamDecision(stream.index, kind, Action.COPY)
    if kind == "subtitle" and stream.codec_name in MATROSKA_SUBTITLES:
        return StreamDecision(stream.index, kind, Action.COPY)
    if kind == "subtitle" and stream.codec_name in TEXT_SUBTITLES:
        note = f"{stream.codec_name} subtitles stored as SubRip (Matroska cannot hold them)"
        return StreamDecision(stream.index, kind, Action.CONVERT, "srt", notes=(note,))
    name = stream.codec_tag_string if stream.codec_name in NO_DECODER else stream.codec_name
    note = f"stream {stream.index} ({kind} {name}) dropped: Matroska cannot hold it"
    return StreamDecision(stream.index, kind, Action.DROP, notes=(note,))


def plan_archive(probe: Probe, config: ArchiveConfig) -> list[StreamDecision]:
    decisions = [decide_stream(stream, config) for stream in probe.streams]
    timecode = dropped_timecode(probe, decisions)
    if timecode is None:
        return decisions
    index, value = timecode
    where = "the first video track's" if _timecode_track(decisions) is not None else "the file's"
    kept = f"its start timecode {value} is kept as {where} TIMECODE tag"
    return [
        replace(d, notes=tuple(f"{note}; {kept}" for note in d.notes)) if d.index == index else d
        for d in decisions
    ]


def dropped_timecode(probe: Probe, decisions: Sequence[StreamDecision]) -> tuple[int, str] | None:
    """(stream index, timecode) of the first dropped stream with a start timecode: QuickTime's
    `tmcd` track, which Matroska cannot hold; its timecode is kept as a `TIMECODE` tag."""
    streams = {stream.index: stream for stream in probe.streams}
    for decision in decisions:
        timecode = _tag(streams[decision.index].tags, "timecode")
        if decision.action is Action.DROP and timecode:
            return decision.index, timecode
    return None


def _tag(tags: dict[str, str], name: str) -> str | None:
    return next((value for key, value in tags.items() if key.lower() == name), None)


def _timecode_track(decisions: Sequence[StreamDecision]) -> int | None:
    """The output number of the track the timecode goes on: the first kept video track
    (None: the file has none, the timecode is the file's)."""
    kept = [d for d in decisions if d.action not in (Action.DROP, Action.ATTACH)]
    return next((out for out, d in enumerate(kept) if d.kind == "video"), None)


# A time zone at the end of a date: `Z`, `+02:00`, `-0500`.
ZONE = re.compile(r"(Z|[+-]\d\d:?\d\d)$", re.IGNORECASE)
RECORDED = "DATE_RECORDED"


def metadata_args(probe: Probe, decisions: Sequence[StreamDecision]) -> list[str]:
    """What the archive's tags need beyond the raw's, mapped: a dropped tmcd track's start
    timecode (`dropped_timecode`), and a creation time written without a zone (AVI's
    IDIT, a Matroska CREATION_TIME tag: local time) kept as it is, as the DATE_RECORDED tag,
    where ffmpeg 5.1 would turn it into Matroska's date, which is UTC."""
    args: list[str] = []
    timecode = dropped_timecode(probe, decisions)
    kept = [probe.stream(d.index) for d in decisions if d.action is not Action.DROP]
    # ffmpeg gives the video stream that refers to the tmcd track its timecode: mapped.
    if timecode is not None and not any(_tag(stream.tags, "timecode") for stream in kept):
        track = _timecode_track(decisions)
        args += [
            "-metadata" if track is None else f"-metadata:s:{track}",
            f"timecode={timecode[1]}",
        ]
    tags = probe.format.tags
    created = next((key for key in tags if key.lower() == "creation_time"), None)
    if created and not ZONE.search(tags[created].strip()) and not _tag(tags, RECORDED.lower()):
        args += ["-metadata", f"{created}=", "-metadata", f"{RECORDED}={tags[created].strip()}"]
    return args


def codec_args(decision: StreamDecision, config: ArchiveConfig) -> Sequence[str]:
    """The configured encoder options, for the configured encoders only: an encoder chosen
    for the stream (FFV1 for alpha) has all it needs in the decision."""
    if decision.codec == config.video_codec:
        return config.video_args
    return config.audio_args if decision.codec == config.audio_codec else ()


def encode_args(
    raw: RawInput, decision: StreamDecision, codec_args: Sequence[str], output: Path
) -> list[str]:
    """One stream, encoded on its own.

    Not `-copyts`: ffmpeg 5.1 then reports progress relative to the first time it printed,
    which breaks the ratio rule. Without it the part's timestamps are relative to the raw
    file's start, which `mux_args` reproduces for the streams it takes from the raw file.
    """
    letter = "v" if decision.kind == "video" else "a"
    return [
        *FFMPEG, *decision.decoder_args, *raw.args(),
        "-map", f"0:{decision.index}", "-map_metadata", "-1", "-map_chapters", "-1",
        f"-c:{letter}", str(decision.codec), *joined_params(codec_args, decision.args),
        *PROGRESS, "-f", "matroska", url(output),
    ]  # fmt: skip


def joined_params(codec_args: Sequence[str], args: Sequence[str]) -> list[str]:
    """The configured encoder options, then the decision's; an encoder's parameter list
    (`-x264-params`) given in both becomes one, the decision's last: ffmpeg would keep only
    the last of two."""
    joined, extra = list(codec_args), []
    index = 0
    while index < len(args):
        option = args[index]
        if option.endswith("-params") and index + 1 < len(args) and option in joined[:-1]:
            at = max(i for i, arg in enumerate(joined[:-1]) if arg == option)
            joined[at + 1] += ":" + args[index + 1]
            index += 2
        else:
            extra.append(option)
            index += 1
    return joined + extra


TRIAL_PACKETS = 25


def copy_trial_args(raw: RawInput, index: int, kind: str, output: Path) -> list[str]:
    """The first packets of one raw stream copied into Matroska: fails when the muxer cannot
    hold the stream as it is."""
    letter = "v" if kind == "video" else "a"
    return [
        *FFMPEG, "-copyts", "-fflags", "+genpts", *raw.args(), "-map", f"0:{index}", "-c", "copy",
        "-copyinkf", f"-frames:{letter}", str(TRIAL_PACKETS), "-f", "matroska", url(output),
    ]  # fmt: skip


def _disposition(stream: Stream) -> str:
    return "+".join(name for name in DISPOSITIONS if stream.disposition.get(name)) or "0"


def picture_args(raw: RawInput, index: int, output: Path) -> list[str]:
    """The cover art's bytes as they are, into an image file to attach."""
    return [*FFMPEG, *raw.args(), "-map", f"0:{index}", "-c", "copy", "-frames:v", "1",
            "-update", "1", "-f", "image2", url(output)]  # fmt: skip


def picture_name(decision: StreamDecision, number: int) -> str:
    """`cover.jpg`, then `cover_2.png`, …: the names Matroska players look for."""
    extension = PICTURES[str(decision.codec)][0]
    return f"cover.{extension}" if number == 1 else f"cover_{number}.{extension}"


def _copied_attachment_tags(stream: Stream, number: int) -> list[str]:
    """Matroska needs a filename and a MIME type for every attachment: those the raw lacks
    (an APE tag's binary item) are derived."""
    tags = {key.lower(): value for key, value in stream.tags.items()}
    filename = tags.get("filename") or f"attachment_{stream.index}.bin"
    kind, compression = mimetypes.guess_type(filename)  # `.gz`: (None, "gzip")
    mimetype = kind or (f"application/{compression}" if compression else "application/octet-stream")
    spec = f"-metadata:s:t:{number}"
    args = [] if "filename" in tags else [spec, f"filename={filename}"]
    return args + ([] if "mimetype" in tags else [spec, f"mimetype={mimetype}"])


def _attachments(
    streams: dict[int, Stream], decisions: Sequence[StreamDecision], pictures: dict[int, Path]
) -> list[str]:
    """Tags of the attachments copied from the raw file (in raw order), then the cover art
    attached after them: Matroska numbers attachments in that order."""
    args: list[str] = []
    copied = [d for d in decisions if d.kind == "attachment" and d.action is Action.COPY]
    for number, decision in enumerate(copied):
        args += _copied_attachment_tags(streams[decision.index], number)
    attached = [d for d in decisions if d.action is Action.ATTACH]
    for number, decision in enumerate(attached, start=len(copied)):
        spec = f"-metadata:s:t:{number}"
        args += ["-attach", url(pictures[decision.index])]
        args += [spec, f"mimetype={PICTURES[str(decision.codec)][1]}"]
        args += [spec, f"filename={picture_name(decision, number - len(copied) + 1)}"]
        title = streams[decision.index].tags.get("title") or streams[decision.index].tags.get(
            "comment"
        )
        if title:
            args += [spec, f"title={title}"]
    return args


# mkvpropedit exits 1 when it warned (lines starting `Warning:`) and made its edits anyway.
PROPEDIT_DONE = (0, 1)


def projection_args(decisions: Sequence[StreamDecision], output: Path) -> list[str] | None:
    """mkvpropedit's command that sets what ffmpeg 5.1's Matroska muxer drops: each video
    track copied from the raw turned as the raw shows it (the display matrix), and each
    video track's HDR mastering metadata; None when there is nothing to set. `output` is
    one of our own absolute paths: it never reads as an option."""
    videos = [d for d in decisions if d.kind == "video" and d.action is not Action.DROP]
    edits = []
    for number, decision in enumerate(videos, 1):
        turn = decision.turn
        settings = [*decision.track]
        if decision.action is Action.COPY and turn is not None and not turn.upright:
            settings += turn.projection()
        if settings:
            edits += ["--edit", f"track:v{number}", *settings]
    return ["mkvpropedit", "--quiet", str(output), *edits] if edits else None


def mux_args(
    raw: RawInput,
    probe: Probe,
    decisions: Sequence[StreamDecision],
    parts: dict[int, Path],
    output: Path,
    pictures: dict[int, Path] | None = None,
) -> list[str]:
    """The final MKV: kept streams in raw order, metadata, dispositions and chapters of the raw.

    `parts` maps a raw stream index to its encoded part; `pictures` the cover art extracted
    to attach; other kept streams come from the raw.
    """
    start = probe.format.start_time or 0.0
    # Parts start at (stream start − file start); shift the raw input the same way.
    # +genpts: MPEG-PS/TS packets without a pts cannot go into Matroska as they are.
    inputs = ["-copyts", "-fflags", "+genpts", "-itsoffset", f"{-start:.6f}", *raw.args()]
    part_input: dict[int, int] = {}
    for index, path in parts.items():
        part_input[index] = len(part_input) + 1
        inputs += ["-i", url(path)]
    streams = {stream.index: stream for stream in probe.streams}
    maps: list[str] = []
    per_stream: list[str] = []
    kept = [d for d in decisions if d.action not in (Action.DROP, Action.ATTACH)]
    for out, decision in enumerate(kept):
        in_part = decision.index in parts
        maps += ["-map", f"{part_input[decision.index]}:0" if in_part else f"0:{decision.index}"]
        stream = streams[decision.index]
        per_stream += [f"-map_metadata:s:{out}", f"0:s:{decision.index}"]
        per_stream += [f"-disposition:{out}", _disposition(stream)]
        if decision.action is Action.CONVERT:
            per_stream += [f"-c:{out}", str(decision.codec)]
        if in_part:
            for tag in stream.tags:
                if tag.upper() in STALE_TAGS or tag.upper().startswith("NUMBER_OF_"):
                    per_stream += [f"-metadata:s:{out}", f"{tag}="]
    return [
        # -copyinkf: a copied stream keeps the packets before its first keyframe, as in the raw.
        *FFMPEG, *inputs, *maps, "-c", "copy", "-copyinkf", *per_stream,
        *_attachments(streams, decisions, pictures or {}),
        "-map_metadata", "0", *metadata_args(probe, decisions), "-map_chapters", "0",
        "-max_muxing_queue_size", "4096", "-default_mode", "passthrough",
        *PROGRESS, "-f", "matroska", url(output),
    ]  # fmt: skip
