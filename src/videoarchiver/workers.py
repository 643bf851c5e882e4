"""A `run` process is a worker: an id in the store, a heartbeat that renews its leases, and,
on its machine, a lock file it holds while it lives.

A worker that dies leaves its claims behind. Another worker on the same machine knows at once
(the kernel dropped the dead one's lock, even after SIGKILL) and releases them; a worker on
another machine waits for the lease to run out. Released files go back to pending, and the
next claimant salvages their parts as a restart does.

Leases are judged by the database's clock, which goes on while the state is held up for
everybody (a lock another process keeps on the SQLite file, a server away): a worker takes
another for dead by its silence only once it has itself been heartbeating on time for a
whole lease (`Steadiness`), so that after a hold-up every live worker has had its turn to
renew its leases first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
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


class Steadiness:
    """Whether this worker may judge the others' heartbeats and leases: only after a whole
    lease in which its own heartbeats went through on time. A heartbeat more than two beats
    after the one before, or a judgement that had to wait more than a beat for the state,
    means the worker was held up — and so, most likely, was everybody else, while the
    database's clock went on."""

    def __init__(self, lease: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease = lease
        self._clock = clock
        # When it was last on time (a heartbeat went through, it started, a hold-up ended),
        # and when it was last held up.
        self._on_time = clock()
        self._held_up = -math.inf

    def _late(self, now: float, allowed: float) -> None:
        if now - self._on_time <= allowed:
            return
        if now - self._held_up >= self.lease:  # said once a hold-up
            log.info("this worker was held up %.0f s: other workers have %g s to renew their"
                     " leases before any is taken for dead", now - self._on_time,
                     self.lease)  # fmt: skip
        self._held_up = self._on_time = now

    def beat(self) -> None:
        """This worker's heartbeat went through."""
        now = self._clock()
        self._late(now, 2 * self.lease / BEATS_PER_LEASE)
        self._on_time = now

    def may_judge(self) -> bool:
        """Whether silent workers and run-out leases are to be released now: asked right
        after a heartbeat, by a worker that may write (one that had to wait for that has
        just been held up)."""
        now = self._clock()
        self._late(now, self.lease / BEATS_PER_LEASE)
        return now - self._held_up >= self.lease


class _HeldUp(Exception):
    """This worker was held up (stopped) while it judged the others: undone."""


async def _judge_by_the_clock(
    store: Store, me: Worker, lease: float, steady: Steadiness
) -> tuple[dict[str, list[int]], list[int]]:
    """When `steady` lets this worker judge: the workers silent for longer than the lease,
    removed with the files they held, and the files of the other leases that ran out,
    released. In one transaction, taken first — with SQLite, the write lock: heartbeats are
    read once this worker may write, not before it waited for that — and undone if this
    worker was held up (a SIGSTOP) before it was over, or the state went away meanwhile
    (judged again at the next heartbeat)."""
    try:
        async with store.transaction():
            if not steady.may_judge():
                return {}, []
            silent = [worker for worker in await store.silent_workers(lease) if worker != me.id]
            gone = {worker: await store.remove_worker(worker) for worker in silent}
            expired = await store.release_expired(keep=me.id)
            if not steady.may_judge():
                raise _HeldUp
            return gone, expired
    except (_HeldUp, StoreUnavailable):
        return {}, []


async def bury_dead(
    store: Store, layout: Layout, me: Worker, lease: float, steady: Steadiness | None = None
) -> list[int]:
    """Release the claims of workers known dead — on this machine those that no longer hold
    their lock, anywhere (when `steady` says this worker may judge) those silent for longer
    than the lease — and of every lease that ran out (but this worker's own). Returns the
    released file ids."""
    gone = {
        worker.id: await store.remove_worker(worker.id)
        for worker in await store.workers()
        if worker.id != me.id and worker.host == me.host and bury_if_dead_here(layout, worker)
    }
    silent, expired = await _judge_by_the_clock(store, me, lease, steady or Steadiness(lease))
    for worker, files in (gone | silent).items():
        back = f"; its {len(files)} file(s) go back to pending" if files else ""
        log.info("worker %s is gone%s", worker, back)
    return [file for files in (gone | silent).values() for file in files] + expired


async def keep_alive(
    store: Store,
    layout: Layout,
    me: Worker,
    lease: float,
    held: Callable[[set[int], float], Awaitable[None]],
    steady: Steadiness | None = None,
) -> None:
    """Every quarter lease: renew `me`'s leases (telling `held` which files it still holds,
    and when it asked) and release what dead workers held."""
    steady = steady or Steadiness(lease)
    while True:
        await anyio.sleep(lease / BEATS_PER_LEASE)
        try:
            asked = time.monotonic()
            holding = await store.heartbeat(me, lease)
            steady.beat()
            await held(holding, asked)
            await bury_dead(store, layout, me, lease, steady)
        except (StoreUnavailable, OSError) as exc:  # the server away, or a full disk
            if not passing(exc):
                raise
            log.warning("heartbeat: %s", describe_error(exc))
