"""Describing a raw file: ffprobe's JSON plus one streamed pass over its packets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from videoarchiver.errors import ProbeError, ProcessError
from videoarchiver.picture_facts import with_picture_facts
from videoarchiver.planning.commands import (
    RawInput,
    decoded_audio_args,
    packet_args,
    probe_args,
)
from videoarchiver.planning.packets import PacketTally
from videoarchiver.planning.probe import Probe, parse_probe, without_filename
from videoarchiver.planning.timing import audio_decoded_first, count_samples, set_decoded
from videoarchiver.processes import ProcessRunner, each_line, read_output

NO_DATA = "no audio or video data in the file"


@dataclass(frozen=True)
class Probed:
    probe: Probe  # without the video and audio streams that hold no data
    packets: PacketTally
    json: str
    notes: tuple[str, ...] = ()  # what was left out, and why


async def count_packets(run: ProcessRunner, path: Path | RawInput) -> PacketTally:
    """One packet pass over `path`, run by `run` (as every ffprobe and ffmpeg here)."""
    tally = PacketTally()
    warnings = await each_line(run, packet_args(path), tally.feed, "ffprobe packet pass")
    tally.truncated = any("partial file" in line for line in warnings)
    return tally


async def measure_decoded_audio(
    run: ProcessRunner, path: Path | RawInput, probe: Probe, tally: PacketTally
) -> None:
    """Decode every audio stream (only those) and keep what each decodes to in `tally`."""
    samples: dict[int, int] = {}
    await each_line(
        run,
        decoded_audio_args(path),
        lambda lines: count_samples(samples, lines),
        "decoding the audio",
    )
    set_decoded(tally, probe, samples)


async def read_header(run: ProcessRunner, path: RawInput) -> bytes:
    """ffprobe's JSON of the file's format, streams and chapters (no packet pass), without
    the path it was given."""
    try:
        return without_filename(await read_output(run, probe_args(path), "ffprobe"))
    except ProcessError as exc:
        raise ProbeError(f"not a readable media file: {exc}") from exc


async def probe_file(run: ProcessRunner, path: RawInput, header: bytes | None = None) -> Probed:
    """Probe a file that must hold audio or video (its `header` when already read by
    `read_header`); anything else is a ProbeError."""
    raw_json = header if header is not None else await read_header(run, path)
    probe = parse_probe(raw_json)
    if not probe.has_media:
        raise ProbeError(f"{NO_DATA}: it has no audio or video stream")
    try:
        packets = await count_packets(run, path)
    except ProcessError as exc:
        raise ProbeError(f"cannot read the packets: {exc}") from exc
    with_data, notes = probe.without_empty(packets)
    if not with_data.has_media:
        if any("cannot decode" in note for note in notes):
            raise ProbeError("nothing this ffmpeg can decode: " + "; ".join(notes))
        raise ProbeError(f"{NO_DATA}: every stream is empty (cut before its first frame?)")
    if audio_decoded_first(with_data):
        await measure_decoded_audio(run, path, with_data, packets)
    described = await with_picture_facts(run, path, with_data, packets)
    return Probed(described, packets, raw_json.decode("utf-8", "replace"), tuple(notes))
