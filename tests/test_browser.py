"""The web page in a real browser (Debian's Chromium, driven by Playwright) beside a real
daemon on a real root: live bars move, montages load, previews play, Retry re-runs a failed
file, and no page logs an error. A screenshot of each page is kept with the test's files
(and `docs/web-now.png` in the README is one of them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, ViewportSize, sync_playwright

from media import ffmpeg, status_json, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("WEB_SCREENSHOTS")  # a folder to copy them to (for docs/)


def _start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "videoarchiver", *args, "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture
def site(root: Path) -> Iterator[str]:
    """A daemon at work on a clip that takes a while, and the page of its root."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=24", "-f", "lavfi", "-i",
           "sine=d=24", "-c:v", "mpeg4", "-q:v", "3", "-c:a", "aac",
           root / "raw" / "garden party.mp4")  # fmt: skip
    (root / "raw" / "broken.mp4").write_bytes(b"\0" * 4096)
    config = root / "videoarchiver.toml"  # slow enough for a bar to be seen moving
    config.write_text(config.read_text().replace('"ultrafast"', '"slow"'))
    daemon = _start(root, "run")
    wait_until(lambda: (root / "work" / "state.sqlite3").exists(), timeout=30)
    port = 19000 + os.getpid() % 1000
    web = _start(root, "web", "--listen", f"127.0.0.1:{port}")
    address = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(address), timeout=30)
        yield address
    finally:
        for process in (web, daemon):
            process.terminate()
        for process in (web, daemon):
            _out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err


def _answers(address: str) -> bool:
    try:
        return httpx.get(f"{address}/api/summary", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _bar(page: Page) -> float:
    return float(page.eval_on_selector("#tasks progress", "bar => bar.value"))


# Resolves once the page's fonts are in and a frame with them was painted.
PAINTED = """() => document.fonts.ready.then(() => new Promise(
    painted => requestAnimationFrame(() => requestAnimationFrame(painted))))"""
DESKTOP = ViewportSize(width=1440, height=900)
PHONE = ViewportSize(width=390, height=844)


def test_the_page_in_a_real_browser(site: str, root: Path, tmp_path: Path) -> None:
    errors: list[str] = []
    elsewhere: list[str] = []  # requests to another host: none (no CDN, no font service)
    shots = tmp_path / "screenshots"

    def keep_errors(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def keep_elsewhere(request: Request) -> None:
        if not request.url.startswith(f"{site}/"):
            elsewhere.append(request.url)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"]
        )
        pages = {"": browser.new_page(viewport=DESKTOP),
                 "-phone": browser.new_page(viewport=PHONE),
                 "-dark": browser.new_page(viewport=DESKTOP, color_scheme="dark")}  # fmt: skip
        for each in pages.values():
            each.on("console", keep_errors)
            each.on("pageerror", lambda error: errors.append(str(error)))
            each.on("request", keep_elsewhere)
        page, phone, dark = pages.values()

        def shoot(name: str, path: str, ready: str = "body") -> None:
            """`web-<name>.png` from the desktop page (already there), and the same address
            on a phone and in dark mode; nothing wider than the phone."""
            page.screenshot(path=shots / f"web-{name}.png", full_page=True)
            for suffix, other in (("-phone", phone), ("-dark", dark)):
                other.goto(f"{site}{path}")
                other.wait_for_selector(ready)
                other.evaluate(PAINTED)
                other.screenshot(path=shots / f"web-{name}{suffix}.png", full_page=True)
            width = phone.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name}: nothing wider than a phone"

        page.goto(f"{site}/")
        page.wait_for_selector("#tasks progress", timeout=60_000)
        first = _bar(page)
        page.wait_for_function(
            f"() => [...document.querySelectorAll('#tasks progress')].some(b => b.value > {first})",
            timeout=30_000,
        )
        shoot("now", "/", "#tasks progress")
        background = dark.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 18, 23)", "dark when the system asks for it"
        without = browser.new_page(viewport=DESKTOP, java_script_enabled=False)
        without.goto(f"{site}/")
        assert without.query_selector("#tasks progress") is not None, "drawn by the server"
        assert "Nothing runs." not in without.inner_text("#tasks")
        without.close()

        wait_until(lambda: any(f["state"] == "failed" for f in status_json(root)), timeout=60)
        page.goto(f"{site}/queue")
        shoot("queue", "/queue")
        with page.expect_navigation() as retried:
            page.click("text=Retry")
        answer = retried.value
        assert answer is not None and answer.ok and answer.url == f"{site}/queue"
        [broken] = [f for f in status_json(root) if f["rel_path"] == "broken.mp4"]
        assert broken["state"] in ("pending", "running", "failed")
        log = root / "log" / "videoarchiver.log"
        wait_until(lambda: log.read_text().count("broken.mp4: failed") >= 2, timeout=60)
        page.goto(f"{site}/files/{broken['id']}")
        shoot("file-failed", f"/files/{broken['id']}", "text=Retry")

        wait_until(lambda: any(f["state"] == "done" for f in status_json(root)), timeout=180)
        page.goto(f"{site}/gallery")
        thumbnail = page.wait_for_selector(".tile img")
        assert thumbnail is not None
        page.wait_for_function("() => document.querySelector('.tile img').complete")
        assert page.eval_on_selector(".tile img", "img => img.naturalWidth") > 0
        shoot("gallery", "/gallery", ".tile img")

        thumbnail.click()
        page.wait_for_selector("video")
        page.eval_on_selector("video", "video => { video.muted = true; return video.play(); }")
        page.wait_for_function("() => document.querySelector('video').currentTime > 0.5",
                               timeout=30_000)  # fmt: skip
        shoot("file", page.url.removeprefix(site), "video")
        with page.expect_download() as downloaded:
            page.click("a[href$='/download/archive']")
        assert downloaded.value.suggested_filename == "garden party.mkv"

        page.goto(f"{site}/statistics")
        page.wait_for_selector("svg.hbars rect")
        shoot("statistics", "/statistics", "svg.hbars")
        browser.close()
    assert errors == [], "no page logs an error"
    assert elsewhere == [], "no request to another host"
    if SCREENSHOTS:
        shutil.copytree(shots, SCREENSHOTS, dirs_exist_ok=True)
