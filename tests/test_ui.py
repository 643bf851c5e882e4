from __future__ import annotations

import io
import time

from rich.console import Console

from videoarchiver.state import (
    FileRow,
    FileState,
    JobState,
    OutputRow,
    OutputState,
    Progress,
    StreamJobRow,
    Summary,
)
from videoarchiver.ui import Listing, human_size, print_status


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def _file(file_id: int, name: str, state: str, error: str | None = None) -> FileRow:
    return FileRow(
        file_id, name, 4 * 1024 * 1024, 0, "f", name, FileState(state), error, None,
        ("tmcd dropped",), None,
    )  # fmt: skip


def _output(file_id: int, kind: str, state: str, size: int | None = None) -> OutputRow:
    return OutputRow(file_id, kind, OutputState(state), f"{kind}/x.mkv", size, "ab", None)


def test_status_table_shows_states_sizes_saving_and_reasons() -> None:
    console, out = _console()
    files = [
        _file(1, "good.mp4", "done"),
        _file(2, "bad.mp4", "failed", "not a readable media file"),
    ]
    outputs = [
        _output(1, "archive", "done", 1024 * 1024),
        _output(1, "preview", "failed"),
        _output(1, "montage", "skipped"),
    ]
    summary = Summary({"done": 1, "failed": 1, "pending": 1}, 4 << 20, 1 << 20)
    print_status(console, Listing(files, outputs, summary))
    lines = out.getvalue().splitlines()
    assert (
        lines[0]
        == "3 files: done 1, failed 1, pending 1; archived: 4.0 MiB raw → 1.0 MiB (75% saved)"
    )
    assert lines[-1] == "1 more done file not listed: `status --all` or `status --json`."
    good = next(line for line in lines if "good.mp4" in line)
    bad = next(line for line in lines if "bad.mp4" in line)
    cells = [cell.strip() for cell in good.split("│")]
    assert cells[1:6] == ["good.mp4", "done", "done", "failed", "skipped"]
    assert "4.0 MiB" in good and "1.0 MiB" in good and "75%" in good
    assert "failed" in bad and "not a readable media file" in bad and "tmcd dropped" in bad


FILES = [
    _file(1, "2024/Game night/a very long folder name/boss fight with friends.mp4", "done"),
    _file(2, "bad.mp4", "failed", "preview: stream 0: preview encode of stream 0 failed: boom"),
]
OUTPUTS = [_output(1, "archive", "done", 1 << 20)]
SUMMARY = Summary({"done": 1, "failed": 1}, 4 << 20, 1 << 20)


def test_status_on_a_narrow_terminal_keeps_every_name_and_reason() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    print_status(console, Listing(FILES, OUTPUTS, SUMMARY))
    text = out.getvalue()
    assert "2 files: done 1, failed 1" in text
    assert "2024/Game night/a very long folder name/boss fight with friends.mp4" in text
    assert "archive done · preview - · montage -" in text
    assert "preview: stream 0: preview encode of stream 0 failed: boom" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_status_piped_is_one_tab_separated_line_per_file() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=40)  # nothing is wrapped
    print_status(console, Listing(FILES, OUTPUTS, SUMMARY))
    lines = out.getvalue().splitlines()
    assert lines[0] == "2 files: done 1, failed 1; archived: 4.0 MiB raw → 1.0 MiB (75% saved)"
    assert lines[1].split("\t")[:2] == ["file", "state"]
    first = lines[2].split("\t")
    assert first[:5] == [FILES[0].rel_path, "done", "done", "-", "-"]
    assert lines[3].split("\t")[-1] == f"{FILES[1].error}; tmcd dropped"
    assert not any(mark in out.getvalue() for mark in "│━┃"), "no box drawing"


def test_status_shows_live_progress_its_worker_and_streams_kept_by_the_ratio_rule() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    running = FileRow(7, "clip.mp4", 1 << 20, 0, "f", "clip", FileState.RUNNING, None, None, (),
                      None, "vm-12-ab")  # fmt: skip
    outputs = [
        OutputRow(7, "archive", OutputState.RUNNING, None, None, None, None),
        OutputRow(7, "preview", OutputState.PENDING, None, None, None, None),
    ]
    tasks = [  # the slowest stream of an output is how far it is
        Progress(7, "s0 archive video", "archive", "vm-12-ab", 4.25, 10.0, 1.0, 6.0, 0.0),
        Progress(7, "s1 archive audio", "archive", "vm-12-ab", 9.0, 10.0, 9.0, 0.1, 0.0),
    ]
    note = "raw stream kept (ratio rule): finished at 9 bytes > 0.9 × 8"
    kept = StreamJobRow(1, "audio", "copy", JobState.DONE, (note,))
    listing = Listing([running], outputs, Summary({"running": 1}, 0, 0), tasks,
                      {7: [("archive", kept)]})  # fmt: skip
    print_status(console, listing)
    line = out.getvalue().splitlines()[-1].split("\t")
    assert line[:5] == ["clip.mp4", "running", "running 42%", "pending", "-"]
    assert line[-1] == (
        "stream 1: raw stream kept (ratio rule): finished at 9 bytes > 0.9 × 8; worker vm-12-ab"
    )


def test_empty_status_says_what_to_do() -> None:
    console, out = _console()
    print_status(console, Listing([], [], Summary({}, 0, 0)))
    assert "put videos in raw/" in out.getvalue()


def test_human_size() -> None:
    assert [human_size(n) for n in (None, 0, 1023, 1024, 5 * 1024**4)] == [
        "-", "0 B", "1023 B", "1.0 KiB", "5.0 TiB",
    ]  # fmt: skip


def test_a_task_whose_worker_was_lost_is_shown_stalled_with_when_it_was_last_heard() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    running = FileRow(7, "clip.mp4", 1 << 20, 0, "f", "clip", FileState.RUNNING, None, None, (),
                      None, "vm-12-ab")  # fmt: skip
    outputs = [OutputRow(7, "archive", OutputState.RUNNING, None, None, None, None)]
    heard = time.mktime((2026, 12, 7, 9, 30, 5, 0, 0, -1))
    lost = Progress(7, "s0 archive video", "archive", "vm-12-ab", 1.2, 10.0, None, None, heard,
                    lost_since=heard)  # fmt: skip
    print_status(console, Listing([running], outputs, Summary({"running": 1}, 0, 0), [lost]))
    line = out.getvalue().splitlines()[-1].split("\t")
    assert line[:3] == ["clip.mp4", "running", "stalled 12%"]
    assert line[-1] == "worker vm-12-ab lost, last heard 2026-12-07 09:30:05"
