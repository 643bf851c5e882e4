"""Short clips side by side: ours against a plain parallel ffmpeg loop, and where our CPU goes.

Each batch — the bench batch cut short (4, 14, 6, 30 and 15 s), the bench batch itself (not
with `--quick`) and phone-like clips of 2 to 20 s (200; 20 with `--quick`) — is processed in
turns, ours, loop, ours, loop …, on one machine in one run, so both share its noise:

- *ours*: `run --once`, with the bench's settings (x264 `medium`);
- *the loop*: `plain_loop.py`'s three commands a file, `cores` at a time.

Every command of both runs under `accounting.CpuGroups`, so each one's CPU is known and sorted
by what it was for (`categories.py`): the children's CPU below is the sum of the commands'
(the shims' own start, a millisecond a command, is left out, for both alike). Also measured:
what starting a process costs, the CPU of ffprobe reading a clip's header, of ffmpeg decoding
one frame, of SVT-AV1 and x264 encoding one.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import anyio
from accounting import Accounted, CpuGroups
from categories import CATEGORIES, ENCODES, LOOP_CATEGORIES, category, files_of
from phone_clips import make_phone_clips
from plain_loop import QUIET_SVT, loop_commands, run_loop
from sections import SHORT_CLIPS, verdict
from workload import CONFIG, children_cpu, make_workload, resources_line, run_once

from videoarchiver.tools import readable_demuxers

SMALL_SECONDS = {"big": 4, "mid": 14, "multi": 6, "song": 30, "noise": 15}
PHONE_CLIPS, QUICK_PHONE_CLIPS = 200, 20
TARGETS = {"small": 1.00, "medium": 0.98, "phone": 0.95}  # ours / the loop, wall and CPU
DAEMON_SHARE = 0.01
STARTUP_RUNS = 5


class Turn(NamedTuple):
    wall: float
    own: float  # the daemon's CPU (none for the loop)
    commands: list[Accounted]
    load: tuple[float, float]  # the 1-minute load average before and after
    failed: int = 0

    @property
    def cpu(self) -> float:
        return sum(command.cpu for command in self.commands)

    def by(
        self, key: Callable[[Accounted, str | None], str | None]
    ) -> defaultdict[str | None, float]:
        """CPU seconds by `key` of each command and its file."""
        totals: defaultdict[str | None, float] = defaultdict(float)
        files = files_of([command.args for command in self.commands])
        for command, file in zip(self.commands, files, strict=True):
            totals[key(command, file)] += command.cpu
        return totals


class Batch(NamedTuple):
    name: str
    files: dict[str, str]
    ours: list[Turn]
    loop: list[Turn]


def ours_turn(raw: Path, root: Path, groups: CpuGroups) -> Turn:
    (root / "raw").mkdir(parents=True)
    for clip in raw.iterdir():
        os.link(clip, root / "raw" / clip.name)
    (root / "videoarchiver.toml").write_text(CONFIG)
    load = os.getloadavg()[0]
    wall = run_once(root, {"PATH": groups.path})
    own = resources_line(root)["own"]
    shutil.rmtree(root)
    return Turn(wall, own, groups.collect(), (load, os.getloadavg()[0]))


def loop_turn(commands: list[list[str]], out: Path, groups: CpuGroups, cores: int) -> Turn:
    out.mkdir()
    load = os.getloadavg()[0]
    programs = {program: groups.shim(program) for program in ("ffmpeg", "ffprobe")}
    wall, failed = run_loop(commands, programs, cores)
    shutil.rmtree(out)
    return Turn(wall, 0.0, groups.collect(), (load, os.getloadavg()[0]), failed)


def side_by_side(
    tmp: Path, name: str, files: dict[str, str], turns: int, groups: CpuGroups, cores: int
) -> Batch:
    raw = tmp / name / "raw"
    out = tmp / name / "loop"
    commands = loop_commands(raw, out, anyio.run(readable_demuxers))
    batch = Batch(name, files, [], [])
    for number in range(turns):
        batch.ours.append(ours_turn(raw, tmp / name / f"ours{number}", groups))
        batch.loop.append(loop_turn(commands, out, groups, cores))
        for label, turn in (("ours", batch.ours[-1]), ("loop", batch.loop[-1])):
            print(f"  {name} turn {number + 1}, {label}: wall {turn.wall:.1f} s,"
                  f" CPU {turn.cpu:.1f} s, load {turn.load[0]:.1f}–{turn.load[1]:.1f}",
                  flush=True)  # fmt: skip
    return batch


def startup_cpu(clip: Path) -> dict[str, float]:
    """The median CPU of a few runs of each command that does next to nothing on `clip`."""
    null = ("-frames:v", "1", "-f", "null", "-")
    commands: dict[str, list[str | Path]] = {
        "libraries": ["ffprobe", "-version"],
        "ffprobe": ["ffprobe", "-v", "error", "-show_format", "-show_streams", clip],
        "ffmpeg": ["ffmpeg", "-v", "error", "-i", clip, *null],
        "SVT-AV1": ["ffmpeg", "-v", "error", "-i", clip, "-vf", "scale=960:540",
                    "-c:v", "libsvtav1", "-crf", "63", "-preset", "8", *null],
        "x264": ["ffmpeg", "-v", "error", "-i", clip, "-c:v", "libx264", "-crf", "18",
                 "-preset", "medium", *null],
    }  # fmt: skip
    costs = {}
    for kind, args in commands.items():
        runs = []
        for _ in range(STARTUP_RUNS):
            before = children_cpu()
            subprocess.run(list(map(str, args)), check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=QUIET_SVT)  # fmt: skip
            runs.append(children_cpu() - before)
        costs[kind] = statistics.median(runs)
    return costs


STARTUP_LABELS = {
    "libraries": "ffprobe printing its version: loading its shared libraries, nothing more",
    "ffprobe": "ffprobe reading the header (`-show_format -show_streams`)",
    "ffmpeg": "ffmpeg decoding 1 frame (`-frames:v 1 -f null`)",
    "SVT-AV1": "ffmpeg encoding 1 frame with SVT-AV1 (preview settings, 960x540)",
    "x264": "ffmpeg encoding 1 frame with x264 `medium`",
}


def process_kind(args: Sequence[str]) -> str:
    """Which start-up of `startup_cpu` a command pays."""
    if args[0] != "ffmpeg":
        return "ffprobe"
    return next((kind for kind, codec in (("SVT-AV1", "libsvtav1"), ("x264", "libx264"))
                 if codec in args), "ffmpeg")  # fmt: skip


def startup_share(turn: Turn, costs: dict[str, float]) -> float:
    """CPU seconds of `turn` that starting its processes took: each command's start-up cost,
    or its whole CPU where it spent less (mkvpropedit counts as an ffprobe)."""
    return sum(min(command.cpu, costs[process_kind(command.args)]) for command in turn.commands)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def category_cpu(turns: Sequence[Turn]) -> dict[str, float]:
    """The median over `turns` of each category's CPU seconds."""
    totals = [turn.by(lambda command, _file: category(command.args)) for turn in turns]
    names = {name for total in totals for name in total if name}
    return {name: median([total[name] for total in totals]) for name in names}


def file_cpu(turns: Sequence[Turn]) -> dict[str | None, float]:
    totals = [turn.by(lambda _command, file: file) for turn in turns]
    return {name: median([total[name] for total in totals]) for name in totals[0]}


def ratio(ours: float, loop: float) -> str:
    return f"{ours / loop:.2f}×" if loop else "—"


def summary_rows(batch: Batch, label: str) -> list[str]:
    wall = [median([t.wall for t in turns]) for turns in (batch.ours, batch.loop)]
    cpu = [median([t.cpu for t in turns]) for turns in (batch.ours, batch.loop)]
    own = median([t.own for t in batch.ours])
    target = TARGETS[batch.name]
    share = own / cpu[0] if cpu[0] else 0.0
    checks = [f"{what} {verdict(pair[0] <= target * pair[1])}"
              for what, pair in (("wall", wall), ("CPU", cpu))]  # fmt: skip
    return [
        f"| {label} | {len(batch.files)} | {wall[0]:.1f} s | {wall[1]:.1f} s |"
        f" {ratio(*wall)} | {cpu[0]:.1f} s | {cpu[1]:.1f} s | {ratio(*cpu)} | ≤ {target:.2f}× |"
        f" {', '.join(checks)} | {own:.2f} s = {share:.2%} | {verdict(share <= DAEMON_SHARE)} |"
    ]


def turn_rows(batch: Batch, label: str) -> list[str]:
    return [
        f"| {label} | {number + 1} | {ours.wall:.1f} s, {ours.cpu:.1f} s,"
        f" {ours.load[0]:.1f}–{ours.load[1]:.1f} | {loop.wall:.1f} s, {loop.cpu:.1f} s,"
        f" {loop.load[0]:.1f}–{loop.load[1]:.1f} | {loop.failed} |"
        for number, (ours, loop) in enumerate(zip(batch.ours, batch.loop, strict=True))
    ]


def category_table(batch: Batch, costs: dict[str, float]) -> list[str]:
    ours, loop = category_cpu(batch.ours), category_cpu(batch.loop)
    counts = Counter(category(command.args) for command in batch.ours[0].commands)
    counts.update(category(command.args) for command in batch.loop[0].commands)
    files = len(batch.files)
    total = sum(ours.values())
    lines = [
        "| category | commands | CPU | per file | share of ours |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {counts[name]} | {ours[name]:.2f} s | {ours[name] / files:.3f} s |"
            f" {ours[name] / total:.1%} |"
            for name in CATEGORIES
            if counts[name]
        ],
        f"| **ours, all** | {sum(counts[name] for name in CATEGORIES)} | {total:.2f} s |"
        f" {total / files:.3f} s | 100 % |",
        *[
            f"| {name} | {counts[name]} | {loop[name]:.2f} s | {loop[name] / files:.3f} s | |"
            for name in LOOP_CATEGORIES
            if counts[name]
        ],
        "",
        "| output | ours: its encodes | the loop's command | ours / loop |",
        "|---|---|---|---|",
    ]
    encodes = 0.0
    for name, parts in ENCODES.items():
        made = sum(ours.get(part, 0.0) for part in parts)
        encodes += made
        theirs = loop.get(name, 0.0)
        lines.append(f"| {name.removeprefix('loop: ')} ({' + '.join(parts)}) | {made:.2f} s |"
                     f" {theirs:.2f} s | {ratio(made, theirs)} |")  # fmt: skip
    starts = [
        median([startup_share(t, costs) for t in turns]) for turns in (batch.ours, batch.loop)
    ]
    lines += [
        f"| everything else ours runs | {total - encodes:.2f} s ({(total - encodes) / total:.1%}"
        " of ours) | — | |",
        "",
        f"Start-up of its processes (each command's CPU up to the start-up cost of its kind,"
        f" below): ours {starts[0]:.2f} s ({starts[0] / files:.3f} s a file,"
        f" {starts[0] / total:.1%} of its CPU), the loop {starts[1]:.2f} s"
        f" ({starts[1] / files:.3f} s a file).",
    ]
    return lines


def file_table(batch: Batch) -> list[str]:
    ours, loop = file_cpu(batch.ours), file_cpu(batch.loop)
    encodes = [turn.by(lambda command, file: file if category(command.args) in
                       {part for parts in ENCODES.values() for part in parts} else None)
               for turn in batch.ours]  # fmt: skip
    counts = Counter(files_of([command.args for command in batch.ours[0].commands]))
    lines = [
        "| file | content | ours: commands | ours: CPU | of it the encodes | loop: CPU |"
        " ours / loop |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, content in batch.files.items():
        made = median([total[name] for total in encodes])
        lines.append(f"| {name} | {content} | {counts[name]} | {ours.get(name, 0.0):.2f} s |"
                     f" {made:.2f} s | {loop.get(name, 0.0):.2f} s |"
                     f" {ratio(ours.get(name, 0.0), loop.get(name, 0.0))} |")  # fmt: skip
    if counts[None]:
        lines.append(f"| (no file: the daemon's tool checks) | | {counts[None]} |"
                     f" {ours.get(None, 0.0):.2f} s | | | |")  # fmt: skip
    return lines


LABELS = {
    "small": "small (the bench batch at 4, 14, 6, 30 and 15 s)",
    "medium": "medium (the bench batch)",
    "phone": "phone-like clips, 2–20 s",
}


def report(batches: list[Batch], costs: dict[str, float], turns: int, cores: int) -> str:
    loads = [load for batch in batches for turn in batch.ours + batch.loop for load in turn.load]
    under_load = max(loads) > cores / 2
    lines = [
        SHORT_CLIPS,
        "",
        f"`bench/bench.py --only short-clips` (`bench/short_clips.py`): each batch processed by"
        f" `run --once` (x264 `medium`) and by a plain parallel loop ({cores} commands at a"
        f" time: per file one archive, one preview and one montage command, ours' settings),"
        f" {turns} turn(s) of each, interleaved; medians. CPU is the children's: the sum of"
        f" every command's own, counted by a cgroup each. The 1-minute load average during the"
        f" turns: {min(loads):.1f} to {max(loads):.1f} on {cores} cores"
        + (
            " — **measured under load**: other jobs shared the machine; wall times are the less"
            " reliable, CPU seconds rise too (caches, SMT) but for both alike."
            if under_load
            else "."
        ),
        "",
        "| batch | files | ours: wall | loop: wall | wall ours / loop | ours: CPU | loop: CPU |"
        " CPU ours / loop | target | | daemon's own CPU / children's | ≤ 1 % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[row for batch in batches for row in summary_rows(batch, LABELS[batch.name])],
        "",
        "| batch | turn | ours: wall, CPU, load | loop: wall, CPU, load | loop commands failed |",
        "|---|---|---|---|---|",
        *[row for batch in batches for row in turn_rows(batch, batch.name)],
    ]
    for batch in batches:
        lines += ["", f"### Where the CPU goes: {LABELS[batch.name]}", ""]
        lines += category_table(batch, costs)
        if len(batch.files) <= QUICK_PHONE_CLIPS:
            lines += ["", *file_table(batch)]
    lines += [
        "",
        "### What starting a process costs",
        "",
        "On a 1080p H.264 phone clip, the median of five runs each:",
        "",
        "| command | CPU |",
        "|---|---|",
        *[f"| {STARTUP_LABELS[kind]} | {cpu * 1000:.0f} ms |" for kind, cpu in costs.items()],
    ]
    return "\n".join(lines) + "\n"


def short_clips(tmp: Path, quick: bool, turns: int) -> str:
    """Run the batches side by side; the section of results.md."""
    cores = os.cpu_count() or 1
    groups = CpuGroups(tmp / "accounting")
    try:
        batches = []
        for name in ("small", "phone") if quick else ("small", "medium", "phone"):
            print(f"short clips: {name} …", flush=True)
            raw = tmp / name / "raw"
            if name == "phone":
                files = make_phone_clips(raw, QUICK_PHONE_CLIPS if quick else PHONE_CLIPS, cores)
            else:
                files = make_workload(raw, False, SMALL_SECONDS if name == "small" else None)
            batches.append(side_by_side(tmp, name, files, turns, groups, cores))
        costs = startup_cpu(tmp / "phone" / "pools" / "h264-1080p.mp4")
    finally:
        groups.remove()
    return report(batches, costs, turns, cores)
