"""What the user sees: the `status` table and the live progress (rich).

Consoles and clocks are injected so that tests can capture the output and control time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from videoarchiver.output_kinds import names
from videoarchiver.planning.messages import printable
from videoarchiver.planning.paths import shown_name
from videoarchiver.planning.quality import shortfall
from videoarchiver.planning.ratio import KEPT_RAW
from videoarchiver.state import (
    FIGURE_NAMES,
    FileRow,
    FileState,
    JobState,
    OutputRow,
    OutputState,
    Progress,
    StreamJobRow,
    Summary,
)

STATE_STYLES = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim"}


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
    style = STATE_STYLES.get(text.split(" ")[0])
    return f"[{style}]{text}[/{style}]" if style else text


@dataclass(frozen=True)
class Listing:
    """What `status` shows: the files listed, their outputs, the running tasks of every
    worker (from the store), the stream jobs whose notes are worth a look, the totals."""

    files: Sequence[FileRow]
    outputs: Sequence[OutputRow]
    summary: Summary
    progress: Sequence[Progress] = ()
    jobs: Mapping[int, Sequence[tuple[str, StreamJobRow]]] = field(default_factory=dict)

    def lines(self) -> list[StatusLine]:
        outputs: dict[int, dict[str, OutputRow]] = {}
        for output in self.outputs:
            outputs.setdefault(output.file_id, {})[output.kind] = output
        running: dict[tuple[int, str], list[Progress]] = {}
        lost: dict[int, float] = {}
        for task in self.progress:
            running.setdefault((task.file_id, task.output), []).append(task)
            if task.lost_since is not None:
                lost[task.file_id] = task.lost_since
        return [
            StatusLine.of(
                row,
                {
                    kind: _shown_state(output.state, running.get((row.id, kind), ()))
                    for kind, output in outputs.get(row.id, {}).items()
                },
                outputs.get(row.id, {}).get("archive"),
                _notes(row, self.jobs.get(row.id, ()), lost.get(row.id)),
            )
            for row in self.files
        ]


def clock_time(seconds: float) -> str:
    """A moment (Unix seconds) as this machine's local date and time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _shown_state(state: OutputState, tasks: Sequence[Progress]) -> str:
    """An output's state; one a worker runs with how far its slowest task is (`running 42%`),
    `stalled 42%` when that worker was lost."""
    if not tasks:
        return str(state)
    shown = "stalled" if any(task.lost_since is not None for task in tasks) else "running"
    fractions = [min(1.0, task.done / task.total) for task in tasks if task.total]
    return f"{shown} {int(100 * min(fractions))}%" if fractions else shown


def _notes(
    row: FileRow, jobs: Sequence[tuple[str, StreamJobRow]], lost_since: float | None = None
) -> str:
    """The reason it failed, what was dropped, streams kept by the ratio rule, the raw
    file's fate, and who runs it (or ran it until it was lost, `lost_since`)."""
    kept = [  # a fallback's reason is its first note (a rotation kept may follow)
        f"stream {job.stream_index}: {job.notes[0]}"
        for output, job in jobs
        if output == "archive" and job.notes and job.notes[0].startswith(KEPT_RAW)
    ]
    quality = [quality_note(job) for output, job in jobs if output == "archive"]
    worker = f"worker {row.worker}" if row.state is FileState.RUNNING and row.worker else None
    if worker and lost_since is not None:
        worker += f" lost, last heard {clock_time(lost_since)}"
    return "; ".join(
        filter(None, [row.error, *row.warnings, *kept, *quality, row.raw_action, worker])
    )


def quality_note(job: StreamJobRow) -> str | None:
    """A re-encoded video stream's measured quality (`stream 0: SSIM 0.9912, worst 0.9870`),
    or why it has none; None for other jobs, and one not done yet."""
    figures = job.figures
    if job.stream_type != "video" or job.state is not JobState.DONE:
        return None
    if figures.ssim_mean is not None and figures.ssim_worst is not None:
        mean, worst = figures.ssim_mean, figures.ssim_worst
        return f"stream {job.stream_index}: SSIM {mean:.4f}, worst {worst:.4f}"
    if not figures.ssim_note:  # not measured yet
        return None
    return shortfall(job.stream_index, None, None, figures.ssim_note, 0.0)


@dataclass(frozen=True)
class StatusLine:
    """What `status` says of one file, whatever the layout."""

    name: str
    state: str
    outputs: tuple[tuple[str, str], ...]  # each output kind and its state ("-": not started)
    raw_size: str
    archive_size: str
    saving: str
    notes: str

    @classmethod
    def of(
        cls, row: FileRow, states: Mapping[str, str], archive: OutputRow | None, notes: str
    ) -> StatusLine:
        archive_size = archive.size if archive and archive.state is OutputState.DONE else None
        return cls(
            name=printable(shown_name(row.rel_path)),
            state=row.state,
            outputs=tuple((kind, states.get(kind, "-")) for kind in names()),
            raw_size=human_size(row.size),
            archive_size=human_size(archive_size),
            saving=percent_saved(row.size, archive_size) if archive_size and row.size else "-",
            notes=printable(notes),
        )


def columns() -> tuple[str, ...]:
    return ("file", "state", *names(), "raw size", "archive size", "saving", "notes")


WIDE = 120  # narrower terminals get one block per file: a table would squeeze the names out


def status_table(lines: Sequence[StatusLine]) -> Table:
    table = Table(title="videoarchiver", expand=True)
    table.add_column("file", overflow="fold", min_width=16, ratio=1)
    for column in ("state", *names()):
        table.add_column(column, no_wrap=True)
    for column in ("raw size", "archive size", "saving"):
        table.add_column(column, justify="right", no_wrap=True)
    # One line per file: the full reason is in the log and `status --json`.
    table.add_column("notes", no_wrap=True, overflow="ellipsis", ratio=2)
    for line in lines:
        table.add_row(
            escape(line.name),
            _state(line.state),
            *(_state(state) for _kind, state in line.outputs),
            line.raw_size,
            line.archive_size,
            line.saving,
            escape(line.notes),
        )
    return table


def _block(line: StatusLine) -> str:
    """One file on a narrow terminal: its whole name, its states, then sizes and notes."""
    outputs = " · ".join(f"{kind} {_state(state)}" for kind, state in line.outputs)
    sizes = f"{line.raw_size} → {line.archive_size} ({line.saving})"
    notes = f" · {escape(line.notes)}" if line.notes else ""
    return f"[bold]{escape(line.name)}[/bold]\n  {_state(line.state)} · {outputs}\n  {sizes}{notes}"


def _plain(line: StatusLine) -> str:
    """One file as one tab-separated line, for `grep` and `cut`."""
    states = (state for _kind, state in line.outputs)
    fields = (line.name, line.state, *states, line.raw_size, line.archive_size, line.saving,
              line.notes)  # fmt: skip
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


def print_status(console: Console, listing: Listing) -> None:
    """A summary line, then the files listed (those not done and the latest done, or all of
    them): a table on a wide terminal, a block per file on a narrow one, and plain
    tab-separated lines (a header first) when the output is not a terminal."""
    files, summary = listing.files, listing.summary
    if not files:
        console.print("No files recorded yet: put videos in raw/ and run `videoarchiver run`.")
        return
    lines = listing.lines()
    if not console.is_terminal:
        # Straight to the file, never wrapped: rich would wrap it and expand the tabs.
        rows = (summary_line(summary), "\t".join(columns()), *map(_plain, lines))
        console.file.write("".join(f"{text}\n" for text in rows))
    elif console.width >= WIDE:
        console.print(summary_line(summary), highlight=False)
        console.print(status_table(lines))
    else:
        console.print(summary_line(summary), highlight=False)
        for line in lines:
            console.print(_block(line), highlight=False)
    hidden = sum(summary.files.values()) - len(files)
    if hidden > 0:
        console.print(
            f"{plural(hidden, 'more done file')} not listed: `status --all` or `status --json`.",
            highlight=False,
        )


def _job_json(job: StreamJobRow) -> dict[str, object]:
    """A stream job as one flat object: its figures beside its state, parts as objects."""
    figures = job.figures
    parts = [part.model_dump() for part in figures.parts or ()]
    shown = {name: getattr(figures, name) for name in FIGURE_NAMES} | {"parts": parts}
    return {"stream_index": job.stream_index, "stream_type": job.stream_type,
            "decision": job.decision, "state": job.state, "notes": job.notes} | shown  # fmt: skip


def file_records(
    files: Sequence[FileRow],
    outputs: Iterable[OutputRow],
    jobs: Mapping[int, Sequence[tuple[str, StreamJobRow]]],
    progress: Iterable[Progress],
) -> list[dict[str, object]]:
    """Files as JSON objects, each with its "outputs" by kind, its stream "jobs" by output
    and the "progress" of what runs of it now (`status --json`, the web page's JSON)."""
    by_file: dict[int, dict[str, object]] = {}
    for output in outputs:
        by_file.setdefault(output.file_id, {})[output.kind] = asdict(output)
    running: dict[int, list[object]] = {}
    for task in progress:
        running.setdefault(task.file_id, []).append(asdict(task))
    records = []
    for row in files:
        grouped: dict[str, list[object]] = {kind: [] for kind in names()}
        for kind, job in jobs.get(row.id, ()):
            grouped.setdefault(kind, []).append(_job_json(job))
        records.append(
            asdict(row)
            | {"outputs": by_file.get(row.id, {}), "jobs": grouped,
               "progress": running.get(row.id, [])}
        )  # fmt: skip
    return records


def print_json(listing: Listing) -> None:
    """Everything recorded, for scripts: files with their outputs, stream jobs and the
    progress of what runs now."""
    records = file_records(listing.files, listing.outputs, listing.jobs, listing.progress)
    sys.stdout.write(json.dumps(records, indent=1))
    sys.stdout.write("\n")
