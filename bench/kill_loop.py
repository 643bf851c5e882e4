"""A randomised SIGKILL loop: does videoarchiver keep its crash-safety promises?

README "Interrupted? It carries on" and docs/design.md ("Resuming", "Publishing") promise
that the daemon may be killed at any instant: no raw file is lost or changed, its ffmpeg
children die with it, nothing half-written appears in archive/, preview/ or screenshot/, and
the next start finishes the work.

For each root (a fresh temporary folder with three generated clips and a random `after_done`)
the loop starts `run --once` and SIGKILLs it, a few times, either after a random delay (0.05 s to
the time a full run takes) or aimed with strace at one system call of one phase (an output
linked into place, a raw file taken aside, moved or deleted, a write of the state database ...).
After each kill it checks that no ffmpeg is left and what must hold at any instant; then it lets
one run finish and checks everything a user would check. A failing root is kept with its evidence.

A share of the roots with `after_done` move or delete (`--hostile-share` of all roots) is also
hostile to after_done, in one or two of its runs: a new recording (another clip, sometimes of
the same size) is copied to a hidden name in raw/ and renamed over a raw file's name, as a
camera-card copy tool would, or the middle 64 KiB of a raw file are overwritten in place (same
size, new mtime) with another recording's bytes. Each comes at a random moment or aimed: right
after the raw file is taken aside (inotify sees `.videoarchiver-taken-<id>` appear), while
strace holds the `unlink`/`link` of the taken file or the `rename` that takes it (the loop acts
during the hold, then may SIGKILL the daemon in it), or (an edit) once the file's archive is
published. Then every content that was ever in raw/ and that the loop did not itself destroy
(the rename displaces what was under the name; the edit what it overwrote) must be in raw/ (any
name, `*.kept-<id>` too), in done/, or archived whole (a done row with its SHA-256 and all its
outputs); done/ holds only archived contents; the row of a content replaced or edited under its
name says it was kept for its content; and, once the final runs end, everything is archived and
no `.videoarchiver-taken-*` is left. The rename swaps the names (renameat2 RENAME_EXCHANGE) so
that the loop knows exactly what it displaced; the displaced file is moved out of the root.

    .venv/bin/python bench/kill_loop.py --src /tmp/killtree/src --kills 100 --seed 1

Standard library only (ctypes for renameat2 and inotify; Linux, the aimed holds x86_64); one
daemon runs at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import hashlib
import json
import os
import platform
import random
import re
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
AFTER_DONE = ("keep", "move", "delete")
CONFIG = """\
settle_seconds = 0
jobs = 1
after_done = "{after_done}"

[archive]
video_args = ["-crf", "18", "-preset", "veryfast", "-g", "25"]
"""
# Output folder, name suffix, and whether only files with video have one.
OUTPUT_FOLDERS = (
    ("archive", ".mkv", False),
    ("preview", ".mkv", False),
    ("screenshot", ".jpg", True),
)
DURATION_TOLERANCE = 0.15
MAX_KEPT = 8  # roots kept for deviations only (every failing root is kept)
GONE_WITHIN = 5.0
STRACE = ("strace", "-f", "-qq", "-o", "/dev/null")
TAKEN = ".videoarchiver-taken-"  # after_done's hidden name for a raw file it took (+ file id)
TAKEN_IDS = range(1, 41)  # file ids whose taken names an aim at their unlink/link watches
WORK_ENTRIES = {"state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"}
WORK_ENTRIES |= {"workers", "files"}
# How bad each kind of failure is, most serious first (the report's order).
SEVERITY = (
    "raw lost or changed",
    "new recording lost",
    "edited raw lost",
    "raw disposed too early",
    "moved to done/ unarchived",
    "live ffmpeg after kill",
    "hang",
    "traceback",
    "missing or corrupt output",
    "unrecorded file in an output folder",
    "sha256 mismatch",
    "old content's row not kept",
    "file not done",
    "raw action pending",
    "taken file left behind",
    "leftover work files",
    "second run redid work",
    "verify failed",
    "error logged",
)


# -- clips ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    name: str
    has_video: bool
    args: tuple[str, ...]  # ffmpeg's arguments before the output name

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix


CLIP_A = (  # 6 s 320x240 25 fps, mpeg4 + PCM, in MKV
    "-f lavfi -i testsrc2=size=320x240:rate=25:duration=6"
    " -f lavfi -i sine=frequency=440:duration=6:sample_rate=48000"
    " -c:v mpeg4 -q:v 3 -c:a pcm_s16le -shortest"
)
CLIP_B = (  # 4 s, lossless h264 (x264 CRF 18 shrinks it) + 256 kb/s AAC, in MP4
    "-f lavfi -i testsrc=size=320x240:rate=25:duration=4 -f lavfi -i sine=frequency=660:duration=4"
    " -c:v libx264 -preset ultrafast -qp 0 -pix_fmt yuv420p -c:a aac -b:a 256k -ac 2 -shortest"
)
CLIP_C = "-f lavfi -i sine=frequency=330:duration=5:sample_rate=44100 -ac 2"  # 5 s audio only
# Hostile roots: clip A over 2 MiB (an edit in its middle is outside its fingerprint's two MiB).
CLIP_A_BIG = CLIP_A.replace("320x240", "400x300").replace("-q:v 3", "-q:v 2")


def clip_specs(audio_exts: Sequence[str], big: bool = False) -> list[ClipSpec]:
    """Three kinds: MKV mpeg4 + PCM, MP4 h264 + AAC, and audio only (WAV or FLAC)."""
    audio = [
        ClipSpec(f"clip_{letter}.{ext}", False, _split(CLIP_C))
        for letter, ext in zip("cdef", audio_exts, strict=False)
    ]
    return [
        ClipSpec("clip_a.mkv", True, _split(CLIP_A_BIG if big else CLIP_A)),
        ClipSpec("clip_b.mp4", True, _split(CLIP_B)),
        *audio,
    ]


def _split(args: str) -> tuple[str, ...]:
    """A constant argument list written as one string (no shell: split on spaces only)."""
    return tuple(args.split())


@dataclass(frozen=True)
class StreamInfo:
    index: int
    codec_type: str
    codec_name: str
    packets: int
    start: float
    end: float
    pts_ms: tuple[int, ...]  # sorted, relative to the first (video only)

    @property
    def span(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    streams: tuple[StreamInfo, ...]


@dataclass(frozen=True)
class Clip:
    spec: ClipSpec
    sha256: str
    info: MediaInfo


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run_tool(args: Sequence[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _ffprobe(path: Path, output_format: str, entries: str) -> str:
    """ffprobe's answer for `entries`; raises ValueError when it cannot read the file."""
    result = run_tool(
        ["ffprobe", "-v", "error", "-of", output_format, "-show_entries", entries, f"file:{path}"]
    )
    if result.returncode != 0:
        raise ValueError(f"ffprobe cannot read {path}: {result.stderr.strip()[-300:]}")
    return result.stdout


def ffprobe_json(path: Path) -> dict[str, Any]:
    """ffprobe's format and streams; raises ValueError when it cannot read the file."""
    entries = "format=duration:stream=index,codec_type,codec_name,width,height"
    data: dict[str, Any] = json.loads(_ffprobe(path, "json", entries))
    if not data.get("streams"):
        raise ValueError(f"ffprobe finds no stream in {path}")
    return data


def _packets(path: Path) -> dict[int, list[tuple[float | None, float]]]:
    stdout = _ffprobe(path, "csv=p=0", "packet=stream_index,pts_time,duration_time")
    packets: dict[int, list[tuple[float | None, float]]] = {}
    for line in stdout.splitlines():
        fields = line.strip().rstrip(",").split(",")
        if len(fields) < 2 or not fields[0].isdigit():
            continue
        pts = None if fields[1] in ("", "N/A") else float(fields[1])
        duration = float(fields[2]) if len(fields) > 2 and fields[2] not in ("", "N/A") else 0.0
        packets.setdefault(int(fields[0]), []).append((pts, duration))
    return packets


def probe_media(path: Path) -> MediaInfo:
    data = ffprobe_json(path)
    packets = _packets(path)
    streams = []
    for stream in data["streams"]:
        index = int(stream["index"])
        timed = [(pts, dur) for pts, dur in packets.get(index, []) if pts is not None]
        start = min((pts for pts, _ in timed), default=0.0)
        end = max((pts + dur for pts, dur in timed), default=0.0)
        video = stream.get("codec_type") == "video"
        relative = sorted(round((pts - start) * 1000) for pts, _ in timed) if video else []
        streams.append(
            StreamInfo(
                index,
                str(stream.get("codec_type")),
                str(stream.get("codec_name")),
                len(packets.get(index, [])),
                start,
                end,
                tuple(relative),
            )
        )
    return MediaInfo(float(data.get("format", {}).get("duration", 0.0)), tuple(streams))


def make_clip(spec: ClipSpec, target: Path) -> Clip:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *spec.args, str(target)],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    return Clip(spec, sha256_of(target), probe_media(target))


def make_clips(raw: Path, specs: Sequence[ClipSpec]) -> list[Clip]:
    raw.mkdir(parents=True, exist_ok=True)
    return [make_clip(spec, raw / spec.name) for spec in specs]


def variant_specs(spec: ClipSpec) -> list[tuple[ClipSpec, bool]]:
    """Other recordings under a raw file's name, each with whether it lasts as long: the same
    clip at another pitch (of the same size where the audio is PCM), then a shorter one."""
    text = " ".join(spec.args)
    pitched = re.sub(r"frequency=(\d+)", lambda m: f"frequency={int(m[1]) * 5 // 4}", text)
    shorter = re.sub(r"duration=(\d+)", lambda m: f"duration={int(m[1]) - 2}", pitched)
    return [
        (ClipSpec(spec.name, spec.has_video, _split(pitched)), True),
        (ClipSpec(spec.name, spec.has_video, _split(shorter)), False),
    ]


class ClipCache:
    """Clips made once per loop (by their ffmpeg arguments), to be copied where wanted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: dict[tuple[str, ...], tuple[Path, Clip]] = {}

    def get(self, spec: ClipSpec) -> tuple[Path, Clip]:
        """The made clip's file and its Clip (named as `spec`)."""
        key = (spec.suffix, *spec.args)
        if key not in self.made:
            self.folder.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
            path = self.folder / f"{digest}{spec.suffix}"
            self.made[key] = (path, make_clip(spec, path))
        path, clip = self.made[key]
        return path, Clip(spec, clip.sha256, clip.info)


# -- the state database -----------------------------------------------------------------------

Row = dict[str, Any]


@dataclass
class State:
    files: list[Row]
    outputs: list[Row]
    jobs: list[Row]

    def outputs_of(self, file_id: int) -> dict[str, Row]:
        return {row["kind"]: row for row in self.outputs if row["file_id"] == file_id}

    def jobs_of(self, file_id: int, output: str) -> list[Row]:
        return [r for r in self.jobs if r["file_id"] == file_id and r["output"] == output]

    def dump(self) -> str:
        lines = []
        for name, rows in (("files", self.files), ("outputs", self.outputs), ("jobs", self.jobs)):
            lines.append(f"[{name}]")
            for row in rows:
                shown = {k: v for k, v in row.items() if k not in ("probe", "parts", "notes")}
                lines.append("  " + json.dumps(shown, default=str))
                if row.get("parts") not in (None, "[]"):
                    lines.append("    parts " + str(row["parts"]))
        return "\n".join(lines)


def read_state(root: Path) -> State | None:
    """The state as the next daemon would find it, read from a copy (the root is untouched)."""
    database = root / "work" / "state.sqlite3"
    if not database.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="kill_loop_db-") as folder:
        for suffix in ("", "-wal"):
            source = database.with_name(database.name + suffix)
            if source.exists():
                shutil.copyfile(source, Path(folder) / ("state.sqlite3" + suffix))
        connection = sqlite3.connect(Path(folder) / "state.sqlite3")
        connection.row_factory = sqlite3.Row
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            files, outputs, jobs = (
                _rows(connection, t, tables, root) for t in ("files", "outputs", "stream_jobs")
            )
            return State(files, outputs, jobs)
        finally:
            connection.close()


def _rows(connection: sqlite3.Connection, table: str, tables: set[str], root: Path) -> list[Row]:
    """The rows of `table`, as this script reads them whatever the schema's version: `kind`
    is the output (outputs) or the stream type (stream jobs), paths are absolute."""
    if table not in tables:
        return []
    rows = [dict(row) for row in connection.execute(f"SELECT * FROM {table}")]
    for row in rows:
        row.setdefault("kind", row.get("output") if table == "outputs" else row.get("stream_type"))
        if row.get("path"):
            row["path"] = str(root / row["path"])  # relative to the root (or absolute: kept)
    return rows


def phases_of(state: State | None, since: float) -> list[str]:
    """What the daemon was doing when it died, from the rows it had committed; a row not
    written since the run started (time `since`) was left so by an earlier kill."""
    if state is None or not state.files:
        return ["startup (nothing recorded)"]

    def fresh(row: Row) -> bool:
        return float(row.get("updated_at") or 0.0) >= since

    def suffix(row: Row) -> str:
        return "" if fresh(row) else " (left by an earlier kill)"

    found: list[str] = []
    for row in state.files:
        if (row.get("raw_action") or "").endswith(" pending"):
            found.append("after_done " + row["raw_action"].split()[0] + suffix(row))
    for row in state.outputs:
        if row["state"] == "publishing":
            found.append(f"{row['kind']} publish{suffix(row)}")
        elif row["state"] == "running" and row["kind"] != "montage":
            jobs = state.jobs_of(row["file_id"], row["kind"])
            if jobs and all(job["state"] == "done" for job in jobs):
                found.append(f"{row['kind']} mux/verify")
    for job in state.jobs:
        if job["state"] == "running":
            if job["output"] == "montage":
                found.append("montage publish" if job.get("path") else "montage render")
            else:
                found.append(f"{job['output']} {job['kind']} encode")
    for row in state.files:
        if row["state"] == "running" and not state.outputs_of(row["id"]):
            found.append("probe")
    if not found:
        rows = state.files + state.outputs + state.jobs
        if all(row["state"] == "done" for row in state.files):
            found.append("finished, exiting")
        elif not any(fresh(row) for row in rows):
            found.append("startup (nothing committed yet)")
        else:
            found.append("between steps")
    return sorted(set(found), key=_phase_rank)


PHASE_ORDER = ("after_done", "archive publish", "preview publish", "montage publish", "mux")


def _phase_rank(phase: str) -> tuple[int, str]:
    for rank, prefix in enumerate(PHASE_ORDER):
        if phase.startswith(prefix) or prefix in phase:
            return rank, phase
    return len(PHASE_ORDER), phase


# -- processes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aim:
    """A kill aimed with strace: SIGKILL on entering the `when`-th system call of `calls` on
    one of `paths`; or, with `hold_us`, that call held that long (the loop acts meanwhile)."""

    name: str
    calls: str
    paths: tuple[Path, ...]
    when: int = 1
    hold_us: int = 0

    def wrap(self, command: Sequence[str]) -> list[str]:
        selected = [arg for path in self.paths for arg in ("-P", str(path))]
        action = f"delay_enter={self.hold_us}" if self.hold_us else "signal=KILL"
        return [
            *STRACE,
            "-e",
            f"trace={self.calls}",
            *selected,
            "-e",
            f"inject={self.calls}:{action}:when={self.when}",
            *command,
        ]

    def shown(self, root: Path) -> str:
        more = f" (+{len(self.paths) - 1})" if len(self.paths) > 1 else ""
        return f"{self.calls} {self.paths[0].relative_to(root)}{more} when={self.when}"


@dataclass
class RunResult:
    returncode: int | None
    killed: bool
    elapsed: float
    stderr: Path
    timed_out: bool = False


def _cmdline(pid: str) -> bytes | None:
    """A live (not zombie) process's command line, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return None


def processes_mentioning(root: Path) -> dict[int, str]:
    """Live processes (other than this one) whose command line names the root."""
    needle = str(root).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        cmdline = _cmdline(entry.name)
        if cmdline and needle in cmdline:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def wait_gone(root: Path, limit: float = GONE_WITHIN) -> tuple[float, dict[int, str]]:
    """Seconds until no process names the root, and the survivors when `limit` passed."""
    start = time.monotonic()
    while True:
        alive = processes_mentioning(root)
        waited = time.monotonic() - start
        if not alive or waited >= limit:
            return waited, alive
        time.sleep(0.02)


def end_processes(pids: Iterable[int]) -> None:
    """Ends survivors of our own runs, by id (only ever after they were reported)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Daemon:
    def __init__(self, python: str, src: Path) -> None:
        self.python = python
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOARCHIVER_")}
        self.env["PYTHONPATH"] = str(src)

    def command(self, root: Path, *args: str) -> list[str]:
        return [self.python, "-m", "videoarchiver", *args, "--root", str(root)]

    def start(self, command: Sequence[str], stderr: Path) -> subprocess.Popen[bytes]:
        with stderr.open("wb") as err:
            return subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def run(self, root: Path, stderr: Path, kill_after: float | None, limit: float) -> RunResult:
        """`run --once`, SIGKILLed (Popen.kill) after `kill_after` seconds if still running."""
        began = time.monotonic()
        process = self.start(self.command(root, "run", "--once"), stderr)
        try:
            code = process.wait(timeout=limit if kill_after is None else kill_after)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
            return RunResult(
                code,
                kill_after is not None and code == -signal.SIGKILL,
                time.monotonic() - began,
                stderr,
                timed_out=kill_after is None,
            )
        return RunResult(code, False, time.monotonic() - began, stderr)

    def run_aimed(self, root: Path, stderr: Path, aim: Aim, limit: float) -> RunResult:
        began = time.monotonic()
        process = self.start(aim.wrap(self.command(root, "run", "--once")), stderr)
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            end_processes(processes_mentioning(root))
            process.kill()
            process.wait()
            return RunResult(None, False, time.monotonic() - began, stderr, timed_out=True)
        return RunResult(code, code == -signal.SIGKILL, time.monotonic() - began, stderr)

    def simple(self, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(root, *args),
            capture_output=True,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )


# -- one root ---------------------------------------------------------------------------------


@dataclass
class Kill:
    root: int
    run: int
    how: str  # "random" or the aim's name
    delay: float | None
    phases: list[str]
    gone_after: float


@dataclass
class Failure:
    root: int
    category: str
    message: str


@dataclass
class Content:
    """Bytes the loop put in raw/: an original clip, a new recording renamed over a raw file's
    name, or a raw file edited in place."""

    clip: Clip  # its raw name, kind, SHA-256 and media (an edit keeps what it edited's media)
    origin: str  # "original", "new recording" or "edited"
    reference: bool  # lasts as the original: an uninterrupted run's audio samples apply
    destroyed: str = ""  # how the loop itself destroyed it (nothing is owed for it then)


# What it is called when a content is lost, or moved into done/ without being archived.
LOST = {"original": "raw lost or changed", "new recording": "new recording lost"}
LOST["edited"] = "edited raw lost"
UNARCHIVED = {"original": "raw disposed too early"}
UNARCHIVED["new recording"] = UNARCHIVED["edited"] = "moved to done/ unarchived"


@dataclass(frozen=True)
class Move:
    """A hostile move the loop made under a raw file's name."""

    label: str  # "replace: take held", "edit: random" ...
    name: str
    at: float  # time.time()
    run: str  # the log of the run it came in
    before: str | None  # SHA-256 of what it destroyed under the name (None: the name was free)
    after: str  # SHA-256 of what it left there
    same_size: bool | None  # (None: nothing to compare with, the name was free)
    in_raw: bool = True  # an edit: it landed on the file under its raw name, not a taken one

    def describe(self) -> str:
        was = "the name was free" if self.before is None else f"destroyed {self.before[:12]}"
        where = "" if self.in_raw else ", landing on the file after it was taken aside"
        size = {True: " (same size)", False: " (other size)", None: ""}[self.same_size]
        return (
            f"{self.label} at raw/{self.name} in {self.run}: {was}, left {self.after[:12]}"
            f"{size}{where}"
        )


@dataclass
class Root:
    number: int
    path: Path
    logs: Path
    seed: int
    after_done: str
    clips: list[Clip] = field(default_factory=list)
    hostile: bool = False  # new recordings renamed in, edits in place (checked by content)
    contents: dict[str, Content] = field(default_factory=dict)  # by SHA-256
    moves: list[Move] = field(default_factory=list)
    settle_runs: int = 0  # runs after the final one for footage put back after a scan
    runs: int = 0
    kills: list[Kill] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    deviations: list[Failure] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    # (raw suffix, output) → audio samples an uninterrupted run's output decodes to
    reference: dict[tuple[str, str], int] = field(default_factory=dict)

    def fail(self, category: str, message: str) -> None:
        self.failures.append(Failure(self.number, category, message))
        print(f"  FAILURE root {self.number} [{category}] {message}", flush=True)

    def deviate(self, category: str, message: str) -> None:
        """Not a crash-safety failure, but not what an uninterrupted run makes."""
        self.deviations.append(Failure(self.number, category, message))
        print(f"  deviation root {self.number} [{category}] {message}", flush=True)

    def next_log(self) -> Path:
        self.runs += 1
        return self.logs / f"run{self.runs:02d}.log"


def new_root(
    base: Path,
    number: int,
    seed: int,
    after_done: str,
    audio_exts: Sequence[str] | None = None,
    hostile: ClipCache | None = None,
) -> Root:
    """A fresh root; a hostile one (its clips copied from the cache) has a clip A over 2 MiB."""
    path = base / f"root{number:03d}"
    logs = base / f"root{number:03d}.logs"
    logs.mkdir(parents=True)
    path.mkdir()
    (path / "videoarchiver.toml").write_text(CONFIG.format(after_done=after_done))
    root = Root(number, path, logs, seed, after_done, hostile=hostile is not None)
    exts = audio_exts or [random.Random(seed).choice(("wav", "flac"))]
    if hostile is None:
        root.clips = make_clips(path / "raw", clip_specs(exts))
    else:
        (path / "raw").mkdir()
        for spec in clip_specs(exts, big=True):
            source, clip = hostile.get(spec)
            shutil.copyfile(source, path / "raw" / spec.name)
            root.clips.append(clip)
    root.contents = {clip.sha256: Content(clip, "original", True) for clip in root.clips}
    return root


def aims(root: Root, rng: random.Random) -> list[Aim]:
    """The phases a kill can be aimed at, for this root's after_done and for outputs and raw
    files not yet published or moved (a kill aimed at what is done already would not fire)."""
    path = root.path
    wal = path / "work" / "state.sqlite3-wal"
    found = [
        Aim("state database write", "pwrite64", (wal,), rng.randint(1, 300)),
        Aim("state database commit (WAL sync)", "fsync,fdatasync", (wal,), rng.randint(1, 80)),
    ]
    for folder, suffix, video_only in OUTPUT_FOLDERS:
        clips = [c for c in root.clips if c.spec.has_video or not video_only]
        missing = [c for c in clips if not (path / folder / f"{c.spec.stem}{suffix}").exists()]
        if missing:
            name = "montage" if folder == "screenshot" else folder
            found.append(Aim(f"{name} linked, not recorded", "openat", (path / folder,)))
            target = path / folder / f"{rng.choice(missing).spec.stem}{suffix}"
            found.append(Aim(f"{name} intent recorded, before link", "link,linkat", (target,)))
    in_raw = [c for c in root.clips if (path / "raw" / c.spec.name).exists()]
    if in_raw and root.after_done != "keep":
        raw = rng.choice(in_raw).spec.name
        # after_done renames the raw file aside first, then unlinks (or links) the taken name.
        renames = "rename,renameat,renameat2"
        found.append(Aim(f"raw taken aside ({root.after_done})", renames, (path / "raw" / raw,)))
        taken = tuple(path / "raw" / f"{TAKEN}{number}" for number in TAKEN_IDS)
        found.append(Aim(f"taken raw unlink ({root.after_done})", "unlink,unlinkat", taken))
        if root.after_done == "move":
            found.append(Aim("raw linked into done/", "openat", (path / "done",)))
            found.append(Aim("raw move, before link", "link,linkat", (path / "done" / raw,)))
    return found


# -- hostile moves around after_done ----------------------------------------------------------

INCOMING = ".kill-loop-incoming-"  # where a new recording is copied before it is renamed in
HOLD_US = 1_500_000  # how long strace holds an aimed call (µs) while the loop acts
HELD_FOR = 0.15  # a thread stopped this long (s) in an aimed call is held by strace
EDIT_BYTES = 64 << 10
EDITABLE = (".mkv", ".wav")  # raw kinds whose same-size recordings splice into valid media
KEPT_OTHER = "kept: its content is not what was archived"
# What a move or delete says when another size of file took the raw file's name: not taken.
OTHER_FOOTAGE = ("not moved: the file now under its name is other footage",
                 "not deleted: the file now under its name is other footage")  # fmt: skip
# How a file fails when the loop changed it under the daemon (as it should).
CHANGED = ("changed or vanished while it was processed", "replaced by new content before")
# Held triggers: the calls strace holds, and their x86_64 numbers as /proc/<tid>/syscall has.
HOLDS = {
    "take held": ("rename,renameat,renameat2", frozenset({82, 264, 316})),
    "taken held": ("unlink,unlinkat,link,linkat", frozenset({87, 263, 86, 265})),
}
CAN_HOLD = platform.machine() == "x86_64"
REPLACE_TRIGGERS = ("random", "taken", "taken held", "take held")
EDIT_TRIGGERS = ("random", "archive published", "take held")
HOSTILE_SALT = 0x5EEDCAFE  # the hostile draws' own generator: the others stay as they were
SETTLE_RUNS = 3
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
IN_MOVED_FROM, IN_MOVED_TO = 0x40, 0x80
LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Hostile:
    """A hostile move planned for one run of a root."""

    kind: str  # "replace" (a new recording renamed over the name) or "edit" (in place)
    trigger: str  # "random", "taken", "taken held", "take held", "archive published"
    round: int  # the root's run it comes in (0: the first; past the kills: a final run)
    kill: str  # "now" (in the hold), "later" (a random delay after), "none"
    same_size: bool  # replace: prefer a recording of the raw file's size
    name: str  # the raw name aimed at (the taken triggers take whichever is taken first)

    @property
    def label(self) -> str:
        return f"{self.kind}: {self.trigger}"


def plan_hostile(root: Root, hrng: random.Random, planned: int) -> list[Hostile]:
    """One or two moves, in distinct runs, from the root's own hostile generator."""
    kinds = hrng.choice((("replace",), ("edit",), ("replace", "edit")))
    # In half the roots the first comes in the first run, where every file reaches after_done.
    rounds = hrng.sample(range(planned + 1), len(kinds))
    if hrng.random() < 0.5 and 0 not in rounds:
        rounds[0] = 0
    events = []
    for kind, run in zip(kinds, rounds, strict=True):
        triggers = REPLACE_TRIGGERS if kind == "replace" else EDIT_TRIGGERS
        trigger = hrng.choice([t for t in triggers if CAN_HOLD or t not in HOLDS])
        kill = hrng.choice(("now", "none") if trigger in HOLDS else ("later", "later", "none"))
        names = [c.spec.name for c in root.clips if kind == "replace" or c.spec.suffix in EDITABLE]
        same_size = hrng.random() < 0.5
        events.append(Hostile(kind, trigger, run, kill, same_size, hrng.choice(names)))
    return sorted(events, key=lambda event: event.round)


def _renameat2(old: Path, new: Path, flags: int) -> None:
    if LIBC.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(new))


def rename_over(incoming: Path, target: Path) -> Path | None:
    """Rename `incoming` over `target` in one step, as `rename` does, but swapping the names
    (RENAME_EXCHANGE) so that what it displaced is known: it is at `incoming` then (returned);
    None when the name was free."""
    for _ in range(100):
        try:
            _renameat2(incoming, target, RENAME_EXCHANGE)
            return incoming
        except FileNotFoundError:
            pass
        try:
            _renameat2(incoming, target, RENAME_NOREPLACE)
            return None
        except FileExistsError:
            continue  # (put back meanwhile: swapped with that)
    raise RuntimeError(f"cannot rename {incoming} over {target}")


class TakenWatch:
    """inotify on raw/: the raw name after_done just renamed to its taken name."""

    def __init__(self, folder: Path) -> None:
        self.fd: int = LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        mask = IN_MOVED_FROM | IN_MOVED_TO
        if LIBC.inotify_add_watch(self.fd, os.fsencode(folder), mask) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
        self.moved_from: dict[int, str] = {}

    def wait(self, timeout: float) -> str | None:
        if not select.select([self.fd], [], [], timeout)[0]:
            return None
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return None
        found, offset = None, 0
        while offset + 16 <= len(data):
            _wd, mask, cookie, length = struct.unpack_from("iIII", data, offset)
            name = os.fsdecode(data[offset + 16 : offset + 16 + length].rstrip(b"\0"))
            offset += 16 + length
            if mask & IN_MOVED_FROM:
                self.moved_from[cookie] = name
            elif mask & IN_MOVED_TO and name.startswith(TAKEN) and cookie in self.moved_from:
                found = found or self.moved_from[cookie]
        return found

    def close(self) -> None:
        os.close(self.fd)


def child_of(parent: int) -> int | None:
    """The (last) child of a single-threaded process, or None."""
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return None
    return int(children[-1]) if children else None


class HeldCall:
    """Whether a thread of the daemon (strace's child) sits stopped in one of the aimed calls
    long enough to be the one strace holds (strace stops every call, for microseconds)."""

    def __init__(self, tracer: int, numbers: frozenset[int]) -> None:
        self.tracer = tracer
        self.numbers = numbers
        self.since: dict[tuple[int, str], float] = {}

    def daemon(self) -> int | None:
        """strace's child now (read each time: strace first forks a short-lived helper)."""
        return child_of(self.tracer)

    def held(self) -> bool:
        pid = self.daemon()
        if pid is None:
            return False
        now, current = time.monotonic(), {}
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                try:
                    state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    call = (task / "syscall").read_text().split()
                except (OSError, IndexError):
                    continue
                if state == "t" and call and call[0].isdigit() and int(call[0]) in self.numbers:
                    key = (int(task.name), " ".join(call[:2]))
                    current[key] = self.since.get(key, now)
        self.since = current
        return any(now - since >= HELD_FOR for since in current.values())


@dataclass(frozen=True)
class Staged:
    """A new recording copied to a hidden name in raw/, to be renamed over `name`."""

    path: Path
    content: Content


def replace_raw(root: Root, label: str, staged: Staged, name: str, run: str) -> Move:
    """Rename the staged new recording over raw/`name`; what it displaced leaves the root."""
    size = staged.path.stat().st_size
    displaced = rename_over(staged.path, root.path / "raw" / name)
    at = time.time()
    new = staged.content
    root.contents.setdefault(new.clip.sha256, new).destroyed = ""
    before, same_size = None, None
    if displaced is not None:
        before, same_size = sha256_of(displaced), displaced.stat().st_size == size
        displaced.rename(root.logs / f"displaced-{len(root.moves) + 1}-{name}")
        old = root.contents.get(before)
        if old is None:
            root.fail(
                "raw lost or changed",
                f"raw/{name} held bytes the loop never put there ({before[:16]}) when it renamed"
                " a new recording over it",
            )
        elif not old.destroyed:
            old.destroyed = f"displaced by the loop's rename ({label}, {run})"
    move = Move(label, name, at, run, before, new.clip.sha256, same_size)
    root.moves.append(move)
    return move


def splice_sources(root: Root, cache: ClipCache, name: str, size: int) -> list[Path]:
    """Recordings of the same kind and size as raw/`name` (their middles splice into it)."""
    original = next(c for c in root.clips if c.spec.name == name)
    specs = [original.spec, *(spec for spec, _ in variant_specs(original.spec))]
    paths = [cache.get(spec)[0] for spec in specs]
    return [path for path in paths if path.stat().st_size == size]


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def edit_raw(root: Root, label: str, cache: ClipCache, name: str, run: str) -> Move | None:
    """Overwrite the middle 64 KiB of raw/`name` in place with another recording's bytes at
    that offset (same size, new mtime); None when there is no file or no such recording."""
    path = root.path / "raw" / name
    try:
        size = path.stat().st_size
    except OSError:
        return None
    offset = max(0, (size - EDIT_BYTES) // 2) // 4096 * 4096
    patches = []
    for source in splice_sources(root, cache, name, size):
        with source.open("rb") as handle:
            handle.seek(offset)
            patches.append(handle.read(EDIT_BYTES))
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        old = os.pread(fd, EDIT_BYTES, offset)
        patch = next((p for p in patches if len(p) == len(old) and p != old), None)
        if info.st_size != size or patch is None:
            return None
        os.pwrite(fd, patch, offset)
        at = time.time()
        data = _read_all(fd)
        try:
            in_raw = os.lstat(path).st_ino == info.st_ino
        except OSError:
            in_raw = False
    finally:
        os.close(fd)
    after = hashlib.sha256(data).hexdigest()
    before = hashlib.sha256(data[:offset] + old + data[offset + len(old) :]).hexdigest()
    edited = root.contents.get(before)
    if edited is None:
        root.fail(
            "raw lost or changed",
            f"raw/{name} held bytes the loop never put there ({before[:16]}) when it edited it",
        )
        clip = next(c for c in root.clips if c.spec.name == name)
        edited = Content(clip, "original", True)
    elif not edited.destroyed:
        edited.destroyed = f"edited in place by the loop ({label}, {run})"
    clip = Clip(edited.clip.spec, after, edited.clip.info)
    root.contents[after] = Content(clip, "edited", edited.reference)
    move = Move(label, name, at, run, before, after, True, in_raw)
    root.moves.append(move)
    return move


def aim_at_present(root: Root, event: Hostile) -> Hostile:
    """The event aimed at a raw name still in raw/ (if its own is gone, the first that is
    there and fits the move), for a move that needs a file there (edits, a held take)."""
    if event.kind == "replace" and event.trigger != "take held":
        return event
    raw = root.path / "raw"
    names = [
        c.spec.name for c in root.clips if event.kind == "replace" or c.spec.suffix in EDITABLE
    ]
    present = [name for name in names if (raw / name).exists()]
    if event.name in present or not present:
        return event
    return dataclasses.replace(event, name=present[0])


def hold_aim(root: Root, event: Hostile) -> Aim | None:
    """The strace hold a held trigger needs: the rename that takes raw/<name>, or the first
    unlink/link of any taken name."""
    if event.trigger not in HOLDS:
        return None
    raw = root.path / "raw"
    if event.trigger == "take held":
        paths: tuple[Path, ...] = (raw / event.name,)
    else:
        paths = tuple(raw / f"{TAKEN}{number}" for number in TAKEN_IDS)
    return Aim(event.label, HOLDS[event.trigger][0], paths, hold_us=HOLD_US)


def kill_daemon(process: subprocess.Popen[bytes], held: HeldCall | None) -> None:
    """SIGKILL the daemon (under strace: strace's child, stopped in the held call)."""
    pid = held.daemon() if held is not None else process.pid
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def newly_archived(root: Root, seen: set[str]) -> str | None:
    """The raw name of an editable clip still in raw/ whose archive (`<stem>.mkv`, or
    `<name>.mkv` for a later content of that name) appeared since the run began."""
    archive = root.path / "archive"
    new = {p.name for p in archive.iterdir()} - seen if archive.is_dir() else set()
    seen.update(new)
    for clip in root.clips:
        name = clip.spec.name
        archives = {f"{clip.spec.stem}.mkv", f"{name}.mkv"}
        if name.endswith(EDITABLE) and new & archives and (root.path / "raw" / name).exists():
            return name
    return None


def taken_name(root: Root, event: Hostile) -> str:
    """The raw name of the file that is taken aside now (by its file id in the state)."""
    ids = [p.name.removeprefix(TAKEN) for p in (root.path / "raw").glob(f"{TAKEN}*")]
    state = read_state(root.path)
    names = {str(row["id"]): str(row["rel_path"]) for row in state.files} if state else {}
    return next((names[i] for i in ids if i in names), event.name)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def check_traceback(root: Root, log: Path) -> None:
    text = log.read_text(errors="replace") if log.exists() else ""
    if "Traceback" in text:
        root.fail("traceback", f"{log.name}: {tail(log, 25)}")


# -- what must hold at any instant ------------------------------------------------------------


def file_row(state: State | None, clip: Clip) -> Row | None:
    rows = [r for r in (state.files if state else []) if r["rel_path"] == clip.spec.name]
    return rows[-1] if rows else None


def outputs_published(root: Root, state: State | None, clip: Clip) -> bool:
    """All three outputs recorded done and present with the recorded bytes."""
    row = file_row(state, clip)
    return state is not None and row is not None and row_published(state, row, clip.spec.has_video)


def row_published(state: State, row: Row, has_video: bool) -> bool:
    """The row is done, with all three outputs recorded done and present with their bytes."""
    if row["state"] != "done":
        return False
    outputs = state.outputs_of(row["id"])
    for kind in ("archive", "preview"):
        out = outputs.get(kind)
        if out is None or out["state"] != "done" or not out.get("path"):
            return False
        if not Path(out["path"]).is_file():
            return False
        if sha256_of(Path(out["path"])) != out["sha256"]:
            return False
    montage = outputs.get("montage")
    wanted = "done" if has_video else "skipped"
    return montage is not None and montage["state"] == wanted


def archived(state: State | None, content: Content) -> bool:
    """A done row has the content's whole SHA-256 and all its outputs."""
    if state is None:
        return False
    digest, video = content.clip.sha256, content.clip.spec.has_video
    return any(r.get("sha256") == digest and row_published(state, r, video) for r in state.files)


def check_raw(root: Root, state: State | None, clip: Clip, final: bool) -> None:
    """The raw file is in raw/ (under its name, or taken aside by after_done under its hidden
    name) or done/ with its bytes, or deleted only once all is done; none is left aside."""
    name = clip.spec.name
    in_raw = root.path / "raw" / name
    in_done = root.path / "done" / name
    ids = [row["id"] for row in (state.files if state else []) if row["rel_path"] == name]
    aside = [p for p in (in_raw.with_name(f"{TAKEN}{i}") for i in ids) if p.exists()]
    for place in (in_raw, *aside, in_done):
        if place.exists() and sha256_of(place) != clip.sha256:
            root.fail("raw lost or changed", f"{place} has other bytes than the raw file had")
    present = [p for p in (in_raw, *aside, in_done) if p.exists()]
    if in_done.exists() and root.after_done != "move":
        root.fail("raw lost or changed", f"{in_done} exists with after_done={root.after_done}")
    if final and in_raw.exists() and root.after_done != "keep":
        root.fail("raw action pending", f"{name} is still in raw/ (after_done={root.after_done})")
    if final and aside:
        root.fail("taken file left behind", f"{name} is still taken aside as {aside[0].name}")
    if in_raw.exists() and not in_done.exists():
        return
    if root.after_done == "keep" and not in_raw.exists():
        root.fail("raw lost or changed", f"{name} left raw/ with after_done=keep")
    elif root.after_done == "move" and not in_done.exists() and not aside:
        root.fail(
            "raw lost or changed", f"{name} is neither in raw/ (nor taken aside) nor in done/"
        )
    if not outputs_published(root, state, clip):
        where = "gone" if not present else f"at {present[0].relative_to(root.path)}"
        row = file_row(state, clip)
        root.fail(
            "raw disposed too early",
            f"{name} is {where} but its outputs are not all published and recorded "
            f"(file row: {None if row is None else (row['state'], row['raw_action'])})",
        )


def recorded_outputs(state: State | None) -> dict[Path, tuple[str, str | None]]:
    """Every path the state says it published or intends to publish: (state, SHA-256)."""
    recorded: dict[Path, tuple[str, str | None]] = {}
    if state is None:
        return recorded
    for row in state.outputs:
        if row["kind"] != "montage" and row.get("path"):
            recorded[Path(row["path"])] = (row["state"], row.get("sha256"))
    for job in state.jobs:
        if job["output"] == "montage" and job.get("path"):
            recorded[Path(job["path"])] = (job["state"], job.get("sha256"))
    return recorded


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if not p.is_dir()) if folder.exists() else []


def check_output_folders(root: Root, state: State | None) -> dict[Path, str]:
    """Every file in archive/, preview/, screenshot/ is one the state recorded, with its
    bytes, and readable; returns their SHA-256."""
    recorded = recorded_outputs(state)
    hashes = {}
    for folder in ("archive", "preview", "screenshot"):
        for path in files_under(root.path / folder):
            if path not in recorded:
                root.fail("unrecorded file in an output folder", f"{path} is not in the state")
                continue
            hashes[path] = sha256_of(path)
            row_state, sha = recorded[path]
            if hashes[path] != sha:
                root.fail(
                    "sha256 mismatch",
                    f"{path}: file {hashes[path][:16]}, state {str(sha)[:16]} ({row_state})",
                )
            try:
                ffprobe_json(path)
            except ValueError as exc:
                root.fail("missing or corrupt output", str(exc))
    return hashes


def check_contents(root: Root, state: State | None) -> None:
    """Hostile roots, by content: what the loop put in raw/ and did not destroy itself is in
    raw/ (under any name) or in done/, or (after_done delete) archived; done/ holds archived
    contents only; raw/ and done/ hold nothing else."""
    found: dict[str, list[Path]] = {}
    for folder in ("raw", "done"):
        for path in files_under(root.path / folder):
            if path.name.startswith(INCOMING):
                continue
            digest = sha256_of(path)
            found.setdefault(digest, []).append(path)
            if digest not in root.contents:
                rel = path.relative_to(root.path)
                root.fail("raw lost or changed", f"{rel} holds bytes the loop never put in raw/")
    for digest, content in root.contents.items():
        paths = found.get(digest, [])
        what = f"{content.origin} {content.clip.spec.name} ({digest[:12]})"
        in_done = [p for p in paths if p.is_relative_to(root.path / "done")]
        if in_done and root.after_done != "move":
            root.fail(
                "raw lost or changed", f"{what} is in done/ with after_done={root.after_done}"
            )
        elif in_done and not archived(state, content):
            where = in_done[0].relative_to(root.path)
            root.fail(
                UNARCHIVED[content.origin],
                f"{what} is at {where} but no done row with its SHA-256 has all its outputs",
            )
        if paths or content.destroyed:
            continue
        if root.after_done == "move":
            root.fail(LOST[content.origin], f"{what} is neither in raw/ nor in done/")
        elif not archived(state, content):
            root.fail(
                LOST[content.origin],
                f"{what} is gone, and no done row with its SHA-256 has all its outputs",
            )


def check_after_kill(root: Root, state: State | None) -> None:
    if root.hostile:
        check_contents(root, state)
    else:
        for clip in root.clips:
            check_raw(root, state, clip, final=False)
    check_output_folders(root, state)


# -- what a user checks once a run finished ---------------------------------------------------


def expected_codecs(clip: Clip, decisions: dict[int, str]) -> list[str]:
    codecs = []
    for stream in clip.info.streams:
        if decisions.get(stream.index) == "copy":
            codecs.append(stream.codec_name)
        else:
            codecs.append("h264" if stream.codec_type == "video" else "opus")
    return codecs


def compare_media(root: Root, path: Path, clip: Clip, codecs: list[str], what: str) -> None:
    try:
        info = probe_media(path)
    except ValueError as exc:
        root.fail("missing or corrupt output", f"{what}: {exc}")
        return
    got = [s.codec_name for s in info.streams]
    if got != codecs:
        root.fail("missing or corrupt output", f"{what} {path.name}: streams {got}, want {codecs}")
        return
    if abs(info.duration - clip.info.duration) > DURATION_TOLERANCE:
        root.fail(
            "missing or corrupt output",
            f"{what} {path.name}: duration {info.duration:.3f} s, raw {clip.info.duration:.3f} s",
        )
    raw_streams = [s for s in clip.info.streams if s.codec_type in ("video", "audio")]
    raw_streams = raw_streams if len(raw_streams) == len(info.streams) else []
    for raw, out in zip(raw_streams, info.streams, strict=False):
        _compare_stream(root, f"{what} {path.name} stream {out.index}", raw, out)


def _compare_stream(root: Root, label: str, raw: StreamInfo, out: StreamInfo) -> None:
    if abs(raw.span - out.span) > DURATION_TOLERANCE:
        root.fail(
            "missing or corrupt output", f"{label}: lasts {out.span:.3f} s, raw {raw.span:.3f} s"
        )
    if raw.codec_type != "video":
        return
    if out.packets != raw.packets:
        root.fail(
            "missing or corrupt output",
            f"{label}: {out.packets} video frames, raw has {raw.packets}",
        )
    elif any(abs(a - b) > 1 for a, b in zip(raw.pts_ms, out.pts_ms, strict=True)):
        bad = [(a, b) for a, b in zip(raw.pts_ms, out.pts_ms, strict=True) if abs(a - b) > 1]
        root.fail(
            "missing or corrupt output",
            f"{label}: frame times differ from the raw's (ms raw/out) {bad[:5]}",
        )


def check_clip_outputs(root: Root, state: State, clip: Clip) -> set[Path]:
    """The clip's row, outputs and stream jobs; returns the output paths it should have."""
    row = file_row(state, clip)
    if row is None:
        root.fail("file not done", f"{clip.spec.name} has no row in files")
        return set()
    if row["stem"] != clip.spec.stem:
        root.fail(
            "unrecorded file in an output folder",
            f"{clip.spec.name}: outputs named {row['stem']!r}, not {clip.spec.stem!r}",
        )
    return check_row_outputs(root, state, row, clip, True, clip.spec.name)


def check_row_outputs(
    root: Root, state: State, row: Row, clip: Clip, reference: bool, label: str
) -> set[Path]:
    """A row of the content `clip`: done, its outputs and stream jobs as they should be for
    that content (the uninterrupted run's audio samples apply if `reference`); returns the
    output paths it should have."""
    if row["state"] != "done":
        root.fail("file not done", f"{label}: state {row['state']}: {row['error']}")
    outputs = state.outputs_of(row["id"])
    expected: set[Path] = set()
    for kind, codecs in (
        ("archive", expected_codecs(clip, _decisions(state, row["id"]))),
        ("preview", (["av1"] if clip.spec.has_video else []) + ["opus"]),
    ):
        path = root.path / kind / f"{row['stem']}.mkv"
        expected.add(path)
        _check_output_row(root, label, kind, outputs.get(kind), path)
        if path.is_file():
            compare_media(root, path, clip, codecs, f"{label} {kind}")
            if reference:
                compare_audio(root, state, row["id"], clip, kind, path)
    for job in state.jobs_of(row["id"], "archive") + state.jobs_of(row["id"], "preview"):
        if job["state"] != "done":
            root.fail(
                "file not done",
                f"{label} {job['output']} stream "
                f"{job['stream_index']}: {job['state']} {job['error']}",
            )
    expected |= _check_montage(root, state, clip, row, label)
    return expected


def audio_samples(path: Path) -> int:
    """How many samples the first audio stream decodes to, at 48 kHz mono."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
         "-f", "s16le", "-ac", "1", "-ar", "48000", "-"],
        capture_output=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    return len(result.stdout) // 2


def compare_audio(
    root: Root, state: State, file_id: int, clip: Clip, kind: str, path: Path
) -> None:
    """Resumed audio joins: as long as what an uninterrupted run makes, sample for sample."""
    want = root.reference.get((clip.spec.suffix, kind))
    if want is None:
        return
    got = audio_samples(path)
    if got != want:
        parts = [
            f"stream {job['stream_index']} parts {job['parts']}"
            for job in state.jobs_of(file_id, kind)
            if job["kind"] == "audio"
        ]
        root.deviate(
            "audio not sample-exact",
            f"{clip.spec.name} {kind}: decodes to {got} samples at 48 kHz, an uninterrupted"
            f" run's to {want} ({(got - want) / 48:+.2f} ms); {'; '.join(parts)}",
        )


def _decisions(state: State, file_id: int) -> dict[int, str]:
    return {job["stream_index"]: job["decision"] for job in state.jobs_of(file_id, "archive")}


def _check_output_row(root: Root, name: str, kind: str, out: Row | None, path: Path) -> None:
    label = f"{name} {kind}"
    if out is None or out["state"] != "done":
        root.fail("file not done", f"{label}: output row {out}")
        return
    if Path(str(out["path"])) != path:
        root.fail("unrecorded file in an output folder", f"{label}: recorded at {out['path']}")
    if not path.is_file():
        root.fail("missing or corrupt output", f"{label}: {path} is missing")
    elif sha256_of(path) != out["sha256"] or path.stat().st_size != out["size"]:
        root.fail("sha256 mismatch", f"{label}: {path} differs from its recorded size/SHA-256")


def _check_montage(root: Root, state: State, clip: Clip, row: Row, label: str) -> set[Path]:
    out = state.outputs_of(row["id"]).get("montage")
    if not clip.spec.has_video:
        if out is None or out["state"] != "skipped":
            root.fail("file not done", f"{label} montage: {out} (want skipped)")
        return set()
    path = root.path / "screenshot" / f"{row['stem']}.jpg"
    if out is None or out["state"] != "done":
        root.fail("file not done", f"{label} montage: output row {out}")
    jobs = state.jobs_of(row["id"], "montage")
    if len(jobs) != 1 or jobs[0]["state"] != "done" or Path(str(jobs[0]["path"])) != path:
        root.fail("file not done", f"{label} montage jobs: {jobs}")
    if not path.is_file():
        root.fail("missing or corrupt output", f"{label}: {path} is missing")
        return {path}
    if jobs and sha256_of(path) != jobs[0]["sha256"]:
        root.fail("sha256 mismatch", f"{path} differs from stream_jobs' SHA-256")
    try:
        [image] = ffprobe_json(path)["streams"]
        if not image.get("width") or not image.get("height"):
            root.fail("missing or corrupt output", f"{path}: no picture size")
    except ValueError as exc:
        root.fail("missing or corrupt output", str(exc))
    return {path}


def check_files_rows(root: Root, state: State) -> None:
    names = sorted(r["rel_path"] for r in state.files)
    if names != sorted(c.spec.name for c in root.clips):
        root.fail("file not done", f"files rows {names}: one row per raw file expected")
    want = {"keep": None, "delete": "deleted"}
    for row in state.files:
        action = row.get("raw_action")
        if (action or "").endswith(" pending"):
            root.fail("raw action pending", f"{row['rel_path']}: raw_action {action!r}")
        expected = want.get(root.after_done, f"moved to done/{row['rel_path']}")
        if action != expected:
            root.fail(
                "raw action pending", f"{row['rel_path']}: raw_action {action!r}, want {expected!r}"
            )


def check_leftovers(root: Root, state: State, expected: set[Path]) -> None:
    """Files recorded but not this clip set's outputs (unrecorded ones were reported)."""
    recorded = recorded_outputs(state)
    for folder in ("archive", "preview", "screenshot"):
        for path in files_under(root.path / folder):
            if path not in expected and path in recorded:
                root.fail("unrecorded file in an output folder", f"second copy: {path}")
    work = root.path / "work"
    for entry in sorted(work.iterdir()) if work.exists() else []:
        if entry.name not in WORK_ENTRIES:
            root.fail("leftover work files", f"unexpected {entry}")
    left = sorted({*files_under(work / "files"), *(work / "files").glob("*")})
    if left:
        root.fail("leftover work files", f"work/files holds {[str(p) for p in left[:10]]}")
    done = root.path / "done"
    if root.after_done != "move" and done.exists() and any(done.iterdir()):
        root.fail("raw lost or changed", f"done/ holds files with after_done={root.after_done}")


def check_logs(root: Root) -> None:
    log = root.path / "log" / "videoarchiver.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    if "Traceback" in text:
        root.fail("traceback", f"{log} holds a traceback")
    errors = [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]
    for line in [line for line in errors if not _changed_by_loop(root, line)][:5]:
        root.fail("error logged", line)


def _changed_by_loop(root: Root, line: str) -> bool:
    """A file the loop replaced or edited under the daemon failed as changed, as it should."""
    return any(why in line for why in CHANGED) and any(f" {m.name}: " in line for m in root.moves)


def snapshot(paths: Iterable[Path]) -> dict[Path, tuple[str, int]]:
    return {p: (sha256_of(p), p.stat().st_mtime_ns) for p in paths if p.is_file()}


def final_state(root: Root, result: RunResult) -> State | None:
    """The state after the final run, which must have ended well (else said, and None
    when there is no state to check)."""
    if result.timed_out or result.returncode != 0:
        root.fail(
            "file not done" if not result.timed_out else "hang",
            f"final run exit {result.returncode} ({result.stderr.name}): {tail(result.stderr, 15)}",
        )
    state = read_state(root.path)
    if state is None:
        root.fail("file not done", "no state database after the final run")
    return state


def check_final(root: Root, daemon: Daemon, result: RunResult, limit: float) -> None:
    state = final_state(root, result)
    if state is None:
        return
    check_files_rows(root, state)
    for clip in root.clips:
        check_raw(root, state, clip, final=True)
    check_output_folders(root, state)
    expected: set[Path] = set()
    for clip in root.clips:
        expected |= check_clip_outputs(root, state, clip)
    check_leftovers(root, state, expected)
    check_logs(root)
    check_second_run(root, daemon, expected, limit)


def check_final_hostile(root: Root, daemon: Daemon, result: RunResult, limit: float) -> None:
    """What a user checks, by content: nothing lost, everything archived, no taken file left."""
    state = final_state(root, result)
    if state is None:
        return
    for path in files_under(root.path / "raw"):
        if path.name.startswith(TAKEN):
            content = root.contents.get(sha256_of(path))
            what = f"{content.origin} {content.clip.spec.name}" if content else "unknown bytes"
            root.fail("taken file left behind", f"{path.relative_to(root.path)} ({what})")
    check_contents(root, state)
    check_output_folders(root, state)
    expected = check_hostile_rows(root, state)
    check_old_rows_kept(root, state)
    check_raw_left(root, state)
    check_leftovers(root, state, expected)
    check_logs(root)
    check_second_run(root, daemon, expected, limit)


def published_paths(state: State, row: Row) -> set[Path]:
    """The outputs a row recorded done (a row failed as replaced keeps what it published)."""
    paths = {
        Path(out["path"])
        for out in state.outputs_of(row["id"]).values()
        if out["kind"] != "montage" and out["state"] == "done" and out.get("path")
    }
    for job in state.jobs_of(row["id"], "montage"):
        if job["state"] == "done" and job.get("path"):
            paths.add(Path(job["path"]))
    return paths


def check_hostile_rows(root: Root, state: State) -> set[Path]:
    """Each row is done with its content's outputs and a raw action carried out (or kept with
    a reason), or failed as changed under the daemon by the loop; returns the outputs."""
    expected: set[Path] = set()
    touched = {move.name for move in root.moves}
    want = "deleted" if root.after_done == "delete" else "moved to done/{}"
    for row in state.files:
        label = f"{row['rel_path']} (file {row['id']})"
        error = row.get("error") or ""
        if row["state"] != "done":
            if (
                row["state"] == "failed"
                and row["rel_path"] in touched
                and any(why in error for why in CHANGED)
            ):
                expected |= published_paths(state, row)
            else:
                root.fail("file not done", f"{label}: state {row['state']}: {error}")
            continue
        action = row.get("raw_action") or ""
        if action != want.format(row["rel_path"]) and not action.startswith(
            ("kept: ", *OTHER_FOOTAGE)
        ):
            root.fail(
                "raw action pending",
                f"{label}: raw_action {action!r}, want {want.format(row['rel_path'])!r} or kept",
            )
        content = root.contents.get(row.get("sha256") or "")
        if content is None:
            root.deviate(
                "archived bytes the loop never made",
                f"{label}: whole SHA-256 {row.get('sha256')} is no content the loop put in raw/",
            )
            expected |= published_paths(state, row)
            continue
        expected |= check_row_outputs(root, state, row, content.clip, content.reference, label)
        if content.origin == "edited":
            _check_hashed_before_edit(root, row, content)
    return expected


def _check_hashed_before_edit(root: Root, row: Row, content: Content) -> None:
    """A row registered before the edit that made its content was hashed after it: what it
    archived was read (partly) before the edit, yet the edited file counts as archived."""
    for move in root.moves:
        if move.after == content.clip.sha256 and float(row.get("created_at") or 0) < move.at:
            root.deviate(
                "whole SHA-256 taken after an edit",
                f"{row['rel_path']} (file {row['id']}) was registered before {move.describe()}"
                " but records the edited content's SHA-256",
            )


def check_old_rows_kept(root: Root, state: State) -> None:
    """A content the loop replaced or edited under its raw name, once archived, has a row that
    says it was kept for its content (after_done found other bytes); a `move failed` kept
    before the move counts too (the content stayed in raw/ because done/ had the name)."""
    for move in root.moves:
        if move.before is None or not move.in_raw:
            continue
        rows = [r for r in state.files if r.get("sha256") == move.before and r["state"] == "done"]
        if not rows:
            root.history.append(f"   note: no done row had what {move.describe()}")
        for row in rows:
            action = row.get("raw_action") or ""
            if not action.startswith((KEPT_OTHER, "kept: move failed", *OTHER_FOOTAGE)):
                root.fail(
                    "old content's row not kept",
                    f"{row['rel_path']} (file {row['id']}): raw_action {action!r} after"
                    f" {move.describe()}",
                )


def check_raw_left(root: Root, state: State) -> None:
    """What is still in raw/ after the final runs is archived (kept there with a reason)."""
    for path in files_under(root.path / "raw"):
        if path.name.startswith((TAKEN, INCOMING)):
            continue
        content = root.contents.get(sha256_of(path))
        if content is None:
            continue  # (reported by check_contents)
        rel = path.relative_to(root.path)
        if not archived(state, content):
            root.fail("file not done", f"{rel} ({content.origin}) is not archived after the runs")
            continue
        digest = content.clip.sha256
        actions = [r["raw_action"] for r in state.files if r.get("sha256") == digest]
        root.deviate("kept in raw/", f"{rel} ({content.origin}) stays in raw/: {actions}")


def check_second_run(root: Root, daemon: Daemon, expected: set[Path], limit: float) -> None:
    """A second run redoes nothing, and `verify` finds every archive as recorded."""
    before = snapshot(expected)
    log = root.next_log()
    again = daemon.run(root.path, log, None, limit)
    check_traceback(root, log)
    lines = log.read_text(errors="replace").splitlines()
    started = [line for line in lines if " started" in line or ": found, " in line]
    if again.returncode != 0 or started or snapshot(expected) != before:
        root.fail(
            "second run redid work",
            f"exit {again.returncode}; {started[:3]}; outputs "
            f"{'unchanged' if snapshot(expected) == before else 'changed'}",
        )
    verify = daemon.simple(root.path, "verify")
    if verify.returncode != 0:
        root.fail(
            "verify failed",
            f"exit {verify.returncode}: {verify.stdout[-500:]}{verify.stderr[-500:]}",
        )


# -- the loop ---------------------------------------------------------------------------------


@dataclass
class Totals:
    kills: list[Kill] = field(default_factory=list)
    missed_aims: Counter[str] = field(default_factory=Counter)
    roots: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    deviations: list[Failure] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    hostile_roots: int = 0
    hostile_done: Counter[str] = field(default_factory=Counter)  # by move label
    hostile_missed: Counter[str] = field(default_factory=Counter)
    hostile_killed: Counter[str] = field(default_factory=Counter)
    moves: list[Move] = field(default_factory=list)
    settle_runs: Counter[int] = field(default_factory=Counter)  # hostile roots by runs needed


class Loop:
    def __init__(self, args: argparse.Namespace, base: Path) -> None:
        self.args = args
        self.base = base
        self.rng = random.Random(args.seed)
        self.daemon = Daemon(args.python, args.src)
        self.totals = Totals()
        self.full_run = 0.0
        self.limit = 300.0
        self.reference: dict[tuple[str, str], int] = {}
        self.cache = ClipCache(base / "clips")
        # Of the roots with after_done move or delete (two in three): the share asked of all.
        self.hostile_chance = min(1.0, args.hostile_share * len(AFTER_DONE) / 2)

    def calibrate(self) -> None:
        """A full uninterrupted run on a fresh root: how long the random delays may be."""
        seed = self.rng.randrange(2**32)
        timing = new_root(self.base, 0, seed, "keep", ["wav"])
        result = self.daemon.run(timing.path, timing.next_log(), None, self.limit)
        self.full_run = result.elapsed
        self.limit = max(120.0, 15 * self.full_run)
        print(f"calibration: a full run takes {self.full_run:.2f} s (exit {result.returncode})")
        check_traceback(timing, result.stderr)
        check_final(timing, self.daemon, result, self.limit)
        self.finish_root(timing)
        # The same clips (and both audio-only kinds) uninterrupted: what resumed outputs match.
        root = new_root(self.base, 999, seed, "keep", ["wav", "flac"])
        result = self.daemon.run(root.path, root.next_log(), None, self.limit)
        check_final(root, self.daemon, result, self.limit)
        for clip in root.clips:
            for kind in ("archive", "preview"):
                output = root.path / kind / f"{clip.spec.stem}.mkv"
                self.reference[(clip.spec.suffix, kind)] = audio_samples(output)
        print(f"reference audio samples: {self.reference}", flush=True)
        self.finish_root(root)

    def kill_once(self, root: Root, rng: random.Random) -> RunResult:
        log = root.next_log()
        started = time.time()
        target = ""
        if rng.random() < self.args.aimed_share:
            aim = rng.choice(aims(root, rng))
            result = self.daemon.run_aimed(root.path, log, aim, self.limit)
            how, delay = aim.name, None
            target = f" ({aim.shown(root.path)})"
            if not result.killed:
                self.totals.missed_aims[aim.name] += 1
        else:
            delay = rng.uniform(0.05, self.full_run)
            result = self.daemon.run(root.path, log, delay, self.limit)
            how = "random"
        root.history.append(
            f"{log.name}: {how}{target} delay={delay} exit={result.returncode} "
            f"killed={result.killed} after {result.elapsed:.2f} s"
        )
        check_traceback(root, log)
        if result.killed:
            self.after_kill(root, how, delay, started)
        return result

    def after_kill(self, root: Root, how: str, delay: float | None, started: float) -> None:
        gone_after, alive = wait_gone(root.path)
        if alive:
            root.fail("live ffmpeg after kill", f"{GONE_WITHIN} s after the kill: {alive}")
            end_processes(alive)
        state = read_state(root.path)
        phases = phases_of(state, started)
        kill = Kill(root.number, root.runs, how, delay, phases, gone_after)
        root.kills.append(kill)
        self.totals.kills.append(kill)
        running = (
            []
            if state is None
            else [
                (r["file_id"], r.get("output", r.get("kind")), r.get("stream_index"), r["state"])
                for r in state.outputs + state.jobs
                if r["state"] in ("running", "publishing")
            ]
        )
        root.history.append(f"   phases {phases}; rows running/publishing {running}")
        print(
            f"  kill {len(self.totals.kills):3d} root {root.number} run {root.runs}: {how}"
            f"{'' if delay is None else f' at {delay:.2f} s'} → {', '.join(phases)}",
            flush=True,
        )
        check_after_kill(root, state)

    def one_root(self, number: int) -> None:
        seed = self.rng.randrange(2**32)
        rng = random.Random(seed)
        after_done = rng.choice(AFTER_DONE)
        hrng = random.Random(seed ^ HOSTILE_SALT)
        hostile = after_done != "keep" and hrng.random() < self.hostile_chance
        root = new_root(
            self.base, number, seed, after_done, hostile=self.cache if hostile else None
        )
        root.reference = self.reference
        planned = rng.randint(1, self.args.max_kills_per_root)
        pending = plan_hostile(root, hrng, planned) if hostile else []
        plans = [f"{e.label} in run {e.round + 1} (kill {e.kill})" for e in pending]
        print(
            f"root {number}: seed {seed}, after_done={root.after_done}, "
            f"{[c.spec.name for c in root.clips]}, up to {planned} kills"
            + (f"; hostile: {', '.join(plans)}" if plans else ""),
            flush=True,
        )
        result: RunResult | None = None
        for index in range(planned):
            event = next((e for e in pending if e.round == index), None)
            if event is not None:
                pending.remove(event)
                result = self.hostile_round(root, hrng, event, final=False)
            else:
                result = self.kill_once(root, rng)
            if not result.killed:
                break
            if len(self.totals.kills) >= self.args.kills:
                break
        if (result is None or result.killed) and not pending:
            log = root.next_log()
            result = self.daemon.run(root.path, log, None, self.limit)
            root.history.append(
                f"{log.name}: uninterrupted exit={result.returncode} after {result.elapsed:.2f} s"
            )
            check_traceback(root, log)
        for event in pending:  # (those planned past the kills: in runs never killed)
            result = self.hostile_round(root, hrng, event, final=True)
        assert result is not None
        if root.hostile:
            result = self.settle(root, result)
            check_final_hostile(root, self.daemon, result, self.limit)
        else:
            check_final(root, self.daemon, result, self.limit)
        self.finish_root(root)

    # -- hostile runs --------------------------------------------------------------------------

    def hostile_round(
        self, root: Root, hrng: random.Random, event: Hostile, final: bool
    ) -> RunResult:
        """A run with a hostile move at its trigger, killed after it as planned (never in a
        final run): at once in a held call, or after a random delay."""
        raw, log, started = root.path / "raw", root.next_log(), time.time()
        kill = "none" if final else event.kill
        event = aim_at_present(root, event)
        aim = hold_aim(root, event)
        staged = self.stage(root, event) if event.kind == "replace" else {}
        for clip in root.clips if event.kind == "edit" else []:  # (made now, not in a hold)
            splice_sources(root, self.cache, clip.spec.name, 0)
        watch = TakenWatch(raw) if event.trigger == "taken" else None
        archive = root.path / "archive"
        seen = {p.name for p in archive.iterdir()} if archive.is_dir() else set()
        at = hrng.uniform(0.05, self.full_run)
        later = hrng.uniform(0.02, max(0.1, self.full_run / 2))
        command = self.daemon.command(root.path, "run", "--once")
        began = time.monotonic()
        process = self.daemon.start(aim.wrap(command) if aim else command, log)
        held = HeldCall(process.pid, HOLDS[event.trigger][1]) if aim else None
        move: Move | None = None
        tried = timed_out = sent = False
        kill_at: float | None = None
        try:
            while process.poll() is None:
                elapsed = time.monotonic() - began
                if elapsed > self.limit:
                    timed_out = True
                    break
                if not tried:
                    name = self.fired(root, event, elapsed, at, watch, held, seen)
                    if name is not None:
                        tried = True
                        move = self.act(root, event, name, staged, log.name)
                        if move is not None and kill != "none":
                            kill_at = elapsed if kill == "now" else elapsed + later
                if kill_at is not None and elapsed >= kill_at:
                    kill_daemon(process, held)
                    sent, kill_at = True, None
                if watch is None or tried:
                    time.sleep(0.003 if event.trigger == "archive published" else 0.01)
            if timed_out:
                end_processes(processes_mentioning(root.path))
                process.kill()
            code = process.wait()
            elapsed = time.monotonic() - began
            if event.trigger == "random" and not tried and not timed_out:
                tried = True  # the run ended before its moment: right after it, then
                name = aim_at_present(root, event).name
                move = self.act(root, event, name, staged, log.name)
        finally:
            if process.poll() is None:  # (the loop itself failed: leave no daemon behind)
                kill_daemon(process, held)
                process.kill()
                process.wait()
            if watch is not None:
                watch.close()
            for item in staged.values():
                item.path.unlink(missing_ok=True)
        result = RunResult(code, sent and code == -signal.SIGKILL, elapsed, log, timed_out)
        how = f"{event.label}, kill {kill}"
        self.totals.hostile_done[event.label] += move is not None
        self.totals.hostile_missed[event.label] += move is None
        self.totals.hostile_killed[event.label] += result.killed
        if move is not None:
            self.totals.moves.append(move)
        outcome = (
            move.describe()
            if move
            else "missed: "
            + ("nothing to act on when its moment came" if tried else "its moment never came")
        )
        root.history.append(
            f"{log.name}: hostile {how}{f' ({aim.shown(root.path)})' if aim else ''}: {outcome};"
            f" exit={code} killed={result.killed} after {elapsed:.2f} s"
        )
        print(f"  root {root.number} run {root.runs}: {outcome}", flush=True)
        check_traceback(root, log)
        if result.killed:
            self.after_kill(root, how, None, started)
        return result

    def stage(self, root: Root, event: Hostile) -> dict[str, Staged]:
        """A new recording for each raw name the move may aim at (the taken triggers: any),
        copied to a hidden name in raw/ first, as a card copy tool does before its rename."""
        anyone = event.trigger in ("taken", "taken held")
        staged = {}
        for clip in root.clips:
            if not anyone and clip.spec.name != event.name:
                continue
            options = variant_specs(clip.spec)
            if not event.same_size:
                options.reverse()
            for spec, lasts in options:
                source, made = self.cache.get(spec)
                if made.sha256 in root.contents:
                    continue
                path = root.path / "raw" / f"{INCOMING}{spec.name}"
                shutil.copyfile(source, path)
                staged[spec.name] = Staged(path, Content(made, "new recording", lasts))
                break
        return staged

    def fired(
        self,
        root: Root,
        event: Hostile,
        elapsed: float,
        at: float,
        watch: TakenWatch | None,
        held: HeldCall | None,
        seen: set[str],
    ) -> str | None:
        """The raw name to act on if the move's moment came, else None."""
        if event.trigger == "random":
            return aim_at_present(root, event).name if elapsed >= at else None
        if event.trigger == "taken":
            return watch.wait(0.01) if watch else None
        if event.trigger == "archive published":
            return newly_archived(root, seen)
        if held is None or not held.held():
            return None
        return event.name if event.trigger == "take held" else taken_name(root, event)

    def act(
        self, root: Root, event: Hostile, name: str, staged: dict[str, Staged], run: str
    ) -> Move | None:
        if event.kind == "edit":
            if name not in {clip.spec.name for clip in root.clips}:
                return None
            return edit_raw(root, event.label, self.cache, name, run)
        item = staged.pop(name, None)
        return None if item is None else replace_raw(root, event.label, item, name, run)

    def settle(self, root: Root, result: RunResult) -> RunResult:
        """`run --once` scans once, at its start: footage put back or renamed in after that
        is found by the next run. Run again while the last run put a raw file back or had a
        hostile move (at most SETTLE_RUNS times); the checks then want nothing left to do."""
        for _ in range(SETTLE_RUNS):
            text = result.stderr.read_text(errors="replace") if result.stderr.exists() else ""
            moved = any(move.run == result.stderr.name for move in root.moves)
            if result.timed_out or not (moved or ": raw file kept" in text):
                break
            log = root.next_log()
            result = self.daemon.run(root.path, log, None, self.limit)
            root.settle_runs += 1
            root.history.append(
                f"{log.name}: settle run (footage put back or renamed in after the last scan)"
                f" exit={result.returncode} after {result.elapsed:.2f} s"
            )
            check_traceback(root, log)
        return result

    def finish_root(self, root: Root) -> None:
        self.totals.roots[root.after_done] += 1
        if root.hostile:
            self.totals.hostile_roots += 1
            self.totals.settle_runs[root.settle_runs] += 1
        self.totals.failures += root.failures
        self.totals.deviations += root.deviations
        kept_for_deviation = root.deviations and len(self.totals.kept) < MAX_KEPT
        if root.failures or kept_for_deviation or self.args.keep:
            self.totals.kept.append(root.path)
            (root.logs / "evidence.txt").write_text(evidence(root))
            print(f"  root {root.number} kept: {root.path} (evidence in {root.logs})", flush=True)
        else:
            shutil.rmtree(root.path)
            shutil.rmtree(root.logs)

    def run(self) -> None:
        self.calibrate()
        number = 1
        while len(self.totals.kills) < self.args.kills:
            self.one_root(number)
            number += 1


def evidence(root: Root) -> str:
    state = read_state(root.path)
    listing = []
    for path in files_under(root.path):
        if path.parent.name != "log":
            listing.append(
                f"  {path.relative_to(root.path)}  {path.stat().st_size}  {sha256_of(path)[:16]}"
            )
    runs = sorted(root.logs.glob("run*.log"))[-3:]
    contents = [
        f"  {digest[:16]} {c.origin} {c.clip.spec.name}"
        + (f" (destroyed: {c.destroyed})" if c.destroyed else "")
        for digest, c in root.contents.items()
    ]
    parts = [
        f"root {root.number}: {root.path}, seed {root.seed}, after_done={root.after_done}"
        + (" (hostile)" if root.hostile else ""),
        "raw files: " + ", ".join(f"{c.spec.name} {c.sha256[:16]}" for c in root.clips),
        *(["contents put in raw/:", *contents] if root.hostile else []),
        *(["hostile moves:", *[f"  {m.describe()}" for m in root.moves]] if root.hostile else []),
        "failures:",
        *[f"  [{f.category}] {f.message}" for f in root.failures],
        "deviations:",
        *[f"  [{d.category}] {d.message}" for d in root.deviations],
        "runs:",
        *[f"  {line}" for line in root.history],
        "state:",
        state.dump() if state else "(none)",
        "files:",
        *listing,
        *[f"--- {run.name} (last lines)\n{tail(run, 60)}" for run in runs],
    ]
    return "\n".join(parts) + "\n"


def summary(totals: Totals, runtime: float, seed: int) -> str:
    kills = totals.kills
    lines = [
        "",
        f"seed {seed}, runtime {runtime / 60:.1f} min",
        f"kills: {len(kills)} ({sum(k.how == 'random' for k in kills)} random, "
        f"{sum(k.how != 'random' for k in kills)} aimed; aimed but not fired: "
        f"{sum(totals.missed_aims.values())})",
        f"roots completed: {sum(totals.roots.values())} ({dict(totals.roots)})",
        f"ffmpeg gone after a kill: max {max((k.gone_after for k in kills), default=0):.2f} s",
        f"failures: {len(totals.failures)}; deviations: {len(totals.deviations)}",
        "",
        f"{'phase at the kill (from the state)':<44} {'random':>7} {'aimed':>7}",
    ]
    phases: Counter[tuple[str, bool]] = Counter()
    for kill in kills:
        for phase in kill.phases:
            phases[(phase, kill.how == "random")] += 1
    for phase in sorted({p for p, _ in phases}, key=_phase_rank):
        lines.append(f"{phase:<44} {phases[(phase, True)]:>7} {phases[(phase, False)]:>7}")
    lines += ["", f"{'aimed at':<44} {'fired':>7} {'missed':>7}"]
    aimed = Counter(k.how for k in kills if k.how != "random")
    for name in sorted(set(aimed) | set(totals.missed_aims)):
        lines.append(f"{name:<44} {aimed[name]:>7} {totals.missed_aims[name]:>7}")
    lines += hostile_summary(totals)
    if totals.failures:
        kinds = Counter(f.category for f in totals.failures)
        by_kind = ", ".join(f"{k}: {kinds[k]}" for k in SEVERITY if kinds[k])
        lines += ["", f"failures by kind: {by_kind}", "failures (most serious first):"]
        for failure in sorted(totals.failures, key=lambda f: SEVERITY.index(f.category)):
            lines.append(f"  root {failure.root} [{failure.category}] {failure.message}")
    if totals.deviations:
        categories = Counter(d.category for d in totals.deviations)
        lines += ["", f"deviations (not crash-safety failures): {dict(categories)}"]
        lines += [f"  root {d.root} [{d.category}] {d.message}" for d in totals.deviations]
    if totals.kept:
        lines += ["", "kept roots:", *[f"  {path}" for path in totals.kept]]
    return "\n".join(lines)


def hostile_summary(totals: Totals) -> list[str]:
    if not totals.hostile_roots:
        return []
    moves = totals.moves
    replaced = [m for m in moves if m.label.startswith("replace")]
    edits = [m for m in moves if m.label.startswith("edit")]
    settle = ", ".join(f"{n}: {totals.settle_runs[n]}" for n in sorted(totals.settle_runs))
    lines = [
        "",
        f"hostile roots: {totals.hostile_roots} (roots by settle runs after the final one:"
        f" {settle})",
        f"replacements: {len(replaced)} ({sum(m.same_size is True for m in replaced)} of the"
        f" same size; {sum(m.before is not None for m in replaced)} displaced a raw file,"
        f" {sum(m.before is None for m in replaced)} came while the name was free)",
        f"edits: {len(edits)} ({sum(m.in_raw for m in edits)} in raw/,"
        f" {sum(not m.in_raw for m in edits)} landing on a file already taken aside)",
        "",
        f"{'hostile move':<44} {'done':>7} {'missed':>7} {'killed':>7}",
    ]
    labels = sorted(set(totals.hostile_done) | set(totals.hostile_missed))
    for label in labels:
        lines.append(
            f"{label:<44} {totals.hostile_done[label]:>7} {totals.hostile_missed[label]:>7}"
            f" {totals.hostile_killed[label]:>7}"
        )
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    venv = HERE.parent / ".venv" / "bin" / "python"
    parser.add_argument(
        "--src",
        type=Path,
        default=HERE.parent / "src",
        help="the src/ folder of the videoarchiver to test",
    )
    parser.add_argument(
        "--python",
        default=str(venv) if venv.exists() else sys.executable,
        help="the Python that runs the daemon (with its dependencies)",
    )
    parser.add_argument("--kills", type=int, default=100, help="kills to do in total")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--max-kills-per-root", type=int, default=4)
    parser.add_argument(
        "--aimed-share", type=float, default=0.35, help="share of kills aimed with strace"
    )
    parser.add_argument(
        "--hostile-share",
        type=float,
        default=1 / 3,
        help="share of roots (all with after_done move or delete) with hostile moves",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where roots are made")
    parser.add_argument("--keep", action="store_true", help="keep every root, not only failing")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    args.src = args.src.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("ffmpeg", "ffprobe", "strace"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed", file=sys.stderr)
            return 2
    base = (args.workdir or Path(tempfile.mkdtemp(prefix="kill_loop-"))).resolve()
    base.mkdir(parents=True, exist_ok=True)
    print(f"kill loop: src {args.src}, seed {args.seed}, work in {base}", flush=True)
    began = time.monotonic()
    loop = Loop(args, base)
    try:
        loop.run()
    finally:
        print(summary(loop.totals, time.monotonic() - began, args.seed), flush=True)
    return 1 if loop.totals.failures else 0


if __name__ == "__main__":
    sys.exit(main())
