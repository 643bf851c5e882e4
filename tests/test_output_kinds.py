"""The registry of output kinds: a fourth kind, registered by this test alone, is made,
published, verified, listed by `status` and shown by the web page, with no other file of
videoarchiver changed; and where each kind's files go."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from rich.console import Console

from media import ffmpeg, file_sha256
from videoarchiver.cli import main
from videoarchiver.identity import whole_sha256
from videoarchiver.layout import Layout
from videoarchiver.output_kinds import OutputKind, kinds, registered
from videoarchiver.outputs import publish_output
from videoarchiver.runtime import Runtime, Source
from videoarchiver.state import open_store
from videoarchiver.tools import readable_demuxers
from videoarchiver.web.app import create_app


async def make_sums(rt: Runtime, source: Source) -> None:
    """A test-only output: the raw file's SHA-256 in a `sha256sum` line."""
    work = anyio.Path(source.work / "sums")
    await work.mkdir(exist_ok=True)
    finished = work / "sums.sha256"
    await finished.write_text(f"{await whole_sha256(source.path)}  {source.name}\n")
    destination = rt.layout.output_file("sums", source.row.stem)
    await publish_output(rt, source, "sums", Path(finished), destination)


SUMS = OutputKind(
    "sums", "checksum file", "checksums", ".sha256", False, make_sums, lambda _: set()
)


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """The daemon runs in this process: its log handlers go with the test."""
    yield
    logger = logging.getLogger("videoarchiver")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _cli(
    root: Path, capsys: pytest.CaptureFixture[str], command: str, *args: str
) -> tuple[int, str]:
    """A command's exit code and what it printed (through its console, or plainly)."""
    console = Console(record=True, width=200, force_terminal=False)
    code = main([command, "--root", str(root), *args], console)
    return code, console.export_text() + capsys.readouterr().out


async def _file_page(root: Path) -> str:
    async with open_store(root) as store:
        [row] = await store.files()
        app = create_app(store, Layout(root), None, await readable_demuxers())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as web:
            page = await web.get(f"/files/{row.id}")
            download = await web.get(f"/files/{row.id}/download/sums")
    assert page.status_code == download.status_code == 200
    return page.text + "\n" + download.text


def test_a_fourth_output_kind_is_made_published_verified_and_listed(
    root: Path, quiet_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = root / "raw" / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=1", "-f", "lavfi", "-i", "sine=d=1",
           "-c:v", "libx264", "-c:a", "aac", raw)  # fmt: skip
    with registered(SUMS):
        assert main(["run", "--root", str(root), "--once"]) == 0
        capsys.readouterr()
        published = root / "checksums" / "clip.sha256"
        assert published.read_text() == f"{file_sha256(raw)}  clip.mp4\n"
        assert (root / "archive" / "clip.mkv").exists(), "the others made beside it"
        code, said = _cli(root, capsys, "verify")
        assert code == 0
        assert "1 checksum file" in said and "0 problems" in said, said
        code, listed = _cli(root, capsys, "status", "--json")
        [record] = json.loads(listed)
        assert record["outputs"]["sums"]["state"] == "done", record["outputs"]
        assert record["outputs"]["sums"]["path"] == "checksums/clip.sha256"
        code, table = _cli(root, capsys, "status")
        assert "sums" in table and "done" in table, table
        page = anyio.run(_file_page, root)
        assert "sums" in page and file_sha256(published)[:12] in page
        assert f"{file_sha256(raw)}  clip.mp4" in page, "downloaded under its own route"
        published.unlink()
        code, said = _cli(root, capsys, "verify")
        assert code != 0 and "missing sums" in said, said
    assert "sums" not in [kind.name for kind in kinds()], "gone with the block"


def test_each_kind_has_its_folder_and_a_kind_per_stream_one_file_per_stream() -> None:
    layout = Layout(Path("/r"))
    assert layout.output_file("archive", "sub/a") == Path("/r/archive/sub/a.mkv")
    assert layout.output_file("preview", "a") == Path("/r/preview/a.mkv")
    assert layout.stream_files("montage", "sub/a", [0]) == {0: Path("/r/screenshot/sub/a.jpg")}
    assert layout.stream_files("montage", "sub/a", [0, 2]) == {
        0: Path("/r/screenshot/sub/a/0.jpg"),
        2: Path("/r/screenshot/sub/a/2.jpg"),
    }
    assert layout.output_paths("a") == (
        Path("/r/archive/a.mkv"), Path("/r/preview/a.mkv"), Path("/r/screenshot/a.jpg"),
        Path("/r/screenshot/a"),
    )  # fmt: skip
    with pytest.raises(ValueError, match="registered already"), registered(kinds()[0]):
        pass
