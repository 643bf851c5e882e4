"""Steps every output ends with: check the finished file with ffprobe, then publish it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from videoarchiver.errors import ProcessError, VerifyError
from videoarchiver.layout import Layout
from videoarchiver.planning.archive import PROPEDIT_DONE
from videoarchiver.planning.commands import probe_args
from videoarchiver.planning.probe import parse_probe
from videoarchiver.planning.verify import ExpectedStream, audio_duration_differs, verify_output
from videoarchiver.probing import count_packets, measure_decoded_audio
from videoarchiver.processes import ProcessRunner, read_output
from videoarchiver.publishing import Placed, adoptable, publish_claimed, sha256_file
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state import FileState, OutputRow, OutputState, Store
from videoarchiver.stream_jobs import run_limited

log = logging.getLogger(__name__)


async def output_problems(
    run: ProcessRunner, path: Path, expected: Sequence[ExpectedStream]
) -> list[str]:
    """How `path` differs from what was expected (empty: it holds just that); its audio is
    decoded where the raw's was measured so. `run` runs each ffprobe and ffmpeg."""
    probe = parse_probe(await read_output(run, probe_args(path), f"ffprobe of {path.name}"))
    packets = await count_packets(run, path)
    if any(e.decoded for e in expected):
        await measure_decoded_audio(run, path, probe, packets)
    return verify_output(expected, probe, packets)


async def verify_file(
    run: ProcessRunner, path: Path, expected: Callable[[], Sequence[ExpectedStream]], source: Source
) -> None:
    """Raise VerifyError (the file stays in `work/`) unless `path` holds what was expected.
    An audio duration that differs from the raw's packets is measured again, once, by the
    samples of the raw's audio and of the output's (`planning.timing`)."""
    wanted = expected()
    problems = await output_problems(run, path, wanted)
    if audio_duration_differs(problems) and not any(e.decoded for e in wanted):
        # Measured once per raw file; the archive's and the preview's verify may both ask.
        probed = source.probed
        if not any(probed.packets.get(s.index).decoded is not None for s in probed.probe.streams):
            log.info("%s: %s; measuring the audio by its samples", source.name, "; ".join(problems))
            try:
                await measure_decoded_audio(run, source.input, probed.probe, probed.packets)
            except ProcessError as exc:  # the raw's audio does not decode: the problems stand
                log.warning("%s: %s", source.name, exc)
        wanted = expected()
        if any(e.decoded for e in wanted):
            problems = await output_problems(run, path, wanted)
    if problems:
        kept = "/".join(path.parts[-5:])  # work files: files/<id>/claim-<n>/<output>/<name>
        raise VerifyError("; ".join(problems) + f" (kept to look at: work/{kept})")


async def mux_verify_publish(
    rt: Runtime,
    source: Source,
    kind: str,
    args: Sequence[str],
    muxed: Path,
    expected: Callable[[], Sequence[ExpectedStream]],
    destination: Path,
    edit: Sequence[str] | None = None,
) -> None:
    """How the archive and the preview end, once their streams are done: mux into `muxed`
    (in `work/`), `edit` it in place if asked (what ffmpeg cannot write), check it against
    `expected` (of the raw's figures as they then are), and put it at `destination`."""
    task = source.task(kind, f"{kind} mux", source.probed.probe.format.duration)
    await run_limited(rt, args, f"{kind} mux", task)
    if edit is not None:  # a kill meanwhile leaves a file the next run muxes again
        said = await read_output(rt.run_process, edit, f"{edit[0]} of the {kind}", PROPEDIT_DONE)
        for line in said.decode("utf-8", "replace").splitlines():  # quiet: warnings only
            log.warning("%s: %s of the %s: %s", source.name, edit[0], kind, line)
    await verify_file(rt.run_process, muxed, expected, source)
    await publish_output(rt, source, kind, muxed, destination)


async def publish_output(
    rt: Runtime, source: Source, kind: str, finished: Path, destination: Path
) -> None:
    """Record the intent (destination, size, SHA-256), move the file into place, record done."""
    where = rt.layout.relative(destination)
    await publish_recorded(
        rt, source, kind, finished, destination,
        lambda size, sha256: rt.state.set_output(
            source.row.id, kind, OutputState.PUBLISHING, path=where, size=size, sha256=sha256,
            by=rt.worker.id,
        ),
    )  # fmt: skip
    await rt.state.set_output(source.row.id, kind, OutputState.DONE, by=rt.worker.id)
    log.info("%s: %s done → %s", source.name, kind, destination)


async def publish_recorded(
    rt: Runtime,
    source: Source,
    kind: str,
    finished: Path,
    destination: Path,
    record_intent: Callable[[int, str], Awaitable[None]],
) -> tuple[int, str]:
    """The publishing protocol: the raw file is still the one processed, the intent (size
    and SHA-256 of `finished`) is kept among the file's and recorded, then the file is put
    in place under this claim (`publish_claimed`); returns (size, SHA-256)."""
    await source.ensure_unchanged()
    sha256 = await sha256_file(finished)
    size = (await anyio.Path(finished).stat()).st_size
    state, file_id, by = rt.state, source.row.id, rt.worker.id
    where = rt.layout.relative(destination)
    intents = await state.intents(file_id, kind, where)
    await state.remember_intent(file_id, kind, where, size, sha256, by)
    await record_intent(size, sha256)
    placed = await publish_claimed(
        finished, destination, sha256, source.mode, source.row.claims, intents,
        lambda: state.check_claim(file_id, by),
    )  # fmt: skip
    if placed is Placed.REPLACED:
        log.warning("%s: %s held the %s an earlier claim of this file put there (its worker"
                    " had lost the claim): replaced", source.name, where, kind)  # fmt: skip
    return size, sha256


async def in_place(
    state: Store,
    layout: Layout,
    file_id: int,
    kind: str,
    path: str,
    intent: tuple[int | None, str | None],
    claim: int | None,
) -> bool:
    """Whether `path` (relative to the root) holds the intent (size, SHA-256) recorded for
    it: published before a kill or a stop, not yet recorded done. The copies earlier claims
    left beside it go: those of the claims before `claim` (the claim holding the file), or
    without one, of the claims up to the one that intended these bytes."""
    intents = await state.intents(file_id, kind, path)
    if claim is None:
        claim = 1 + max((i.claim for i in intents if (i.size, i.sha256) == intent), default=0)
    withdrawn = [i.claim for i in intents if i.claim < claim]
    return await adoptable(layout.resolve(path), *intent, withdrawn)


async def adopt(
    state: Store,
    layout: Layout,
    output: OutputRow,
    by: str | None = None,
    claim: int | None = None,
) -> bool:
    """True (and recorded done) when a kill or a stop caught this output after it was
    published and before it was recorded done: its destination holds exactly the intent.
    `by`, `claim`: the worker holding the file's claim and the claim's number, if one does."""
    if output.state is not OutputState.PUBLISHING or not output.path:
        return False
    intent = (output.size, output.sha256)
    if not await in_place(state, layout, output.file_id, output.kind, output.path, intent, claim):
        return False
    await state.set_output(output.file_id, output.kind, OutputState.DONE, by=by)
    log.info("%s was published before an interruption: recorded", output.path)
    return True


async def adopt_published(state: Store, layout: Layout) -> None:
    """At start: every such output of a file no worker holds (a worker adopts those of the
    files it holds itself), whatever became of its raw file since."""
    for output in await state.publishing():
        if (await state.get_file(output.file_id)).state is not FileState.RUNNING:
            await adopt(state, layout, output)
