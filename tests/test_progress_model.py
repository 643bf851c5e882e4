"""The progress model's time left: the encode's own pace over a window of wall time, and a
resumed encode counted from what its salvaged parts hold."""

from __future__ import annotations

import pytest

from videoarchiver.planning.progress import ProgressUpdate
from videoarchiver.progress import PACE_WINDOW, ProgressHub, TaskInfo
from videoarchiver.state import Summary


def _block(out_seconds: float) -> ProgressUpdate:
    return ProgressUpdate(out_seconds=out_seconds, total_size=1, frame=1, speed=None, ended=False)


def test_time_left_follows_the_pace_over_the_window_not_the_last_two_blocks() -> None:
    """A slow encode (0.034 media seconds a second) whose output time moves by bursts, as
    x264's lookahead makes it: two blocks half a second apart once said 0.18 s were left of
    an encode that took four minutes more."""
    now = [0.0]
    hub = ProgressHub(clock=lambda: now[0])
    task = hub.start(TaskInfo(1, "clip.mp4", "archive", "s0 archive video", total=12.0))
    done = 0.0
    for step in range(240):  # two minutes of blocks every half second
        now[0] += 0.5
        if step % 20 == 19:  # a burst every 10 s, the media of those 10 s at once
            done += 0.34
        task.update(_block(done))
        if now[0] > PACE_WINDOW:
            assert task.remaining is not None
            assert task.remaining == pytest.approx((12.0 - done) / 0.034, rel=0.5)
    assert task.done == pytest.approx(4.08)
    assert task.remaining == pytest.approx((12.0 - 4.08) / 0.034, rel=0.1)


def test_a_resumed_encode_starts_at_its_salvaged_position_and_keeps_its_pace() -> None:
    now = [0.0]
    hub = ProgressHub(clock=lambda: now[0])
    info = TaskInfo(1, "clip.mp4", "archive", "s0 archive video", total=12.0, start=6.0)
    task = hub.start(info)
    assert (task.done, task.fraction) == (6.0, 0.5), "the salvaged half is shown done at once"
    for _ in range(20):
        now[0] += 0.5
        task.update(_block(now[0] * 0.25))  # ffmpeg counts from its seek point: 0.25 s a second
    assert task.done == pytest.approx(8.5)
    assert task.remaining == pytest.approx(3.5 / 0.25), "the salvaged seconds are no pace"
    assert task.record("w").done == pytest.approx(8.5), "what the store and status get"


def test_the_queue_s_time_left_is_its_estimated_cost_at_the_pace_costs_were_done() -> None:
    now = [0.0]
    queue = ProgressHub(clock=lambda: now[0]).queue
    queue.update(Summary({"pending": 3}, 0, 0, 3 << 30, waiting_cost=300.0, done_cost=40.0))
    assert queue.remaining is None, "no pace before a file is done here"
    now[0] = 60.0  # a file of 120 estimated CPU seconds done in a minute: 2 a second
    queue.update(Summary({"pending": 2}, 1 << 30, 1 << 28, 2 << 30, 180.0, 160.0))
    assert queue.remaining == pytest.approx(90.0)
