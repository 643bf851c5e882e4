"""Hearing the daemon as systemd does: what it sends to `$NOTIFY_SOCKET` (READY=1, STATUS=…,
WATCHDOG=1, STOPPING=1). A test that needs a daemon started waits for its READY=1, sent once
its signals are handled and its state is open, rather than for a guessed time."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from media import wait_until

STARTS_WITHIN = 120  # seconds: a daemon not ready by then is broken, however busy the machine


class SystemdListener:
    """A socket that keeps every message sent to it from its start until `close`, as
    systemd listens all along: at `path`, or else an abstract one (no path, however long the
    test's folders)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            name = f"videoarchiver-test-{uuid.uuid4().hex}"
            self.address, bound = f"@{name}", f"\0{name}"
        else:
            self.address = bound = str(path)
        self.messages: list[str] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(bound)
        self._socket.settimeout(0.1)
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._listen, daemon=True)
        self._reader.start()

    @property
    def env(self) -> dict[str, str]:
        """What a process needs in its environment to talk to this listener."""
        return {"NOTIFY_SOCKET": self.address}

    def _listen(self) -> None:
        while True:
            try:
                self.messages.append(self._socket.recv(4096).decode())
            except TimeoutError:  # nothing queued: every message sent so far is kept
                if self._closing.is_set():
                    return

    def wait_for(self, message: str, process: subprocess.Popen[str]) -> None:
        """Return once `message` was heard; fail if `process` ended without sending it."""
        wait_until(lambda: message in self.messages or process.poll() is not None, STARTS_WITHIN)
        assert message in self.messages, f"it ended ({process.returncode}) before {message}"

    def close(self) -> None:
        """Stop listening once what was sent is read."""
        self._closing.set()
        self._reader.join()
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _hangup_stops() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@contextlib.contextmanager
def ready_daemon(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdout: int | IO[str] | None = subprocess.DEVNULL,
    stderr: int | IO[str] | None = subprocess.PIPE,
    hangup: bool = False,
) -> Iterator[subprocess.Popen[str]]:
    """`videoarchiver run <args> --root <root>`, yielded once it is ready; killed on the way
    out if the test left it running. With `hangup`, SIGHUP is not ignored, as in a terminal
    (the tests may run under nohup, whose ignoring the daemon inherits and honours)."""
    env = {**(os.environ if env is None else env)}
    env.pop("VIDEOARCHIVER_CONFIG", None)
    command = [sys.executable, "-m", "videoarchiver", "run", *args, "--root", str(root)]
    with (
        SystemdListener() as systemd,
        subprocess.Popen(
            command,
            env={**env, **systemd.env},
            stdout=stdout,
            stderr=stderr,
            text=True,
            preexec_fn=_hangup_stops if hangup else None,
        ) as daemon,
    ):
        try:
            systemd.wait_for("READY=1", daemon)
            yield daemon
        finally:
            if daemon.poll() is None:
                daemon.kill()
