"""The archive, the preview and the montage of one file, made by the worker's processor
(`Processor.process`, as the scheduler runs it) on the fake runner and the in-memory store
(`videoarchiver.testing`): the commands they issue and the states they record, in
milliseconds, without ffmpeg."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path

import pytest

from videoarchiver.config import Config
from videoarchiver.discovery import RawFile
from videoarchiver.identity import fingerprint
from videoarchiver.layout import Layout
from videoarchiver.output_kinds import names
from videoarchiver.planning.montage import grid_size, tile_size
from videoarchiver.planning.packets import PACKET_ENTRIES
from videoarchiver.planning.preview import shown_size
from videoarchiver.planning.probe import parse_probe
from videoarchiver.progress import ProgressHub
from videoarchiver.runtime import Load, Runtime
from videoarchiver.scheduler import Scheduler
from videoarchiver.state import FileState, JobState, OutputState, Worker
from videoarchiver.testing import FakeRunner, MemoryStore, Rule, transcript

pytestmark = pytest.mark.anyio
DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2"
SECONDS = 2
FRAMES = 25 * SECONDS  # video packets: 25 a second, a keyframe a second
AUDIO = 94  # AAC packets of 1024 samples at 48 kHz: 2.005 s
PROBE = "-show_format"  # what an ffprobe of a file's header asks
PACKETS = ("-show_entries", PACKET_ENTRIES)


def _video(stream: int, size: int) -> Iterator[str]:
    for n in range(FRAMES):
        flags = "K__" if n % 25 == 0 else "___"
        yield f"{stream}|{n * 0.04:.6f}|{n * 0.04:.6f}|0.040000|{size}|{flags}"


def _audio(stream: int, size: int) -> Iterator[str]:
    step = 1024 / 48000
    for n in range(AUDIO):
        yield f"{stream}|{n * step:.6f}|{n * step:.6f}|{step:.6f}|{size}|K__"


def _listing(*streams: Iterator[str]) -> bytes:
    """A packet pass's output (`ffprobe -show_entries packet=…`), stream after stream."""
    return "".join(f"{line}\n" for lines in streams for line in lines).encode()


def _probe(video: dict[str, object], audio: dict[str, object], format_name: str) -> bytes:
    """ffprobe's JSON of a file with one video and one audio stream of SECONDS."""
    timed = {"start_time": "0.000000", "duration": f"{SECONDS:.6f}"}
    streams = [
        {"index": 0, "codec_type": "video", "width": 320, "height": 240, "pix_fmt": "yuv420p",
         "avg_frame_rate": "25/1", "r_frame_rate": "25/1", "field_order": "progressive",
         "sample_aspect_ratio": "1:1", **timed, **video},
        {"index": 1, "codec_type": "audio", "sample_rate": "48000", "channels": 2,
         "channel_layout": "stereo", **timed, **audio},
    ]  # fmt: skip
    return json.dumps(
        {"streams": streams, "format": {"format_name": format_name, **timed}}
    ).encode()


RAW_PROBE = _probe({"codec_name": "h264"}, {"codec_name": "aac"}, DEMUXERS)


def _sheet() -> bytes:
    """ffprobe's JSON of the montage sheet of the raw video as planned: N×N tiles."""
    settings = Config().montage
    n = grid_size(SECONDS, settings.min_n, settings.max_n)
    stream = parse_probe(RAW_PROBE).streams[0]
    width, height = tile_size(shown_size(stream), settings.max_tile_width, n)
    image = {"index": 0, "codec_type": "video", "codec_name": "mjpeg", "width": n * width,
             "height": n * height}  # fmt: skip
    return json.dumps({"streams": [image], "format": {"format_name": "image2"}}).encode()


def _rules() -> list[Rule]:
    """What ffprobe, ffmpeg and mkvpropedit say of the raw file and of what is made of it."""
    muxed = _listing(_video(0, 300), _audio(1, 40))
    return [
        # The raw file: large packets, so that every encode saves enough.
        Rule("ffprobe", "*/raw/*", PACKETS, stdout=_listing(_video(0, 5000), _audio(1, 400))),
        # Each encode's part holds its one stream.
        Rule("ffprobe", "*/s0.partial0.mkv", PACKETS, stdout=_listing(_video(0, 300))),
        Rule("ffprobe", "*/s1.partial0.mkv", PACKETS, stdout=_listing(_audio(0, 40))),
        Rule("ffprobe", "*/audio.partial0.mkv", PACKETS, stdout=_listing(_audio(0, 40))),
        Rule("ffprobe", "*/archive.mkv", PACKETS, stdout=muxed),
        Rule("ffprobe", "*/preview.mkv", PACKETS, stdout=muxed),
        Rule("ffprobe", "*/archive.mkv", (PROBE,),
             stdout=_probe({"codec_name": "h264"}, {"codec_name": "opus"}, "matroska,webm")),
        Rule("ffprobe", "*/preview.mkv", (PROBE,),
             stdout=_probe({"codec_name": "av1"}, {"codec_name": "opus"}, "matroska,webm")),
        # The archive's video is measured at its keyframes.
        Rule("ffprobe", "*/s0.mkv", ("packet=pts_time,flags",), stdout=b"0.000000,K__\n"),
        Rule("ffmpeg", "-", ("-filter_complex",),
             stdout=b"n:1 Y:0.98 U:0.99 V:0.99 All:0.985 (18.3)\n" * 3),
        # Every ffmpeg writes its output; encodes report their progress.
        Rule("ffmpeg", "*.mkv", stdout=transcript(SECONDS, 1_000), creates=b"matroska"),
        Rule("ffmpeg", "*.jpg", creates=b"jpeg"),
        Rule("ffprobe", "*/s0.jpg", (PROBE,), stdout=_sheet()),
    ]  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    Layout(tmp_path).create()
    (tmp_path / "raw" / "clip.mp4").write_bytes(b"raw bytes of a clip" * 100)
    return tmp_path


async def _process(root: Path, runner: FakeRunner) -> tuple[MemoryStore, int]:
    """Register, claim and process `raw/clip.mp4`; the store and the file's id."""
    store = MemoryStore()
    worker = Worker("w", "host", 1, time.time(), time.time())
    layout = Layout(root)
    rt = Runtime.create(layout, Config(), store, worker, ProgressHub(), DEMUXERS, runner)
    path = layout.raw / "clip.mp4"
    stat = path.stat()
    await store.add_file("clip.mp4", stat.st_size, stat.st_mtime_ns, await fingerprint(path),
                         "clip", probe=RAW_PROBE.decode())  # fmt: skip
    row = await store.claim(worker.id, 60.0)
    assert row is not None
    raw = RawFile(layout.raw, "clip.mp4", stat.st_size, stat.st_mtime_ns)
    await Scheduler(rt).processor.process(row, raw, Load(0, set(names()), lambda: None))
    return store, row.id


def _writing(runner: FakeRunner, target: str) -> tuple[str, ...]:
    """The one ffmpeg that wrote the file at `target` (a glob)."""
    [call] = runner.of("ffmpeg", target)
    return call.args


def _options(args: Sequence[str], name: str) -> list[str]:
    """The values `args` give option `name`, in order."""
    return [value for option, value in pairwise(args) if option == name]


async def test_a_file_is_archived_previewed_and_montaged_by_the_commands_planned(
    root: Path,
) -> None:
    runner = FakeRunner(_rules())
    store, file_id = await _process(root, runner)
    assert (await store.get_file(file_id)).state is FileState.DONE
    outputs = await store.outputs(file_id)
    assert {kind: (row.state, row.path) for kind, row in outputs.items()} == {
        "archive": (OutputState.DONE, "archive/clip.mkv"),
        "preview": (OutputState.DONE, "preview/clip.mkv"),
        "montage": (OutputState.DONE, "screenshot/clip.jpg"),
    }
    assert (root / "archive" / "clip.mkv").read_bytes() == b"matroska", "published as made"
    assert (root / "screenshot" / "clip.jpg").read_bytes() == b"jpeg"
    # The archive: each stream encoded on its own, then muxed from the parts by copy.
    video = _writing(runner, "*/archive/s0.partial0.mkv")
    audio = _writing(runner, "*/archive/s1.partial0.mkv")
    assert (_options(video, "-map"), _options(video, "-c:v")) == (["0:0"], ["libx264"])
    assert (_options(audio, "-map"), _options(audio, "-c:a")) == (["0:1"], ["libopus"])
    mux = _writing(runner, "*/archive/archive.mkv")
    assert (_options(mux, "-map"), _options(mux, "-c")) == (["1:0", "2:0"], ["copy"])
    # The preview: AV1 and Opus; the montage: a JPEG sheet.
    preview = _writing(runner, "*/preview/s0.partial0.mkv")
    assert _options(preview, "-c:v") == ["libsvtav1"]
    assert _options(_writing(runner, "*/preview/audio.partial0.mkv"), "-c:a") == ["libopus"]
    assert _options(_writing(runner, "*/montage/s0.jpg"), "-c:v") == ["mjpeg"]
    # Every file is named to ffmpeg as a `file:` URL, never as a bare path.
    for call in runner.calls:
        assert all(url.startswith("file:") for url in _options(call.args, "-i")), call
        assert call.target == "-" or call.args[-1].startswith("file:"), call
    jobs = await store.jobs(file_id, "archive")
    assert {index: job.state for index, job in jobs.items()} == {0: JobState.DONE, 1: JobState.DONE}
    assert jobs[0].figures.ssim_mean == pytest.approx(0.985), "the video's quality measured"
    assert jobs[0].figures.out_bytes == FRAMES * 300, "the encode's packets counted"
    previewed = await store.jobs(file_id, "preview")
    assert {i: (j.stream_type, j.state) for i, j in previewed.items()} == {
        0: ("video", JobState.DONE), 1: ("audio", JobState.DONE)
    }  # fmt: skip
    [sheet] = (await store.jobs(file_id, "montage")).values()
    assert (sheet.state, sheet.figures.path) == (JobState.DONE, "screenshot/clip.jpg")


async def test_an_encode_that_fails_fails_its_output_with_ffmpeg_s_reason(root: Path) -> None:
    runner = FakeRunner(_rules())
    runner.add(
        Rule("ffmpeg", "*/archive/s1.partial0.mkv", returncode=1, stderr=(
            "[aac @ 0x5580] channel element 2.0 is not allocated",
            "Error while decoding stream #0:1: Invalid data found when processing input",
        ))
    )  # fmt: skip
    store, file_id = await _process(root, runner)
    reason = "stream 1: archive encode of stream 1 failed: channel element 2.0 is not allocated"
    failed = await store.get_file(file_id)
    assert (failed.state, failed.error) == (FileState.FAILED, f"archive: {reason}")
    assert failed.error_detail is not None, "with ffmpeg's whole words"
    assert "Invalid data found when processing input" in failed.error_detail
    outputs = await store.outputs(file_id)
    assert (outputs["archive"].state, outputs["archive"].error) == (OutputState.FAILED, reason)
    assert (outputs["preview"].state, outputs["montage"].state) == (OutputState.DONE,) * 2
    assert runner.of("ffmpeg", "*/archive.mkv") == [], "no mux of a stream that failed"
    [audio] = [job for job in (await store.jobs(file_id, "archive")).values() if job.stream_index]
    assert audio.state is JobState.FAILED and audio.figures.error is not None
