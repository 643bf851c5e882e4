"""systemd's status line: what runs here and how far, sent whenever it changes."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest

from videoarchiver import service
from videoarchiver.planning.progress import ProgressUpdate
from videoarchiver.progress import ProgressHub, TaskInfo
from videoarchiver.service import follow_status, status_text
from videoarchiver.state import Summary


def test_the_status_names_what_runs_and_how_far() -> None:
    hub = ProgressHub(clock=lambda: 0.0)
    task = hub.start(TaskInfo(1, "Été.mp4", "archive", "s0 archive video", total=10.0))
    task.update(ProgressUpdate(out_seconds=4.2, total_size=1, frame=1, speed=1.0, ended=False))
    summary = Summary({"done": 3, "failed": 1, "pending": 5, "running": 1}, 0, 0)
    assert status_text(hub.tasks(), 1, summary, 0.0) == (
        "1 running here (Été.mp4 s0 archive video 42%), 3 done, 1 failed, 5 pending"
    )
    for number in range(4):
        hub.start(TaskInfo(2, f"{number}.mp4", "montage", "s0 montage"))
    assert status_text(hub.tasks(), 2, summary, 30.0).endswith(
        "1.mp4 s0 montage and 2 more), 3 done, 1 failed, 5 pending; disk full, waiting 30 s"
    )


@pytest.mark.anyio
async def test_the_status_is_sent_whenever_it_changes_and_only_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = tmp_path / "notify.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(address))
    monkeypatch.setattr(service, "STATUS_EVERY", 0.001)
    said = ["queued", "queued", "running a.mp4 12%", "running a.mp4 12%", "done"]
    asked = anyio.Event()

    def describe() -> str:
        if len(said) == 1:
            asked.set()
        return said.pop(0) if len(said) > 1 else said[0]

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(address))
        listener.setblocking(False)
        async with anyio.create_task_group() as group:
            group.start_soon(follow_status, describe)
            await asked.wait()
            group.cancel_scope.cancel()
        heard = []
        while True:
            try:
                heard.append(listener.recv(4096).decode())
            except BlockingIOError:
                break
    assert heard == ["STATUS=queued", "STATUS=running a.mp4 12%", "STATUS=done"]
