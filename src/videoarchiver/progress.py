"""One progress model for every running task, and the in-process hub that holds it.

The model computes everything a reader shows (media done/total, speed, a smoothed rate, the
time spent and the time remaining) so that renderers only draw: the rich display is one
subscriber of the hub; the worker also writes the hub's tasks to the store about every 2 s,
so `status` in another shell (or a web page, or another machine) shows live progress.
The clock is injected, so tests control time.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import anyio

from videoarchiver.errors import StoreUnavailable
from videoarchiver.planning.progress import ProgressUpdate
from videoarchiver.space import passing
from videoarchiver.state import Progress, Store, Summary

# The pace behind the time left: media done per wall second over at least this many
# seconds (since the task started, until it has run that long); two progress blocks half a
# second apart say little of an encode's pace.
PACE_WINDOW = 10.0


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    KEPT_RAW = "kept raw stream (ratio rule)"  # an encode stopped by the ratio rule
    # Stopped by a signal, `pause --now` or the end of the working hours: what it made is
    # salvaged when work goes on.
    INTERRUPTED = "interrupted (goes on from its salvaged part)"


@dataclass(frozen=True)
class TaskInfo:
    """What runs: a file's (id and name) output step, its media length (seconds) or its
    number of steps (`unit` "frames": a montage made from one seek per frame)."""

    file_id: int
    file: str
    output: str
    label: str  # `s0 archive video`, `preview mux`, `s0 montage (seek)` …
    total: float | None = None
    unit: str = "s"
    start: float = 0.0  # done before this run: the salvaged parts of a resumed encode


class Task:
    """One running task: the model every reader shows."""

    def __init__(self, hub: ProgressHub, info: TaskInfo) -> None:
        self.hub, self.info = hub, info
        self.started = hub.clock()
        # Media seconds (or steps) done, the salvaged ones of a resumed encode included.
        self.done: float | None = info.start or None
        self.speed: float | None = None  # as ffmpeg says (media seconds per second)
        self.rate: float | None = None  # done per second, over the pace window
        self.outcome: Outcome | None = None
        self._seen = deque([(self.started, info.start)])  # (when, done), the window's

    @property
    def spent(self) -> float:
        return self.hub.clock() - self.started

    @property
    def remaining(self) -> float | None:
        """Seconds left at the pace of the window (None until there is one)."""
        total = self.info.total
        if not total or self.done is None or not self.rate:
            return None
        return max(0.0, total - self.done) / self.rate

    @property
    def fraction(self) -> float | None:
        if not self.info.total or self.done is None:
            return None
        return min(1.0, self.done / self.info.total)

    def _measure(self, done: float) -> None:
        """The pace since the oldest measure of the window (PACE_WINDOW)."""
        now, seen = self.hub.clock(), self._seen
        seen.append((now, done))
        while len(seen) > 2 and seen[1][0] <= now - PACE_WINDOW:
            seen.popleft()
        since, then = seen[0]
        if now > since:
            self.rate = max(0.0, done - then) / (now - since)
        self.done = done

    def update(self, update: ProgressUpdate) -> None:
        """ffmpeg's latest `-progress` block (a resumed encode counts from its seek point)."""
        if update.out_seconds is not None:
            self._measure(self.info.start + update.out_seconds)
        self.speed = update.speed if update.speed is not None else self.speed
        self.hub.changed(self)

    def advance(self, steps: float = 1) -> None:
        """One more step of a task counted in steps."""
        self._measure((self.done or 0.0) + steps)
        self.hub.changed(self)

    def end(self, outcome: Outcome) -> None:
        if outcome is Outcome.DONE and self.info.total:
            self.done = self.info.total  # the last progress block lags the end
        self.outcome = outcome
        self.hub.ended(self)

    def record(self, worker: str) -> Progress:
        """The task as the store keeps it."""
        return Progress(
            file_id=self.info.file_id, label=self.info.label, output=self.info.output,
            worker=worker, done=self.done or 0.0, total=self.info.total, speed=self.speed,
            remaining=self.remaining, updated_at=time.time(),
        )  # fmt: skip


class Subscriber(Protocol):
    def started(self, task: Task) -> None: ...

    def changed(self, task: Task) -> None: ...

    def ended(self, task: Task) -> None: ...

    def queue(self, queue: QueueProgress) -> None: ...


class QueueProgress:
    """The whole queue as this worker sees it: files done of those known, bytes saved, and
    when the queue should be done: the estimated cost of what is left at the pace estimated
    costs were finished since the start."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._first: tuple[float, float] | None = None  # (when, cost of the files done then)
        self.summary = Summary({}, 0, 0)
        self.notice = ""  # what the worker as a whole is doing: `stopping: waiting for …`

    def update(self, summary: Summary) -> None:
        if self._first is None:
            self._first = (self.clock(), summary.done_cost)
        self.summary = summary

    @property
    def remaining(self) -> float | None:
        """None until a file was done here (no pace yet), or when nothing is left."""
        if self._first is None or not self.summary.waiting_cost:
            return None
        since, finished = self._first
        pace = (self.summary.done_cost - finished) / max(self.clock() - since, 1e-9)
        return self.summary.waiting_cost / pace if pace > 0 else None


class ProgressHub:
    """Every task running in this process, and who listens."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tasks: dict[int, Task] = {}
        self._ids = itertools.count()
        self._subscribers: list[Subscriber] = []
        self.queue = QueueProgress(clock)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def start(self, info: TaskInfo) -> Task:
        task = Task(self, info)
        self._tasks[next(self._ids)] = task
        for subscriber in self._subscribers:
            subscriber.started(task)
        return task

    def changed(self, task: Task) -> None:
        for subscriber in self._subscribers:
            subscriber.changed(task)

    def ended(self, task: Task) -> None:
        self._tasks = {key: value for key, value in self._tasks.items() if value is not task}
        for subscriber in self._subscribers:
            subscriber.ended(task)

    @contextmanager
    def counting(self, info: TaskInfo) -> Iterator[Task]:
        """A task the caller advances step by step: done when the block ends, failed if it
        raises."""
        task = self.start(info)
        outcome = Outcome.FAILED
        try:
            yield task
            outcome = Outcome.DONE
        except anyio.get_cancelled_exc_class():
            outcome = Outcome.INTERRUPTED
            raise
        finally:
            if task.outcome is None:  # not ended early by the caller
                task.end(outcome)

    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    @property
    def listened(self) -> bool:
        """True when a display listens (the queue's figures are worth reading)."""
        return bool(self._subscribers)

    def queue_changed(self, summary: Summary) -> None:
        self.queue.update(summary)
        self._queue_shown()

    def announce(self, notice: str) -> None:
        """Say what the worker as a whole is doing (`stopping: …`) beside the queue."""
        self.queue.notice = notice
        self._queue_shown()

    def _queue_shown(self) -> None:
        for subscriber in self._subscribers:
            subscriber.queue(self.queue)


WRITE_EVERY = 2.0  # seconds between two writes of a worker's progress to the store


async def write_progress(store: Store, hub: ProgressHub, worker: str) -> None:
    """Keep the store's copy of what this worker runs about WRITE_EVERY seconds old."""
    written = False
    while True:
        await anyio.sleep(WRITE_EVERY)
        tasks = hub.tasks()
        if tasks or written:
            try:
                await store.write_progress(worker, [task.record(worker) for task in tasks])
            except (StoreUnavailable, OSError) as exc:
                if not passing(exc):
                    raise
                continue  # written again once the state answers, or has room
        written = bool(tasks)
