"""Talking to systemd when it runs the daemon (`Type=notify`): readiness, a one-line status,
and the watchdog, over the datagram socket systemd names in `$NOTIFY_SOCKET`.

Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

import anyio

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
