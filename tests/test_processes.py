from __future__ import annotations

import pytest

from videoarchiver.errors import ProcessError, ToolError
from videoarchiver.processes import each_line, read_output, run_process

pytestmark = pytest.mark.anyio


async def test_stdout_lines_and_stderr_tail() -> None:
    lines: list[str] = []
    await each_line(["sh", "-c", "printf 'a\\nb\\nc'; echo oops >&2"], lines.append, "sh")
    assert lines == ["a", "b", "c"]
    with pytest.raises(ProcessError, match=r"sh failed \(exit 3\): early \| late words"):
        await read_output(["sh", "-c", "echo early >&2; echo late words >&2; exit 3"], "sh")


async def test_handler_can_stop_a_running_process() -> None:
    seen: list[bytes] = []

    def stop_at_first_chunk(chunk: bytes) -> bool:
        seen.append(chunk)
        return True

    script = "trap 'exit 0' TERM; echo started; while :; do sleep 0.05; done"
    result = await run_process(["sh", "-c", script], stop_at_first_chunk)
    assert result.stopped and seen
    result.check("sh")  # stopped on purpose: not an error


async def test_missing_program_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="not installed"):
        await read_output(["no-such-program-videoarchiver"], "x")
