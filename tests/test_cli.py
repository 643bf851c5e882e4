"""The other commands and the `after_done` setting, run as a user runs them."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from media import PREVIEW_ARGS, ffmpeg, file_sha256, poll_rows, run_cli, status_json, wait_until
from readiness import SystemdListener, ready_daemon
from videoarchiver import entry
from videoarchiver.display import RichDisplay
from videoarchiver.planning.progress import ProgressUpdate
from videoarchiver.progress import Outcome, ProgressHub, TaskInfo
from videoarchiver.state import Figures, JobState, OutputState, Summary, open_store


def _clip(path: Path, seconds: float = 1) -> None:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=160x120:r=10:d={seconds}", "-c:v", "mpeg4", path)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[None]:
    """A small filesystem of its own at `path` (needs root); the test is skipped without it."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_status_json_lists_files_outputs_and_jobs(root: Path) -> None:
    _clip(root / "raw" / "a.mp4")
    assert run_cli(root, "run", "--once").returncode == 0
    [row] = json.loads(run_cli(root, "status", "--json").stdout)
    assert (row["rel_path"], row["state"]) == ("a.mp4", "done")
    assert {kind: output["state"] for kind, output in row["outputs"].items()} == {
        "archive": "done", "preview": "done", "montage": "done",
    }  # fmt: skip
    assert row["outputs"]["archive"]["sha256"] == file_sha256(root / "archive" / "a.mkv")
    assert [job["stream_index"] for job in row["jobs"]["archive"]] == [0]


def test_retry_makes_failed_files_pending_again(root: Path) -> None:
    config = (root / "videoarchiver.toml").read_text()
    (root / "videoarchiver.toml").write_text(config.replace(PREVIEW_ARGS, '["-crf", "999"]'))
    _clip(root / "raw" / "a.mp4")
    assert run_cli(root, "run", "--once").returncode == 1
    (root / "videoarchiver.toml").write_text(config)
    assert run_cli(root, "run", "--once").returncode == 1, "failed files wait for a retry"
    nothing = run_cli(root, "retry", "raw/nope.mp4")
    assert nothing.returncode == 1 and "no failed file matched" in nothing.stdout
    retried = run_cli(root, "retry", str(root / "raw" / "a.mp4"))
    assert retried.returncode == 0 and "pending again: a.mp4" in retried.stdout
    assert run_cli(root, "run", "--once").returncode == 0
    assert (root / "preview" / "a.mkv").exists()


def test_verify_reports_changed_and_missing_archives(root: Path) -> None:
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        _clip(root / "raw" / name)
    assert run_cli(root, "run", "--once").returncode == 0
    assert run_cli(root, "verify").returncode == 0
    archive = root / "archive" / "a.mkv"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    (root / "archive" / "b.mkv").unlink()
    result = run_cli(root, "verify")
    assert result.returncode == 1
    assert "changed" in result.stdout and "a.mkv" in result.stdout
    assert "missing" in result.stdout and "b.mkv" in result.stdout
    assert "3 archives, 3 previews, 3 montage sheets checked, 2 problems" in result.stdout
    (root / "screenshot" / "c.jpg").unlink()
    result = run_cli(root, "verify")
    assert "missing montage" in result.stdout and "c.jpg" in result.stdout
    (root / "raw" / "a.mp4").unlink()
    repair = run_cli(root, "retry", "--missing")
    assert repair.returncode == 0, repair.stdout
    assert "to be made again" in repair.stdout and "b.mkv" in repair.stdout
    assert run_cli(root, "run", "--once").returncode == 0
    assert (root / "archive" / "b.mkv").exists() and (root / "screenshot" / "c.jpg").exists()
    final = run_cli(root, "verify")
    assert "1 problem" in final.stdout and "changed archive" in final.stdout, final.stdout
    (root / "preview" / "a.mkv").unlink()  # and a.mp4 is gone from raw/
    repair = run_cli(root, "retry", "--missing")
    assert repair.returncode == 1
    assert "cannot make" in repair.stdout and "a.mp4 is no longer in raw/" in repair.stdout


def test_verify_reports_a_destination_that_is_not_the_file_its_publishing_recorded(
    root: Path,
) -> None:
    """Whatever the output's state: a published file must be what its record says."""
    recorded, other = b"the archive recorded", b"another file"
    sha = hashlib.sha256(recorded).hexdigest()

    async def record() -> None:
        async with open_store(root) as store:
            row = await store.add_file("a.mp4", 10, 1, "fp", "a")
            for kind, state in (("archive", OutputState.PUBLISHING), ("preview", OutputState.DONE)):
                await store.set_output(row.id, kind, OutputState.RUNNING)
                await store.set_output(
                    row.id,
                    kind,
                    OutputState.PUBLISHING,
                    path=f"{kind}/a.mkv",
                    size=len(recorded),
                    sha256=sha,
                )
                await store.set_output(row.id, kind, state)
            await store.save_job(row.id, "montage", 0, stream_type="video", decision="seek",
                                 state=JobState.RUNNING,
                                 figures=Figures(path="screenshot/a.jpg", sha256=sha,
                                                 out_bytes=len(recorded)))  # fmt: skip

    (root / "work").mkdir()
    anyio.run(record)
    for kind in ("archive", "preview"):
        (root / kind).mkdir()
        (root / kind / "a.mkv").write_bytes(recorded)
    result = run_cli(root, "verify")
    assert result.returncode == 0, result.stdout
    assert "0 archives, 1 preview, 0 montage sheets checked, 0 problems" in result.stdout
    (root / "archive" / "a.mkv").write_bytes(other)
    (root / "preview" / "a.mkv").write_bytes(other)
    (root / "screenshot").mkdir()
    (root / "screenshot" / "a.jpg").write_bytes(recorded[:-1] + b"!")  # same size
    result = run_cli(root, "verify")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("unrecorded archive") and "archive/a.mkv (from a.mp4): not the"
               " file its publishing recorded" in line for line in lines), lines  # fmt: skip
    assert any(line.startswith("changed preview") and "preview/a.mkv" in line for line in lines)
    assert any(line.startswith("unrecorded montage") and "a.jpg" in line for line in lines)
    assert "3 problems" in result.stdout
    assert (root / "archive" / "a.mkv").read_bytes() == other, "left as it is"


def test_config_prints_valid_toml_with_effective_values_and_sources(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDEOARCHIVER_ARCHIVE__RATIO", "0.5")
    monkeypatch.setenv("VIDEOARCHIVER_JBOS", "3")
    monkeypatch.setenv("VIDEOARCHIVER_STATE", "postgresql://va:s3cret@db.lan/videos")
    result = run_cli(root, "config")
    assert result.returncode == 0
    parsed = tomllib.loads(result.stdout)
    assert parsed["archive"]["ratio"] == 0.5 and parsed["settle_seconds"] == 0.0
    assert "root" not in parsed and parsed["jobs"] >= 1, "the effective number, never null"
    lines = result.stdout.splitlines()
    assert any(line.startswith("ratio = 0.5") and "VIDEOARCHIVER_ARCHIVE__RATIO" in line
               for line in lines)  # fmt: skip
    assert any(line.startswith("settle_seconds = 0.0") and "file" in line for line in lines)
    assert any(line.startswith("max_n = 10") and "# default" in line for line in lines)
    assert "VIDEOARCHIVER_JBOS is not a setting" in result.stderr
    assert parsed["state"] == "postgresql://va:***@db.lan/videos", "no password printed"
    assert "s3cret" not in result.stdout
    monkeypatch.setenv("VIDEOARCHIVER_JOBS", "many")
    bad = run_cli(root, "config")
    assert bad.returncode == 2 and "environment variable VIDEOARCHIVER_JOBS" in bad.stderr


def test_help_on_every_command(root: Path) -> None:
    for command in ("run", "status", "retry", "verify", "config"):
        result = subprocess.run([sys.executable, "-m", "videoarchiver", command, "--help"],
                                capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 0 and "--root" in result.stdout
        assert f"example: videoarchiver {command}" in result.stdout
    version = subprocess.run([sys.executable, "-m", "videoarchiver", "--version"],
                             capture_output=True, text=True)  # fmt: skip
    assert version.returncode == 0 and version.stdout.startswith("videoarchiver 0.")


@pytest.mark.parametrize("command", ["run", "status", "config"])
def test_a_root_that_does_not_exist_is_refused_not_created(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "typo"
    result = subprocess.run(
        [sys.executable, "-m", "videoarchiver", command, "--root", str(missing)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"videoarchiver: root {missing}: no such folder\n"
    assert not missing.exists()


def test_web_refuses_a_port_in_use_and_a_port_out_of_range(root: Path) -> None:
    assert run_cli(root, "run", "--once").returncode == 0
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = run_cli(root, "web", "--listen", f"127.0.0.1:{port}")
    assert busy.returncode == 2
    assert (
        busy.stderr == f"videoarchiver: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
    assert "http://" not in busy.stdout, "no address announced that nothing listens on"
    wrong = run_cli(root, "web", "--listen", "localhost:99999")
    assert wrong.returncode == 2 and "port from 1 to 65535" in wrong.stderr


def test_web_on_every_address_prints_where_another_machine_finds_it(root: Path) -> None:
    assert run_cli(root, "run", "--once").returncode == 0
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # a port free a moment ago
    web = subprocess.Popen(
        [sys.executable, "-m", "videoarchiver", "web", "--root", str(root), "--listen",
         f"0.0.0.0:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert web.stdout is not None
        said = web.stdout.readline()
    finally:
        web.terminate()
        web.communicate(timeout=20)
    assert f"http://{socket.gethostname()}:{port}/?token=" in said
    assert "0.0.0.0" not in said.split(": ", 1)[1], "not an address to type in a browser"


@pytest.mark.parametrize("command", ["status", "retry", "verify"])
def test_commands_on_a_folder_without_state_say_so_and_exit_2(root: Path, command: str) -> None:
    result = run_cli(root, command)
    assert result.returncode == 2
    assert "no state in" in result.stderr and "videoarchiver run" in result.stderr


def test_ctrl_c_while_starting_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("videoarchiver.cli.main", interrupted)
    assert entry.main() == 130


@pytest.mark.parametrize("after_done", ["move", "delete"])
def test_after_done(root: Path, after_done: str) -> None:
    (root / "videoarchiver.toml").write_text(
        f'after_done = "{after_done}"\n' + (root / "videoarchiver.toml").read_text()
    )
    (root / "raw" / "sub").mkdir()
    raw = root / "raw" / "sub" / "a.mp4"
    _clip(raw)
    sha = file_sha256(raw)
    assert run_cli(root, "run", "--once").returncode == 0
    assert not raw.exists()
    if after_done == "move":
        assert file_sha256(root / "done" / "sub" / "a.mp4") == sha
    else:
        assert not (root / "done").exists()
    [action] = [file["raw_action"] for file in status_json(root)]
    assert action == ("moved to done/sub/a.mp4" if after_done == "move" else "deleted")


def test_move_across_filesystems(root: Path) -> None:
    (root / "videoarchiver.toml").write_text(
        'after_done = "move"\n' + (root / "videoarchiver.toml").read_text()
    )
    raw = root / "raw" / "a.mp4"
    _clip(raw)
    sha = file_sha256(raw)
    with tmpfs(root / "done", "20m"):
        assert run_cli(root, "run", "--once").returncode == 0
        assert not raw.exists()
        assert file_sha256(root / "done" / "a.mp4") == sha
        assert [p.name for p in (root / "done").iterdir()] == ["a.mp4"], "no temporary left"


def test_full_disk_fails_cleanly(root: Path) -> None:
    raw = root / "raw" / "big.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=5", "-c:v", "ffv1", raw)
    sha = file_sha256(raw)
    with tmpfs(root / "work" / "files", "64k"):
        result = run_cli(root, "run", "--once")
        assert result.returncode == 1
        [file] = status_json(root)
        assert file["state"] == "failed" and "No space left on device" in file["error"]
        assert not any(path.is_file() for path in (root / "work" / "files").rglob("*"))
    assert file_sha256(raw) == sha
    assert not any((root / "archive").iterdir())


def test_raw_file_replaced_while_processed_is_not_published(root: Path) -> None:
    (root / "videoarchiver.toml").write_text(
        (root / "videoarchiver.toml").read_text().replace('"ultrafast"', '"veryslow"')
    )
    raw = root / "raw" / "a.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=8", "-c:v", "ffv1", raw)
    replacement = root / "other.mkv"
    _clip(replacement, seconds=2)
    run = subprocess.Popen([sys.executable, "-m", "videoarchiver", "run", "--once",
                            "--root", str(root)], stderr=subprocess.PIPE, text=True)  # fmt: skip
    running = "SELECT 1 FROM stream_jobs WHERE output = 'archive' AND state = 'running'"
    wait_until(lambda: bool(poll_rows(root, running)), 60, every=0.05)
    shutil.copyfile(replacement, raw)
    run.communicate(timeout=120)
    assert run.returncode == 1
    [file] = status_json(root)
    assert file["state"] == "failed"
    assert "changed or vanished while it was processed" in file["error"]
    assert not (root / "archive" / "a.mkv").exists(), "the slow archive saw the change"
    assert run_cli(root, "run", "--once").returncode == 0, "the new content is a new file"
    # The montage or preview of the first content may have been published before the change:
    # its row then stays (they are recorded), and the new content gets a name of its own
    # rather than overwrite them.
    [(stem, size)] = [
        (file["stem"], file["size"]) for file in status_json(root) if file["state"] == "done"
    ]
    assert size == replacement.stat().st_size
    assert (root / "archive" / f"{stem}.mkv").exists()


@pytest.mark.parametrize("name", ["videoArchiver.service", "videoArchiver-web.service"])
def test_service_file_is_valid(tmp_path: Path, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (Path(__file__).parent.parent / name).read_text()
    assert "Restart=on-failure" in unit and "KillMode=control-group" in unit
    program = str(Path(sys.executable).parent / "videoarchiver")
    local = tmp_path / name
    local.write_text(unit.replace("/opt/videoarchiver/.venv/bin/videoarchiver", program))
    result = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=yes", str(local)], capture_output=True, text=True
    )
    if "--offline" in security.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline")
    [exposure] = re.findall(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert float(exposure) <= 3.0, security.stdout
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    assert f"`systemd-analyze security` rates its exposure {exposure}" in readme, "as it says"


def test_progress_lines_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=150, color_system=None)
    now = [100.0]
    hub = ProgressHub(clock=lambda: now[0])
    with RichDisplay(console, hub) as display:
        view = hub.start(TaskInfo(1, "clip.mp4", "archive", "s0 archive video", total=10.0))
        now[0] += 2
        view.update(ProgressUpdate(out_seconds=5.0, total_size=10, frame=1, speed=2.5, ended=False))
        display.progress.refresh()
        live = out.getvalue()
        assert "clip.mp4 s0 archive video" in live
        assert "E 0:00:05/0:00:10 S 0:00:02 R 0:00:02 2.50x" in live
        now[0] += 10  # a stall of 10 s: R follows the pace of the last 10 s (0.1 s a second)
        view.update(ProgressUpdate(out_seconds=6.0, total_size=10, frame=1, speed=0.5, ended=False))
        display.progress.refresh()
        assert "E 0:00:06/0:00:10 S 0:00:12 R 0:00:40" in out.getvalue()
        assert [task.record("w").done for task in hub.tasks()] == [6.0], "what the store gets"
        view.end(Outcome.DONE)
        stopped = hub.start(TaskInfo(1, "clip.mp4", "archive", "s1 archive audio", total=10.0))
        stopped.end(Outcome.KEPT_RAW)
        # A seek montage is one line counted in frames, not one line per seek.
        with hub.counting(
            TaskInfo(1, "clip.mp4", "montage", "s0 montage (seek)", 4, "frames")
        ) as seek:
            for _ in range(4):
                now[0] += 1
                seek.advance()
        hub.queue_changed(Summary({"done": 1, "pending": 2}, 4 << 20, 1 << 20, 8 << 20, 80, 40))
        display.progress.refresh()
        now[0] += 10  # 40 s of estimated cost done in 10 s, 40 s to go: 10 s more
        hub.queue_changed(Summary({"done": 2, "pending": 1}, 8 << 20, 2 << 20, 4 << 20, 40, 80))
        display.progress.refresh()
        assert hub.tasks() == []
    text = out.getvalue()
    assert "done clip.mp4 s0 archive video: E 0:00:10/0:00:10" in text
    assert "kept raw stream (ratio rule) clip.mp4 s1 archive audio" in text
    assert "done clip.mp4 s0 montage (seek): frames 4/4 S 0:00:04" in text
    assert text.count("s0 montage (seek)") <= 3, "one line (and its redraws), not one per seek"
    assert "queue: 1/3 files done, 3.0 MiB saved (75%), ETA -:--:--" in text
    assert "queue: 2/3 files done, 6.0 MiB saved (75%), ETA 0:00:10" in text


@pytest.mark.parametrize("width", [200, 80])
def test_a_long_name_gives_way_to_the_step_and_the_figures(width: int) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=width, color_system=None)
    now = [0.0]
    hub = ProgressHub(clock=lambda: now[0])
    name = "Été 2024 à Montréal — la très longue vidéo de la famille Dûbois-Ørsted (finale).mp4"
    with RichDisplay(console, hub) as display:
        hub.queue_changed(Summary({"pending": 1, "running": 1}, 0, 0, 10, 100.0, 0.0))
        view = hub.start(TaskInfo(1, name, "archive", "s0 archive video", total=20.0))
        now[0] = 8
        view.update(ProgressUpdate(out_seconds=3.5, total_size=1, frame=1, speed=0.44, ended=False))
        display.progress.refresh()
        drawn = out.getvalue().rsplit("\r", 1)[-1]
    [line] = [line for line in drawn.splitlines() if "0.44x" in line]
    assert line.startswith("Été 2024 à")
    assert "s0 archive video" in line and "E 0:00:03/0:00:20 S 0:00:08 R 0:00:37 0.44x" in line
    assert len(line.rstrip()) <= width
    assert "queue: 0/2 files done, ETA -:--:--" in drawn


def test_systemd_hears_ready_status_watchdog_and_stopping(root: Path, tmp_path: Path) -> None:
    _clip(root / "raw" / "a.mp4")
    with SystemdListener(tmp_path / "notify.sock") as systemd:
        env = {**os.environ, **systemd.env, "WATCHDOG_USEC": "200000"}
        env.pop("VIDEOARCHIVER_CONFIG", None)
        result = subprocess.run(
            [sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
    messages = systemd.messages
    assert result.returncode == 0, result.stderr
    assert "READY=1" in messages and "WATCHDOG=1" in messages
    assert any(m.startswith("STATUS=") and "running" in m and "done" in m for m in messages)
    assert messages[-1] == "STOPPING=1"


def test_under_journald_lines_carry_syslog_priorities_and_no_timestamps(
    root: Path, tmp_path: Path
) -> None:
    _clip(root / "raw" / "a.mp4")
    (root / "raw" / "empty.mp4").write_bytes(b"")
    journal = tmp_path / "journal"
    with journal.open("w") as stderr:
        info = os.fstat(stderr.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        env.pop("VIDEOARCHIVER_CONFIG", None)
        subprocess.run(
            [sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env, timeout=120, check=False,
        )  # fmt: skip
    lines = journal.read_text().splitlines()
    assert lines and all(re.match(r"<[2-7]>", line) for line in lines), lines
    assert "ffmpeg jobs at once, ffmpeg version" in lines[0] and str(root) in lines[0]
    assert any(line.startswith("<3>empty.mp4: failed") for line in lines)
    assert any(line.startswith("<6>a.mp4: done") for line in lines)
    assert not any(re.match(r"<\d>\d{4}-", line) for line in lines), "journald adds the time"
    logged = (root / "log" / "videoarchiver.log").read_text().splitlines()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} INFO ", logged[0]), "ISO 8601"
    assert "[{" not in "\n".join(logged), "no JSON in log lines"


def test_pause_holds_new_work_across_a_restart_until_resume(root: Path) -> None:
    assert run_cli(root, "run", "--once").returncode == 0  # an empty root: the state exists
    assert "paused since" in run_cli(root, "pause").stdout
    _clip(root / "raw" / "a.mp4")
    log = root / "log" / "videoarchiver.log"
    with ready_daemon(root) as daemon:
        try:
            wait_until(lambda: "a.mp4: found" in log.read_text(), 60)  # and not claimed
            assert run_cli(root, "status").stdout.startswith("paused since")
            assert run_cli(root, "resume").stdout.strip() == "resumed"
            wait_until(lambda: poll_rows(root, "SELECT state FROM files") == [("done",)], 60)
        finally:
            daemon.send_signal(signal.SIGTERM)
            _out, err = daemon.communicate(timeout=60)
    assert "paused (since" in err and "resumed" in err
    text = log.read_text()  # a daemon deaf to the pause claims the file as soon as it is found
    assert text.index("resumed") < text.index("a.mp4: claimed by worker"), "none while paused"


def test_notifications_tell_of_a_failure_and_of_the_queue_done(root: Path) -> None:
    received: list[dict[str, str]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        config = root / "videoarchiver.toml"
        port = server.server_address[1]
        config.write_text(f'notify = ["json://127.0.0.1:{port}/"]\n' + config.read_text())
        _clip(root / "raw" / "a.mp4")
        (root / "raw" / "empty.mp4").write_bytes(b"")
        assert run_cli(root, "run", "--once").returncode == 1
        server.shutdown()
    titles = [message["title"] for message in received]
    assert "videoarchiver: empty.mp4 failed" in titles
    [done] = [m for m in received if m["title"] == "videoarchiver: the queue is done"]
    assert "2 files: done 1, failed 1" in done["message"] and done["type"] == "success"
