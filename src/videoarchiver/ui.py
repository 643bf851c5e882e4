"""What the user sees: the `status` table and the live progress (rich).

Consoles and clocks are injected so that tests can capture the output and control time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Column, Table

from videoarchiver.logs import printable
from videoarchiver.planning.paths import shown_name
from videoarchiver.planning.progress import ProgressUpdate
from videoarchiver.state import FileRow, OutputRow, StreamJobRow, Summary

STATE_STYLES = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim"}
OUTPUT_KINDS = ("archive", "preview", "montage")


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _state(text: str | None) -> str:
    if text is None:
        return "-"
    style = STATE_STYLES.get(text)
    return f"[{style}]{text}[/{style}]" if style else text


@dataclass(frozen=True)
class StatusLine:
    """What `status` says of one file, whatever the layout."""

    name: str
    state: str
    outputs: tuple[str, ...]  # the state of each of OUTPUT_KINDS, "-" when not started
    raw_size: str
    archive_size: str
    saving: str
    notes: str

    @classmethod
    def of(cls, row: FileRow, outputs: Mapping[str, OutputRow]) -> StatusLine:
        archive = outputs.get("archive")
        archive_size = archive.size if archive and archive.state == "done" else None
        return cls(
            name=printable(shown_name(row.rel_path)),
            state=row.state,
            outputs=tuple(o.state if (o := outputs.get(k)) else "-" for k in OUTPUT_KINDS),
            raw_size=human_size(row.size),
            archive_size=human_size(archive_size),
            saving=percent_saved(row.size, archive_size) if archive_size and row.size else "-",
            notes=printable("; ".join(filter(None, [row.error, *row.warnings, row.raw_action]))),
        )


COLUMNS = ("file", "state", *OUTPUT_KINDS, "raw size", "archive size", "saving", "notes")
WIDE = 120  # narrower terminals get one block per file: a table would squeeze the names out


def status_table(lines: Sequence[StatusLine]) -> Table:
    table = Table(title="videoarchiver", expand=True)
    table.add_column("file", overflow="fold", min_width=16, ratio=1)
    for column in ("state", *OUTPUT_KINDS):
        table.add_column(column, no_wrap=True)
    for column in ("raw size", "archive size", "saving"):
        table.add_column(column, justify="right", no_wrap=True)
    # One line per file: the full reason is in the log and `status --json`.
    table.add_column("notes", no_wrap=True, overflow="ellipsis", ratio=2)
    for line in lines:
        table.add_row(
            escape(line.name),
            _state(line.state),
            *(_state(state) for state in line.outputs),
            line.raw_size,
            line.archive_size,
            line.saving,
            escape(line.notes),
        )
    return table


def _block(line: StatusLine) -> str:
    """One file on a narrow terminal: its whole name, then its states and sizes, then notes."""
    outputs = " · ".join(
        f"{kind} {_state(state)}" for kind, state in zip(OUTPUT_KINDS, line.outputs, strict=True)
    )
    sizes = f"{line.raw_size} → {line.archive_size} ({line.saving})"
    text = f"[bold]{escape(line.name)}[/bold]\n  {_state(line.state)} · {outputs} · {sizes}"
    return text + (f"\n  {escape(line.notes)}" if line.notes else "")


def _plain(line: StatusLine) -> str:
    """One file as one tab-separated line, for `grep` and `cut`."""
    fields = (line.name, line.state, *line.outputs, line.raw_size, line.archive_size,
              line.saving, line.notes)  # fmt: skip
    return "\t".join(fields)


def percent_saved(raw: int, archived: int) -> str:
    """`72%`; a copy a little larger than its raw file is `-1%`, never `-0%`."""
    return f"{round(100 * (1 - archived / raw)) + 0}%"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summary_line(summary: Summary) -> str:
    total = sum(summary.files.values())
    states = ", ".join(f"{state} {count}" for state, count in sorted(summary.files.items()))
    saving = ""
    if summary.raw_bytes:
        saving = f" ({percent_saved(summary.raw_bytes, summary.archive_bytes)} saved)"
    return (
        f"{plural(total, 'file')}: {states}; archived: {human_size(summary.raw_bytes)} raw → "
        f"{human_size(summary.archive_bytes)}{saving}"
    )


def print_status(
    console: Console,
    files: Sequence[FileRow],
    outputs: Sequence[OutputRow],
    summary: Summary,
) -> None:
    """A summary line, then the files given (those not done and the latest done, or all of
    them): a table on a wide terminal, a block per file on a narrow one, and plain
    tab-separated lines (a header first) when the output is not a terminal."""
    if not files:
        console.print("No files recorded yet: put videos in raw/ and run `videoarchiver run`.")
        return
    by_file: dict[int, dict[str, OutputRow]] = {}
    for output in outputs:
        by_file.setdefault(output.file_id, {})[output.kind] = output
    lines = [StatusLine.of(row, by_file.get(row.id, {})) for row in files]
    console.print(summary_line(summary), highlight=False)
    if not console.is_terminal:
        # Straight to the file: rich would expand the tabs.
        console.file.write(
            "".join(f"{text}\n" for text in ("\t".join(COLUMNS), *map(_plain, lines)))
        )
    elif console.width >= WIDE:
        console.print(status_table(lines))
    else:
        for line in lines:
            console.print(_block(line), highlight=False)
    hidden = sum(summary.files.values()) - len(files)
    if hidden > 0:
        console.print(
            f"{plural(hidden, 'more done file')} not listed: `status --all` or `status --json`.",
            highlight=False,
        )


def print_json(
    files: Sequence[FileRow],
    outputs: Sequence[OutputRow],
    jobs: Mapping[int, Sequence[tuple[str, StreamJobRow]]],
) -> None:
    """Everything recorded, for scripts: files with their outputs and stream jobs."""
    by_file: dict[int, dict[str, object]] = {}
    for output in outputs:
        by_file.setdefault(output.file_id, {})[output.kind] = asdict(output)
    rows = []
    for row in files:
        grouped: dict[str, list[object]] = {"archive": [], "preview": [], "montage": []}
        for kind, job in jobs.get(row.id, ()):
            grouped.setdefault(kind, []).append(asdict(job))
        rows.append(asdict(row) | {"outputs": by_file.get(row.id, {}), "jobs": grouped})
    sys.stdout.write(json.dumps(rows, indent=1))
    sys.stdout.write("\n")


@dataclass(frozen=True)
class TaskInfo:
    """What the progress display says of one ffmpeg process."""

    file: str
    label: str
    total: float | None = None


class TaskView(Protocol):
    def update(self, update: ProgressUpdate) -> None: ...

    def end(self, ok: bool, stopped: bool = False) -> None: ...


class Reporter(Protocol):
    def start(self, task: TaskInfo) -> TaskView: ...


class _Unseen:
    def update(self, update: ProgressUpdate) -> None:
        pass

    def end(self, ok: bool, stopped: bool = False) -> None:
        pass


class SilentReporter:
    """Without a terminal nothing is drawn or computed: the log says what happens."""

    def start(self, task: TaskInfo) -> TaskView:
        return _Unseen()


def clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


# Weight of the newest measure in the smoothed encoding rate: R moves steadily, not by jumps.
RATE_SMOOTHING = 0.3


class _RichTask:
    def __init__(self, reporter: RichReporter, task: TaskInfo) -> None:
        self._reporter, self._task = reporter, task
        self._started = self._seen = reporter.clock()
        self._encoded: float | None = None
        self._speed: float | None = None
        self._rate: float | None = None  # media seconds per second, smoothed
        self._id = reporter.progress.add_task(
            f"{task.file} {task.label}", total=task.total, figures=self._figures()
        )

    def _figures(self) -> str:
        total, encoded = self._task.total, self._encoded
        spent = self._reporter.clock() - self._started
        remaining = None
        if total and encoded is not None and self._rate:
            remaining = max(0.0, total - encoded) / self._rate
        speed = f"{self._speed:.2f}x" if self._speed is not None else "-"
        total_text = f"/{clock_text(total)}" if total else ""
        return (
            f"E {clock_text(encoded)}{total_text} S {clock_text(spent)}"
            f" R {clock_text(remaining)} {speed}"
        )

    def _measure(self, encoded: float) -> None:
        """Fold the rate since the last update into the smoothed rate."""
        now = self._reporter.clock()
        if now > self._seen:
            rate = (encoded - (self._encoded or 0.0)) / (now - self._seen)
            smoothed = self._rate
            self._rate = rate if smoothed is None else smoothed + RATE_SMOOTHING * (rate - smoothed)
            self._seen = now

    def update(self, update: ProgressUpdate) -> None:
        if update.out_seconds is not None:
            self._measure(update.out_seconds)
            self._encoded = update.out_seconds
        self._speed = update.speed if update.speed is not None else self._speed
        self._reporter.progress.update(
            self._id, completed=self._encoded or 0, figures=self._figures()
        )

    def end(self, ok: bool, stopped: bool = False) -> None:
        if ok and self._task.total:
            self._encoded = self._task.total  # the last progress block lags the end
        figures = self._figures()
        self._reporter.progress.remove_task(self._id)
        word = "done" if ok else "kept raw stream (ratio rule)" if stopped else "failed"
        self._reporter.progress.console.print(
            f"{word} {self._task.file} {self._task.label}: {figures}"
        )


class RichReporter:
    """One live line per running ffmpeg: file, stream, kind, bar, E, S, R, speed.

    The console and the clock are injected so that tests can capture and control both.
    """

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.progress = Progress(
            TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True)),
            BarColumn(),
            TextColumn("{task.fields[figures]}"),
            console=console,
            get_time=clock,
        )

    def start(self, task: TaskInfo) -> TaskView:
        return _RichTask(self, task)

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()
