"""The web page over HTTP: pages and JSON from the store, the token off loopback, CSRF on
every action, and media served only as published outputs, by file id."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import anyio
import httpx
import pytest

from media import FAST_CONFIG, ffmpeg, file_sha256, probe, run_cli, wait_until
from videoarchiver.config import load_config
from videoarchiver.layout import Layout
from videoarchiver.pausing import PAUSED
from videoarchiver.planning.claim_order import Estimate, Rank
from videoarchiver.publishing import sha256_fd
from videoarchiver.state import (
    MEMORY_URL,
    SET_ASIDE_REASON,
    Figures,
    FileQuery,
    FileState,
    JobState,
    OutputState,
    Progress,
    Store,
    Worker,
    open_store,
)
from videoarchiver.tools import readable_demuxers
from videoarchiver.web import published
from videoarchiver.web.access import (
    CSRF_COOKIE,
    CSRF_FIELD,
    TOKEN_COOKIE,
    AccessGate,
    loopback,
)
from videoarchiver.web.app import create_app
from videoarchiver.web.settings import Settings

pytestmark = pytest.mark.anyio
TOKEN = "a-token-for-the-tests-0123456789"


@dataclass
class Site:
    root: Path
    store: Store
    done: int  # a file with every output published
    failed: int
    demuxers: str  # what ffmpeg may read a preview as


async def _publish(store: Store, root: Path, name: str) -> int:
    """A done file whose montage and preview are real files in the root, recorded as the
    daemon records them (a montage by its sheets)."""
    row = await store.add_file(
        f"{name}.mp4", 1000, 1, f"fp-{name}", name, cost=Estimate(Rank.VIDEO, 1.0)
    )
    me = Worker("w1", "host", 1, time.time(), time.time())
    await store.heartbeat(me, 60)
    claimed = await store.claim(me.id, 60)
    assert claimed is not None and claimed.id == row.id
    montage, preview = root / "screenshot" / f"{name}.jpg", root / "preview" / f"{name}.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x96:d=1", "-frames:v", "1", montage)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x96:r=10:d=1", "-f", "lavfi", "-i",
           "sine=d=1", "-c:v", "libsvtav1", "-c:a", "libopus", preview)  # fmt: skip
    for kind, path in (("montage", montage), ("preview", preview)):
        await store.set_output(row.id, kind, OutputState.DONE, path=Layout(root).relative(path),
                               size=path.stat().st_size,
                               sha256=file_sha256(path) if kind == "preview" else None)  # fmt: skip
    await _sheet(store, row.id, 0, Layout(root).relative(montage), montage.read_bytes())
    await store.set_output(row.id, "archive", OutputState.DONE, path="archive/x.mkv", size=100)
    await store.finish_file(row.id, None)
    return row.id


async def _sheet(store: Store, file_id: int, stream: int, path: str, content: bytes) -> None:
    """Record a montage sheet published at `path` with `content`."""
    figures = Figures(path=path, sha256=hashlib.sha256(content).hexdigest(), out_bytes=len(content))
    await store.save_job(file_id, "montage", stream, stream_type="video", decision="seek",
                         state=JobState.DONE, figures=figures)  # fmt: skip


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    for folder in ("raw", "work", "screenshot", "preview"):
        (tmp_path / folder).mkdir()
    async with open_store(tmp_path) as store:
        done = await _publish(store, tmp_path, "Holiday 2024")
        failed = await store.add_file("broken.mp4", 10, 1, "fp-broken", "broken")
        await store.fail_file(failed.id, "not a readable media file: moov atom not found")
        yield Site(tmp_path, store, done, failed.id, await readable_demuxers())


@pytest.fixture(scope="module")
def processed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root `run --once` went through: a clip done (all three outputs published), a
    broken file failed."""
    root = tmp_path_factory.mktemp("processed")
    (root / "raw").mkdir()
    (root / "videoarchiver.toml").write_text(FAST_CONFIG)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x96:r=10:d=1", "-f", "lavfi", "-i", "sine=d=1",
           "-c:v", "libx264", "-c:a", "aac", root / "raw" / "Holiday 2024.mp4")  # fmt: skip
    (root / "raw" / "broken.mp4").write_bytes(b"not a video")
    result = run_cli(root, "run", "--once")
    assert result.returncode == 1, result.stderr  # the broken file failed
    return root


@pytest.fixture
async def processed(processed_root: Path, tmp_path: Path) -> AsyncIterator[Site]:
    """A copy of `processed_root` of this test's own, its store open."""
    root = tmp_path / "root"
    shutil.copytree(processed_root, root)
    async with open_store(root) as store:
        [done] = await store.finished("", 2, 0)
        [failed] = await store.failures(2)
        yield Site(root, store, done.id, failed.id, await readable_demuxers())


def _client(site: Site, token: str | None = None) -> httpx.AsyncClient:
    app = create_app(site.store, Layout(site.root), token, site.demuxers)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def test_pages_json_and_metrics_read_the_store(site: Site) -> None:
    async with _client(site) as client:
        for page, holds in [("/", "Now"), ("/queue", "moov atom not found"),
                            ("/gallery", f"/media/{site.done}/montage.jpg"),
                            ("/gallery?q=holiday", "Holiday 2024"),
                            (f"/files/{site.done}", f"/media/{site.done}/preview.webm"),
                            ("/statistics", 'class="hbars"')]:  # fmt: skip
            response = await client.get(page)
            assert response.status_code == 200, page
            assert holds in response.text, page
        assert "Holiday" not in (await client.get("/gallery?q=nothing")).text
        summary = (await client.get("/api/summary")).json()
        assert (summary["files"], summary["raw_bytes"], summary["archive_bytes"]) == (
            {"done": 1, "failed": 1}, 1000, 100)  # fmt: skip
        assert summary["saved_bytes"] == 900
        files = (await client.get("/api/files", params={"q": "HOLIDAY"})).json()
        assert [f["name"] for f in files["files"]] == ["Holiday 2024.mp4"]
        queue = (await client.get("/api/queue")).json()
        assert [f["id"] for f in queue["failed"]] == [site.failed] and queue["pending"] == []
        detail = (await client.get(f"/api/files/{site.done}")).json()
        assert detail["outputs"]["montage"]["state"] == "done"
        assert (await client.get("/api/files/999")).status_code == 404
        assert (await client.get(f"/files/{10**30}")).status_code == 404
        assert (await client.get(f"/gallery?page={10**30}")).status_code == 200
        assert (await client.get("/gallery", params={"q": "a\0b"})).status_code == 200
        rebound = await client.get("/", headers={"host": "evil.example:8080"})
        assert rebound.status_code == 403, "another site's name pointed at 127.0.0.1"
        assert rebound.headers["x-frame-options"] == "DENY"
        metrics = (await client.get("/metrics")).text
        assert 'videoarchiver_files{state="done"} 1' in metrics
        assert (
            "videoarchiver_saved_bytes 900" in metrics and "videoarchiver_raw_bytes 1000" in metrics
        )
        assert 'videoarchiver_worker_heartbeat_age_seconds{worker="w1"}' in metrics
        assert "videoarchiver_stalled_tasks 0" in metrics
        # A worker lost (its lease ran out): its task is shown stalled.
        stuck = await site.store.add_file("stuck.mp4", 10, 1, "fp-stuck", "stuck")
        assert await site.store.claim("w1", 60) is not None
        task = Progress(stuck.id, "s0 archive video", "archive", "w1", 3.0, 9.0, None, None, 0.0)
        await site.store.write_progress("w1", [task])
        assert "videoarchiver_stalled_tasks 0" in (await client.get("/metrics")).text
        [w1] = [worker for worker in await site.store.workers() if worker.id == "w1"]
        await site.store.heartbeat(w1, -1)  # its last: the lease ended a second before it
        assert "videoarchiver_stalled_tasks 1" in (await client.get("/metrics")).text
        [stalled] = (await client.get("/api/queue")).json()["stalled"]
        assert (stalled["name"], stalled["worker"]) == ("stuck.mp4", "w1")
        assert "stalled: worker w1" in (await client.get("/queue")).text


async def test_off_loopback_every_request_needs_the_token(site: Site) -> None:
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost")
    assert not loopback("0.0.0.0") and not loopback("192.168.1.5")
    async with _client(site, TOKEN) as client:
        for path in ("/", "/events", "/api/summary", "/metrics",
                     f"/media/{site.done}/montage.jpg", "/static/style.css"):  # fmt: skip
            assert (await client.get(path)).status_code == 401, path
        for wrong in ("not-the-token", "é", "\x00"):
            refused = await client.get("/", params={"token": wrong})
            assert refused.status_code == 401, wrong
        right = {"authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/api/summary", headers=right)).status_code == 200
        first = await client.get("http://127.0.0.1//gallery", params={"q": "x", "token": TOKEN})
        assert first.status_code == 303 and first.headers["location"] == "/gallery?q=x"
        cookie = f"{TOKEN_COOKIE}_80"  # one per port
        assert cookie in first.headers["set-cookie"]
        client.cookies.set(cookie, TOKEN)
        client.cookies.set("other", "a b")  # another page's odd cookie on this host
        assert (await client.get("/", headers={"host": "nas.local:8080"})).status_code == 200
        assert (await client.get(f"/media/{site.done}/montage.jpg")).status_code == 200


async def test_actions_are_posts_with_the_csrf_cookie_repeated_in_the_form(site: Site) -> None:
    async with _client(site) as client:
        page = await client.get("/queue")
        csrf = page.cookies[CSRF_COOKIE]
        assert f'value="{csrf}"' in page.text, "the forms carry the cookie's value"
        client.cookies.clear()
        assert (await client.post("/pause", data={CSRF_FIELD: csrf})).status_code == 403
        client.cookies.set(CSRF_COOKIE, csrf)
        for forged in ("forged", "é"):
            assert (await client.post("/pause", data={CSRF_FIELD: forged})).status_code == 403
        elsewhere = {"origin": "http://evil.example"}
        refused = await client.post("/pause", data={CSRF_FIELD: csrf}, headers=elsewhere)
        assert refused.status_code == 403
        assert await site.store.control(PAUSED) is None
        assert (await client.get("/pause")).status_code == 405, "no action by GET"
        paused = await client.post("/pause", data={CSRF_FIELD: csrf})
        assert paused.status_code == 303 and await site.store.control(PAUSED) is not None
        assert "Resume" in (await client.get("/")).text
        await client.post("/resume", data={CSRF_FIELD: csrf})
        assert await site.store.control(PAUSED) is None
        retried = await client.post(f"/files/{site.failed}/retry", data={CSRF_FIELD: csrf})
        assert retried.status_code == 303
        assert (await site.store.get_file(site.failed)).state is FileState.PENDING


async def test_an_empty_root_says_so_plainly(tmp_path: Path) -> None:
    for folder in ("raw", "work"):
        (tmp_path / folder).mkdir()
    async with open_store(tmp_path) as store:
        site = Site(tmp_path, store, 0, 0, "")
        async with _client(site) as client:
            for page, says in [("/", "No file is known yet"), ("/", "Nothing runs."),
                               ("/", "No worker is running"), ("/queue", "Nothing waits"),
                               ("/queue", "No file failed"),
                               ("/gallery", "No file is finished yet"),
                               ("/gallery?q=x", "No finished file matches “x”"),
                               ("/statistics", "No history yet")]:  # fmt: skip
                text = (await client.get(page)).text
                assert f"<span>{says}" in text, (page, says)
                assert "<li>" not in text and '<svg class="plot"' not in text, page


async def test_the_now_page_shows_what_runs_without_javascript(site: Site) -> None:
    stuck = await site.store.add_file("Été 2023.mp4", 5 << 30, 1, "fp-ete", "ete")
    assert await site.store.claim("w1", 60) is not None
    await site.store.write_progress("w1", [
        Progress(stuck.id, "s0 archive video", "archive", "w1", 312.0, 1260.0, 1.42, 668.0,
                 time.time()),
    ])  # fmt: skip
    async with _client(site) as client:
        page = (await client.get("/")).text
        assert "Nothing runs." not in page and "Été 2023.mp4" in page
        assert '<progress max="1260.0" value="312.0">' in page
        assert "E 0:05:12/0:21:00" in page and "1.42×" in page and "24%" in page
        assert "host" in page and "heartbeat" in page, "the worker's card"
        assert "E 0:05:12/0:21:00" in (await client.get(f"/files/{stuck.id}")).text
        [w1] = [worker for worker in await site.store.workers() if worker.id == "w1"]
        await site.store.heartbeat(w1, -1)  # its lease ran out: the task is stalled
        page = (await client.get("/")).text
        assert '<div class="task stalled">' in page and "worker lost, last heard" in page


async def test_the_file_page_has_downloads_and_a_retry(site: Site) -> None:
    async with _client(site) as client:
        done = (await client.get(f"/files/{site.done}")).text
        assert f'href="/files/{site.done}/download/preview"' in done and "/retry" not in done
        failed = await client.get(f"/files/{site.failed}")
        assert "moov atom not found" in failed.text and "download" not in failed.text
        assert f'action="/files/{site.failed}/retry"' in failed.text
        csrf = failed.cookies[CSRF_COOKIE]
        client.cookies.set(CSRF_COOKIE, csrf)
        retried = await client.post(f"/files/{site.failed}/retry",
                                    data={CSRF_FIELD: csrf, "back": "file"})  # fmt: skip
        assert retried.status_code == 303 and retried.headers["location"] == f"/files/{site.failed}"
        assert (await site.store.get_file(site.failed)).state is FileState.PENDING
        odd = await site.store.add_file("odd.mkv", 10, 1, "fp-odd", "odd")
        await site.store.fail_file(odd.id, "ffmpeg failed", "[matroska] EBML header\nthe end")
        page = (await client.get(f"/files/{odd.id}")).text
        assert "<details><summary>ffmpeg's whole message</summary><pre>[matroska]" in page


async def test_stop_set_aside_and_move_to_front_are_posts_recorded_in_the_history(
    site: Site,
) -> None:
    store = site.store
    first = await store.add_file("first.mp4", 10, 1, "fp-first", "first", Estimate(Rank.VIDEO, 9))
    second = await store.add_file("second.mp4", 10, 1, "fp-2", "second", Estimate(Rank.VIDEO, 8))
    last = await store.add_file("last.mp4", 10, 1, "fp-last", "last", Estimate(Rank.VIDEO, 1))
    me = Worker("w2", "host", 2, time.time(), time.time())
    for _ in range(2):
        assert await store.claim(me.id, 60) is not None
    await store.write_progress(me.id, [
        Progress(first.id, "s0 archive video", "archive", me.id, 1.0, 10.0, 1.0, 9.0, time.time()),
    ])  # fmt: skip
    async with _client(site) as client:
        page = await client.get(f"/files/{first.id}")
        csrf = page.cookies[CSRF_COOKIE]
        for action in ("stop", "set-aside"):
            assert f'action="/files/{first.id}/{action}"' in page.text
        live = await _first_event(create_app(store, Layout(site.root), None, site.demuxers),
                                  "/events")  # fmt: skip
        assert f'action="/files/{first.id}/stop"' in live["html"], "the Now page's card"
        queue = (await client.get("/queue")).text
        assert f'action="/files/{last.id}/front"' in queue
        assert f'action="/files/{first.id}/front"' not in queue, "running: not in the queue"
        actions = [(f"/files/{first.id}/stop", "file"), (f"/files/{second.id}/set-aside", "now"),
                   (f"/files/{last.id}/front", "queue")]  # fmt: skip
        client.cookies.clear()
        for path, _back in actions:  # without the cookie, or repeating another value
            assert (await client.post(path, data={CSRF_FIELD: csrf})).status_code == 403
        client.cookies.set(CSRF_COOKIE, csrf)
        for path, _back in actions:
            forged = await client.post(path, data={CSRF_FIELD: "forged"})
            assert forged.status_code == 403
        assert await store.heartbeat(me, 60) == {first.id, second.id}, "nothing was asked"
        answers = [await client.post(path, data={CSRF_FIELD: csrf, "back": back})
                   for path, back in actions]  # fmt: skip
        assert [(answer.status_code, answer.headers["location"]) for answer in answers] == [
            (303, f"/files/{first.id}"), (303, "/"), (303, "/queue"),
        ]  # fmt: skip
        assert await store.heartbeat(me, 60) == set(), "its worker is to stop both"
        assert [row.id for row in await store.queue(1)] == [last.id], "first in the queue"
        again = await client.post(f"/files/{last.id}/stop", data={CSRF_FIELD: csrf})
        assert again.status_code == 409 and "only a running file can stop" in again.text
        assert sorted(await store.release(me.id)) == [first.id, second.id]
        assert (await store.get_file(second.id)).error == SET_ASIDE_REASON
        retried = await client.post(f"/files/{second.id}/retry", data={CSRF_FIELD: csrf})
        assert retried.status_code == 303 and retried.headers["location"] == "/queue"
        page = await client.get(f"/files/{second.id}")
        history = page.text[page.text.index('<ol class="timeline">') :]
        steps = ["found", "claimed", "stop asked", "set aside", "retried"]
        assert [history.index(f'<b class="what">{step}</b>') for step in steps] == sorted(
            history.index(f'<b class="what">{step}</b>') for step in steps
        ), "the first step first"
        assert "· web page" in history and "· w2" in history
        assert f'action="/files/{second.id}/front"' in page.text, "pending again"


async def test_a_download_is_a_published_output_under_its_name(site: Site) -> None:
    preview = site.root / "preview" / "Holiday 2024.mkv"
    montage = site.root / "screenshot" / "Holiday 2024.jpg"
    async with _client(site) as client:
        for kind, path in (("preview", preview), ("montage", montage)):
            got = await client.get(f"/files/{site.done}/download/{kind}")
            assert got.status_code == 200 and got.content == path.read_bytes(), kind
            disposition = got.headers["content-disposition"]
            assert disposition.startswith("attachment;") and "Holiday%202024" in disposition
        for url in (
            f"/files/{site.done}/download/archive",  # recorded, but not there
            f"/files/{site.done}/download/state.sqlite3",
            f"/files/{site.failed}/download/preview",
            "/files/999/download/preview",
        ):
            assert (await client.get(url)).status_code == 404, url  # fmt: skip
        preview.write_bytes(b"changed")  # no longer what was published
        assert (await client.get(f"/files/{site.done}/download/preview")).status_code == 404


async def test_media_are_published_outputs_found_by_id_only(site: Site, tmp_path: Path) -> None:
    montage = site.root / "screenshot" / "Holiday 2024.jpg"
    async with _client(site) as client:
        got = await client.get(f"/media/{site.done}/montage.jpg")
        assert got.status_code == 200 and got.content == montage.read_bytes()
        async with anyio.create_task_group() as group:  # a browser asks several times at once
            answers: list[httpx.Response] = []
            for _ in range(4):
                group.start_soon(
                    lambda: _append(answers, client, f"/media/{site.done}/preview.webm")
                )
        assert [answer.status_code for answer in answers] == [200] * 4
        assert len({answer.content for answer in answers}) == 1, "made once, served whole"
        webm = answers[0]
        played = tmp_path / "played.webm"
        played.write_bytes(webm.content)
        streams = probe(played)
        assert streams["format"]["format_name"].startswith("matroska,webm")
        assert [s["codec_name"] for s in streams["streams"]] == ["av1", "opus"]
        ranged = await client.get(f"/media/{site.done}/preview.webm",
                                  headers={"range": "bytes=0-99"})  # fmt: skip
        assert ranged.status_code == 206 and len(ranged.content) == 100, "seekable"
        refused = [
            f"/media/{site.done}/..%2F..%2Fetc%2Fpasswd", f"/media/{site.done}/%2Fetc%2Fpasswd",
            "/media/..%2F1/montage.jpg", f"/media/{site.done}/archive",
            f"/media/{site.failed}/montage.jpg", "/media/999/montage.jpg",
            "/static/..%2F..%2Fstate%2F__init__.py",
        ]  # fmt: skip
        for path in refused:
            assert (await client.get(path)).status_code == 404, path
        # A path in the store is never taken for more than a place under the root, even
        # with the SHA-256 of what lies there …
        secret = await anyio.Path("/etc/passwd").read_bytes()
        for recorded in ("/etc/passwd", "../../etc/passwd", "screenshot/../../etc/passwd"):
            await _sheet(site.store, site.done, 0, recorded, secret)
            assert (await client.get(f"/media/{site.done}/montage.jpg")).status_code == 404
        # A montage of several video streams is a sheet each: the first stream's stands for it.
        sheets = site.root / "screenshot" / "two streams"
        sheets.mkdir()
        for stream in (2, 0):
            (sheets / f"{stream}.jpg").write_bytes(b"sheet %d" % stream)
            await _sheet(site.store, site.done, stream, f"screenshot/two streams/{stream}.jpg",
                         b"sheet %d" % stream)  # fmt: skip
        await site.store.set_output(site.done, "montage", OutputState.DONE,
                                    path="screenshot/two streams")  # fmt: skip
        assert (await client.get(f"/media/{site.done}/montage.jpg")).content == b"sheet 0"
        # … nor is a published file someone replaced by a link.
        await _sheet(site.store, site.done, 0, "screenshot/Holiday 2024.jpg", montage.read_bytes())
        assert (await client.get(f"/media/{site.done}/montage.jpg")).status_code == 200
        montage.unlink()
        montage.symlink_to("/etc/passwd")
        assert (await client.get(f"/media/{site.done}/montage.jpg")).status_code == 404
        montage.unlink()
        os.mkfifo(montage)  # nor a FIFO, which would hold the request forever
        with anyio.fail_after(5):
            assert (await client.get(f"/media/{site.done}/montage.jpg")).status_code == 404


def test_the_web_command_streams_live_progress(root: Path) -> None:
    """`videoarchiver web` as a user starts it: the event stream sends what every worker
    wrote to the store, about every second."""
    (root / "work").mkdir()

    async def running() -> None:
        async with open_store(root) as store:
            row = await store.add_file("long.mp4", 10, 1, "fp", "long")
            me = Worker("far-away", "elsewhere", 7, time.time(), time.time())
            await store.heartbeat(me, 60)
            assert await store.claim(me.id, 60) is not None
            await store.write_progress(me.id, [
                Progress(row.id, "s0 archive video", "archive", me.id, 12.0, 60.0, 1.5, 32.0,
                         time.time()),
            ])  # fmt: skip

    anyio.run(running)
    port = 18000 + os.getpid() % 1000
    web = subprocess.Popen(
        [sys.executable, "-m", "videoarchiver", "web", "--root", str(root), "--listen",
         f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(port), timeout=20)
        with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=10) as events:
            line = next(line for line in events.iter_lines() if line.startswith("data: "))
        running_now = json.loads(line.removeprefix("data: "))
        [task] = running_now["tasks"]
        assert (task["name"], task["worker"], task["done"], task["total"]) == (
            "long.mp4", "far-away", 12.0, 60.0)  # fmt: skip
        assert [w["id"] for w in running_now["workers"]] == ["far-away"]
        html = running_now["html"]  # what live.js shows: the Now page's own markup
        assert '<div class="task">' in html and "long.mp4" in html and "E 0:00:12/0:01:00" in html
    finally:
        web.terminate()
        out, err = web.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in out and "token" not in out, "no token on loopback"
    assert web.returncode == 0, err


async def test_every_json_endpoint_answers_with_the_data_of_a_processed_file(
    processed: Site,
) -> None:
    root, store = processed.root, processed.store
    raw, archive = root / "raw" / "Holiday 2024.mp4", root / "archive" / "Holiday 2024.mkv"
    preview = root / "preview" / "Holiday 2024.mkv"
    montage = root / "screenshot" / "Holiday 2024.jpg"
    async with _client(processed) as client:

        async def api(path: str, **params: str) -> Any:
            answer = await client.get(path, params=params)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers["content-type"] == "application/json", path
            return json.loads(answer.text)

        detail = await api(f"/api/files/{processed.done}")
        assert (detail["name"], detail["state"], detail["size"]) == (
            "Holiday 2024.mp4", "done", raw.stat().st_size)  # fmt: skip
        for kind, path in (("archive", archive), ("preview", preview), ("montage", montage)):
            output = detail["outputs"][kind]
            assert (output["state"], output["path"], output["size"]) == (
                "done", str(path.relative_to(root)), path.stat().st_size), kind  # fmt: skip
        assert detail["sha256"] == file_sha256(raw), "the raw file's whole content"
        page = await client.get(f"/files/{processed.done}")
        whole = file_sha256(raw)  # shown shortened, whole in its title and when selected
        assert f'<code class="hash" title="{whole}">{whole[:12]}<span class="rest">' in page.text
        assert detail["outputs"]["archive"]["sha256"] == file_sha256(archive)
        assert detail["outputs"]["preview"]["sha256"] == file_sha256(preview)
        [sheet] = detail["jobs"]["montage"]
        assert (sheet["path"], sheet["sha256"]) == ("screenshot/Holiday 2024.jpg",
                                                    file_sha256(montage))  # fmt: skip
        parts = [part for job in detail["jobs"]["archive"] for part in job["parts"]]
        assert parts and all(part["bytes"] > 0 for part in parts), "each encode's parts"
        summary = await api("/api/summary")
        assert summary["files"] == {"done": 1, "failed": 1}
        assert (summary["raw_bytes"], summary["archive_bytes"]) == (
            raw.stat().st_size, archive.stat().st_size)  # fmt: skip
        files = await api("/api/files", q="HOLIDAY")
        assert [(f["id"], f["name"]) for f in files["files"]] == [
            (processed.done, "Holiday 2024.mp4")]  # fmt: skip
        assert (await api("/api/files", q="nothing"))["files"] == []
        [failed] = (await api("/api/queue"))["failed"]
        assert (failed["id"], failed["name"]) == (processed.failed, "broken.mp4")
        assert failed["error"]
        [day] = await api("/api/days")
        assert (day["files"], day["raw_bytes"], day["archive_bytes"]) == (
            1, raw.stat().st_size, archive.stat().st_size)  # fmt: skip
        # The broken file taken again: what runs is in the progress, and in the file's JSON.
        assert await store.retry(["broken.mp4"]) == ["broken.mp4"]
        me = Worker("w1", "host", 1, time.time(), time.time())
        await store.heartbeat(me, 60)
        assert await store.claim(me.id, 60) is not None
        task = Progress(processed.failed, "probe", "probe", me.id, 1.0, 2.0, None, None, 0.0)
        await store.write_progress(me.id, [task])
        [running] = (await api("/api/progress"))["tasks"]
        assert (running["name"], running["worker"], running["done"]) == ("broken.mp4", "w1", 1.0)
        again = await api(f"/api/files/{processed.failed}")
        assert (again["state"], again["worker"]) == ("running", "w1")


SERVED_TYPES = (("/media/{id}/montage.jpg", "image/jpeg"),
                ("/media/{id}/preview.webm", "video/webm"),
                ("/static/style.css", "text/css; charset=utf-8"),
                ("/static/live.js", "text/javascript; charset=utf-8"))  # fmt: skip


async def test_a_published_file_is_served_only_as_it_was_published(
    processed: Site, tmp_path: Path
) -> None:
    """The same bytes (SHA-256), a regular file, under one name: else 404."""
    montage = processed.root / "screenshot" / "Holiday 2024.jpg"
    preview = processed.root / "preview" / "Holiday 2024.mkv"
    original = montage.read_bytes()
    async with _client(processed) as client:

        async def status(what: str) -> int:
            return (await client.get(f"/media/{processed.done}/{what}")).status_code

        for path, media_type in SERVED_TYPES:
            served = await client.get(path.format(id=processed.done))
            assert served.status_code == 200, path
            assert served.headers["content-type"] == media_type, path
            assert served.headers["x-content-type-options"] == "nosniff", path
        # Changed in place, its size and mtime kept: not what was published.
        info = montage.stat()
        with montage.open("r+b") as handle:
            handle.seek(len(original) // 2)
            handle.write(bytes([original[len(original) // 2] ^ 0xFF]))
        os.utime(montage, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert await status("montage.jpg") == 404
        montage.write_bytes(original)  # put back
        assert await status("montage.jpg") == 200
        # A hard link in its place, to other bytes or to the very same: a published file has
        # one name, and the other may be anybody's.
        for outside in (b"a secret kept outside the root", original):
            elsewhere = tmp_path / "outside"
            elsewhere.unlink(missing_ok=True)
            elsewhere.write_bytes(outside)
            montage.unlink()
            os.link(elsewhere, montage)
            assert await status("montage.jpg") == 404, outside[:8]
        # A preview changed after its WebM was made: the WebM is not served either.
        preview.write_bytes(preview.read_bytes()[:-1] + b"x")
        assert await status("preview.webm") == 404


async def test_a_published_file_is_hashed_again_only_when_it_changes(
    processed: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[int] = []

    def counted(fd: int) -> str:
        hashed.append(fd)
        return sha256_fd(fd)

    monkeypatch.setattr(published, "sha256_fd", counted)
    montage = processed.root / "screenshot" / "Holiday 2024.jpg"
    async with _client(processed) as client:
        for _ in range(3):
            assert (await client.get(f"/media/{processed.done}/montage.jpg")).status_code == 200
        assert len(hashed) == 1
        os.utime(montage)  # touched: read again, and still what was published
        assert (await client.get(f"/media/{processed.done}/montage.jpg")).status_code == 200
        assert len(hashed) == 2


async def test_a_served_file_is_closed_however_the_answer_ends(processed: Site) -> None:
    def open_files() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    async with _client(processed) as client:
        for what in ("montage.jpg", "preview.webm"):
            path = f"/media/{processed.done}/{what}"
            assert (await client.get(path)).status_code == 200  # the WebM made
            before = open_files()
            for method, headers, status in (
                ("GET", {}, 200),
                ("HEAD", {}, 200),
                ("GET", {"range": "bytes=0-9"}, 206),
                ("GET", {"range": "bytes=0-1,5-6"}, 206),
                ("GET", {"range": "bytes=99999999-"}, 416),
                ("GET", {"range": "bytes=x"}, 400),
            ):
                answer = await client.request(method, path, headers=headers)  # fmt: skip
                assert answer.status_code == status, (what, method, headers)
            assert open_files() == before, what


async def test_a_preview_that_is_a_playlist_opens_nothing_else(
    processed: Site, tmp_path: Path
) -> None:
    """An HLS playlist in the preview's place, naming a playable file outside the root."""
    preview = processed.root / "preview" / "Holiday 2024.mkv"
    outside = tmp_path / "outside.mkv"
    shutil.copyfile(preview, outside)
    playlist = (
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{outside}\n#EXT-X-ENDLIST\n"
    ).encode()
    preview.unlink()
    preview.write_bytes(playlist)
    async with _client(processed) as client:
        what = f"/media/{processed.done}/preview.webm"
        assert (await client.get(what)).status_code == 404, "not what was published"
        # Even recorded as published, it is read as itself only: no demuxer that opens the
        # files it names.
        await processed.store.set_output(
            processed.done, "preview", OutputState.DONE, path="preview/Holiday 2024.mkv",
            size=len(playlist), sha256=hashlib.sha256(playlist).hexdigest(),
        )  # fmt: skip
        assert (await client.get(what)).status_code == 502


HOSTILE_PATHS = ("/\\evil.example/", "//evil.example/", "///evil.example", "/\\/evil.example",
                 "/\t/evil.example", "/ /evil.example", "/\\\\evil.example")  # fmt: skip


def _origin_reached(location: str) -> str:
    """The origin a browser on http://127.0.0.1:8080 goes to when sent to `location` (as
    the URL standard reads it: tabs and newlines dropped, a backslash taken for a slash)."""
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("".join(map(chr, range(33))))
    parts = urlsplit(urljoin("http://127.0.0.1:8080/page", cleaned.replace("\\", "/")))
    return f"{parts.scheme}://{parts.netloc}"


async def _location(gate: AccessGate, path: str) -> str:
    """Where the gate sends a request that carries the token in its query, for `path` as
    the server decoded it."""
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": f"token={TOKEN}&q=x".encode(), "server": ("127.0.0.1", 8080),
             "headers": [(b"host", b"127.0.0.1:8080")]}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    await gate(scope, receive, send)
    assert sent[0]["status"] == 303, path
    return str(dict(sent[0]["headers"])[b"location"].decode())


async def test_the_token_redirect_stays_on_this_origin(site: Site) -> None:
    gate = create_app(site.store, Layout(site.root), TOKEN, site.demuxers)
    for path in HOSTILE_PATHS:
        location = await _location(gate, path)
        assert _origin_reached(location) == "http://127.0.0.1:8080", (path, location)
        assert unquote(urlsplit(location).path) == "/" + path.lstrip("/"), "the same page"
        assert urlsplit(location).query == "q=x"
    async with _client(site, TOKEN) as client:
        for asked in ("/%5Cevil.example/", "//evil.example", "/%2F%2Fevil.example",
                      "/%5C%5Cevil.example", "/%09/evil.example"):  # fmt: skip
            answer = await client.get(f"http://127.0.0.1{asked}", params={"token": TOKEN})
            assert answer.status_code == 303, asked
            location = answer.headers["location"]
            assert _origin_reached(location) == "http://127.0.0.1:8080", (asked, location)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_search_is_at_most_200_characters(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    (tmp_path / "work").mkdir()
    async with open_store(tmp_path, url) as store:
        name = "x" * 190 + "%_\\"
        row = await store.add_file(
            f"{name}.mp4", 10, 1, "fp", "long name", cost=Estimate(Rank.VIDEO, 1.0)
        )
        me = Worker("w1", "host", 1, time.time(), time.time())
        await store.heartbeat(me, 60)
        assert await store.claim(me.id, 60) is not None
        await store.finish_file(row.id, None)
        app = create_app(store, Layout(tmp_path, url), None, await readable_demuxers())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            longest = (name + ".mp4")[-200:]
            found = await client.get("/api/files", params={"q": longest})
            assert found.status_code == 200
            assert [f["id"] for f in found.json()["files"]] == [row.id]
            gallery = await client.get("/gallery", params={"q": longest})
            assert gallery.status_code == 200 and 'maxlength="200"' in gallery.text
            for page in ("/api/files", "/gallery"):
                for search in ("y" * 201, "a" * 60_000, "%" * 20_000, "é" * 10_000):
                    refused = await client.get(page, params={"q": search})
                    assert refused.status_code == 400, (page, len(search))
                    assert "200 characters" in refused.text


async def _append(answers: list[httpx.Response], client: httpx.AsyncClient, path: str) -> None:
    answers.append(await client.get(path))


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/summary", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _log_line(level: str, text: str, second: int = 0) -> bytes:
    return f"2026-12-07T18:00:{second:02d}.000 {level} {text}\n".encode()


async def _first_event(app: Any, path: str) -> dict[str, Any]:
    """The first event of an event stream (which never ends by itself)."""
    events: list[dict[str, Any]] = []
    path, _, query = path.partition("?")
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1")],
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async with anyio.create_task_group() as group:

        async def send(message: dict[str, Any]) -> None:
            body = message.get("body", b"").decode()
            if body.startswith("data: "):
                events.append(json.loads(body.removeprefix("data: ")))
                group.cancel_scope.cancel()

        group.start_soon(app, scope, receive, send)
    return events[0]


async def test_the_logs_page_shows_the_end_of_the_log_filtered(site: Site) -> None:
    log = site.root / "log" / "videoarchiver.log"
    async with _client(site) as client:
        assert "<span>No log yet" in (await client.get("/logs")).text
        log.parent.mkdir()
        elsewhere = site.root / "elsewhere.log"
        elsewhere.write_bytes(_log_line("ERROR", "a secret line"))
        log.symlink_to(elsewhere)
        assert "a secret line" not in (await client.get("/logs")).text, "no link followed"
        log.unlink()
        filler = b"".join(_log_line("INFO", f"filler {n:06d}") for n in range(10_000))
        assert len(filler) > 256 * 1024
        latin1 = _log_line("INFO", "café.mp4: found", 4).replace("é".encode(), b"\xe9")
        log.write_bytes(filler + _log_line("INFO", "garden.mp4: archive done", 1)
                        + _log_line("WARNING", "garden.mp4: raw file kept", 2)
                        + _log_line("ERROR", "Broken.mp4: failed: moov atom not found", 3)
                        + b"Traceback (most recent call last):\n  more of it\n"
                        + latin1)  # fmt: skip
        page = (await client.get("/logs")).text
        assert "filler 000000" not in page, "only the end of the log is read"
        assert "filler 009999" in page and "caf\\xe9.mp4: found" in page
        assert page.index("archive done") < page.index("raw file kept") < page.index("moov atom")
        assert "moov atom not found\nTraceback (most recent call last):\n  more of it" in page
        warnings = (await client.get("/logs", params={"level": "warning"})).text
        assert "archive done" not in warnings and "raw file kept" in warnings
        assert "moov atom" in warnings
        errors = (await client.get("/logs", params={"level": "ERROR"})).text
        assert "raw file kept" not in errors and "moov atom" in errors
        broken = (await client.get("/logs", params={"file": "broken"})).text
        assert "moov atom" in broken and "garden" not in broken and "filler" not in broken
        nothing = (await client.get("/logs", params={"file": "nothing.mp4"})).text
        assert "<span>No line of the log" in nothing
        assert (await client.get("/logs", params={"file": "x" * 201})).status_code == 400
    app = create_app(site.store, Layout(site.root), None, site.demuxers)
    event = await _first_event(app, "/events/logs?level=ERROR&file=broken")
    assert "moov atom" in event["html"] and "garden" not in event["html"]


async def test_the_settings_page_shows_each_value_and_its_source_but_no_secret(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = site.root / "videoarchiver.toml"
    path.write_text(
        'state = "postgresql://va:pg-s3cret@db.lan/videos"\n'
        'notify = ["ntfy://me:ntfy-s3cret@ntfy.example.com/topic",'
        ' "tgram://123456:tgram-s3cret-token/987"]\n'
        '[web]\ntoken = "web-s3cret-token-0123456789"\n'
    )
    monkeypatch.setenv("VIDEOARCHIVER_ARCHIVE__RATIO", "0.5")
    settings = Settings.of(load_config(path), path)
    app = create_app(site.store, Layout(site.root), None, site.demuxers, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        page = (await client.get("/settings")).text
    assert "s3cret" not in page
    assert "postgresql://va:***@db.lan/videos" in page and "ntfy.example.com/topic" in page
    assert re.search(r"<td class=\"nowrap\">ratio</td><td class=\"wide value\"><code>0.5</code>"
                     r"</td>\s*<td><span class=\"badge badge-from-environment\">environment"
                     r" VIDEOARCHIVER_ARCHIVE__RATIO</span>", page)  # fmt: skip
    assert f"the file <code>{path}</code>" in page
    assert "file; secrets not shown" in page and "default" in page
    assert "<h2>[web]</h2>" in page and "<h2>General</h2>" in page


async def _listed_file(store: Store, rel_path: str, sizes: tuple[int, int], seconds: float,
                       video: tuple[str, int, int], audio_first: bool = False) -> int:  # fmt: skip
    """A done file whose probe, archive jobs and archive are recorded as the daemon records
    them: `sizes` raw and archive bytes, `video` the main video's codec, width and height."""
    stem = rel_path.replace("/", "-")
    row = await store.add_file(rel_path, sizes[0], 1, f"fp-{stem}", stem,
                               cost=Estimate(Rank.VIDEO, 1.0))  # fmt: skip
    me = Worker("w1", "host", 1, time.time(), time.time())
    await store.heartbeat(me, 60)
    claimed = await store.claim(me.id, 60)
    assert claimed is not None and claimed.id == row.id
    codec, width, height = video
    streams: list[dict[str, Any]] = [{"index": 0, "codec_type": "audio", "codec_name": "aac"}]
    streams = streams if audio_first else []
    streams.append({"index": len(streams), "codec_type": "video", "codec_name": codec,
                    "width": width, "height": height})  # fmt: skip
    probed = {"streams": streams, "format": {"duration": f"{seconds:.6f}"}}
    await store.set_probe(row.id, json.dumps(probed))
    for stream in streams:
        await store.save_job(row.id, "archive", stream["index"], stream_type=stream["codec_type"],
                             decision="encode", state=JobState.DONE,
                             figures=Figures(raw_seconds=seconds))  # fmt: skip
    await store.set_output(row.id, "archive", OutputState.DONE, path=f"archive/{stem}.mkv",
                           size=sizes[1])  # fmt: skip
    await store.finish_file(row.id, None)
    return row.id


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "memory"])
async def test_the_store_lists_files_filtered_and_sorted(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    urls = {"postgresql": request.getfixturevalue("pg_url") if backend == "postgresql" else "",
            "memory": MEMORY_URL}  # fmt: skip
    url = urls.get(backend)
    (tmp_path / "work").mkdir()
    async with open_store(tmp_path, url) as store:
        alps = await _listed_file(store, "Trips/Alps.mp4", (1000, 100), 600.0,
                                  ("h264", 1920, 1080), audio_first=True)  # fmt: skip
        beach = await _listed_file(store, "Trips/Beach.mov", (5000, 4500), 3600.0,
                                   ("hevc", 3840, 2160))  # fmt: skip
        cat = await _listed_file(store, "Home/Cat.mp4", (800, 50), 30.0, ("mpeg4", 480, 640))
        broken = await store.add_file("Home/broken.mp4", 10, 1, "fp-broken", "broken")
        await store.fail_file(broken.id, "not a readable media file")

        async def ids(**fields: Any) -> list[int]:
            listed = await store.listing(FileQuery(**fields), 10, 0)
            return [each.file.id for each in listed]

        assert await ids() == [cat, beach, alps], "done files, the last finished first"
        assert await ids(order="saving") == [alps, cat, beach]
        assert await ids(order="longest") == [beach, alps, cat]
        assert await ids(codec="hevc") == [beach]
        assert await ids(side=(1080, 2160)) == [alps], "the main video, not the audio before it"
        assert await ids(side=(None, 720)) == [cat], "a portrait video by its shorter side"
        assert await ids(seconds=(60.0, None)) == [beach, alps]
        assert await ids(seconds=(None, 60.0)) == [cat]
        assert await ids(folder="Trips") == [beach, alps] == await ids(folder="/Trips/")
        assert await ids(folder="Trip") == [], "a whole folder's name"
        assert await ids(search="ALPS") == [alps]
        assert await ids(states=()) == [broken.id, cat, beach, alps]
        assert await ids(states=(FileState.FAILED,), folder="Home") == [broken.id]
        now = time.time()
        assert await ids(changed=(now + 86400, None)) == []
        assert await ids(changed=(now - 86400, now + 86400), order="longest") == [beach, alps, cat]
        [first] = await store.listing(FileQuery(order="saving"), 1, 0)
        assert (first.seconds, first.codec, first.width, first.height, first.archive_bytes) == (
            600.0, "h264", 1920, 1080, 100)  # fmt: skip
        assert [e.file.id for e in await store.listing(FileQuery(), 2, 1)] == [beach, alps]


async def test_the_gallery_filters_and_sorts_by_its_form(site: Site) -> None:
    long = await _listed_file(site.store, "Trips/Long.mkv", (9000, 1000), 5400.0,
                              ("hevc", 3840, 2160))  # fmt: skip
    async with _client(site) as client:

        async def names(**params: str) -> list[str]:
            page = await client.get("/gallery", params=params)
            assert page.status_code == 200, params
            return re.findall(r'<span class="name">([^<]*)</span>', page.text)

        assert await names() == ["Trips/Long.mkv", "Holiday 2024.mp4"]
        assert await names(sort="saving") == ["Trips/Long.mkv", "Holiday 2024.mp4"]
        assert await names(codec="HEVC") == ["Trips/Long.mkv"]
        assert await names(resolution="4k") == ["Trips/Long.mkv"]
        assert await names(resolution="sd") == []
        assert await names(min="60") == ["Trips/Long.mkv"] and await names(max="60") == []
        assert await names(folder="Trips") == ["Trips/Long.mkv"]
        assert await names(state="failed") == ["broken.mp4"]
        assert len(await names(state="any")) == 3
        today = time.strftime("%Y-%m-%d", time.gmtime())
        assert len(await names(**{"from": today, "to": today})) == 2
        assert await names(**{"from": "2999-01-01"}) == []
        assert await names(min="soon", sort="sideways", state="lost") == await names(), "ignored"
        page = (await client.get("/gallery", params={"codec": "av1", "sort": "longest"})).text
        assert "<span>No file matches these filters." in page
        assert '<option value="longest" selected>' in page and 'value="av1"' in page
        assert '<details class="more" open>' in page, "the filters set are shown"
        card = (await client.get("/gallery", params={"folder": "Trips"})).text
        assert "1:30:00" in card and "3840×2160" in card and "hevc" in card
        files = (await client.get("/api/files", params={"sort": "longest"})).json()["files"]
        assert (files[0]["id"], files[0]["seconds"]) == (long, 5400.0)


async def test_a_montage_says_its_tiles_moments_to_the_scrub_and_the_seek(site: Site) -> None:
    async with _client(site) as client:
        assert "data-sheet" not in (await client.get("/gallery")).text, "no grid recorded"
        await site.store.save_job(site.done, "montage", 0, stream_type="video", decision="seek",
                                  state=JobState.DONE, notes=["2x2 tiles of 160x90"])  # fmt: skip
        eight = Figures(raw_seconds=8.0)
        await site.store.save_job(site.done, "archive", 0, stream_type="video", decision="av1",
                                  state=JobState.DONE, figures=eight)  # fmt: skip
        gallery = (await client.get("/gallery")).text
        assert (f'data-sheet="/media/{site.done}/montage.jpg" data-n="2" data-tile="160 / 90"'
                ' data-times="0.00,2.00,4.00,6.00"') in gallery  # fmt: skip
        page = (await client.get(f"/files/{site.done}")).text
        assert 'class="montage"' in page and 'data-n="2" data-times="0.00,2.00,4.00,6.00"' in page


async def test_statistics_say_what_saves_the_most_and_why_files_fail(site: Site) -> None:
    long = await _listed_file(site.store, "Trips/Long.mkv", (9 << 30, 1 << 30), 5400.0,
                              ("hevc", 3840, 2160))  # fmt: skip
    await _listed_file(site.store, "Trips/Short.mp4", (3 << 20, 1 << 20), 60.0, ("h264", 640, 360))
    other = await site.store.add_file("other.mp4", 10, 1, "fp-other", "other")
    await site.store.fail_file(other.id, "not a readable media file: no moov; archive: stopped")
    async with _client(site) as client:
        page = (await client.get("/statistics")).text
    charts = dict(re.findall(r'<svg class="hbars wide" viewBox="[^"]*" role="img"'
                             r' aria-label="([^"]*)">(.*?)</svg>', page, re.S))  # fmt: skip

    def labels(chart: str) -> list[str]:
        text = charts[next(name for name in charts if chart in name)]
        return re.findall(r"<title>([^<]*)</title>", text)

    assert labels("container") == ["mkv", "mp4"], "the most saved first"
    assert labels("codec") == ["hevc", "h264", "no video"]
    assert labels("saved the most") == ["Trips/Long.mkv", "Trips/Short.mp4", "Holiday 2024.mp4"]
    assert f'<a href="/files/{long}">' in page and "8.0 GiB · 89%" in page
    assert labels("reason") == ["not a readable media file"]
    assert '<text x="236" y="31" class="value">2</text>' in charts["failed files by reason"]
    async with _client(site) as client:  # saved by container: kept while the totals hold
        assert "<title>webm</title>" not in (await client.get("/statistics")).text
        await _listed_file(site.store, "clip.webm", (5 << 20, 1 << 20), 30.0, ("vp9", 640, 360))
        assert "<title>webm</title>" in (await client.get("/statistics")).text
