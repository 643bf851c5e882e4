"""The archive's trial copy (can the raw stream stand in for its encode?), its ffmpeg
answered by the fake runner."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import anyio
import pytest

from videoarchiver import archiving
from videoarchiver.errors import ProcessError
from videoarchiver.planning.archive import Action, StreamDecision
from videoarchiver.planning.commands import RawInput
from videoarchiver.runtime import Runtime, Source
from videoarchiver.testing import FakeRunner, Rule

pytestmark = pytest.mark.anyio
DECISION = StreamDecision(index=0, kind="audio", action=Action.ENCODE, codec="libopus")


def _streams(tmp_path: Path, runner: FakeRunner) -> Any:
    """An archive's stream jobs on stand-ins for the runtime and the source."""
    stream = SimpleNamespace(codec_name="pcm_s16le")
    source = SimpleNamespace(
        input=RawInput(tmp_path / "raw.wav", "wav"),
        probed=SimpleNamespace(
            packets=SimpleNamespace(get=lambda index: SimpleNamespace(start=0.0, hidden=0)),
            probe=SimpleNamespace(stream=lambda index: stream),
        ),
    )
    rt = SimpleNamespace(probe_slots=anyio.CapacityLimiter(1), run_process=runner)
    return archiving._ArchiveStreams(cast(Runtime, rt), cast(Source, source), tmp_path)


def _failing(message: str) -> FakeRunner:
    """The trial copy fails, saying `message`, after writing part of its file."""
    return FakeRunner([Rule("ffmpeg", "*/s0.trial.mkv", stderr=(message,), returncode=1,
                            creates=b"half")])  # fmt: skip


async def test_a_trial_the_muxer_refuses_says_the_raw_stream_cannot_stand_in(
    tmp_path: Path,
) -> None:
    runner = _failing("Invalid data found when processing input")
    why = await _streams(tmp_path, runner)._why_not_copyable(DECISION)
    assert why == "Matroska cannot hold the raw pcm_s16le stream as it is"
    [trial] = runner.calls
    assert ("-map", "0:0") in pairwise(trial.args), "its one stream"


async def test_a_trial_a_full_disk_stops_says_nothing_of_the_stream(tmp_path: Path) -> None:
    with pytest.raises(ProcessError, match="No space left on device"):
        await _streams(tmp_path, _failing("No space left on device"))._why_not_copyable(DECISION)
    assert not await anyio.Path(tmp_path / "s0.trial.mkv").exists(), "no trial file left"
