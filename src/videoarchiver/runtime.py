"""What every pipeline step needs: the folders, settings, state and the process limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from videoarchiver.config import Config
from videoarchiver.discovery import RawFile
from videoarchiver.errors import SourceChangedError, SourceUnreadableError
from videoarchiver.identity import Content, check_content
from videoarchiver.layout import Layout
from videoarchiver.notifying import Notifier
from videoarchiver.output_kinds import order
from videoarchiver.pausing import Gate
from videoarchiver.planning.commands import RawInput
from videoarchiver.planning.cost import Costs
from videoarchiver.planning.paths import shown_name
from videoarchiver.probing import Probed
from videoarchiver.processes import ProcessRunner, run_process
from videoarchiver.progress import ProgressHub, TaskInfo
from videoarchiver.slots import Place, Slots
from videoarchiver.state import FileRow, Store, Worker

PROBE_SLOTS = 2


@dataclass(frozen=True)
class Runtime:
    layout: Layout
    config: Config
    state: Store
    worker: Worker  # this process, as the store knows it
    ffmpeg_slots: Slots
    probe_slots: anyio.CapacityLimiter
    progress: ProgressHub  # what runs now, for the display and the store
    demuxers: str  # what raw files may be read as (`RawInput`)
    gate: Gate  # closed while paused: no new ffmpeg starts
    notifier: Notifier
    run_process: ProcessRunner  # what runs every pipeline process (`testing.FakeRunner` in tests)
    costs: Costs  # what a file's and a stream's encodes cost, in the order of claims and slots

    @classmethod
    def create(
        cls,
        layout: Layout,
        config: Config,
        state: Store,
        worker: Worker,
        progress: ProgressHub,
        demuxers: str,
        run_process: ProcessRunner = run_process,
    ) -> Runtime:
        return cls(
            layout=layout,
            config=config,
            state=state,
            worker=worker,
            progress=progress,
            demuxers=demuxers,
            gate=Gate(),
            notifier=Notifier(config.notify),
            ffmpeg_slots=Slots(config.effective_jobs),
            probe_slots=anyio.CapacityLimiter(PROBE_SLOTS),
            run_process=run_process,
            costs=Costs.of(config.archive, config.preview),
        )


@dataclass
class Load:
    """What one held file still asks of the ffmpeg slots, read before another is claimed:
    its outputs whose long steps (encodes, montage sheets) are not all done (past them a
    file only assembles its outputs: mux, check, publish) and its long steps waiting for or
    holding a slot. `eased` is called whenever either drops: a slot may be about to idle."""

    turn: int  # its place in this worker's claims: its long steps are served in that order
    making: set[str]
    eased: Callable[[], None]
    long_steps: int = 0

    def made(self, output: str) -> None:
        self.making.discard(output)
        self.eased()

    @contextmanager
    def long_step(self) -> Iterator[None]:
        self.long_steps += 1
        try:
            yield
        finally:
            self.long_steps -= 1
            self.eased()


@dataclass(frozen=True)
class Source:
    """One raw file being processed: its record, as found, and what ffprobe said of it."""

    row: FileRow
    raw: RawFile
    input: RawInput  # how ffmpeg opens it
    probed: Probed
    mode: int  # the raw file's permission bits, which its outputs take
    load: Load  # what it still asks of the slots
    work: Path  # this claim's work folder (`claim_folders`): one folder in it per output

    @property
    def name(self) -> str:
        return shown_name(self.row.rel_path)

    @property
    def path(self) -> Path:
        return self.input.path

    def offset(self, index: int) -> float:
        """Where stream `index` starts on ffmpeg's timeline: ffmpeg counts from the file's
        start, so a stream that starts later (audio after video) starts that much later."""
        counted = self.probed.packets.get(index)
        return (counted.start or 0.0) - (self.probed.probe.format.start_time or 0.0)

    def place(self, costs: Costs, output: str, index: int | None = None) -> Place:
        """Where a long step of this file waits for an ffmpeg slot: after those of the files
        claimed before it, then the encode of its costliest stream first (by `costs`), an
        archive's before a preview's before a montage (of no stream: its file's last)."""
        probe = self.probed.probe
        cost = 0.0 if index is None else costs.stream(probe, probe.stream(index))
        return self.load.turn, -cost, order(output)

    def task(
        self, output: str, label: str, total: float | None = None, unit: str = "s", start: float = 0
    ) -> TaskInfo:
        """A task of this file's `output`, as the progress hub shows it (`start`: what is done
        already, the salvaged parts of a resumed encode)."""
        return TaskInfo(self.row.id, self.name, output, label, total, unit, start)

    @property
    def identity(self) -> str:
        """What every part made from this file records: the content it came from."""
        return f"{self.row.size}:{self.row.fingerprint}"

    async def ensure_unchanged(self) -> None:
        """Refuse to publish outputs of a raw file that was replaced while it was processed."""
        found = await check_content(self.raw.path, self.row.size, self.row.fingerprint)
        if found is Content.UNREADABLE:
            raise SourceUnreadableError(
                "cannot read the raw file any more (permission denied); nothing published"
                " (`videoarchiver retry` once it can be read)"
            )
        if found is not Content.SAME:
            raise SourceChangedError(
                "the raw file changed or vanished while it was processed; nothing published"
                " (new content is taken as a new file)"
            )
