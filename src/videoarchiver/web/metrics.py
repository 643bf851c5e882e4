"""`/metrics` in Prometheus' text format, from what the store holds."""

from __future__ import annotations

from collections.abc import Sequence

from videoarchiver.state import FileState, Progress, Summary, Worker


def _line(name: str, value: float, labels: str = "") -> str:
    """One sample; counts exact (not `1.23457e+11`)."""
    number = str(value) if isinstance(value, int) else repr(float(value))
    return (
        f"videoarchiver_{name}{{{labels}}} {number}" if labels else f"videoarchiver_{name} {number}"
    )


def _label(value: str) -> str:
    """A label value in quotes, escaped as the text format wants."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def metrics_text(
    summary: Summary,
    progress: Sequence[Progress],
    workers: Sequence[Worker],
    now: float,
) -> str:
    """The figures at `now`; a task whose worker's lease ran out counts as stalled."""
    lines = [
        "# HELP videoarchiver_files Files recorded, by state.",
        "# TYPE videoarchiver_files gauge",
        *(_line("files", summary.count(state), f'state="{state}"') for state in FileState),
        "# HELP videoarchiver_queue_files Files waiting to be claimed.",
        "# TYPE videoarchiver_queue_files gauge",
        _line("queue_files", summary.count(FileState.PENDING)),
        "# HELP videoarchiver_queue_bytes Raw bytes of the files pending or running.",
        "# TYPE videoarchiver_queue_bytes gauge",
        _line("queue_bytes", summary.waiting_bytes),
        "# HELP videoarchiver_running_tasks ffmpeg tasks running on every worker.",
        "# TYPE videoarchiver_running_tasks gauge",
        _line("running_tasks", len(progress)),
        "# HELP videoarchiver_stalled_tasks Tasks whose worker was lost (its lease ran out).",
        "# TYPE videoarchiver_stalled_tasks gauge",
        _line("stalled_tasks", len([task for task in progress if task.lost_since is not None])),
        "# HELP videoarchiver_raw_bytes Raw bytes of the files whose archive is done.",
        "# TYPE videoarchiver_raw_bytes gauge",
        _line("raw_bytes", summary.raw_bytes),
        "# HELP videoarchiver_archive_bytes Bytes of their archives.",
        "# TYPE videoarchiver_archive_bytes gauge",
        _line("archive_bytes", summary.archive_bytes),
        "# HELP videoarchiver_saved_bytes Raw bytes minus archive bytes.",
        "# TYPE videoarchiver_saved_bytes gauge",
        _line("saved_bytes", summary.raw_bytes - summary.archive_bytes),
        "# HELP videoarchiver_worker_heartbeat_age_seconds Seconds since a worker's heartbeat.",
        "# TYPE videoarchiver_worker_heartbeat_age_seconds gauge",
        *(
            _line(
                "worker_heartbeat_age_seconds",
                max(0.0, now - worker.heartbeat_at),
                f"worker={_label(worker.id)}",
            )
            for worker in workers
        ),
    ]
    return "\n".join(lines) + "\n"
