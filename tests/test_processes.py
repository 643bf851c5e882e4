from __future__ import annotations

import os
import random
import signal
import threading

import anyio
import pytest

from videoarchiver import processes
from videoarchiver.errors import ProcessError, ToolError
from videoarchiver.planning.archive import PROPEDIT_DONE
from videoarchiver.planning.messages import decisive_line, one_line
from videoarchiver.processes import LineBuffer, each_line, read_output, run_process

pytestmark = pytest.mark.anyio


async def test_stdout_lines_and_stderr_tail() -> None:
    lines: list[str] = []
    await each_line(
        run_process, ["sh", "-c", "printf 'a\\nb\\nc'; echo oops >&2"], lines.extend, "sh"
    )
    assert lines == ["a", "b", "c"]
    with pytest.raises(ProcessError, match=r"^sh failed: early$") as failed:
        await read_output(
            run_process, ["sh", "-c", "echo early >&2; echo late words >&2; exit 3"], "sh"
        )
    assert failed.value.detail == "sh failed: early (exit 3: early | late words)"


async def test_a_status_that_means_done_with_warnings() -> None:
    """mkvpropedit exits 1 when it only warned: its edit is made (PROPEDIT_DONE)."""
    warned = ["sh", "-c", "echo 'Warning: odd track'; exit 1"]
    assert await read_output(run_process, warned, "edit", PROPEDIT_DONE) == b"Warning: odd track\n"
    with pytest.raises(ProcessError, match="edit failed"):
        await read_output(run_process, warned, "edit")
    failing = ["sh", "-c", "echo 'Error: no such file'; exit 2"]  # said on stdout
    with pytest.raises(ProcessError, match="edit failed: Error: no such file"):
        await read_output(run_process, failing, "edit", PROPEDIT_DONE)
    with pytest.raises(ProcessError, match="No space left on device"):
        full = ["sh", "-c", "echo 'No space left on device' >&2; exit 1"]
        await read_output(run_process, full, "edit", PROPEDIT_DONE)


async def test_a_program_gone_from_where_it_was_found_is_looked_for_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(processes._FOUND, "setpriv", "/nonexistent/setpriv")
    monkeypatch.setitem(processes._FOUND, "sh", "/nonexistent/sh")
    assert await read_output(run_process, ["sh", "-c", "echo here"], "sh") == b"here\n"
    monkeypatch.setitem(processes._FOUND, "videoarchiver-gone", "/nonexistent/gone")
    with pytest.raises(ToolError, match="videoarchiver-gone is not installed"):
        await read_output(run_process, ["videoarchiver-gone"], "gone")


@pytest.mark.parametrize("seed", range(20))
def test_lines_split_across_chunks_as_whole(seed: int) -> None:
    """Cut anywhere (inside a UTF-8 character too), the chunks give the lines of the whole."""
    rng = random.Random(seed)
    pieces = [b"a", b"|0.04", b"\n", b"\n", "é".encode(), "漢".encode(), b"\xff", b"\xe6\xbc"]
    data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 300)))
    buffer, lines, at = LineBuffer(), [], 0
    while at < len(data):
        step = rng.randrange(1, 12)
        lines += buffer.feed(data[at : at + step])
        at += step
    lines += buffer.flush()
    *whole, last = data.split(b"\n")
    expected = [line.decode("utf-8", "replace") for line in (*whole, *([last] if last else []))]
    assert lines == expected


async def test_handler_can_stop_a_running_process() -> None:
    seen: list[bytes] = []

    def stop_at_first_chunk(chunk: bytes) -> bool:
        seen.append(chunk)
        return True

    # It would take its time to end on SIGTERM (as ffmpeg flushes its encoder): it is killed.
    script = "trap 'sleep 30' TERM; echo started; while :; do sleep 0.05; done"
    with anyio.fail_after(10):
        result = await run_process(["sh", "-c", script], stop_at_first_chunk)
    assert result.stopped and seen
    assert result.returncode == -signal.SIGKILL
    result.check("sh")  # stopped on purpose: not an error


def _pidfds() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


@pytest.mark.skipif(not _pidfds(), reason="no pidfd here (Linux before 5.3)")
async def test_children_are_waited_for_without_a_thread_each() -> None:
    before = threading.active_count()
    during: list[int] = []

    async def count_threads() -> None:
        await anyio.sleep(0.1)
        during.append(threading.active_count())

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(read_output, run_process, ["sleep", "0.3"], "sleep")
        group.start_soon(count_threads)
    assert during == [before], "three children running, no thread more"


async def test_missing_program_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="not installed"):
        await read_output(run_process, ["no-such-program-videoarchiver"], "x")


def test_the_decisive_line_of_ffmpeg_is_the_reason() -> None:
    tail = [
        "[matroska @ 0x5596d9e2f700] No wav codec tag found for codec gsm",
        "Could not write header for output file #0 (incorrect codec parameters ?): Invalid",
        "Error initializing output stream 0:0 --",
        "Conversion failed!",
    ]
    assert decisive_line(tail) == "No wav codec tag found for codec gsm"
    assert decisive_line(["Conversion failed!"]) == "Conversion failed!"
    damaged = [  # a Matroska header written twice: ffprobe warns of much, then gives up
        "[matroska,webm @ 0x55d5] Element at 0xd5 ending at 0x359a exceeds containing master",
        "[matroska,webm @ 0x55d5] Duplicate element",
        "Truncating packet of size 131 to 101",
        "file:/srv/raw/it's: here.mkv: End of file",
    ]
    assert decisive_line(damaged) == "End of file (Duplicate element)"
    cut = ["[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5610] moov atom not found",
           "file:/srv/raw/cut.mp4: Invalid data found when processing input"]  # fmt: skip
    assert decisive_line(cut) == "Invalid data found when processing input (moov atom not found)"
    assert decisive_line(["file:/a.mkv: Input/output error"]) == "Input/output error"
    assert decisive_line([]) == "no message"
    assert one_line("a\nb " + "x" * 300).startswith("a b x") and len(one_line("x" * 300)) == 200


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may ask for real-time priority")
async def test_a_child_of_root_cannot_take_real_time_priority() -> None:
    """SVT-AV1 asks for SCHED_FIFO 99 when run as root: it could starve the machine."""
    ask = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))"
    with pytest.raises(ProcessError) as refused:
        await read_output(run_process, ["python3", "-c", ask], "python3")
    assert "PermissionError: [Errno 1] Operation not permitted" in str(refused.value.detail)
