"""The archive output (SPEC §3): per-stream encodes, the ratio fallback, mux, verify, publish.

Every stream job's decision and figures are recorded as soon as they are known, so a restart
reuses finished parts and a ratio fallback is never tried twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from videoarchiver.errors import VerifyError, VideoArchiverError
from videoarchiver.planning.archive import (
    Action,
    StreamDecision,
    encode_args,
    mux_args,
    plan_archive,
)
from videoarchiver.planning.commands import probe_args
from videoarchiver.planning.paths import archive_path
from videoarchiver.planning.probe import parse_probe
from videoarchiver.planning.ratio import RatioWatch, exceeds_when_finished
from videoarchiver.planning.verify import expected_streams, verify_output
from videoarchiver.probing import count_packets
from videoarchiver.processes import read_output, run_process
from videoarchiver.publishing import publish, sha256_file
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state.database import DONE, FAILED, PUBLISHING, RUNNING

OUTPUT = "archive"
log = logging.getLogger(__name__)


@dataclass
class _StreamResults:
    decisions: dict[int, StreamDecision] = field(default_factory=dict)
    parts: dict[int, Path] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def _record(
    rt: Runtime, source: Source, decision: StreamDecision, state: str, **figures: object
) -> None:
    await rt.state.save_job(
        source.row.id,
        OUTPUT,
        decision.index,
        kind=decision.kind,
        decision=decision.action.value,
        state=state,
        notes=decision.notes,
        **figures,
    )


async def _encode_stream(
    rt: Runtime, source: Source, decision: StreamDecision, work: Path, results: _StreamResults
) -> None:
    """Encode one stream into its part, or settle on copying the raw stream instead."""
    index = decision.index
    part = work / f"s{index}.mkv"
    recorded = (await rt.state.jobs(source.row.id, OUTPUT)).get(index)
    if recorded is not None and recorded.state == DONE:
        if recorded.decision == Action.COPY.value:
            results.decisions[index] = decision.fallback_to_copy(recorded.notes[-1])
            return
        if part.exists():
            results.decisions[index], results.parts[index] = decision, part
            return
    raw = source.probed.packets.get(index)
    figures = {"raw_bytes": raw.bytes, "raw_seconds": raw.duration}
    settings = rt.config.archive
    codec_args = settings.video_args if decision.kind == "video" else settings.audio_args
    partial = work / f"s{index}.encoding.mkv"
    file_start = source.probed.probe.format.start_time or 0.0
    watch = RatioWatch(
        raw.bytes, raw.duration, settings.ratio, settings.grace_seconds,
        start=(raw.start or 0.0) - file_start,
    )  # fmt: skip
    await _record(rt, source, decision, RUNNING, **figures)
    log.info("%s: stream %d %s started (%s)", source.name, index, decision.kind, decision.codec)
    started = time.monotonic()
    try:
        async with rt.ffmpeg_slots:
            result = await run_process(
                encode_args(source.path, decision, codec_args, partial), watch.feed
            )
        result.check(f"{decision.codec} encode of stream {index}")
        fallback = watch.reason
        if fallback is None:
            counted = (await count_packets(partial)).get(0)
            figures |= {"out_bytes": counted.bytes, "out_seconds": counted.duration}
            if raw.bytes:
                figures["ratio"] = counted.bytes / raw.bytes
            if exceeds_when_finished(counted.bytes, raw.bytes, settings.ratio):
                fallback = f"finished at {counted.bytes} bytes > {settings.ratio} × {raw.bytes}"
            elif decision.kind == "video" and counted.nonempty < raw.nonempty:
                fallback = f"decoder gave {counted.nonempty} of {raw.nonempty} frames"
    except (VideoArchiverError, OSError) as exc:
        partial.unlink(missing_ok=True)
        message = f"stream {index}: {exc}"
        await _record(rt, source, decision, FAILED, error=message, **figures)
        results.errors.append(message)
        return
    figures["wall_seconds"] = time.monotonic() - started
    if fallback is not None:
        partial.unlink(missing_ok=True)
        decision = decision.fallback_to_copy(f"raw stream kept (ratio rule): {fallback}")
        log.info("%s: stream %d ratio fallback, %s", source.name, index, fallback)
    else:
        partial.rename(part)
        results.parts[index] = part
        log.info("%s: stream %d encoded, %s", source.name, index, figures)
    results.decisions[index] = decision
    await _record(rt, source, decision, DONE, **figures)


async def _verify(source: Source, decisions: list[StreamDecision], muxed: Path) -> None:
    probe = parse_probe(await read_output(probe_args(muxed), "ffprobe of the archive"))
    packets = await count_packets(muxed)
    expected = expected_streams(source.probed.probe, decisions, source.probed.packets)
    problems = verify_output(expected, probe, packets)
    if problems:
        raise VerifyError(f"archive left in {muxed}: " + "; ".join(problems))


async def make_archive(rt: Runtime, source: Source) -> None:
    """Build, verify and publish `archive/<stem>.mkv`; raises VideoArchiverError on failure."""
    try:
        await _make_archive(rt, source)
    except (VideoArchiverError, OSError) as exc:
        await rt.state.set_output(source.row.id, OUTPUT, FAILED, error=str(exc))
        raise


async def _make_archive(rt: Runtime, source: Source) -> None:
    work = rt.layout.file_work(source.row.id, OUTPUT)
    work.mkdir(parents=True, exist_ok=True)
    planned = plan_archive(source.probed.probe, rt.config.archive)
    results = _StreamResults()
    async with anyio.create_task_group() as group:
        for decision in planned:
            if decision.action is Action.ENCODE:
                group.start_soon(_encode_stream, rt, source, decision, work, results)
            else:
                results.decisions[decision.index] = decision
                await _record(rt, source, decision, DONE)
    if results.errors:
        raise VideoArchiverError("; ".join(results.errors))
    decisions = [results.decisions[d.index] for d in planned]
    await rt.state.set_warnings(
        source.row.id, [n for d in decisions for n in d.notes if d.action is Action.DROP]
    )
    await rt.state.set_output(source.row.id, OUTPUT, RUNNING)
    muxed = work / "archive.mkv"
    async with rt.ffmpeg_slots:
        result = await run_process(
            mux_args(source.path, source.probed.probe, decisions, results.parts, muxed),
            lambda _chunk: False,
        )
    result.check("archive mux")
    await _verify(source, decisions, muxed)
    destination = archive_path(rt.layout.root, source.row.stem)
    sha256 = await sha256_file(muxed)
    size = muxed.stat().st_size
    await rt.state.set_output(
        source.row.id, OUTPUT, PUBLISHING, path=str(destination), size=size, sha256=sha256
    )
    await publish(muxed, destination, sha256)
    await rt.state.set_output(source.row.id, OUTPUT, DONE, error=None)
    log.info("%s: archive done, %d bytes → %s", source.name, size, destination)
