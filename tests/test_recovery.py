"""Real kills: SIGKILL the daemon mid-encode, mid-mux, twice in a row; restart; check."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from held_encode import held_ffmpeg
from media import (
    PREVIEW_ARGS,
    ffmpeg,
    file_sha256,
    kept_by_the_next_claim,
    packets,
    poll_rows,
    probe,
    proc_stat,
    run_cli,
    status_json,
    wait_until,
)

FRAMES = 750  # 30 s at 25 fps


def _processes() -> Iterator[tuple[int, list[bytes]]]:
    """Every live process (not a zombie): its pid and its arguments."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            state = proc_stat(entry.name)[0]
        except OSError:
            continue
        if state != "Z":
            yield int(entry.name), words


def _live_ffmpegs(root: Path) -> list[int]:
    """ffmpeg processes working on this root that are not already dead (zombies)."""
    return [
        pid for pid, words in _processes()
        if b"ffmpeg" in b" ".join(words) and str(root).encode() in b" ".join(words)
    ]  # fmt: skip


def _start(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _kill_when(daemon: subprocess.Popen[bytes], ready: Callable[[], bool], root: Path) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert daemon.poll() is None, "the run ended before the moment to kill it"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    deadline = time.monotonic() + 5
    while _live_ffmpegs(root):
        assert time.monotonic() < deadline, f"ffmpeg outlived the daemon: {_live_ffmpegs(root)}"
        time.sleep(0.05)


def _partial_grew(root: Path, attempt: int, size: int) -> bool:
    """The archive's video encode, started with `attempt` parts kept, wrote over `size` bytes
    (in the work folder of whichever claim of the file runs it)."""
    work = root / "work" / "files" / "1"
    return any(partial.stat().st_size > size
               for partial in work.glob(f"claim-*/archive/s0.partial{attempt}.mkv"))  # fmt: skip


def _salvageable(root: Path) -> bool:
    """The first claim's video encode wrote a few GOPs, and the next claim will keep them."""
    claim = root / "work" / "files" / "1" / "claim-1"
    return _partial_grew(root, 0, 600_000) and kept_by_the_next_claim(claim)


def _parts(root: Path) -> list[dict[str, object]]:
    """The parts recorded for the archive's video stream so far (read while a run goes on)."""
    rows = poll_rows(
        root, "SELECT parts FROM stream_jobs WHERE output = 'archive' AND stream_index = 0"
    )
    loaded: list[dict[str, object]] = json.loads(rows[0][0]) if rows else []
    return loaded


@pytest.fixture
def clip_root(tmp_path: Path) -> Path:
    # A quote, a `%` and a newline in every path: the concat script and the montage's frame
    # pattern must cope.
    root = tmp_path / "it's 100%\na root"
    (root / "raw").mkdir(parents=True)
    (root / "videoarchiver.toml").write_text(
        f"settle_seconds = 0\njobs = 1\n[preview]\nvideo_args = {PREVIEW_ARGS}\n[archive]\n"
        'video_args = ["-crf", "18", "-preset", "slow", "-g", "50"]\n'  # a GOP every 2 s
    )
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=480x270:r=25:d=30", "-f", "lavfi", "-i",
           "anoisesrc=d=30:c=pink:r=48000:a=0.3", "-c:v", "mpeg4", "-q:v", "2", "-c:a", "pcm_s16le",
           root / "raw" / "clip.mkv")  # fmt: skip
    return root


def _check_archive(root: Path) -> list[dict[str, object]]:
    archive = root / "archive" / "clip.mkv"
    raw = root / "raw" / "clip.mkv"
    times = sorted(float(p["pts_time"]) for p in packets(archive, 0))
    assert len(times) == FRAMES, "every frame, none duplicated or lost at a join"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.039 and max(gaps) < 0.041
    _assert_same_audio(raw, archive)
    assert [s["codec_name"] for s in probe(archive)["streams"]] == ["h264", "opus"]
    [file] = status_json(root)
    assert file["state"] == "done"
    [video] = [job for job in file["jobs"]["archive"] if job["stream_index"] == 0]
    # Measured on the parts joined: their timeline is the raw's, frame for frame.
    assert video["ssim_mean"] > 0.95, video
    recorded: list[dict[str, object]] = video["parts"]
    return recorded


def test_killed_during_an_encode_twice_resumes_from_the_salvaged_parts(clip_root: Path) -> None:
    daemon = _start(clip_root)
    _kill_when(daemon, partial(_salvageable, clip_root), clip_root)
    daemon = _start(clip_root)
    # The second run salvages the first part and encodes a new partial; kill it again.
    _kill_when(
        daemon,
        lambda: len(_parts(clip_root)) == 1 and _partial_grew(clip_root, 1, 400_000),
        clip_root,
    )
    assert run_cli(clip_root, "run", "--once").returncode == 0
    parts = _check_archive(clip_root)
    assert len(parts) >= 3, parts
    assert parts[0]["start"] == 0.0 and not parts[0]["last"] and parts[-1]["last"]
    for before, after in itertools.pairwise(parts):
        assert after["start"] == pytest.approx(before["end"], abs=0.002), "parts abut"
    assert not (clip_root / "work" / "files").exists() or not any(
        (clip_root / "work" / "files").rglob("*.mkv")
    ), "no stale work files once the file is done"


def test_parts_made_before_the_whole_content_was_hashed_are_not_kept(clip_root: Path) -> None:
    """Nothing proves what a claim stopped before the raw file's whole content was hashed
    made its parts of (an edit in the middle keeps the ends the fingerprint reads)."""
    daemon = _start(clip_root)
    _kill_when(daemon, lambda: _partial_grew(clip_root, 0, 600_000), clip_root)
    # As if killed before its hash was recorded (here it took milliseconds).
    with contextlib.closing(sqlite3.connect(clip_root / "work" / "state.sqlite3")) as db:
        db.execute("UPDATE files SET sha256 = NULL")
        db.commit()
    assert run_cli(clip_root, "run", "--once").returncode == 0
    assert len(_check_archive(clip_root)) == 1, "encoded from the start: nothing salvaged"
    [file] = status_json(clip_root)
    assert file["sha256"] == file_sha256(clip_root / "raw" / "clip.mkv")


def test_killed_during_the_mux_starts_the_mux_again(clip_root: Path) -> None:
    config = clip_root / "videoarchiver.toml"
    config.write_text(config.read_text().replace('"slow"', '"ultrafast"'))

    def muxing() -> bool:
        return poll_rows(clip_root, "SELECT state FROM outputs WHERE output = 'archive'") == [
            ("running",)
        ]

    _kill_when(_start(clip_root), muxing, clip_root)
    assert not (clip_root / "archive" / "clip.mkv").exists(), "nothing half-written published"
    assert run_cli(clip_root, "run", "--once").returncode == 0
    parts = _check_archive(clip_root)
    assert len(parts) == 1, "the finished encode is not redone"


def _counting_packets_of(root: Path, name: str) -> bool:
    """An ffprobe packet pass over `name` (under the root) is running: its encode ended."""
    path = f"{root}/{name}".encode()
    return any(
        words[0].endswith(b"ffprobe") and any(word.endswith(path) for word in words)
        for _pid, words in _processes()
    )


def test_killed_after_an_audio_encode_ended_before_its_part_was_kept_encodes_it_again(
    root: Path,
) -> None:
    # Two minutes of GSM: a salvage of its whole encode would end at the stream's end, where
    # an encode resumed would make a file without packets (it once failed the file).
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=120:c=pink:a=0.3", "-ar", "8000", "-ac", "1",
           "-c:a", "libgsm", "-f", "gsm", root / "raw" / "voice.gsm")  # fmt: skip
    encoded = "work/files/1/claim-1/archive/s0.partial0.mkv"
    _kill_when(_start(root), partial(_counting_packets_of, root, encoded), root)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "salvaged" not in result.stderr, "audio is encoded again, never joined"
    archive = root / "archive" / "voice.mkv"
    assert [s["codec_name"] for s in probe(archive)["streams"]] == ["opus"]
    _assert_same_audio(root / "raw" / "voice.gsm", archive)
    [file] = status_json(root)
    assert (file["state"], file["outputs"]["preview"]["state"]) == ("done", "done")


def _decoded(path: Path) -> array[int]:
    """The first audio stream's samples, decoded to mono at 48 kHz."""
    pcm = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{path}", "-map", "0:a:0",
         "-ar", "48000", "-ac", "1", "-f", "s16le", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return array("h", pcm)


def _lag(raw: array[int], archive: array[int], at: int, reach: int = 480) -> int:
    """By how many samples the archive lags the raw around sample `at` (±10 ms searched)."""
    window = raw[at : at + 2400]

    def match(lag: int) -> float:
        return sum(a * b for a, b in zip(window, archive[at + lag :], strict=False))

    return max(range(-reach, reach + 1), key=match)


def _assert_same_audio(raw_path: Path, archive_path: Path) -> None:
    """As long as the raw within 1 ms (48 samples) and aligned with it within 1 ms, at its
    start, middle and end."""
    raw, archive = _decoded(raw_path), _decoded(archive_path)
    assert abs(len(archive) - len(raw)) <= 48, (len(archive), len(raw))
    for at in (4800, len(raw) // 2, len(raw) - 9600):
        assert abs(_lag(raw, archive, at)) <= 48, f"shifted at sample {at}"


def test_an_audio_encode_killed_twice_is_as_long_as_the_raw_and_aligned(root: Path) -> None:
    """Every Opus encode starts with 312 samples of priming: a killed one is encoded again
    from its start rather than joined, so no kill adds a sample."""
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=120:c=pink:r=48000:a=0.3", "-ac", "2",
           "-c:a", "flac", root / "raw" / "talk.flac")  # fmt: skip
    work = root / "work" / "files" / "1"

    def encoding(size: int) -> bool:
        return any(p.stat().st_size > size for p in work.glob("claim-*/archive/s0.partial*.mkv"))

    for size in (300_000, 600_000):
        _kill_when(_start(root), partial(encoding, size), root)
    result = run_cli(root, "run", "--once")
    assert result.returncode == 0, result.stderr
    archive = root / "archive" / "talk.mkv"
    assert [s["codec_name"] for s in probe(archive)["streams"]] == ["opus"]
    _assert_same_audio(root / "raw" / "talk.flac", archive)
    [file] = status_json(root)
    [job] = file["jobs"]["archive"]
    assert len(job["parts"]) == 1, "one encode from the start, no join"


def test_stale_work_files_are_removed_at_start(root: Path) -> None:
    stale = root / "work" / "files" / "99" / "archive"
    stale.mkdir(parents=True)
    (stale / "s0.partial0.mkv").write_bytes(b"left over by a kill")
    assert run_cli(root, "run", "--once").returncode == 0
    assert not (root / "work" / "files" / "99").exists()


def test_pause_now_stops_an_encode_that_goes_on_from_its_parts_after_resume(
    clip_root: Path, tmp_path: Path
) -> None:
    # Its encode is held a few GOPs in: `pause --now` meets it running, however fast.
    held = tmp_path / "held"
    env = {**os.environ, **held_ffmpeg(held, 5)}
    claim = clip_root / "work" / "files" / "1" / "claim-1"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "videoarchiver", "run", "--root", str(clip_root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        _wait(lambda: (held / "held").exists() and kept_by_the_next_claim(claim))
        assert run_cli(clip_root, "pause", "--now").returncode == 0
        _wait(lambda: not _live_ffmpegs(clip_root))
        _wait(lambda: ("running",) not in poll_rows(clip_root, "SELECT state FROM stream_jobs"))
        assert not (clip_root / "archive" / "clip.mkv").exists()
        assert run_cli(clip_root, "resume").returncode == 0
        _wait(lambda: poll_rows(clip_root, "SELECT state FROM files") == [("done",)])
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    assert "stopped; it goes on when work may" in err
    assert len(_check_archive(clip_root)) >= 2, "the stopped encode was salvaged, not redone"


_wait = partial(wait_until, timeout=120, every=0.05)
