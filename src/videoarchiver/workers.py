"""A `run` process is a worker: an id in the store, a heartbeat that renews its leases, and,
on its machine, a lock file it holds while it lives.

A worker that dies leaves its claims behind. Another worker on the same machine knows at once
(the kernel dropped the dead one's lock, even after SIGKILL) and releases them; a worker on
another machine waits for the lease to run out. Released files go back to pending, and the
next claimant salvages their parts as a restart does.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio

from videoarchiver.errors import StoreUnavailable, describe_error
from videoarchiver.layout import Layout
from videoarchiver.space import passing
from videoarchiver.state import Store, Worker

log = logging.getLogger(__name__)
BEATS_PER_LEASE = 4  # a lease outlives three missed heartbeats


def new_worker() -> Worker:
    host, pid, now = socket.gethostname(), os.getpid(), time.time()
    return Worker(f"{host}-{pid}-{secrets.token_hex(3)}", host, pid, now, now)


def _lock_path(layout: Layout, worker: Worker) -> Path:
    return layout.workers / f"{worker.id}.lock"


@contextlib.contextmanager
def holding_life(layout: Layout, worker: Worker) -> Iterator[Callable[[], None]]:
    """Hold `worker`'s lock file for as long as it runs. When it stops the file is removed
    only if it gave its files back (it calls the function yielded): left unlocked, the file
    tells the next worker of this machine at once that the files it still claims (a full
    disk refused their release) are free."""
    path = _lock_path(layout, worker)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    released = False

    def gave_back() -> None:
        nonlocal released
        released = True

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield gave_back
    finally:
        if released:
            path.unlink(missing_ok=True)
        os.close(fd)


def bury_if_dead_here(layout: Layout, worker: Worker) -> bool:
    """True when `worker` (of this machine) no longer holds its lock: it is dead, and its
    lock file is removed while this process holds the lock (never a live worker's). A lock
    file that is not there proves nothing (the share may be away from this machine): its
    heartbeat will tell."""
    path = _lock_path(layout, worker)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


async def bury_dead(store: Store, layout: Layout, me: Worker, lease: float) -> list[int]:
    """Release the claims of workers known dead — on this machine those that no longer hold
    their lock, anywhere those silent for longer than the lease — and of every lease that
    ran out (but this worker's own). Returns the released file ids."""
    released: list[int] = []
    silent = set(await store.silent_workers(lease))
    for worker in await store.workers():
        if worker.id == me.id:
            continue
        dead_here = worker.host == me.host and bury_if_dead_here(layout, worker)
        if dead_here or worker.id in silent:
            files = await store.remove_worker(worker.id)
            log.info("worker %s is gone%s", worker.id,
                     f"; its {len(files)} file(s) go back to pending" if files else "")  # fmt: skip
            released += files
    return released + await store.release_expired(keep=me.id)


async def keep_alive(
    store: Store,
    layout: Layout,
    me: Worker,
    lease: float,
    held: Callable[[set[int], float], Awaitable[None]],
) -> None:
    """Every quarter lease: renew `me`'s leases (telling `held` which files it still holds,
    and when it asked) and release what dead workers held."""
    while True:
        await anyio.sleep(lease / BEATS_PER_LEASE)
        try:
            asked = time.monotonic()
            await held(await store.heartbeat(me, lease), asked)
            await bury_dead(store, layout, me, lease)
        except (StoreUnavailable, OSError) as exc:  # the server away, or a full disk
            if not passing(exc):
                raise
            log.warning("heartbeat: %s", describe_error(exc))
