"""What tests of videoarchiver (and of programs built on it) run the pipeline with, in
milliseconds: a `FakeRunner` that answers each ffmpeg, ffprobe and mkvpropedit by rules and
records them, and a `MemoryStore` that keeps the state in plain Python under the same
contract as SQLite and PostgreSQL (`open_store(root, "memory:")` opens one too).

    runner = FakeRunner([Rule("ffprobe", has=("-show_format",), stdout=probe_json)])
    rt = Runtime.create(layout, config, MemoryStore(), worker, hub, demuxers, runner)
"""

from videoarchiver.state.memory import MemoryStore
from videoarchiver.testing.runner import Call, FakeRunner, Rule, Unanswered, transcript

__all__ = ["Call", "FakeRunner", "MemoryStore", "Rule", "Unanswered", "transcript"]
