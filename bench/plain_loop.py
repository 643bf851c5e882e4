"""The plain parallel loop a script would run for the same outputs as ours: per file one archive
command (every stream; our archive's codecs and settings), one preview command (each video
scaled to our preview's size for SVT-AV1 at our settings, and the audio mixed into one Opus
stream) and one montage command (our tiles of the first video stream, one decode pass or one
seek as ours would), `cores` commands at a time."""

from __future__ import annotations

import os
import subprocess
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workload import CONFIG

from videoarchiver.config import ArchiveConfig, MontageConfig, PreviewConfig
from videoarchiver.planning.audio import opus_conversion
from videoarchiver.planning.commands import FFMPEG, RawInput, url
from videoarchiver.planning.montage import (
    MontagePlan,
    frame_times,
    grid_size,
    seek_args,
    single_pass_args,
    tile_size,
)
from videoarchiver.planning.preview import PREVIEW_AUDIO_FORMAT, preview_size, shown_size
from videoarchiver.planning.probe import Probe, Stream, parse_probe

ARCHIVE = ArchiveConfig(**tomllib.loads(CONFIG).get("archive", {}))
PREVIEW = PreviewConfig()
MONTAGE = MontageConfig()
QUIET_SVT = {**os.environ, "SVT_LOG": "1"}  # as the daemon runs SVT-AV1: its errors only


def archive_args(source: RawInput, probe: Probe, output: Path) -> list[str]:
    audios = [s for s in probe.streams if s.is_audio]
    conversion = (
        opus_conversion(audios[0].sample_rate, audios[0].channels, audios[0].channel_layout).args
        if audios
        else ()
    )
    return [
        *FFMPEG, *source.args(), "-map", "0", "-c:v", ARCHIVE.video_codec, *ARCHIVE.video_args,
        "-fps_mode", "passthrough", "-c:a", ARCHIVE.audio_codec, *ARCHIVE.audio_args,
        *conversion, "-f", "matroska", url(output),
    ]  # fmt: skip


def preview_args(source: RawInput, probe: Probe, output: Path) -> list[str]:
    videos = [s for s in probe.streams if s.is_video]
    audios = [s for s in probe.streams if s.is_audio]
    graph = [
        f"[0:{s.index}]scale={':'.join(map(str, preview_size(*shown_size(s), PREVIEW.max_side)))}"
        f",setsar=1[v{number}]"
        for number, s in enumerate(videos)
    ]
    maps = [arg for number in range(len(videos)) for arg in ("-map", f"[v{number}]")]
    if audios:
        inputs = "".join(f"[0:{s.index}]" for s in audios)
        mix = f"amix=inputs={len(audios)}:duration=longest," if len(audios) > 1 else ""
        graph.append(f"{inputs}{mix}{PREVIEW_AUDIO_FORMAT}[mix]")
        maps += ["-map", "[mix]"]
    return [
        *FFMPEG, *source.args(), "-filter_complex", ";".join(graph), *maps,
        "-map_metadata", "-1", "-pix_fmt", "yuv420p", "-c:v", PREVIEW.video_codec,
        *PREVIEW.video_args, "-fps_mode", "passthrough", "-c:a", PREVIEW.audio_codec,
        *PREVIEW.audio_args, "-f", "matroska", url(output),
    ]  # fmt: skip


def montage_args(source: RawInput, probe: Probe, video: Stream, output: Path) -> list[str]:
    duration = video.duration or probe.format.duration or 0.0
    n = grid_size(duration, MONTAGE.min_n, MONTAGE.max_n)
    times = tuple(frame_times(duration, n))
    tile = tile_size(shown_size(video), MONTAGE.max_tile_width, n)
    plan = MontagePlan(video.index, n, times, single_pass=n > 1, tile=tile)
    offset = (video.start_time or 0.0) - (probe.format.start_time or 0.0)
    if plan.single_pass:
        return single_pass_args(source, plan, offset, output)
    return seek_args(source, plan, offset + times[0], output)


def loop_commands(raw: Path, out: Path, demuxers: str) -> list[list[str]]:
    """The commands for every file of `raw`, file by file, writing into `out`."""
    commands = []
    for path in sorted(raw.iterdir()):
        probe = parse_probe(subprocess.run(
            ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", path],
            check=True, capture_output=True).stdout)  # fmt: skip
        source = RawInput(path, demuxers)
        commands.append(archive_args(source, probe, out / f"{path.name}.archive.mkv"))
        commands.append(preview_args(source, probe, out / f"{path.name}.preview.mkv"))
        videos = [s for s in probe.streams if s.is_video]
        if videos:
            commands.append(
                montage_args(source, probe, videos[0], out / f"{path.name}.montage.jpg")
            )
    return commands


def run_loop(commands: list[list[str]], programs: dict[str, str], cores: int) -> tuple[float, int]:
    """Run `commands` (each program as `programs` names it) `cores` at a time: the wall time and
    how many failed."""

    def run(args: list[str]) -> bool:
        done = subprocess.run([programs[args[0]], *args[1:]], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=QUIET_SVT, check=False)  # fmt: skip
        return done.returncode != 0

    started = time.monotonic()
    with ThreadPoolExecutor(cores) as pool:
        failed = sum(pool.map(run, commands))
    return time.monotonic() - started, failed
