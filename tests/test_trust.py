"""Trust, with real kills: identity of content, the publishing protocol, after_done.

Kills are aimed at one phase with `strace -f -P PATH -e inject=SYSCALL:signal=KILL`:
the daemon dies on its first SYSCALL touching PATH, and nowhere else.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from media import (
    FAST_CONFIG,
    ffmpeg,
    file_sha256,
    file_states,
    poll_rows,
    run_cli,
    ssim,
    status_json,
    wait_until,
)
from test_cli import tmpfs
from test_recovery import _kill_when, _start
from videoarchiver.disposal import taken_path

NULL_TS_PACKET = b"\x47\x1f\xff\x10" + b"\xff" * 184


def _ts_clip(path: Path, source: str, seconds: int) -> None:
    ffmpeg("-f", "lavfi", "-i", f"{source}=s=480x270:r=25:d={seconds}",
           "-f", "lavfi", "-i", f"sine=d={seconds}", "-c:v", "mpeg4", "-q:v", "2",
           "-c:a", "mp2", "-f", "mpegts", path)  # fmt: skip


def same_length_clips(first: Path, second: Path, seconds: int) -> None:
    """Two different recordings of exactly the same byte length (MPEG-TS, padded with null
    packets, which every demuxer skips)."""
    _ts_clip(first, "testsrc2", seconds)
    _ts_clip(second, "smptebars", seconds)
    short, long = sorted((first, second), key=lambda path: path.stat().st_size)
    missing = long.stat().st_size - short.stat().st_size
    with short.open("ab") as handle:
        handle.write(NULL_TS_PACKET * (missing // len(NULL_TS_PACKET)))
    assert first.stat().st_size == second.stat().st_size


def run_killed_at(root: Path, syscall: str, path: Path) -> None:
    """`run --once`, SIGKILLed on its first `syscall` that touches `path`."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make test installs it)")
    result = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
         "-P", str(path), "-e", f"inject={syscall}:signal=KILL:when=1",
         sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
        capture_output=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]


def _configure(root: Path, extra: str = "", preset: str = "ultrafast") -> None:
    """The tests' fast config, one ffmpeg at once, with `extra` settings of the root table
    and the archive's x264 `preset`."""
    config = FAST_CONFIG.replace('"ultrafast"', f'"{preset}"')
    (root / "videoarchiver.toml").write_text(f"jobs = 1\n{extra}\n{config}")


def _replaceable_root(tmp_path: Path, seconds: int, extra: str = "") -> tuple[Path, Path, Path]:
    """A root whose `raw/clip.ts` is the first (old) of two recordings of the same length
    (old, new), encoded slowly enough to be caught in the middle; returns (root, old, new)."""
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    _configure(root, extra, preset="slow")
    old, new = tmp_path / "old.ts", tmp_path / "new.ts"
    same_length_clips(old, new, seconds)
    shutil.copyfile(old, root / "raw" / "clip.ts")
    return root, old, new


def _clip(path: Path, seconds: float = 1) -> None:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=160x120:r=10:d={seconds}", "-c:v", "mpeg4", path)


def test_touch_is_not_a_new_file(root: Path) -> None:
    raw = root / "raw" / "x.mov"
    _clip(raw)
    assert run_cli(root, "run", "--once").returncode == 0
    os.utime(raw, ns=(time.time_ns(), time.time_ns()))
    assert run_cli(root, "run", "--once").returncode == 0
    assert sorted(p.name for p in (root / "archive").iterdir()) == ["x.mkv"]
    assert sorted(p.name for p in (root / "screenshot").iterdir()) == ["x.jpg"]
    assert [(file["rel_path"], file["state"]) for file in status_json(root)] == [("x.mov", "done")]


def test_raw_replaced_during_an_encode_then_killed_is_archived_as_the_new_content(
    tmp_path: Path,
) -> None:
    root, old, new = _replaceable_root(tmp_path, 20, 'after_done = "delete"')
    raw = root / "raw" / "clip.ts"

    def encoding() -> bool:
        partials = list((root / "work" / "files").glob("*/claim-*/archive/s0.partial0.mkv"))
        return bool(partials) and partials[0].stat().st_size > 100_000

    daemon = _start(root)
    _kill_when(daemon, lambda: encoding() and _replace(new, raw), root)
    assert run_cli(root, "run", "--once").returncode == 0
    files = status_json(root)
    [(file_id, stem)] = [(file["id"], file["stem"]) for file in files if file["state"] == "done"]
    assert file_id == 2, "the new content has an id of its own"
    archive = root / "archive" / f"{stem}.mkv"
    assert ssim(archive, new) > 0.95, "the archive holds the new recording's pictures"
    assert ssim(archive, old) < 0.6
    assert not raw.exists(), "deleted only once the new content was archived"
    # The old content's row stays only if it published something (a montage) before the kill.
    assert {file["state"] for file in files} <= {"done", "failed"}


def test_a_raw_file_made_unreadable_while_it_runs_is_said_so_and_keeps_one_row(
    tmp_path: Path,
) -> None:
    root, _old, _new = _replaceable_root(tmp_path, 20)
    raw = root / "raw" / "clip.ts"
    # Root reads whatever the permissions say: the runs go without that right.
    blind = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    run = [*(blind if os.geteuid() == 0 else []), sys.executable, "-m", "videoarchiver", "run",
           "--once", "--root", str(root)]  # fmt: skip
    daemon = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: daemon.poll() is not None or any(
            partial.stat().st_size > 100_000
            for partial in (root / "work" / "files").glob("*/claim-*/archive/s0.partial0.mkv")
        ), 120)  # fmt: skip
        assert daemon.poll() is None, "the run ended before its encode was under way"
        raw.chmod(0)
        assert daemon.wait(timeout=240) == 1
        assert subprocess.run(run, capture_output=True, timeout=240).returncode in (0, 1)
    finally:
        daemon.kill()
        raw.chmod(0o644)
    [file] = status_json(root)  # one row: its content may be the same
    assert file["state"] == "failed"
    assert "cannot read the raw file any more (permission denied)" in file["error"]
    assert run_cli(root, "retry").returncode == 0
    assert run_cli(root, "run", "--once").returncode == 0
    assert [f["state"] for f in status_json(root)] == ["done"]


def test_a_replaced_file_killed_after_it_published_leaves_no_work_files(tmp_path: Path) -> None:
    """Its montage published, then killed; the raw file replaced before the next start: the
    old content's row stays (failed as replaced, to keep its montage recorded), and nothing
    of its interrupted encodes is kept, since nothing can resume them."""
    root, _old, new = _replaceable_root(tmp_path, 20)
    raw = root / "raw" / "clip.ts"
    daemon = _start(root)
    _kill_when(daemon, lambda: (root / "screenshot" / "clip.jpg").exists(), root)
    _replace(new, raw)
    assert run_cli(root, "run", "--once").returncode == 0
    old_row, new_row = status_json(root)
    assert (old_row["state"], new_row["state"]) == ("failed", "done")
    assert "replaced by new content" in old_row["error"]
    assert not (root / "work" / "files").exists() or not any(
        (root / "work" / "files").rglob("*.mkv")
    ), "no work files of the old content"


def _replace(source: Path, raw: Path) -> bool:
    hidden = raw.with_name(".replacing")
    shutil.copyfile(source, hidden)
    hidden.replace(raw)
    return True


def test_raw_replaced_while_the_daemon_runs_is_processed_as_a_new_file(tmp_path: Path) -> None:
    root, _old, new = _replaceable_root(tmp_path, 8, "scan_interval = 2")
    raw = root / "raw" / "clip.ts"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "videoarchiver", "run", "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: ("running",) in poll_rows(root, "SELECT state FROM stream_jobs"), 120)
        _replace(new, raw)
        wait_until(
            lambda: ("done",) in poll_rows(root, "SELECT state FROM files WHERE id = 2"), 120
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    [stem] = [file["stem"] for file in status_json(root) if file["id"] == 2]
    assert ssim(root / "archive" / f"{stem}.mkv", new) > 0.95
    assert not (root / "archive" / "clip.mkv").exists() or stem == "clip"


@pytest.mark.parametrize("archive_elsewhere", [False, True], ids=["same-fs", "other-fs"])
def test_killed_right_after_publishing_adopts_the_published_archive(
    root: Path, archive_elsewhere: bool
) -> None:
    _configure(root)
    _clip(root / "raw" / "a.mp4", seconds=2)
    archive = root / "archive"
    if archive_elsewhere:
        context = tmpfs(archive, "64m")
        context.__enter__()
    try:
        run_killed_at(root, "openat", archive)  # the fsync of archive/ just after the link
        published = archive / "a.mkv"
        before = (published.stat().st_ino, file_sha256(published))
        [(state, sha256)] = [
            (output["state"], output["sha256"])
            for file in status_json(root)
            for kind, output in file["outputs"].items()
            if kind == "archive"
        ]
        assert (state, sha256) == ("publishing", before[1]), "killed between link and record"
        result = run_cli(root, "run", "--once")
        assert result.returncode == 0, result.stderr
        assert (published.stat().st_ino, file_sha256(published)) == before, "never rewritten"
        assert [p.name for p in archive.iterdir()] == ["a.mkv"], "no temporary left beside it"
        assert file_states(root) == ["done"]
    finally:
        if archive_elsewhere:
            context.__exit__(None, None, None)


@pytest.mark.parametrize("after_done", ["move", "delete"])
def test_after_done_interrupted_by_a_kill_is_finished_at_the_next_start(
    root: Path, after_done: str
) -> None:
    _configure(root, f'after_done = "{after_done}"')
    raw = root / "raw" / "a.mp4"
    taken = taken_path(raw, 1)
    _clip(raw)
    sha256 = file_sha256(raw)
    if after_done == "move":
        (root / "done").mkdir()
        run_killed_at(root, "openat", root / "done")  # linked into done/, still aside
        assert (root / "done" / "a.mp4").exists()
    else:
        run_killed_at(root, "unlink", taken)
    assert not raw.exists() and file_sha256(taken) == sha256, "taken aside, not yet gone"
    assert [(file["state"], file["raw_action"]) for file in status_json(root)] == [
        ("done", f"{after_done} pending")
    ]
    assert run_cli(root, "run", "--once").returncode == 0
    assert sorted(p.name for p in raw.parent.iterdir()) == []
    if after_done == "move":
        assert file_sha256(root / "done" / "a.mp4") == sha256
        assert [file["raw_action"] for file in status_json(root)] == ["moved to done/a.mp4"]
    else:
        assert [file["raw_action"] for file in status_json(root)] == ["deleted"]


@pytest.mark.parametrize(("after_done", "syscall"), [("delete", "unlink"), ("move", "linkat")])
def test_a_recording_renamed_over_the_raw_file_during_after_done_is_never_touched(
    root: Path, tmp_path: Path, after_done: str, syscall: str
) -> None:
    """A camera's counter reset: a new `a.mp4` is renamed into raw/ while the archived one
    is being deleted or moved (its `unlink` or `link` held back by strace)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make test installs it)")
    _configure(root, f'after_done = "{after_done}"')
    raw, new = root / "raw" / "a.mp4", tmp_path / "new.mp4"
    _clip(raw)
    _clip(new, seconds=2)
    archived, arriving = file_sha256(raw), file_sha256(new)
    taken = taken_path(raw, 1)
    daemon = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}", "-P", str(taken),
         "-e", f"inject={syscall}:delay_enter=4000000",
         sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # Taken aside: its unlink or link is held back.
        wait_until(lambda: daemon.poll() is not None or os.path.lexists(taken), 240, 0.01)
        assert daemon.poll() is None, "the run ended before its raw file was taken aside"
        _replace(new, raw)
        assert daemon.wait(timeout=240) == 0, daemon.stderr and daemon.stderr.read()
    finally:
        daemon.kill()
    assert file_sha256(raw) == arriving, "the new recording is untouched"
    assert sorted(p.name for p in raw.parent.iterdir()) == ["a.mp4"]
    if after_done == "move":
        assert file_sha256(root / "done" / "a.mp4") == archived
    [file] = status_json(root)
    assert file["raw_action"] == ("deleted" if after_done == "delete" else "moved to done/a.mp4")
    assert run_cli(root, "run", "--once").returncode == 0, "and it is archived as new footage"
    files = status_json(root)
    assert [f["state"] for f in files] == ["done", "done"] and files[1]["sha256"] == arriving


def test_a_raw_file_edited_in_place_after_it_was_archived_is_kept(root: Path) -> None:
    _configure(root, 'after_done = "delete"')
    raw = root / "raw" / "a.mp4"
    _clip(raw, seconds=3)
    taken = taken_path(raw, 1)
    run_killed_at(root, "unlink", taken)  # proven, and about to be deleted
    with taken.open("r+b") as handle:  # same size, same ends: a new middle
        handle.seek(taken.stat().st_size // 2)
        handle.write(b"\0" * 64)
    edited = file_sha256(taken)
    assert run_cli(root, "run", "--once").returncode == 0
    archived, new = status_json(root)
    assert archived["raw_action"] == (
        "kept: its content is not what was archived (it changed after it was processed)"
    )
    # Put back, it is new footage: archived as such, then deleted as proven to be that.
    assert (new["sha256"], new["state"], new["raw_action"]) == (edited, "done", "deleted")
    assert (root / "archive" / f"{new['stem']}.mkv").exists()
    assert sorted(p.name for p in raw.parent.iterdir()) == []


def test_keep_never_touches_the_raw_file(root: Path) -> None:
    raw = root / "raw" / "a.mp4"
    _clip(raw)
    before = (file_sha256(raw), raw.stat().st_mode, raw.stat().st_mtime_ns)
    assert run_cli(root, "run", "--once").returncode == 0
    assert (file_sha256(raw), raw.stat().st_mode, raw.stat().st_mtime_ns) == before


def test_every_output_is_synced_to_disk_before_it_is_linked_into_place(root: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make test installs it)")
    _configure(root)
    _clip(root / "raw" / "a.mp4")
    trace = root.parent / "trace"
    subprocess.run(
        ["strace", "-ff", "-qq", "-o", str(trace), "-e", "trace=openat,fsync,linkat",
         sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    linked = []
    for thread in root.parent.glob("trace.*"):  # one file per thread: calls in order
        opened: dict[str, str] = {}  # fd → path
        synced: set[str] = set()
        for line in thread.read_text().splitlines():
            if match := re.match(r'openat\(AT_FDCWD, "([^"]+)".* = (\d+)$', line):
                opened[match[2]] = match[1]
            elif match := re.match(r"fsync\((\d+)\)\s+= 0", line):
                synced.add(opened.get(match[1], ""))
            elif match := re.match(r'linkat\(AT_FDCWD, "([^"]+)", AT_FDCWD, "([^"]+)"', line):
                linked.append(match[2])
                assert match[1] in synced, f"{match[1]} linked before its data was synced"
    published = {str(root / p) for p in ("archive/a.mkv", "preview/a.mkv", "screenshot/a.jpg")}
    assert published <= set(linked)


def test_content_replaced_keeping_size_and_mtime_is_still_a_new_file(tmp_path: Path) -> None:
    root, _old, new = _replaceable_root(tmp_path, 8)
    raw = root / "raw" / "clip.ts"
    daemon = _start(root)
    running = "SELECT 1 FROM stream_jobs WHERE output = 'archive' AND state = 'running'"
    wait_until(lambda: bool(poll_rows(root, running)), 60, every=0.05)
    stat = raw.stat()
    _replace(new, raw)
    os.utime(raw, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or rsync -t leave it
    assert daemon.wait(timeout=120) == 1, "nothing of the old content is published"
    assert not (root / "archive" / "clip.mkv").exists()
    assert run_cli(root, "run", "--once").returncode == 0
    [stem] = [file["stem"] for file in status_json(root) if file["state"] == "done"]
    assert ssim(root / "archive" / f"{stem}.mkv", new) > 0.95
