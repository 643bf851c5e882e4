"""The web page at scale: what its gallery weighs, and how soon each page answers, with
100,000 files recorded on SQLite and on PostgreSQL.

Run with `make bench-pages` (a few minutes on 2 cores). It replaces the section "The web page
at 100,000 files" of `bench/results.md` (or `--out`; `make bench` keeps it). What it measures,
on states `bench.py`'s `fill_state` makes (done files with their three outputs), through a
real `videoarchiver web` on the loopback:

- the gallery's first page without its thumbnails: its HTML and every stylesheet and script
  it links, in bytes as sent (the page compresses nothing);
- time to first byte (the request sent → the first byte of the answer) of the gallery, a
  file's page and the statistics: the first load after start, and the median of five more.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from bench import PROGRAM, fill_state, with_state
from sections import PAGES, replace_section

from pgcluster import Cluster

COUNT = 100_000
PAGES_TIMED = {"gallery": "/gallery", "file": f"/files/{COUNT // 2}", "statistics": "/statistics"}
WEIGHT_TARGET = 150_000  # bytes: the gallery's first page without thumbnails
TTFB_TARGET = 0.1  # seconds: the gallery's first page
LINKED = re.compile(r'<(?:link[^>]+href|script[^>]+src)="(/static/[^"]+)"')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _first_byte(client: httpx.Client, path: str) -> float:
    """Seconds from sending a GET to the first byte of its answer (then read to its end)."""
    started = time.monotonic()
    with client.stream("GET", path) as answer:
        chunks = answer.iter_raw(1)
        next(chunks)
        elapsed = time.monotonic() - started
        answer.raise_for_status()
        for _rest in chunks:
            pass
    return elapsed


def measure(root: Path, state: str | None) -> dict[str, float]:
    """The gallery's weight and each page's first and usual time to first byte, from a
    `videoarchiver web` started on `root`."""
    address = f"127.0.0.1:{_free_port()}"
    web = subprocess.Popen(
        [PROGRAM, "web", "--listen", address, "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=with_state(state),
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://{address}", timeout=120) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/api/summary").raise_for_status()
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the page did not start"
                    time.sleep(0.1)
            found: dict[str, float] = {}
            for name, path in PAGES_TIMED.items():
                found[f"{name} first"] = _first_byte(client, path)
                found[name] = statistics.median(_first_byte(client, path) for _ in range(5))
            html = client.get("/gallery").content
            linked = sorted(set(LINKED.findall(html.decode())))
            found["weight html"] = len(html)
            found["weight linked"] = sum(len(client.get(link).content) for link in linked)
            return found
    finally:
        web.terminate()
        web.wait(timeout=60)


def report(results: dict[str, dict[str, float]]) -> str:
    lines = [
        PAGES, "",
        f"`bench/pages.py` on {os.cpu_count()} cores, {COUNT:,} done files recorded, through a"
        " real `videoarchiver web` on the loopback. Time to first byte: the first load after"
        " start / the median of five more.", "",
        "| state | gallery's first page | a file's page | statistics | gallery's weight"
        " (HTML + stylesheet and scripts, no thumbnails) |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for label, found in results.items():
        cells = [f"{found[f'{name} first'] * 1000:.0f} / {found[name] * 1000:.0f} ms"
                 for name in PAGES_TIMED]  # fmt: skip
        weight = found["weight html"] + found["weight linked"]
        cells.append(f"{weight / 1000:.1f} kB ({found['weight html'] / 1000:.1f} kB HTML)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for label, found in results.items():
        weight = found["weight html"] + found["weight linked"]
        lines.append(
            f"On {label}: the gallery's first page {found['gallery'] * 1000:.0f} ms to its"
            f" first byte (target < {TTFB_TARGET * 1000:.0f} ms:"
            f" {'met' if found['gallery'] < TTFB_TARGET else '**missed**'}), {weight / 1000:.1f}"
            f" kB without thumbnails (target < {WEIGHT_TARGET / 1000:.0f} kB:"
            f" {'met' if weight < WEIGHT_TARGET else '**missed**'})."
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.md")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="videoarchiver-pages-") as folder:
        tmp = Path(folder)
        print("SQLite …", flush=True)
        fill_state(tmp / "sqlite", COUNT, raw_files=False)
        results["SQLite"] = measure(tmp / "sqlite", None)
        print("PostgreSQL …", flush=True)
        cluster = Cluster()  # the tests' throwaway server
        try:
            url = cluster.database()
            fill_state(tmp / "postgresql", COUNT, raw_files=False, state=url)
            results["PostgreSQL"] = measure(tmp / "postgresql", url)
        finally:
            cluster.remove()
    text = report(results)
    replace_section(args.out, PAGES, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
