"""`videoarchiver web`: the page served by uvicorn on the command's event loop."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import uvicorn
from rich.console import Console

from videoarchiver.config import LISTEN_PATTERN, Config
from videoarchiver.errors import ConfigError
from videoarchiver.exitcodes import EXIT_OK
from videoarchiver.layout import Layout
from videoarchiver.state import open_store
from videoarchiver.tools import readable_demuxers
from videoarchiver.web.access import loopback, new_token
from videoarchiver.web.app import create_app

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


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8080` for IPv6) → (host, port); ConfigError otherwise."""
    if not re.fullmatch(LISTEN_PATTERN, listen):
        raise ConfigError(f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(layout: Layout, config: Config, listen: str, console: Console) -> int:
    host, port = split_listen(listen)
    token = None if loopback(host) else (config.web.token or new_token())
    async with open_store(layout.root, layout.state, STORE_PATIENCE) as store:
        app = create_app(store, layout, token, await readable_demuxers())
        server = _Server(uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        ))  # fmt: skip
        shown = f"[{host}]" if ":" in host else host
        address = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
        console.print(f"videoarchiver web page of {layout.root}: {address}", highlight=False)
        async with anyio.create_task_group() as group:
            group.start_soon(server.stop_on_signals)
            await server.serve()
            group.cancel_scope.cancel()
    return EXIT_OK
