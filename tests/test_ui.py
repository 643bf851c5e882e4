from __future__ import annotations

import io

from rich.console import Console

from videoarchiver.state import FileRow, OutputRow, Summary
from videoarchiver.ui import human_size, print_status


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def _file(file_id: int, name: str, state: str, error: str | None = None) -> FileRow:
    return FileRow(
        file_id, name, 4 * 1024 * 1024, 0, "f", name, state, error, None, ("tmcd dropped",), None
    )


def test_status_table_shows_states_sizes_saving_and_reasons() -> None:
    console, out = _console()
    files = [
        _file(1, "good.mp4", "done"),
        _file(2, "bad.mp4", "failed", "not a readable media file"),
    ]
    outputs = [
        OutputRow(1, "archive", "done", "/a/good.mkv", 1024 * 1024, "ab", None),
        OutputRow(1, "preview", "failed", None, None, None, "boom"),
        OutputRow(1, "montage", "skipped", None, None, None, None),
    ]
    print_status(
        console, files, outputs, Summary({"done": 1, "failed": 1, "pending": 1}, 4 << 20, 1 << 20)
    )
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
OUTPUTS = [OutputRow(1, "archive", "done", "/a/x.mkv", 1 << 20, "ab", None)]
SUMMARY = Summary({"done": 1, "failed": 1}, 4 << 20, 1 << 20)


def test_status_on_a_narrow_terminal_keeps_every_name_and_reason() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    print_status(console, FILES, OUTPUTS, SUMMARY)
    text = out.getvalue()
    assert "2 files: done 1, failed 1" in text
    assert "2024/Game night/a very long folder name/boss fight with friends.mp4" in text
    assert "archive done · preview - · montage -" in text
    assert "preview: stream 0: preview encode of stream 0 failed: boom" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_status_piped_is_one_tab_separated_line_per_file() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    print_status(console, FILES, OUTPUTS, SUMMARY)
    lines = out.getvalue().splitlines()
    assert lines[1].split("\t")[:2] == ["file", "state"]
    first = lines[2].split("\t")
    assert first[:5] == [FILES[0].rel_path, "done", "done", "-", "-"]
    assert lines[3].split("\t")[-1] == f"{FILES[1].error}; tmcd dropped"
    assert not any(mark in out.getvalue() for mark in "│━┃"), "no box drawing"


def test_empty_status_says_what_to_do() -> None:
    console, out = _console()
    print_status(console, [], [], Summary({}, 0, 0))
    assert "put videos in raw/" in out.getvalue()


def test_human_size() -> None:
    assert [human_size(n) for n in (None, 0, 1023, 1024, 5 * 1024**4)] == [
        "-", "0 B", "1023 B", "1.0 KiB", "5.0 TiB",
    ]  # fmt: skip
