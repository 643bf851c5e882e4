"""Sections of `bench/results.md` that a bench of their own writes (`quality.py`,
`fidelity.py`) and `bench.py`, which rewrites the rest of the file, keeps as they were."""

from __future__ import annotations

from pathlib import Path

QUALITY = "## Quality (SSIM)"  # quality.py's
FIDELITY = "## What keeping the recording costs"  # fidelity.py's
PAGES = "## The web page at 100,000 files"  # pages.py's


def kept_section(path: Path, heading: str) -> str:
    """The section under `heading` in `path` (up to the next `## `), or ""."""
    if not path.exists():
        return ""
    text = path.read_text()
    if heading not in text:
        return ""
    section = text[text.index(heading) :]
    end = section.find("\n## ", len(heading))
    return "\n" + (section if end < 0 else section[: end + 1])


def replace_section(path: Path, heading: str, section: str) -> None:
    """Write `section` (starting with `heading`) into `path` in place of the one there."""
    text = path.read_text() if path.exists() else ""
    kept = kept_section(path, heading)
    if kept:
        text = text.replace(kept.removeprefix("\n"), "")
    path.write_text(text.rstrip("\n") + "\n\n" + section)
