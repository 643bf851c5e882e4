"""The live display on a terminal (rich): one subscriber of the progress hub.

One line for the queue (files done of those known, bytes saved, when it should be done), then
one line per running task — file, step, bar, E (done / total), S (spent), R (remaining),
speed — and one summary line per finished task. It draws what the model computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from videoarchiver.progress import ProgressHub, QueueProgress, Task
from videoarchiver.state import FileState
from videoarchiver.ui import human_size, percent_saved

# `E 0:00:03/0:00:20 S 0:00:08 R 0:00:37 0.44x`: always shown whole when the terminal can.
FIGURES_WIDTH = 44
BAR_WIDTH, NARROW_BAR_WIDTH = 40, 6
WIDE_TERMINAL = 120
MIN_NAME_WIDTH = 12


def clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def figures(task: Task) -> str:
    """`E 0:00:05/0:00:10 S 0:00:02 R 0:00:02 2.50x` (`frames 3/10 …` for counted steps)."""
    total, done = task.info.total, task.done
    if task.info.unit == "s":
        total_text = f"/{clock_text(total)}" if total else ""
        done_text = f"E {clock_text(done)}{total_text}"
    else:
        done_text = f"{task.info.unit} {done or 0:.0f}/{total or 0:.0f}"
    speed = f" {task.speed:.2f}x" if task.speed is not None else ""
    return f"{done_text} S {clock_text(task.spent)} R {clock_text(task.remaining)}{speed}"


def queue_text(queue: QueueProgress) -> str:
    """`queue: 3/10 files done, 1.2 GiB saved (72%), ETA 1:23:00`."""
    summary = queue.summary
    known = sum(summary.files.values())
    saved = summary.raw_bytes - summary.archive_bytes
    text = f"queue: {summary.count(FileState.DONE)}/{known} files done"
    if summary.raw_bytes:
        saving = percent_saved(summary.raw_bytes, summary.archive_bytes)
        text += f", {human_size(max(saved, 0))} saved ({saving})"
    text += f", ETA {clock_text(queue.remaining)}"
    return f"{queue.notice} · {text}" if queue.notice else text


class _Bars(Progress):
    """rich's progress bars under one line of the whole queue, as wide as the terminal. The
    step and the figures keep their width; the file's name gives way (cut with an ellipsis),
    and on a narrow terminal the bar does too."""

    queue_line = ""

    def __init__(self, console: Console, clock: Callable[[], float]) -> None:
        self.terminal = console  # rich asks for renderables before its `console` is there
        self.bar = BAR_WIDTH if console.width >= WIDE_TERMINAL else NARROW_BAR_WIDTH
        self.name = Column(ratio=1, no_wrap=True, overflow="ellipsis")
        super().__init__(
            TextColumn("{task.description}", table_column=self.name),
            TextColumn("{task.fields[step]}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=self.bar),
            TextColumn("{task.fields[figures]}", table_column=Column(no_wrap=True)),
            console=console, get_time=clock,
        )  # fmt: skip

    def get_renderables(self) -> Iterable[RenderableType]:
        if self.queue_line:
            yield Text(self.queue_line, no_wrap=True, overflow="ellipsis")
        step = max((len(task.fields["step"]) for task in self.tasks), default=0)
        rest = step + self.bar + FIGURES_WIDTH + 3  # three spaces between four columns
        self.name.max_width = max(MIN_NAME_WIDTH, self.terminal.width - rest)
        yield self.make_tasks_table(self.tasks)


class RichDisplay:
    """Draws the hub's tasks on `console`; a context manager that starts and stops drawing."""

    def __init__(self, console: Console, hub: ProgressHub) -> None:
        self.progress = _Bars(console, hub.clock)
        self._ids: dict[int, TaskID] = {}
        hub.subscribe(self)

    def started(self, task: Task) -> None:
        self._ids[id(task)] = self.progress.add_task(
            escape(task.info.file), total=task.info.total, step=escape(task.info.label),
            figures=figures(task),
        )  # fmt: skip

    def changed(self, task: Task) -> None:
        self.progress.update(self._ids[id(task)], completed=task.done or 0, figures=figures(task))

    def ended(self, task: Task) -> None:
        self.progress.remove_task(self._ids.pop(id(task)))
        self.progress.console.print(
            f"{task.outcome} {task.info.file} {task.info.label}: {figures(task)}",
            markup=False, highlight=False,
        )  # fmt: skip

    def queue(self, queue: QueueProgress) -> None:
        self.progress.queue_line = queue_text(queue)
        self.progress.refresh()

    def __enter__(self) -> RichDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()
