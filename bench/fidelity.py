"""What keeping the recording costs: the bench batch's CPU before and after, in one run.

The same batch as `bench.py` (its `make_workload` and settings) archived by `run --once`
with the code of an earlier commit (default: the last one before interlaced video, HDR
metadata, alpha, gapless audio, edit lists and the quality check were added) and with this
checkout's, in turns (before, after, before, after …) so that both see the same machine.
Each run's children's CPU comes from the daemon's own last log line. Prints a Markdown table.

    .venv/bin/python bench/fidelity.py [--before REV] [--runs 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from sections import FIDELITY, replace_section
from workload import CONFIG, make_workload, resources_line

BEFORE = "db8bb29"
HERE = Path(__file__).resolve().parent.parent


def archive_batch(source: Path, raw: Path, root: Path) -> float:
    """Archive a copy of the batch with the code under `source`: the children's CPU."""
    (root / "raw").mkdir(parents=True)
    for clip in raw.iterdir():
        os.link(clip, root / "raw" / clip.name)
    (root / "videoarchiver.toml").write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(source / "src")}
    subprocess.run([sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)  # fmt: skip
    return resources_line(root)["children"]


def report(cpu: dict[str, list[float]], before_rev: str) -> str:
    """The section of results.md: children's CPU of the batch, before and after."""
    before, after = (statistics.median(cpu[label]) for label in ("before", "after"))
    runs = len(cpu["before"])
    lines = [
        FIDELITY, "",
        f"The bench batch archived by `run --once` with the code of `{before_rev}` (before"
        " interlaced video, HDR metadata, alpha, gapless audio, edit lists, decoded lengths and"
        " the quality check) and with this code, in turns (`bench/fidelity.py`); children's CPU"
        " seconds from the daemon's last log line.", "",
        f"| code | children's CPU (median of {runs}) | runs |", "|---|---|---|",
    ]  # fmt: skip
    for label, value in (("before", before), ("after", after)):
        shown = ", ".join(f"{seconds:.1f}" for seconds in cpu[label])
        lines.append(f"| {label} | {value:.1f} s | {shown} |")
    change = (after / before - 1) * 100
    verdict = "met" if change <= 3 else "**missed**"
    lines += [
        "",
        f"after / before: {after / before:.3f} ({change:+.1f} %; target ≤ +3 %: {verdict})",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=2, help="runs of each")
    parser.add_argument("--quick", action="store_true", help="the quick bench's batch")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="videoarchiver-fidelity-") as folder:
        tmp = Path(folder)
        old = tmp / "before"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(old),
                        args.before], check=True, capture_output=True)  # fmt: skip
        try:
            make_workload(tmp / "raw", args.quick)
            cpu: dict[str, list[float]] = {"before": [], "after": []}
            for run in range(args.runs):
                for label, source in (("before", old), ("after", HERE)):
                    cpu[label].append(archive_batch(source, tmp / "raw", tmp / f"{label}{run}"))
                    print(f"{label} run {run + 1}: {cpu[label][-1]:.1f} CPU-s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)],
                           check=False, capture_output=True)  # fmt: skip
    section = report(cpu, args.before)
    print(section)
    replace_section(args.out, FIDELITY, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
