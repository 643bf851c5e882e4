"""Steps every output ends with: check the finished file with ffprobe, then publish it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from videoarchiver.errors import VerifyError
from videoarchiver.layout import Layout
from videoarchiver.planning.archive import PROPEDIT_DONE
from videoarchiver.planning.commands import probe_args
from videoarchiver.planning.probe import parse_probe
from videoarchiver.planning.verify import ExpectedStream, verify_output
from videoarchiver.probing import count_packets
from videoarchiver.processes import read_output
from videoarchiver.publishing import adoptable, publish, sha256_file
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state import OutputRow, OutputState, Store
from videoarchiver.stream_jobs import run_limited

log = logging.getLogger(__name__)


async def verify_file(path: Path, expected: Sequence[ExpectedStream]) -> None:
    """Raise VerifyError (the file stays in `work/`) unless `path` holds what was expected."""
    probe = parse_probe(await read_output(probe_args(path), f"ffprobe of {path.name}"))
    problems = verify_output(expected, probe, await count_packets(path))
    if problems:
        kept = "/".join(path.parts[-5:])  # work files: files/<id>/claim-<n>/<output>/<name>
        raise VerifyError("; ".join(problems) + f" (kept to look at: work/{kept})")


async def mux_verify_publish(
    rt: Runtime,
    source: Source,
    kind: str,
    args: Sequence[str],
    muxed: Path,
    expected: Sequence[ExpectedStream],
    destination: Path,
    edit: Sequence[str] | None = None,
) -> None:
    """How the archive and the preview end, once their streams are done: mux into `muxed`
    (in `work/`), `edit` it in place if asked (what ffmpeg cannot write), check it against
    `expected`, and put it at `destination`."""
    task = source.task(kind, f"{kind} mux", source.probed.probe.format.duration)
    await run_limited(rt, args, f"{kind} mux", task)
    if edit is not None:  # a kill meanwhile leaves a file the next run muxes again
        said = await read_output(edit, f"{edit[0]} of the {kind}", PROPEDIT_DONE)
        for line in said.decode("utf-8", "replace").splitlines():  # quiet: warnings only
            log.warning("%s: %s of the %s: %s", source.name, edit[0], kind, line)
    await verify_file(muxed, expected)
    await publish_output(rt, source, kind, muxed, destination)


async def publish_output(
    rt: Runtime, source: Source, kind: str, finished: Path, destination: Path
) -> None:
    """Record the intent (destination, size, SHA-256), move the file into place, record done."""
    where = rt.layout.relative(destination)
    await publish_recorded(
        source, finished, destination,
        lambda size, sha256: rt.state.set_output(
            source.row.id, kind, OutputState.PUBLISHING, path=where, size=size, sha256=sha256,
            by=rt.worker.id,
        ),
    )  # fmt: skip
    await rt.state.set_output(source.row.id, kind, OutputState.DONE, by=rt.worker.id)
    log.info("%s: %s done → %s", source.name, kind, destination)


async def publish_recorded(
    source: Source,
    finished: Path,
    destination: Path,
    record_intent: Callable[[int, str], Awaitable[None]],
) -> tuple[int, str]:
    """SPEC §12's protocol: the raw file is still the one processed, the intent (size and
    SHA-256 of `finished`) is recorded, then the file is published; returns (size, SHA-256)."""
    await source.ensure_unchanged()
    sha256 = await sha256_file(finished)
    size = (await anyio.Path(finished).stat()).st_size
    await record_intent(size, sha256)
    await publish(finished, destination, sha256, mode=source.mode)
    return size, sha256


async def adopt(state: Store, layout: Layout, output: OutputRow, by: str | None = None) -> bool:
    """True (and recorded done) when a kill or a stop caught this output after it was
    published and before it was recorded done: its destination holds exactly the intent.
    `by`: the worker holding the file's claim, if one does."""
    if output.state is not OutputState.PUBLISHING or not output.path:
        return False
    if not await adoptable(layout.resolve(output.path), output.size, output.sha256):
        return False
    await state.set_output(output.file_id, output.kind, OutputState.DONE, by=by)
    log.info("%s was published before an interruption: recorded", output.path)
    return True


async def adopt_published(state: Store, layout: Layout) -> None:
    """At start: every such output, whatever became of its raw file since."""
    for output in await state.publishing():
        await adopt(state, layout, output)
