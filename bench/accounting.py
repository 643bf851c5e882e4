"""Each command's own CPU, exactly, whoever starts it: every ffmpeg, ffprobe and mkvpropedit
found on PATH is a shim that moves itself into a cgroup (v2) of its own, notes its arguments
and execs the real program, which keeps the shim's process id, so what started it (the
daemon) sees the program itself: its pipes, its signals, its exit. A group's CPU counts
after a SIGKILL too (the ratio rule's stops), which no wrapper process could report.

Creating groups takes root (or a delegated cgroup); the shim's own start (a `/bin/sh` and a
`mkdir`, about a millisecond) is outside the groups, so not counted in any command's CPU.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path
from typing import NamedTuple

PROGRAMS = ("ffmpeg", "ffprobe", "mkvpropedit")
# A process id is reused once the ids wrap (32768 on many machines, fewer than a batch of
# 200 clips starts): a group already named after it gets a dot more.
SHIM = """\
#!/bin/sh
name=$$
while [ -e {groups}/$name ]; do name=$name.; done
mkdir {groups}/$name
echo $$ > {groups}/$name/cgroup.procs
printf '%s\\n' {program} "$@" > {calls}/$name
exec {real} "$@"
"""


class Accounted(NamedTuple):
    args: tuple[str, ...]  # the program's name, then its arguments
    cpu: float  # user and system seconds, its threads and children included


def cgroup2_mount() -> Path:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    raise SystemExit("no cgroup v2 is mounted: each command's CPU cannot be counted")


class CpuGroups:
    """Shims in `folder/bin`; `path` is a PATH that finds them first; `collect` returns the
    commands run since the last call, in the order they started, with their CPU."""

    def __init__(self, folder: Path) -> None:
        self.groups = cgroup2_mount() / f"videoarchiver-bench-{os.getpid()}"
        try:
            self.groups.mkdir()
        except PermissionError as exc:
            raise SystemExit(f"cannot create {self.groups}: run the bench as root") from exc
        self.calls = folder / "calls"
        self.bin = folder / "bin"
        self.calls.mkdir(parents=True)
        self.bin.mkdir()
        for program in PROGRAMS:
            real = shutil.which(program)
            if real is None:
                continue
            shim = self.bin / program
            shim.write_text(SHIM.format(groups=shlex.quote(str(self.groups)), program=program,
                                        calls=shlex.quote(str(self.calls)),
                                        real=shlex.quote(real)))  # fmt: skip
            shim.chmod(0o755)
        self.path = f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"

    def shim(self, program: str) -> str:
        return str(self.bin / program)

    def collect(self) -> list[Accounted]:
        accounted = []
        for call in sorted(self.calls.iterdir(), key=lambda call: call.stat().st_mtime_ns):
            group = self.groups / call.name
            usage = re.search(r"usage_usec (\d+)", (group / "cpu.stat").read_text())
            assert usage is not None, f"no usage_usec in {group}/cpu.stat"
            group.rmdir()
            args = tuple(call.read_text().split("\n")[:-1])
            call.unlink()
            accounted.append(Accounted(args, int(usage[1]) / 1e6))
        return accounted

    def remove(self) -> None:
        self.collect()
        self.groups.rmdir()
