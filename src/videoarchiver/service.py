"""Talking to systemd when it runs the daemon (`Type=notify`): readiness, a one-line status,
and the watchdog, over the datagram socket systemd names in `$NOTIFY_SOCKET`.

Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence

import anyio

from videoarchiver.progress import Task
from videoarchiver.state import FileState, Summary

log = logging.getLogger(__name__)


def listening() -> bool:
    """True when systemd runs us as `Type=notify` and listens."""
    return bool(os.environ.get("NOTIFY_SOCKET"))


def notify(message: str) -> None:
    """Send `READY=1`, `STATUS=…`, `WATCHDOG=1` or `STOPPING=1` to systemd, if it listens."""
    if not listening():
        return
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        # Never blocks the event loop: a message systemd has no room for is dropped.
        kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        with socket.socket(socket.AF_UNIX, kind) as sock:
            sock.connect(address)
            sock.send(message.encode())
    except BlockingIOError:
        pass
    except OSError as exc:
        log.warning("cannot tell systemd %r: %s", message, exc)


def watchdog_seconds() -> float | None:
    """How often systemd wants to hear from us (half its `WatchdogSec=`), if it does."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def feed_watchdog(every: float) -> None:
    """Tell systemd the event loop is alive, from the event loop itself: a wedged loop goes
    quiet, and systemd restarts the daemon."""
    while True:
        notify("WATCHDOG=1")
        await anyio.sleep(every)


def status_text(tasks: Sequence[Task], held: int, summary: Summary, space_wait: float) -> str:
    """What runs here and how far, what is done, failed and pending (as the queue was last
    counted), and a wait for space: `2 running here (a.mp4 s0 archive video 42%, …), …`."""
    running = ", ".join(
        f"{task.info.file} {task.info.label}"
        + (f" {int(100 * fraction)}%" if (fraction := task.fraction) is not None else "")
        for task in tasks[:3]
    )  # fmt: skip
    more = f" and {len(tasks) - 3} more" if len(tasks) > 3 else ""
    text = f"{held} running here" + (f" ({running}{more})" if running else "")
    text += f", {summary.count(FileState.DONE)} done, {summary.count(FileState.FAILED)} failed,"
    text += f" {summary.count(FileState.PENDING)} pending"
    return text + (f"; disk full, waiting {space_wait:.0f} s" if space_wait else "")


STATUS_EVERY = 1.0  # seconds: systemd's status line follows every change, at most this often


async def follow_status(describe: Callable[[], str]) -> None:
    """Keep systemd's `STATUS=` line what `describe` says, sent whenever it changes."""
    said = None
    while True:
        if (text := describe()) != said:
            notify(f"STATUS={text}")
            said = text
        await anyio.sleep(STATUS_EVERY)
