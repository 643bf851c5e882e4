"""What the user sees: the `status` table (rich). The console is injected for tests."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from videoarchiver.state import FileRow, OutputRow

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


def status_table(files: Sequence[FileRow], outputs: Sequence[OutputRow]) -> Table:
    by_file: dict[int, dict[str, OutputRow]] = {}
    for output in outputs:
        by_file.setdefault(output.file_id, {})[output.kind] = output
    table = Table(title="videoarchiver", expand=True)
    table.add_column("file", overflow="fold", min_width=16, ratio=1)
    for column in ("state", *OUTPUT_KINDS):
        table.add_column(column, no_wrap=True)
    for column in ("raw size", "archive size", "saving"):
        table.add_column(column, justify="right", no_wrap=True)
    # One line per file: the full reason is in the log and the state database.
    table.add_column("notes", no_wrap=True, overflow="ellipsis", ratio=2)
    for row in files:
        outputs_of = by_file.get(row.id, {})
        archive = outputs_of.get("archive")
        archive_size = archive.size if archive and archive.state == "done" else None
        saving = f"{1 - archive_size / row.size:.0%}" if archive_size and row.size else "-"
        notes = "; ".join(filter(None, [row.error, *row.warnings]))
        table.add_row(
            row.rel_path,
            _state(row.state),
            *(_state(o.state if (o := outputs_of.get(kind)) else None) for kind in OUTPUT_KINDS),
            human_size(row.size),
            human_size(archive_size),
            saving,
            notes,
        )
    return table


def print_status(console: Console, files: Sequence[FileRow], outputs: Sequence[OutputRow]) -> None:
    if not files:
        console.print("No files recorded yet: put videos in raw/ and run `videoarchiver run`.")
        return
    console.print(status_table(files, outputs))
