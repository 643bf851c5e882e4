"""The archive output: per-stream encodes, the ratio fallback, mux, verify, publish.

Every stream job's decision and figures are recorded as soon as they are known, so a restart
reuses finished parts and a ratio fallback is never tried twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio

from videoarchiver.errors import ProcessError, VideoArchiverError
from videoarchiver.measuring import measure_quality
from videoarchiver.outputs import mux_verify_publish
from videoarchiver.planning.archive import (
    PICTURES,
    TRIAL_PACKETS,
    Action,
    StreamDecision,
    codec_args,
    copy_trial_args,
    encode_args,
    mux_args,
    picture_args,
    plan_archive,
    projection_args,
)
from videoarchiver.planning.commands import frame_time_args, probe_args
from videoarchiver.planning.probe import parse_probe
from videoarchiver.planning.progress import ProgressUpdate
from videoarchiver.planning.ratio import RatioWatch, fallback_reason, kept_raw_note
from videoarchiver.planning.timing import copy_timing_reason, frame_times, hidden_reason
from videoarchiver.planning.verify import expected_streams
from videoarchiver.probing import count_packets
from videoarchiver.processes import each_line, read_output
from videoarchiver.resuming import Encoded, encode_resumable
from videoarchiver.runtime import Runtime, Source
from videoarchiver.space import short_of_space
from videoarchiver.state import CLEARED, Figures, JobState
from videoarchiver.stream_jobs import (
    StreamJob,
    finished_part,
    record,
    run_jobs,
    run_limited,
)
from videoarchiver.together import together

OUTPUT = "archive"
log = logging.getLogger(__name__)


async def _remove(*paths: Path) -> None:
    for path in paths:
        await anyio.Path(path).unlink(missing_ok=True)


def _job(decision: StreamDecision) -> StreamJob:
    return StreamJob(OUTPUT, decision.index, decision.kind, decision.action.value, decision.notes)


class _ArchiveStreams:
    """The stream jobs of one archive and what they settle on: final decisions and parts."""

    def __init__(self, rt: Runtime, source: Source, work: Path) -> None:
        self.rt, self.source, self.work = rt, source, work
        self.decisions: dict[int, StreamDecision] = {}
        self.parts: dict[int, Path] = {}

    async def encode(self, decision: StreamDecision) -> None:
        """Encode one stream into its part, or settle on copying the raw stream instead."""
        rt, source, index = self.rt, self.source, decision.index
        part = self.work / f"s{index}.mkv"
        recorded = (await rt.state.jobs(source.row.id, OUTPUT)).get(index)
        if recorded and recorded.state is JobState.DONE and recorded.decision == Action.COPY:
            self.decisions[index] = decision.fallback_to_copy(recorded.notes[0])
            return
        if await finished_part(rt, source, _job(decision), part):
            self.decisions[index], self.parts[index] = decision, part
            if recorded and decision.kind == "video" and recorded.figures.ssim_mean is None:
                # Killed before it was measured (or its measurement failed): again.
                await self._measure(replace(_job(decision), notes=recorded.notes), decision, part)
            return
        raw = source.probed.packets.get(index)
        settings = rt.config.archive
        watches: list[RatioWatch] = []
        # A stream Matroska cannot take as it is (GSM, Cook, Nellymoser; a raw elementary
        # stream without timestamps) keeps its encode even when it saves too little. A trial
        # copy says so, started beside the encode once the ratio rule warns (half its grace
        # in): the rule stops the encode only once the trial has found the raw stream fit to
        # stand in (a warning that comes with the stop, on one update, lets the encode go on
        # while the trial runs). An encode that saves enough from its start (most do) needs
        # no trial; one that ended before its trial started has it only if it must.
        trial: list[str | None] = []
        encoded_as: list[Encoded] = []
        wanted = anyio.Event()  # the ratio rule warned, or the encode ended
        ended: list[bool] = []

        def stop_for(
            previous_bytes: int, previous_seconds: float, start: float
        ) -> Callable[[ProgressUpdate], bool]:
            watch = RatioWatch(
                raw.bytes, raw.duration, settings.ratio, settings.grace_seconds, start,
                previous=(previous_bytes, previous_seconds),
            )  # fmt: skip
            watches.append(watch)

            def stop(update: ProgressUpdate) -> bool:
                stopping = watch.check(update)
                if watch.warned:
                    wanted.set()
                return stopping and trial == [None]

            return stop

        options = codec_args(decision, settings)
        figures = Figures(raw_bytes=raw.bytes, raw_seconds=raw.duration)

        async def encoding() -> None:
            try:
                encoded_as.append(await encode_resumable(
                    rt, source, _job(decision),
                    lambda out: encode_args(source.input, decision, options, out), part,
                    stop_for, figures=figures,
                ))  # fmt: skip
            finally:
                ended.append(True)
                wanted.set()

        async def trying() -> None:
            await wanted.wait()
            if not ended and any(watch.warned for watch in watches):
                trial.append(await self._why_not_copyable(decision))

        try:
            await together([encoding, trying])
            encoded = encoded_as[0]
            figures = replace(figures, wall_seconds=encoded.wall)
            fallback = watches[-1].reason if encoded.stopped else None
            if fallback is None:
                counted = encoded.counted or (await count_packets(rt.run_process, part)).get(0)
                figures = replace(
                    figures, out_bytes=counted.bytes, out_seconds=counted.duration,
                    ratio=counted.bytes / raw.bytes if raw.bytes else None,
                )  # fmt: skip
                frames = counted.nonempty if decision.kind == "video" else None
                fallback = fallback_reason(
                    counted.bytes, raw.bytes, settings.ratio, frames, raw.nonempty
                )
            if fallback is not None and not trial:  # found on the finished encode
                trial.append(await self._why_not_copyable(decision))
        except (VideoArchiverError, OSError):
            await anyio.Path(part).unlink(missing_ok=True)
            raise
        if fallback is not None and trial[0] is not None:
            note = f"encode kept: {fallback}, but {trial[0]}"
            decision = replace(decision, notes=(*decision.notes, note))
            fallback = None
        if fallback is not None:
            await _remove(part, *(self.work / p.file for p in encoded.parts))
            decision = decision.fallback_to_copy(kept_raw_note(fallback))
            # What the archive holds is the raw stream (the encode's size is in the note).
            figures = replace(figures, out_bytes=raw.bytes, out_seconds=raw.duration, ratio=1.0)
            log.info("%s: stream %d ratio fallback, %s", source.name, index, fallback)
        else:
            self.parts[index] = part
        self.decisions[index] = decision
        measured = fallback is None and decision.kind == "video"
        if measured:  # what an earlier encode of the stream measured goes
            figures = replace(figures, ssim_mean=CLEARED, ssim_worst=CLEARED, ssim_note="")
        await record(rt, source, _job(decision), JobState.DONE, figures)
        if measured:
            await self._measure(_job(decision), decision, part)

    async def _measure(self, job: StreamJob, decision: StreamDecision, part: Path) -> None:
        """Record the quality of a kept video encode (after it is recorded done: a kill
        while measuring costs the measurement, not the encode)."""
        options = codec_args(decision, self.rt.config.archive)
        figures = await measure_quality(self.rt, self.source, decision, part, options)
        await record(self.rt, self.source, job, JobState.DONE, figures)

    async def _why_not_copyable(self, decision: StreamDecision) -> str | None:
        """Why the raw stream cannot be the archive's stream as it is (None: it can), found
        by copying its first packets into Matroska: what the muxer refuses is no fallback."""
        index = decision.index
        counted = self.source.probed.packets.get(index)
        if counted.start is None:
            return "the raw stream has no timestamps to copy"
        hidden = hidden_reason(counted)
        if hidden is not None:
            return hidden
        trial = self.work / f"s{index}.trial.mkv"
        args = copy_trial_args(self.source.input, index, decision.kind, trial)
        codec = self.source.probed.probe.stream(index).codec_name
        run, timing = self.rt.run_process, None
        try:
            # A copy of a few packets: a probe, not an encode to give an ffmpeg slot to.
            async with self.rt.probe_slots:
                await anyio.Path(trial).unlink(missing_ok=True)
                await read_output(run, args, f"trial copy of stream {index}")
            # Some codecs go in without complaint under a tag nothing can decode (ADPCM SWF).
            back = parse_probe(await read_output(run, probe_args(trial), "ffprobe of a trial copy"))
            held = bool(back.streams) and back.streams[0].codec_name == codec
            if held and decision.kind == "video":
                timing = await self._trial_timing(index, trial)
        except ProcessError as exc:
            if short_of_space(exc):
                raise  # a full disk says nothing of the stream: the file waits for space
            held = False
        finally:
            await anyio.Path(trial).unlink(missing_ok=True)
        return timing if held else f"Matroska cannot hold the raw {codec} stream as it is"

    async def _trial_timing(self, index: int, trial: Path) -> str | None:
        """Why the trial copy shows its frames otherwise than the raw's first packets decode
        (None: at the same times), both decoded."""
        raw: list[str] = []
        copy: list[str] = []
        async with self.rt.probe_slots:
            warned = await each_line(
                self.rt.run_process, frame_time_args(self.source.input, index, TRIAL_PACKETS),
                raw.extend, f"decoding the first packets of stream {index}",
            )  # fmt: skip
            await each_line(
                self.rt.run_process, frame_time_args(trial, 0, TRIAL_PACKETS), copy.extend,
                "decoding a trial copy",
            )  # fmt: skip
        return copy_timing_reason(frame_times(raw), frame_times(copy), warned)


async def _extract_pictures(
    rt: Runtime, source: Source, decisions: list[StreamDecision], work: Path
) -> dict[int, Path]:
    """Cover art, copied out of the raw file to be attached to the archive."""
    pictures = {}
    for decision in decisions:
        if decision.action is Action.ATTACH:
            picture = work / f"s{decision.index}.{PICTURES[str(decision.codec)][0]}"
            task = source.task(OUTPUT, f"s{decision.index} cover art")
            args = picture_args(source.input, decision.index, picture)
            await run_limited(rt, args, f"copy of the cover art in stream {decision.index}", task)
            pictures[decision.index] = picture
    return pictures


async def make_archive(rt: Runtime, source: Source) -> None:
    """Build, verify and publish `archive/<stem>.mkv`; raises VideoArchiverError on failure."""
    work = source.work / OUTPUT
    await anyio.Path(work).mkdir(exist_ok=True)  # never the claim's folder: a later claim's
    planned = plan_archive(source.probed.probe, rt.config.archive)
    streams = _ArchiveStreams(rt, source, work)
    encodes = []
    for decision in planned:
        if decision.action is Action.ENCODE:
            encodes.append((_job(decision), lambda d=decision: streams.encode(d)))
        else:
            hidden = hidden_reason(source.probed.packets.get(decision.index))
            if decision.action is Action.COPY and hidden is not None:  # no encode to keep
                decision = replace(decision, notes=(*decision.notes, f"copied although {hidden}"))
            streams.decisions[decision.index] = decision
            await record(rt, source, _job(decision), JobState.DONE)
    await run_jobs(rt, source, encodes)
    decisions = [streams.decisions[d.index] for d in planned]
    drops = [
        *source.probed.notes,
        *(note for d in decisions if d.action is Action.DROP for note in d.notes),
    ]
    await rt.state.set_warnings(source.row.id, drops)
    muxed = work / "archive.mkv"
    pictures = await _extract_pictures(rt, source, decisions, work)
    await mux_verify_publish(
        rt, source, OUTPUT,
        mux_args(source.input, source.probed.probe, decisions, streams.parts, muxed, pictures),
        muxed,
        lambda: expected_streams(source.probed.probe, decisions, source.probed.packets),
        rt.layout.output_file(OUTPUT, source.row.stem),
        projection_args(decisions, muxed),
    )  # fmt: skip
