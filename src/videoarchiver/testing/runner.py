"""A `ProcessRunner` that runs nothing: it answers each command by the first of its rules
that matches, and records every call.

httpcore's mock backend is the model: the logic around a process (what is asked, what its
output is read as, what a failure says) runs for real; only the process is replaced. A rule
matches on the program, on arguments the command holds, and on its target (the last
argument without `file:`: what an ffmpeg writes, what an ffprobe reads); it answers with the
stdout the caller reads (a `-progress` transcript, ffprobe's JSON, a packet listing), the
stderr lines a failure is explained by, an exit status, and the file an ffmpeg would write.
A command no rule answers fails the test at once, naming the command.
"""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from videoarchiver.processes import ProcessResult, StdoutHandler, Watchdog

CHUNK = 37  # bytes handed to the caller at a time: odd, so lines are split across chunks
STOPPED = 255  # the status of a process killed because its caller asked (SIGKILL)


class Unanswered(AssertionError):
    """A command no rule answers: a test that did not expect it."""


@dataclass(frozen=True)
class Call:
    """One command as it was run."""

    args: tuple[str, ...]
    env: Mapping[str, str] | None

    @property
    def program(self) -> str:
        return self.args[0]

    @property
    def target(self) -> str:
        """Its last argument without `file:`: the output of an ffmpeg, the input of an ffprobe."""
        return self.args[-1].removeprefix("file:")

    def __str__(self) -> str:
        return shlex.join(self.args)


@dataclass(frozen=True)
class Rule:
    """Which commands it answers (`program`; `has`: arguments each present; `target`: a
    glob of the target's path), and how."""

    program: str
    target: str = "*"
    has: tuple[str, ...] = ()
    stdout: bytes = b""
    stderr: tuple[str, ...] = ()
    returncode: int = 0
    creates: bytes | None = None  # written at the target, as the file ffmpeg writes

    def matches(self, call: Call) -> bool:
        return (
            call.program == self.program
            and all(arg in call.args for arg in self.has)
            and fnmatch.fnmatchcase(call.target, self.target)
        )

    def __str__(self) -> str:
        has = "".join(f" {arg}" for arg in self.has)
        return f"{self.program}{has} → {self.target}"


class FakeRunner:
    """Answers commands by `rules` (the first that matches); `calls`: every one, in order."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = list(rules)
        self.calls: list[Call] = []

    def add(self, *rules: Rule) -> None:
        """More rules, tried before those given earlier (a test's own before the defaults)."""
        self.rules[:0] = rules

    def of(self, program: str, target: str = "*") -> list[Call]:
        """The calls of `program` whose target matches the glob `target`, in order."""
        return [
            c for c in self.calls if c.program == program and fnmatch.fnmatchcase(c.target, target)
        ]

    async def __call__(
        self,
        args: Sequence[str],
        on_stdout: StdoutHandler,
        env: Mapping[str, str] | None,
        watchdog: Watchdog | None,
    ) -> ProcessResult:
        call = Call(tuple(args), env)
        self.calls.append(call)
        rule = next((rule for rule in self.rules if rule.matches(call)), None)
        if rule is None:
            known = "".join(f"\n  {rule}" for rule in self.rules) or " none"
            raise Unanswered(f"no rule answers {call}\nrules:{known}")
        if rule.creates is not None:
            await anyio.Path(call.target).write_bytes(rule.creates)
        for start in range(0, len(rule.stdout), CHUNK):
            await anyio.lowlevel.checkpoint()
            if on_stdout(rule.stdout[start : start + CHUNK]):
                return ProcessResult(STOPPED, rule.stderr, stopped=True)
        await anyio.lowlevel.checkpoint()
        return ProcessResult(rule.returncode, rule.stderr, stopped=False)


def transcript(seconds: int, bytes_per_second: int) -> bytes:
    """What `ffmpeg -progress pipe:1` prints for an encode of `seconds`, one block a second."""
    blocks = [
        f"frame={25 * t}\nfps=25.00\ntotal_size={bytes_per_second * t}\n"
        f"out_time_us={t * 1_000_000}\nout_time=00:00:{t:02d}.000000\nspeed=2.0x\n"
        f"progress={'end' if t == seconds else 'continue'}\n"
        for t in range(1, seconds + 1)
    ]
    return "".join(blocks).encode()
