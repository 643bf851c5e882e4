"""A randomised SIGKILL loop: does videoarchiver keep its crash-safety promises?

README "Interrupted? It carries on" and SPEC §7 and §12 promise that the daemon may be killed at
any instant: no raw file is lost or changed, its ffmpeg children die with it, nothing
half-written appears in archive/, preview/ or screenshot/, and the next start finishes the work.

For each root (a fresh temporary folder with three generated clips and a random `after_done`)
the loop starts `run --once` and SIGKILLs it, a few times, either after a random delay (0.05 s to
the time a full run takes) or aimed with strace at one system call of one phase (an output
linked into place, a raw file taken aside, moved or deleted, a write of the state database ...).
After each kill it checks that no ffmpeg is left and what must hold at any instant; then it lets
one run finish and checks everything a user would check. A failing root is kept with its evidence.

    .venv/bin/python bench/kill_loop.py --src /tmp/killtree/src --kills 100 --seed 1

Standard library only; one daemon runs at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
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
    "raw disposed too early",
    "live ffmpeg after kill",
    "hang",
    "traceback",
    "missing or corrupt output",
    "unrecorded file in an output folder",
    "sha256 mismatch",
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


def clip_specs(audio_exts: Sequence[str]) -> list[ClipSpec]:
    """Three kinds: MKV mpeg4 + PCM, MP4 h264 + AAC, and audio only (WAV or FLAC)."""
    audio = [
        ClipSpec(f"clip_{letter}.{ext}", False, _split(CLIP_C))
        for letter, ext in zip("cdef", audio_exts, strict=False)
    ]
    return [
        ClipSpec("clip_a.mkv", True, _split(CLIP_A)),
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


def make_clips(raw: Path, specs: Sequence[ClipSpec]) -> list[Clip]:
    raw.mkdir(parents=True, exist_ok=True)
    clips = []
    for spec in specs:
        target = raw / spec.name
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", *spec.args, str(target)],
            check=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        clips.append(Clip(spec, sha256_of(target), probe_media(target)))
    return clips


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
    one of `paths`."""

    name: str
    calls: str
    paths: tuple[Path, ...]
    when: int = 1

    def wrap(self, command: Sequence[str]) -> list[str]:
        selected = [arg for path in self.paths for arg in ("-P", str(path))]
        return [
            *STRACE,
            "-e",
            f"trace={self.calls}",
            *selected,
            "-e",
            f"inject={self.calls}:signal=KILL:when={self.when}",
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
class Root:
    number: int
    path: Path
    logs: Path
    seed: int
    after_done: str
    clips: list[Clip] = field(default_factory=list)
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
    base: Path, number: int, seed: int, after_done: str, audio_exts: Sequence[str] | None = None
) -> Root:
    path = base / f"root{number:03d}"
    logs = base / f"root{number:03d}.logs"
    logs.mkdir(parents=True)
    path.mkdir()
    (path / "videoarchiver.toml").write_text(CONFIG.format(after_done=after_done))
    root = Root(number, path, logs, seed, after_done)
    exts = audio_exts or [random.Random(seed).choice(("wav", "flac"))]
    root.clips = make_clips(path / "raw", clip_specs(exts))
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
    if state is None or row is None or row["state"] != "done":
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
    wanted = "done" if clip.spec.has_video else "skipped"
    return montage is not None and montage["state"] == wanted


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


def check_after_kill(root: Root, state: State | None) -> None:
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
    if row["state"] != "done":
        root.fail("file not done", f"{clip.spec.name}: state {row['state']}: {row['error']}")
    if row["stem"] != clip.spec.stem:
        root.fail(
            "unrecorded file in an output folder",
            f"{clip.spec.name}: outputs named {row['stem']!r}, not {clip.spec.stem!r}",
        )
    outputs = state.outputs_of(row["id"])
    expected: set[Path] = set()
    for kind, codecs in (
        ("archive", expected_codecs(clip, _decisions(state, row["id"]))),
        ("preview", (["av1"] if clip.spec.has_video else []) + ["opus"]),
    ):
        path = root.path / kind / f"{row['stem']}.mkv"
        expected.add(path)
        _check_output_row(root, clip, kind, outputs.get(kind), path)
        if path.is_file():
            compare_media(root, path, clip, codecs, kind)
            compare_audio(root, state, row["id"], clip, kind, path)
    for job in state.jobs_of(row["id"], "archive") + state.jobs_of(row["id"], "preview"):
        if job["state"] != "done":
            root.fail(
                "file not done",
                f"{clip.spec.name} {job['output']} stream "
                f"{job['stream_index']}: {job['state']} {job['error']}",
            )
    expected |= _check_montage(root, state, clip, row)
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


def _check_output_row(root: Root, clip: Clip, kind: str, out: Row | None, path: Path) -> None:
    label = f"{clip.spec.name} {kind}"
    if out is None or out["state"] != "done":
        root.fail("file not done", f"{label}: output row {out}")
        return
    if Path(str(out["path"])) != path:
        root.fail("unrecorded file in an output folder", f"{label}: recorded at {out['path']}")
    if not path.is_file():
        root.fail("missing or corrupt output", f"{label}: {path} is missing")
    elif sha256_of(path) != out["sha256"] or path.stat().st_size != out["size"]:
        root.fail("sha256 mismatch", f"{label}: {path} differs from its recorded size/SHA-256")


def _check_montage(root: Root, state: State, clip: Clip, row: Row) -> set[Path]:
    out = state.outputs_of(row["id"]).get("montage")
    if not clip.spec.has_video:
        if out is None or out["state"] != "skipped":
            root.fail("file not done", f"{clip.spec.name} montage: {out} (want skipped)")
        return set()
    path = root.path / "screenshot" / f"{row['stem']}.jpg"
    if out is None or out["state"] != "done":
        root.fail("file not done", f"{clip.spec.name} montage: output row {out}")
    jobs = state.jobs_of(row["id"], "montage")
    if len(jobs) != 1 or jobs[0]["state"] != "done" or Path(str(jobs[0]["path"])) != path:
        root.fail("file not done", f"{clip.spec.name} montage jobs: {jobs}")
    if not path.is_file():
        root.fail("missing or corrupt output", f"{clip.spec.name}: {path} is missing")
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
    for line in errors[:5]:
        root.fail("error logged", line)


def snapshot(paths: Iterable[Path]) -> dict[Path, tuple[str, int]]:
    return {p: (sha256_of(p), p.stat().st_mtime_ns) for p in paths if p.is_file()}


def check_final(root: Root, daemon: Daemon, result: RunResult, limit: float) -> None:
    if result.timed_out or result.returncode != 0:
        root.fail(
            "file not done" if not result.timed_out else "hang",
            f"final run exit {result.returncode} ({result.stderr.name}): {tail(result.stderr, 15)}",
        )
    state = read_state(root.path)
    if state is None:
        root.fail("file not done", "no state database after the final run")
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
        root = new_root(self.base, number, seed, rng.choice(AFTER_DONE))
        root.reference = self.reference
        planned = rng.randint(1, self.args.max_kills_per_root)
        print(
            f"root {number}: seed {seed}, after_done={root.after_done}, "
            f"{[c.spec.name for c in root.clips]}, up to {planned} kills",
            flush=True,
        )
        result: RunResult | None = None
        for _ in range(planned):
            result = self.kill_once(root, rng)
            if not result.killed:
                break
            if len(self.totals.kills) >= self.args.kills:
                break
        if result is None or result.killed:
            log = root.next_log()
            result = self.daemon.run(root.path, log, None, self.limit)
            root.history.append(
                f"{log.name}: uninterrupted exit={result.returncode} after {result.elapsed:.2f} s"
            )
            check_traceback(root, log)
        check_final(root, self.daemon, result, self.limit)
        self.finish_root(root)

    def finish_root(self, root: Root) -> None:
        self.totals.roots[root.after_done] += 1
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
    parts = [
        f"root {root.number}: {root.path}, seed {root.seed}, after_done={root.after_done}",
        "raw files: " + ", ".join(f"{c.spec.name} {c.sha256[:16]}" for c in root.clips),
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
    if totals.failures:
        lines += ["", "failures (most serious first):"]
        for failure in sorted(totals.failures, key=lambda f: SEVERITY.index(f.category)):
            lines.append(f"  root {failure.root} [{failure.category}] {failure.message}")
    if totals.deviations:
        categories = Counter(d.category for d in totals.deviations)
        lines += ["", f"deviations (not crash-safety failures): {dict(categories)}"]
        lines += [f"  root {d.root} [{d.category}] {d.message}" for d in totals.deviations]
    if totals.kept:
        lines += ["", "kept roots:", *[f"  {path}" for path in totals.kept]]
    return "\n".join(lines)


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
