"""`videoarchiver web`: the page served by uvicorn on the command's event loop."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import uvicorn
from rich.console import Console

from videoarchiver.config import Config, split_listen
from videoarchiver.errors import ConfigError
from videoarchiver.exitcodes import EXIT_OK
from videoarchiver.layout import Layout
from videoarchiver.state import open_store
from videoarchiver.tools import readable_demuxers
from videoarchiver.web.access import loopback, new_token
from videoarchiver.web.app import create_app
from videoarchiver.web.settings import Settings

STORE_PATIENCE = 10.0  # seconds a page waits for an unreachable state database
SHUTDOWN_SECONDS = 2  # open event streams never end: they are cut this long after a stop


class _Server(uvicorn.Server):
    """uvicorn, but SIGTERM, SIGINT and SIGHUP are the command's: it stops serving and
    exits 0 (uvicorn would raise the signal again once stopped, exiting by it)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def stop_on_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for _ in signals:
                self.should_exit = True
                return


def _bound(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is printed: a port in use is a clear
    error (exit 2), never uvicorn's exit 1 after the address was announced."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from exc


def _addresses(host: str, port: int) -> list[str]:
    """How to reach the page: the address it listens on, or for every address (0.0.0.0,
    ::) the machine's name and its addresses, which another machine can use."""
    if host not in ("0.0.0.0", "::"):
        return [f"[{host}]" if ":" in host else host]
    name = socket.gethostname()
    try:
        found = {
            str(info[4][0]) for info in socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        }
    except OSError:
        found = set()
    shown = sorted(a for a in found if not a.startswith("127.") and a != "::1")
    return [name, *(f"[{a}]" if ":" in a else a for a in shown)]


async def serve(
    layout: Layout, config: Config, config_path: Path | None, listen: str, console: Console
) -> int:
    try:
        host, port = split_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"--listen {listen!r}: {exc}") from exc
    listening = _bound(host, port)
    token = None if loopback(host) else (config.web.token or new_token())
    async with open_store(layout.root, layout.state, STORE_PATIENCE) as store:
        settings = Settings.of(config, config_path)
        app = create_app(store, layout, token, await readable_demuxers(), settings)
        server = _Server(uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        ))  # fmt: skip
        query = f"?token={token}" if token else ""
        addresses = [f"http://{shown}:{port}/{query}" for shown in _addresses(host, port)]
        console.print(f"videoarchiver web page of {layout.root}: {' '.join(addresses)}",
                      highlight=False, soft_wrap=True)  # fmt: skip
        async with anyio.create_task_group() as group:
            group.start_soon(server.stop_on_signals)
            await server.serve(sockets=[listening])
            group.cancel_scope.cancel()
    return EXIT_OK
