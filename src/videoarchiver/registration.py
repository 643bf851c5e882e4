"""Registering what a scan found: one store row per raw file's content, read and estimated
before it is registered so that no worker claims it unestimated.

A file known by its size and mtime is taken on trust, unread; new content is fingerprinted,
and its header read by ffprobe (its claim order and cost); a file that cannot be read is
recorded failed with the reason. Older contents at the same path are forgotten, or failed as
replaced when they published something. Two workers scanning one folder register a file
once: its row is made in a transaction (`Store.registering`) that looks again first.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import anyio

from videoarchiver.discovery import RawFile
from videoarchiver.errors import StoreRefused, VideoArchiverError, describe_error
from videoarchiver.identity import fingerprint
from videoarchiver.planning.claim_order import UNREADABLE, Estimate
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.paths import rel_from_key, shown_name, shown_rel, stem_candidates
from videoarchiver.planning.probe import parse_probe
from videoarchiver.probing import read_header
from videoarchiver.runtime import PROBE_SLOTS, Runtime
from videoarchiver.space import short_of_space
from videoarchiver.state import FileRow, FileState
from videoarchiver.together import together

log = logging.getLogger(__name__)
ESTIMATE_BATCH = 64  # new files of a scan estimated before they are registered
READ_TOGETHER = 2 * PROBE_SLOTS  # files of a scan read at once before they are registered

# ffprobe's JSON of a raw file's header (None: it cannot be read) and its claim order.
HeaderReader = Callable[[Path], Awaitable[tuple[str | None, Estimate]]]


@dataclass(frozen=True)
class _Read:
    """What reading a raw file found: its fingerprint or why it cannot be read, and for
    new content its header (ffprobe's JSON) and cost."""

    content: str
    failure: str | None = None
    header: str | None = None
    cost: Estimate | None = None


def _hinted(raw: RawFile, recorded: list[FileRow]) -> FileRow | None:
    """The newest row at the path if its size and mtime are those of the file found."""
    hinted = recorded[-1] if recorded else None
    if hinted is None or (hinted.size, hinted.mtime_ns) != (raw.size, raw.mtime_ns):
        return None
    return hinted


def _trusted(raw: RawFile, recorded: list[FileRow]) -> FileRow | None:
    """The row a file is taken for on trust by size and mtime, unread (a file done before
    fingerprints existed is read only if it is needed again)."""
    hinted = _hinted(raw, recorded)
    if hinted is not None and (hinted.fingerprint or hinted.state is FileState.DONE):
        return hinted
    return None


class Registrar:
    """Registers raw files and estimates the pending ones left without a cost.

    `found_pending` is called whenever a pending file is registered or estimated: a worker
    may claim it. `read_header` is what reads a header (ffprobe by default; tests give
    their own)."""

    def __init__(
        self,
        runtime: Runtime,
        found_pending: Callable[[], None],
        read_header: HeaderReader | None = None,
    ) -> None:
        self.rt = runtime
        self._found_pending = found_pending
        self._read_header = read_header or self._ffprobe_header
        self._unestimated = anyio.Event()  # files were registered that are not estimated

    async def register(self, raws: Sequence[RawFile]) -> list[tuple[FileRow, RawFile]]:
        """The state rows of settled raw files, created (output names reserved) for new ones.

        Known files are looked up together: a rescan of 100,000 files is a few hundred
        queries, not 100,000, and reads no file whose size and mtime are as recorded.
        """
        known = await self.rt.state.find_files([raw.key for raw in raws])
        rows = []
        headers = ESTIMATE_BATCH  # new files read whole before they are registered
        for start in range(0, len(raws), READ_TOGETHER):
            chunk = raws[start : start + READ_TOGETHER]
            # Read outside the transactions (a slow share must not hold the others up),
            # several files at once: each ffprobe of a header mostly waits for its start.
            new = [raw for raw in chunk if _trusted(raw, known.get(raw.key, [])) is None]
            reads = dict(zip(new, await together([
                partial(self._read, raw, known.get(raw.key, []), headers > 0) for raw in new
            ]), strict=True))  # fmt: skip
            headers -= sum(read is not None and read.header is not None for read in reads.values())
            for raw in chunk:
                try:
                    row = await self._register_one(raw, known.get(raw.key, []), reads.get(raw))
                except StoreRefused as exc:  # this file's (a path too long for an index …)
                    log.error("%s: cannot be registered: %s", shown_name(raw.key), exc)
                    continue
                if row is not None:
                    rows.append((row, raw))
                    if row.state is FileState.PENDING:
                        self._found_pending()  # a long first scan does not keep slots idle
        return rows

    async def estimate(self) -> bool:
        """Estimate the cost of up to ESTIMATE_BATCH pending files (from ffprobe's header
        reading, not the packet pass); True when there may be more to estimate."""
        rows = await self.rt.state.to_estimate(ESTIMATE_BATCH)

        async def one(row: FileRow) -> None:
            path = self.rt.layout.raw / rel_from_key(row.rel_path)
            header, cost = await self._read_header(path)
            if header is not None:  # kept: processing starts from it
                await self.rt.state.set_probe(row.id, header)
            await self.rt.state.set_cost(row.id, cost)

        async with anyio.create_task_group() as group:
            for row in rows:
                group.start_soon(one, row)
        return len(rows) == ESTIMATE_BATCH

    async def estimate_rest(self) -> None:
        """Estimate pending files without a cost until none is left."""
        while await self.estimate():
            self._found_pending()

    async def estimate_forever(self, first: bool) -> None:
        """Costs of what the first estimate of a scan left (a first scan of a large raw/),
        whenever files are registered unestimated; `first`: some are left already."""
        if first:
            self._unestimated.set()
        while True:
            await self._unestimated.wait()
            self._unestimated = anyio.Event()
            await self.estimate_rest()

    # -- one file ------------------------------------------------------------------------------

    async def _register_one(
        self, raw: RawFile, recorded: list[FileRow], read: _Read | None
    ) -> FileRow | None:
        """One settled file's row, from what reading it found unless it is known by size
        and mtime (None: it is gone since the scan)."""
        row = _trusted(raw, recorded)
        if row is not None:
            forgotten = await self._forget_replaced(raw.key, recorded, keep=row.id)
        else:
            if read is None:
                return None
            async with self.rt.state.registering():
                recorded = (await self.rt.state.find_files([raw.key])).get(raw.key, [])
                row, forgotten = await self._identify(raw, recorded, read)
        for gone in forgotten:
            await anyio.to_thread.run_sync(shutil.rmtree, self.rt.layout.file_work(gone), True)
        return row

    async def _read(self, raw: RawFile, recorded: list[FileRow], estimate: bool) -> _Read | None:
        """Fingerprint the file (None: it is gone); new content is also estimated, when
        `estimate`, from ffprobe's reading of its header (kept for its processing)."""
        try:
            content = await fingerprint(raw.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if short_of_space(exc):
                raise
            return _Read("", f"cannot read it: {describe_error(exc)}")
        known = any((r.size, r.fingerprint) == (raw.size, content) for r in recorded)
        if known or not estimate:
            return _Read(content)
        header, cost = await self._read_header(raw.path)
        return _Read(content, None, header, cost)

    async def _ffprobe_header(self, path: Path) -> tuple[str | None, Estimate]:
        """ffprobe's JSON of a raw file's header and the cost it implies (no JSON: it cannot
        be read, which its processing says first of all)."""
        try:
            async with self.rt.probe_slots:
                header = await read_header(self.rt.run_process, RawInput(path, self.rt.demuxers))
            return header.decode("utf-8", "replace"), self.rt.costs.claim_order(parse_probe(header))
        except (VideoArchiverError, OSError, ValueError, ArithmeticError):
            return None, UNREADABLE  # ArithmeticError: a header whose numbers no float holds

    async def _identify(
        self, raw: RawFile, recorded: list[FileRow], read: _Read
    ) -> tuple[FileRow, list[int]]:
        """The row for the content now at `raw.rel` (as `read`): a known one, or a new file;
        a file that cannot be read is recorded failed with the reason. Also the ids of older
        contents forgotten, whose work folders go."""
        hinted = _hinted(raw, recorded)
        if read.failure is not None and hinted is not None:
            return hinted, []
        same = [r for r in recorded if (r.size, r.fingerprint) == (raw.size, read.content)]
        if hinted is not None and hinted.fingerprint is None:
            same = [hinted]  # known before fingerprints by its size and mtime
        if read.failure is not None or not same:
            return await self._new_file(raw, recorded, read)
        row = replace(same[-1], mtime_ns=raw.mtime_ns, fingerprint=read.content)
        await self.rt.state.set_identity(row.id, raw.mtime_ns, read.content)
        return row, await self._forget_replaced(raw.key, recorded, keep=row.id)

    async def _new_file(
        self, raw: RawFile, recorded: list[FileRow], read: _Read
    ) -> tuple[FileRow, list[int]]:
        forgotten = await self._forget_replaced(raw.key, recorded, keep=None)
        state, name = self.rt.state, shown_name(raw.key)
        stem = await self._free_stem(raw)
        row = await state.add_file(
            raw.key, raw.size, raw.mtime_ns, read.content, stem, read.cost, read.header
        )
        log.info("%s: found, %d bytes, outputs named %r", name, raw.size, row.stem)
        if read.failure is not None:
            await state.fail_file(row.id, read.failure)
            log.error("%s: failed: %s", name, read.failure)
            row = replace(row, state=FileState.FAILED, error=read.failure)
        elif read.cost is None:
            self._unestimated.set()  # the estimator has work
        return row, forgotten

    async def _free_stem(self, raw: RawFile) -> str:
        for stem in stem_candidates(shown_rel(raw.key)):
            if await self.rt.state.stem_taken(stem):
                continue
            if any(path.exists() for path in self.rt.layout.output_paths(stem)):
                continue
            return stem
        raise AssertionError("stem_candidates never ends")

    async def _forget_replaced(
        self, key: str, recorded: list[FileRow], keep: int | None
    ) -> list[int]:
        """Older contents at `key` that no worker holds are forgotten (freeing their output
        names) if they never finished nor published anything, else failed as replaced;
        returns the ids of both (their work folders are to go)."""
        idle = (FileState.PENDING, FileState.FAILED)
        if not any(r.id != keep and r.state in idle for r in recorded):
            return []
        return await self.rt.state.forget_replaced(key, keep or 0)
