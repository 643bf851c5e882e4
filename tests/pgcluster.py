"""A throwaway PostgreSQL cluster for the tests: `initdb` and `pg_ctl` in a temporary folder,
run as an unprivileged user (the `postgres` account when the tests run as root), listening on
a Unix socket only, with fsync off. `make test` installs Debian's `postgresql` when missing."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

ROLE = "videoarchiver"


def _bindir() -> Path:
    """Where `initdb` and `pg_ctl` are: on PATH, or Debian's versioned folder (newest)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=_version)
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs it (postgresql)")
    return versions[-1].parent


def _version(path: Path) -> int:
    name = path.parent.parent.name
    return int(name) if name.isdigit() else 0


class Cluster:
    """One PostgreSQL server; `database()` makes a new, empty database and returns its URL."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="videoarchiver-pg-"))
        self.folder.chmod(0o755)  # its socket is reached by the tests' user
        self.data, self.socket, self.log = (
            self.folder / "data",
            self.folder / "run",
            self.folder / "log",
        )
        self.socket.mkdir()
        self._user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            account = pwd.getpwnam("postgres")
            for path in (self.folder, self.socket):
                os.chown(path, account.pw_uid, account.pw_gid)
            self._user = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
                          "--init-groups", "--"]  # fmt: skip
        self._bin = _bindir()
        self._databases = 0
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._user, str(self._bin / tool), *args], check=True,
                       capture_output=True, cwd=self.folder)  # fmt: skip

    def _ctl(self, action: str, *args: str) -> None:
        options = f"-k {self.socket} -c listen_addresses= -c fsync=off -c max_connections=300"
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-w", "-o",
                  options, *args)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """Stop it (fast: open connections are cut) and start it again."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "immediate")

    def url(self, database: str) -> str:
        return f"postgresql://{ROLE}@/{database}?host={self.socket}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        self._databases += 1
        name = f"test{self._databases}"
        subprocess.run(
            [str(self._bin / "psql"), "-q", "-X", "-d", self.url("postgres"), "-c",
             f"CREATE DATABASE {name}"],
            check=True, capture_output=True,
        )  # fmt: skip
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
