"""A running file stopped from the web page, end to end: a real `videoarchiver run` encodes
a clip; the page's Stop (a POST, through the store) makes that worker stop the encode and give
the file back; it goes back to pending and the daemon finishes it from the salvaged part."""

from __future__ import annotations

import itertools
import subprocess
import sys
from functools import partial
from pathlib import Path

import anyio
import httpx

from media import ffmpeg, packets, poll_rows, status_json, wait_until
from videoarchiver.layout import Layout
from videoarchiver.state import open_store
from videoarchiver.web.access import CSRF_COOKIE, CSRF_FIELD
from videoarchiver.web.app import create_app

FRAMES = 750  # 30 s at 25 fps
_wait = partial(wait_until, timeout=180, every=0.05)


def _encoding(root: Path) -> bool:
    """The archive's video encode (the first, with no part kept) wrote a few GOPs."""
    work = root / "work" / "files" / "1"
    return any(p.stat().st_size > 400_000 for p in work.glob("claim-*/archive/s0.partial0.mkv"))


async def _stop(root: Path, file_id: int) -> int:
    """Press the file page's Stop, as a browser would; returns the answer's status."""
    async with open_store(root) as store:
        app = create_app(store, Layout(root), None, "")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get(f"/files/{file_id}")
            assert f'action="/files/{file_id}/stop"' in page.text, "running: it may be stopped"
            csrf = page.cookies[CSRF_COOKIE]
            answer = await client.post(
                f"/files/{file_id}/stop", data={CSRF_FIELD: csrf, "back": "file"}
            )
            return answer.status_code


def test_a_file_stopped_from_the_page_goes_back_and_is_finished_from_its_part(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "videoarchiver.toml").write_text(
        "settle_seconds = 0\njobs = 1\nlease_seconds = 4\n[archive]\n"  # a heartbeat a second
        'video_args = ["-crf", "18", "-preset", "slow", "-g", "50"]\n'  # a GOP every 2 s
    )
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=480x270:r=25:d=30", "-f", "lavfi", "-i",
           "sine=d=30", "-c:v", "mpeg4", "-q:v", "2", "-c:a", "pcm_s16le",
           root / "raw" / "clip.mkv")  # fmt: skip
    daemon = subprocess.Popen(
        [sys.executable, "-m", "videoarchiver", "run", "--once", "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait(lambda: _encoding(root))
        assert anyio.run(_stop, root, 1) == 303
        _wait(lambda: ("released",) in poll_rows(root, "SELECT kind FROM events"))
        _, err = daemon.communicate(timeout=300)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, err
    assert "clip.mkv: stopped as asked from the web page" in err
    kinds = [kind for (kind,) in poll_rows(root, "SELECT kind FROM events ORDER BY id")]
    stopped = kinds.index("stop asked")
    assert kinds[stopped : stopped + 3] == ["stop asked", "released", "claimed"]
    assert "resumed" in kinds[stopped:] and kinds[-1] == "done", kinds
    [file] = status_json(root)
    [video] = [job for job in file["jobs"]["archive"] if job["stream_index"] == 0]
    assert file["state"] == "done" and len(video["parts"]) >= 2, "salvaged, not made again"
    times = sorted(float(p["pts_time"]) for p in packets(root / "archive" / "clip.mkv", 0))
    assert len(times) == FRAMES, "every frame, none duplicated or lost at the join"
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.041
