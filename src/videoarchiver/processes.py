"""The one place that starts ffmpeg and ffprobe.

Like anyio's `run_process`, stdout and stderr are read concurrently while the process runs
(a full stderr pipe would otherwise stall ffmpeg), but stdout is handed to the caller chunk
by chunk, so the `-progress` stream and hour-long packet listings never pile up in memory.
Only a bounded tail of stderr is kept, for the error message.

Children are started under `setpriv --pdeathsig KILL` where it exists, so no ffmpeg outlives
the daemon even when the daemon is SIGKILLed (and, started by root, without the right to
real-time priority); on cancellation they get SIGTERM (ffmpeg then closes its output cleanly)
and SIGKILL if they do not stop in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import anyio
from anyio.abc import Process

from videoarchiver.errors import ProcessError, ToolError
from videoarchiver.planning.messages import decisive_line
from videoarchiver.together import together

TRACE_ENV = "VIDEOARCHIVER_TRACE"  # a file to append one JSON line per process to (bench/)
STDERR_LINES = 30
STDERR_LINE_CHARS = 400
STDOUT_TAIL = 4096  # bytes of stdout read for the reason of a failure that stderr gives none
TERMINATE_GRACE_SECONDS = 20.0
STALL_GRACE_SECONDS = 5.0  # a stalled process rarely honours SIGTERM
# How often a process's CPU time is read: a twentieth of the stall timeout, within bounds
# (every 5 s for the default 5 minutes: reading /proc costs the daemon more than it tells).
STALL_CHECK_SECONDS = (1.0, 5.0)
# CPU time that counts as work, since the last movement: a decoder busy on a long stream
# moves even when it prints nothing, however starved it is; a process blocked for good
# spends none (two clock ticks allow for the odd wake-up).
WORKING_CPU_TICKS = 2
DEFAULT_STALL_SECONDS = 300.0

# Returns True to have the process killed at once, its output not wanted (the ratio rule).
StdoutHandler = Callable[[bytes], bool]


class Watchdog:
    """Notices a process that stopped working: nothing moved for `seconds`. What moves is
    what the caller reports (`moved`: progress, output lines) and CPU time the process
    spends (checked by `run_process`)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last = clock()
        self._ticks_then = 0  # CPU ticks at the last movement
        self._ticks = 0

    def moved(self) -> None:
        self._last = self._clock()
        self._ticks_then = self._ticks

    def spent(self, ticks: int) -> None:
        """The process's CPU time so far, in clock ticks: enough since the last movement
        is work."""
        self._ticks = ticks
        if ticks - self._ticks_then >= WORKING_CPU_TICKS:
            self.moved()

    @property
    def check_every(self) -> float:
        low, high = STALL_CHECK_SECONDS
        return min(high, max(low, self.seconds / 20))

    @property
    def stalled(self) -> bool:
        return self._clock() - self._last > self.seconds


def _cpu_ticks(pid: int) -> int:
    """User plus system CPU time of a live process in clock ticks (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stderr_tail: tuple[str, ...]  # its last lines
    stopped: bool
    stalled_after: float | None = None  # seconds without progress when the watchdog stopped it

    def check(self, what: str, done: Container[int] = (0,)) -> None:
        """Raise ProcessError with ffmpeg's own words when the process failed: it exited
        with a status not `done`, or (ffmpeg can exit 0 after its output hit a full disk)
        it said the disk was full."""
        if self.stalled_after is not None:
            raise ProcessError(f"{what} stalled: no progress for {self.stalled_after:g} s")
        full = " | ".join(self.stderr_tail) or "no message"
        disk_full = "No space left on device" in full
        if (self.returncode not in done and not self.stopped) or disk_full:
            why = "No space left on device" if disk_full else decisive_line(self.stderr_tail)
            message = f"{what} failed: {why}"
            raise ProcessError(message, f"{message} (exit {self.returncode}: {full})")


# What runs every process of a pipeline step: `run_process`, or `testing.FakeRunner` in tests.
ProcessRunner = Callable[
    [Sequence[str], StdoutHandler, Mapping[str, str] | None, Watchdog | None],
    Awaitable[ProcessResult],
]


# The Debian package of each program run (`make run` installs them).
PACKAGES = {"mkvpropedit": "mkvtoolnix"}


_FOUND: dict[str, str] = {}  # where each program was found on PATH


def _which(program: str) -> str | None:
    """Where `program` is: where it was found before while it is still there (walking PATH
    for each of thousands of commands cost 0.4 ms each)."""
    found = _FOUND.get(program)
    if found is None or not os.access(found, os.X_OK):
        found = shutil.which(program)
        if found is None:
            _FOUND.pop(program, None)
            return None
        _FOUND[program] = found
    return found


# Run as root, SVT-AV1 gives its threads real-time priority (SCHED_FIFO 99), which can starve
# the whole machine: children started by root do without CAP_SYS_NICE.
_UNPRIVILEGED = ["--bounding-set", "-sys_nice"] if os.geteuid() == 0 else []


def _command(args: Sequence[str]) -> list[str]:
    program = _which(args[0])
    if program is None:
        package = PACKAGES.get(args[0], "ffmpeg")
        raise ToolError(f"{args[0]} is not installed (run `make run`, or install {package})")
    setpriv = _which("setpriv")
    prefix = [setpriv, "--pdeathsig", "KILL", *_UNPRIVILEGED, "--"] if setpriv else []
    return [*prefix, program, *args[1:]]


class LineBuffer:
    """Splits a byte stream into lines across chunk boundaries."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        whole, newline, self._pending = (self._pending + data).rpartition(b"\n")
        return whole.decode("utf-8", "replace").split("\n") if newline else []

    def flush(self) -> list[str]:
        rest, self._pending = self._pending, b""
        return [rest.decode("utf-8", "replace")] if rest else []


async def _stop(process: Process, grace: float = TERMINATE_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL after a grace period; shielded so cancellation cannot skip it."""
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(grace):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def _trace(
    args: Sequence[str], env: Mapping[str, str] | None, started: float, stopped: bool
) -> None:
    """With $VIDEOARCHIVER_TRACE set, record each command so that `make bench` can replay
    exactly what the daemon ran."""
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    extra = {key: value for key, value in (env or {}).items() if os.environ.get(key) != value}
    wall = time.monotonic() - started
    line = {"args": list(args), "env": extra, "wall": wall, "stopped": stopped, "at": started}
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


if sys.version_info < (3, 12):

    class _PidfdWatcher(asyncio.PidfdChildWatcher):
        """Python 3.12's child watcher, for 3.11: each child's pidfd is read by the event
        loop that started it, whichever loop and thread that is (3.11's own is bound to one
        loop, and its default starts a thread per child: about 1 ms of the daemon's CPU)."""

        def is_active(self) -> bool:
            return True

        def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
            pass

        def close(self) -> None:
            pass

        def add_child_handler(
            self, pid: int, callback: Callable[..., object], *args: object
        ) -> None:
            loop = asyncio.get_running_loop()
            pidfd = os.pidfd_open(pid)
            loop.add_reader(pidfd, self._reap, loop, pid, pidfd, callback, args)

        def _reap(
            self,
            loop: asyncio.AbstractEventLoop,
            pid: int,
            pidfd: int,
            callback: Callable[..., object],
            args: tuple[object, ...],
        ) -> None:
            loop.remove_reader(pidfd)
            try:
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # reaped elsewhere
                code = 255
            os.close(pidfd)
            callback(pid, code, *args)

        def remove_child_handler(self, pid: int) -> bool:
            return True  # asyncio never asks


@functools.cache
def _wait_without_threads() -> None:
    """Wait for children with pidfds, once a process, where they exist (Linux 5.3 on;
    Python 3.12 does so itself)."""
    if sys.version_info >= (3, 12):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    asyncio.get_event_loop_policy().set_child_watcher(_PidfdWatcher())


async def run_process(
    args: Sequence[str],
    on_stdout: StdoutHandler,
    env: Mapping[str, str] | None = None,
    watchdog: Watchdog | None = None,
) -> ProcessResult:
    """Run one command to its end, or until `on_stdout` asks it to stop (its output is not
    wanted: it is SIGKILLed at once, where SIGTERM would have ffmpeg encode the frames its
    encoder holds and write a trailer first), or until the watchdog finds it stalled (it is
    then stopped, SIGKILLed if need be)."""
    command = _command(args)
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=STDERR_LINES)
    stopped = False
    stalled_after: float | None = None
    watchdog = watchdog or Watchdog(DEFAULT_STALL_SECONDS)
    _wait_without_threads()
    process = await anyio.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout, process.stderr

    async def read_stderr() -> None:
        lines = LineBuffer()
        async for chunk in stderr:
            tail.extend(line.strip()[:STDERR_LINE_CHARS] for line in lines.feed(chunk))
        tail.extend(line.strip()[:STDERR_LINE_CHARS] for line in lines.flush())

    async def watch() -> None:
        nonlocal stalled_after
        while not watchdog.stalled:
            await anyio.sleep(watchdog.check_every)
            watchdog.spent(_cpu_ticks(process.pid))
        stalled_after = watchdog.seconds
        await _stop(process, STALL_GRACE_SECONDS)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read_stderr)
            async with anyio.create_task_group() as watching:
                watching.start_soon(watch)
                async for chunk in stdout:
                    if not stopped and on_stdout(chunk):
                        stopped = True
                        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                            process.kill()
                await process.wait()
                watching.cancel_scope.cancel()
    except BaseException:
        await _stop(process)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await process.aclose()
    assert process.returncode is not None
    _trace(args, env, started, stopped)
    lines = tuple(line for line in tail if line)
    return ProcessResult(process.returncode, lines, stopped, stalled_after)


async def read_output(
    runner: ProcessRunner, args: Sequence[str], what: str, done: Container[int] = (0,)
) -> bytes:
    """Run a command that prints a small document (ffprobe JSON) with `runner` (the
    runtime's, in the pipeline) and return its stdout; `done`: the exit statuses that mean
    it did its work."""
    collected = bytearray()
    watchdog = Watchdog(DEFAULT_STALL_SECONDS)

    def keep(chunk: bytes) -> bool:
        collected.extend(chunk)
        watchdog.moved()
        return False

    result = await runner(args, keep, None, watchdog)
    if result.returncode not in done and not result.stderr_tail:
        # It said why on stdout (mkvpropedit's `Error:` lines).
        lines = collected[-STDOUT_TAIL:].decode("utf-8", "replace").splitlines()
        result = replace(result, stderr_tail=tuple(line for line in lines if line.strip()))
    result.check(what, done)
    return bytes(collected)


async def read_outputs(
    runner: ProcessRunner, commands: Sequence[tuple[Sequence[str], str]]
) -> list[bytes]:
    """`read_output` of several commands at once; when any fails, the first one's error
    in their order is raised, as if they had run one after the other."""
    return await together([partial(read_output, runner, args, what) for args, what in commands])


async def each_line(
    runner: ProcessRunner,
    args: Sequence[str],
    on_lines: Callable[[list[str]], None],
    what: str,
) -> tuple[str, ...]:
    """Run a command with `runner` and hand its stdout to `on_lines` a run of whole lines
    at a time (as they come), in constant memory; returns the last lines of its stderr
    (what it warned of)."""
    lines = LineBuffer()
    watchdog = Watchdog(DEFAULT_STALL_SECONDS)

    def split(chunk: bytes) -> bool:
        watchdog.moved()
        on_lines(lines.feed(chunk))
        return False

    result = await runner(args, split, None, watchdog)
    result.check(what)
    on_lines(lines.flush())
    return result.stderr_tail
