"""No name, file or fault stops the daemon or reaches outside the root."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from media import (
    FAST_CONFIG,
    ffmpeg,
    file_sha256,
    file_states,
    poll_rows,
    probe,
    run_cli,
    status_json,
    wait_until,
)
from readiness import ready_daemon
from test_cli import tmpfs


def _clip(path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-c:v", "mpeg4", path)


def _configure(root: Path, extra: str) -> None:
    """The tests' fast config, with `extra` settings of the root table."""
    (root / "videoarchiver.toml").write_text(f"{extra}\n{FAST_CONFIG}")


def _new_root(tmp_path: Path, extra: str = "") -> Path:
    """A root inside `tmp_path`, so that the test can keep files beside (outside) it."""
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    _configure(root, extra)
    return root


def test_a_stalled_ffmpeg_is_stopped_and_the_file_fails_with_a_reason(root: Path) -> None:
    _configure(root, "stall_seconds = 2")
    _clip(root / "raw" / "a.mp4")
    fake = root / "bin"
    fake.mkdir()
    # An ffmpeg that hangs at 0 % CPU and ignores SIGTERM on the preview's encode.
    (fake / "ffmpeg").write_text(
        "#!/bin/sh\n"
        "case \"$*\" in *libsvtav1*) trap '' TERM; exec sleep 600;; esac\n"
        f'exec {shutil.which("ffmpeg")} "$@"\n'
    )
    (fake / "ffmpeg").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    # A run that waited for the hung encode would end only at the timeout.
    result = subprocess.run(
        [sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    [file] = status_json(root)
    assert "stalled: no progress for 2 s" in file["error"]
    assert (root / "archive" / "a.mkv").exists() and (root / "screenshot" / "a.jpg").exists()


def test_a_stream_without_data_is_left_out_with_a_note(root: Path) -> None:
    raw = root / "raw" / "a.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-f", "lavfi", "-i", "anullsrc",
           "-map", "0", "-map", "1", "-c:v", "mpeg4", "-c:a", "pcm_s16le", "-frames:a", "0",
           "-t", "1", raw)  # fmt: skip
    assert run_cli(root, "run", "--once").returncode == 0
    assert [s["codec_name"] for s in probe(root / "archive" / "a.mkv")["streams"]] == ["h264"]
    [file] = status_json(root)
    dropped = "stream 1 (audio pcm_s16le) dropped: it holds no data"
    assert any(dropped in warning for warning in file["warnings"]), file["warnings"]


def test_hostile_names_and_links_are_handled_and_nothing_outside_is_touched(
    tmp_path: Path,
) -> None:
    root = _new_root(tmp_path, 'after_done = "delete"')
    raw = root / "raw"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _clip(elsewhere / "outside.mp4")
    _clip(elsewhere / "target.mp4")
    before = {p.name: file_sha256(p) for p in elsewhere.iterdir()}
    names = [
        os.fsdecode(b"caf\xe9.mp4"),  # not UTF-8
        "line\nbreak.mp4",
        "-dash.mp4",
        "v" * 250 + ".mp4",
        "v" * 250 + ".mov",  # its output name would be 258 bytes
    ]
    for name in names:
        _clip(raw / name)
    (raw / "loop").symlink_to(".")
    (raw / "folder").symlink_to(elsewhere)
    (raw / "dangling.mp4").symlink_to(tmp_path / "nothing.mp4")
    (raw / "link.mp4").symlink_to(elsewhere / "target.mp4")
    os.mkfifo(raw / "pipe.mp4")
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rows = {file["rel_path"]: file["state"] for file in status_json(root)}
    assert len(rows) == len(names) + 1 and set(rows.values()) == {"done"}, rows
    archives = sorted(p.name for p in (root / "archive").iterdir())
    assert "caf\\xe9.mkv" in archives and "line\nbreak.mkv" in archives
    assert "-dash.mkv" in archives and "link.mkv" in archives
    assert "v" * 250 + ".mkv" in archives
    [shortened] = [name for name in archives if name.startswith("v" * 200) and "~" in name]
    assert len(shortened.encode()) <= 255 and shortened.endswith(".mkv")
    assert not any((root / "archive").rglob("outside*")), "a folder link out of raw/ is not read"
    assert {p.name: file_sha256(p) for p in elsewhere.iterdir()} == before, "nothing outside"
    probes = poll_rows(root, "SELECT probe FROM files WHERE probe IS NOT NULL")
    assert probes and not any(str(root) in probe for (probe,) in probes), "no machine's path"
    assert sorted(p.name for p in raw.iterdir()) == ["dangling.mp4", "folder", "loop", "pipe.mp4"]
    log = (root / "log" / "videoarchiver.log").read_text()
    assert "line\\nbreak.mp4: done" in log and not any(
        line.startswith("break.mp4") for line in log.splitlines()
    )
    assert "caf\\xe9.mp4: done" in log
    status = run_cli(root, "status").stdout
    assert "caf\\xe9.mp4" in status and "/caf" not in status


def test_a_damaged_state_database_is_a_clear_message_and_exit_2(root: Path) -> None:
    (root / "work").mkdir()
    (root / "work" / "state.sqlite3").write_bytes(b"not a database, just bytes " * 100)
    for command in (["run", "--once"], ["status"]):
        result = run_cli(root, *command)
        assert result.returncode == 2, result.stderr
        assert "state database" in result.stderr and "state.sqlite3" in result.stderr
        assert "Traceback" not in result.stderr


def test_state_database_deleted_while_running_stops_with_exit_2(root: Path) -> None:
    _configure(root, "scan_interval = 1")
    with ready_daemon(root) as daemon:
        for path in (root / "work").glob("state.sqlite3*"):
            path.unlink()
        _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 2, err
    assert "was deleted or replaced while running" in err and "Traceback" not in err


def test_permissions_outputs_follow_the_raw_state_and_log_are_private(root: Path) -> None:
    raw = root / "raw" / "a.mp4"
    _clip(raw)
    raw.chmod(0o640)
    assert run_cli(root, "run", "--once").returncode == 0
    for output in ("archive/a.mkv", "preview/a.mkv", "screenshot/a.jpg"):
        assert stat.S_IMODE((root / output).stat().st_mode) == 0o640, output
    for private in ("work/state.sqlite3", "log/videoarchiver.log"):
        assert stat.S_IMODE((root / private).stat().st_mode) & 0o077 == 0, private


def test_sighup_stops_like_sigterm(root: Path) -> None:
    _configure(root, "")
    with ready_daemon(root, hangup=True) as daemon:
        daemon.send_signal(signal.SIGHUP)
        _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "SIGHUP: stopping" in err


def test_a_playlist_posing_as_a_video_is_refused_and_reads_nothing_outside(
    tmp_path: Path,
) -> None:
    root = _new_root(tmp_path)
    secret = tmp_path / "secret.ts"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=2", "-c:v", "mpeg4", "-f", "mpegts",
           secret)  # fmt: skip
    (root / "raw" / "evil.mp4").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{secret}\n#EXT-X-ENDLIST\n"
    )
    assert run_cli(root, "run", "--once").returncode == 1
    [file] = status_json(root)
    assert file["state"] == "failed" and "not on whitelist" in file["error"]
    assert not any((root / "archive").iterdir()) and not any((root / "preview").iterdir())


@pytest.mark.parametrize("full", ["work files", "state database"])
def test_a_full_disk_never_stops_the_daemon_and_work_is_retried_once_space_is_back(
    tmp_path: Path, full: str
) -> None:
    root = _new_root(tmp_path, "scan_interval = 1")
    raw = tmp_path / "a.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=4", "-c:v", "ffv1", raw)
    small = root / "work" / "files" if full == "work files" else root / "work"
    log = root / "log" / "videoarchiver.log"
    work_files = root / "work" / "files"
    with tmpfs(small, "64k" if full == "work files" else "8m"), ready_daemon(root) as daemon:
        try:
            if full == "state database":
                _fill(root / "work" / "ballast")
            shutil.copyfile(raw, root / "raw" / ".a.mkv")
            (root / "raw" / ".a.mkv").rename(root / "raw" / "a.mkv")
            _wait(lambda: "the disk is full" in log.read_text())
            assert daemon.poll() is None, "the daemon keeps running"
            if full == "work files":
                assert _between_attempts(log, lambda: not list(work_files.rglob("*.*"))), (
                    "work files removed"
                )
                assert re.search(r"a\.mkv: failed: .*No space left on device", log.read_text())
                subprocess.run(["umount", "-l", str(small)], check=True)  # room below it
            else:  # no claim can be recorded: no work files
                assert not list(work_files.rglob("*.*")), "work files removed"
                (root / "work" / "ballast").unlink()
            _wait(lambda: poll_rows(root, "SELECT state FROM files") == [("done",)])
        finally:
            daemon.send_signal(signal.SIGTERM)
            _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert [s["codec_name"] for s in probe(root / "archive" / "a.mkv")["streams"]] == ["h264"]


def test_no_work_starts_on_a_disk_short_of_its_headroom(tmp_path: Path) -> None:
    """Work that starts on a nearly full disk fills it, and then nothing can be recorded:
    below `min_free_space` (at most 5 % of the disk) nothing new starts."""
    root = _new_root(tmp_path)
    (root / "work").mkdir()
    with tmpfs(root / "work", "8m"):
        assert run_cli(root, "run", "--once").returncode == 0  # the state, made with room
        _clip(root / "raw" / "a.mp4")
        (root / "work" / "ballast").write_bytes(b"\0" * (7900 << 10))  # < 292 KiB left
        result = run_cli(root, "run", "--once")
        assert result.returncode == 1, result.stderr
        assert "less than the 409.6 KiB kept (min_free_space): no new work starts" in (
            result.stderr
        )
        assert [(f["state"], f["sha256"]) for f in status_json(root)] == [("pending", None)]
        (root / "work" / "ballast").unlink()
        assert run_cli(root, "run", "--once").returncode == 0
        assert file_states(root) == ["done"]


def _between_attempts(log: Path, check: Callable[[], bool]) -> bool:
    """`check()`, made while no attempt at `a.mkv` runs: after one failed for want of space
    (its "disk is full" is logged once it tidied up), before the next is claimed (logged
    before it makes anything). The wait between attempts doubles each time: one is long
    enough for the check, however busy the machine."""
    while True:
        text = log.read_text()
        claimed, ended = text.count("a.mkv: claimed by worker"), text.count(FULL)
        if claimed == ended:
            seen = check()
            if log.read_text().count("a.mkv: claimed by worker") == claimed:
                return seen
        _wait(lambda: log.read_text().count(FULL) > ended)  # noqa: B023


FULL = "a.mkv: the disk is full"


def _fill(ballast: Path) -> None:
    """Take every byte its filesystem has left."""
    with ballast.open("wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)


_wait = partial(wait_until, timeout=90)
