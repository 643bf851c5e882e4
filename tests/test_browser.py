"""The web page in a real browser (Debian's Chromium, driven by Playwright) beside a real
daemon on a real root: live bars move, Stop gives a running file back, Move to front puts it
first, Retry re-runs a failed file, montages load, previews play, the file's history shows
it all, and no page logs an error. A screenshot of each page is kept with the test's files
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
from playwright.sync_api import (
    ConsoleMessage,
    Page,
    Request,
    Response,
    ViewportSize,
    sync_playwright,
)

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
    config = root / "videoarchiver.toml"  # slow enough for a bar to be seen moving; a
    # heartbeat every 2 s, which carries a stop to the worker
    config.write_text("lease_seconds = 8\n" + config.read_text().replace('"ultrafast"', '"slow"'))
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


def _state(root: Path, name: str) -> str:
    [file] = [f for f in status_json(root) if f["rel_path"] == name]
    state: str = file["state"]
    return state


def _landed(answer: Response | None) -> str:
    """Where a form's POST came back to (its redirect's page, which loaded)."""
    assert answer is not None and answer.ok
    return answer.url


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

        def watched(each: Page) -> Page:
            each.on("console", keep_errors)
            each.on("pageerror", lambda error: errors.append(str(error)))
            each.on("request", keep_elsewhere)
            return each

        page, phone, dark = map(watched, pages.values())

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

        logs = watched(browser.new_page(viewport=DESKTOP))  # open from the start: it follows
        logs.goto(f"{site}/logs")
        logs.wait_for_selector("#log")
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

        wait_until(lambda: _state(root, "broken.mp4") == "failed", timeout=60)
        # Paused (nothing new starts), the running file stopped from its card on the Now
        # page goes back to the queue and waits there.
        with page.expect_navigation():
            page.click("button:has-text('Pause')")
        with page.expect_navigation() as stopped:
            page.click("#tasks button:has-text('Stop')")
        assert _landed(stopped.value) == f"{site}/"
        wait_until(lambda: _state(root, "garden party.mp4") == "pending", timeout=60)
        page.goto(f"{site}/queue")
        with page.expect_navigation() as fronted:
            page.click("button:has-text('Move to front')")
        assert _landed(fronted.value) == f"{site}/queue"
        shoot("queue", "/queue")
        with page.expect_navigation() as retried:
            page.click("text=Retry")
        assert _landed(retried.value) == f"{site}/queue"
        assert _state(root, "broken.mp4") == "pending", "paused: it waits"
        with page.expect_navigation():
            page.click("button:has-text('Resume')")
        log = root / "log" / "videoarchiver.log"
        wait_until(lambda: log.read_text().count("broken.mp4: failed") >= 2, timeout=60)
        [broken] = [f for f in status_json(root) if f["rel_path"] == "broken.mp4"]
        page.goto(f"{site}/files/{broken['id']}")
        shoot("file-failed", f"/files/{broken['id']}", "text=Retry")

        wait_until(lambda: any(f["state"] == "done" for f in status_json(root)), timeout=180)
        page.goto(f"{site}/gallery")
        thumbnail = page.wait_for_selector(".tile img")
        assert thumbnail is not None
        page.wait_for_function("() => document.querySelector('.tile img').complete")
        assert page.eval_on_selector(".tile img", "img => img.naturalWidth") > 0
        shoot("gallery", "/gallery", ".tile img")

        page.select_option("select[name=sort]", "longest")
        with page.expect_navigation():
            page.click("text=Show")
        assert "sort=longest" in page.url and page.query_selector(".tile img") is not None
        card = page.wait_for_selector(".thumb[data-sheet]")
        assert card is not None and card.get_attribute("data-n") == "2", "24 s: a 2×2 sheet"
        box = card.bounding_box()
        assert box is not None
        shown = []
        for across in (0.1, 0.9):  # the pointer across the card: the first tile, the last
            page.mouse.move(box["x"] + box["width"] * across, box["y"] + box["height"] / 2)
            page.wait_for_selector(".scrub:not([hidden]) .frame")
            shown.append(page.eval_on_selector(
                ".scrub .frame", "f => [f.dataset.tile, f.style.backgroundPosition]"))  # fmt: skip
        assert shown == [["0", "0% 0%"], ["3", "100% 100%"]], "the tile of the pointer's moment"
        assert page.inner_text(".scrub .when") == "0:18", "the last tile: 3 × 24 s / 4"
        page.screenshot(path=shots / "web-gallery-scrub.png")  # the pointer on the card
        page.mouse.move(0, 0)
        page.wait_for_selector(".scrub", state="hidden")

        thumbnail = page.wait_for_selector(".tile img")
        assert thumbnail is not None
        thumbnail.click()
        page.wait_for_selector("video")
        page.eval_on_selector("video", "video => { video.muted = true; return video.play(); }")
        page.wait_for_function("() => document.querySelector('video').currentTime > 0.5",
                               timeout=30_000)  # fmt: skip
        history = page.inner_text(".timeline")
        steps = ["found", "claimed", "stop asked", "released", "moved to front", "claimed",
                 "published", "done"]  # fmt: skip
        at = 0
        for step in steps:  # in this order, the first step first
            at = history.index(step, at) + len(step)
        shoot("file", page.url.removeprefix(site), "video")
        montage = page.wait_for_selector("img.montage[data-times]")
        assert montage is not None
        page.eval_on_selector("video", "video => video.pause()")
        montage.click(position={"x": 5, "y": 5})  # the first tile: the start
        page.wait_for_function("() => document.querySelector('video').currentTime < 6")
        size = montage.bounding_box()
        assert size is not None
        montage.click(position={"x": size["width"] * 0.75, "y": size["height"] * 0.75})
        page.wait_for_function("() => document.querySelector('video').currentTime >= 18",
                               timeout=30_000)  # fmt: skip
        with page.expect_download() as downloaded:
            page.click("a[href$='/download/archive']")
        assert downloaded.value.suggested_filename == "garden party.mkv"

        page.goto(f"{site}/statistics")
        page.wait_for_selector("svg.hbars rect")
        assert "mp4" in (page.text_content("svg[aria-label*='container']") or "")
        assert "not a readable media file" in (page.text_content("svg[aria-label*='reason']") or "")
        shoot("statistics", "/statistics", "svg.hbars")

        # The log page that was open from the start followed the log: the file done is there.
        logs.wait_for_function(
            "() => document.querySelector('#log').innerText.includes('garden party.mp4: archive')"
        )
        assert logs.url == f"{site}/logs", "without a reload"
        logs.close()
        page.goto(f"{site}/logs")
        page.select_option("select[name=level]", "ERROR")
        page.fill("input[name=file]", "broken")
        with page.expect_navigation():
            page.click("text=Filter")
        lines = page.inner_text("#log")
        assert "broken.mp4: failed" in lines and "garden party" not in lines
        page.goto(f"{site}/logs")
        page.wait_for_selector(".log li")
        shoot("logs", "/logs", ".log li")

        page.goto(f"{site}/settings")
        settings = page.inner_text("main")
        assert f"file {root / 'videoarchiver.toml'}" in settings and "slow" in settings
        shoot("settings", "/settings", "table")
        browser.close()
    assert errors == [], "no page logs an error"
    assert elsewhere == [], "no request to another host"
    if SCREENSHOTS:
        shutil.copytree(shots, SCREENSHOTS, dirs_exist_ok=True)
