from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from videoarchiver.config import Config, find_config_file, load_config
from videoarchiver.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def test_defaults_are_the_seed_values() -> None:
    config = load_config(None)
    assert config.archive.video_args == ["-crf", "18", "-preset", "veryslow"]
    assert (config.archive.ratio, config.archive.grace_seconds) == (0.9, 10)
    assert config.preview.video_args == ["-crf", "63", "-preset", "8"]
    assert (config.montage.min_n, config.montage.max_n) == (1, 10)
    assert (config.settle_seconds, config.scan_interval, config.after_done) == (30, 60, "keep")
    assert config.effective_jobs >= 1


def test_example_file_documents_every_key_with_its_default() -> None:
    with EXAMPLE.open("rb") as handle:
        example = tomllib.load(handle)

    # Keys unset by default (root, active_hours, web.token) are comments in the example:
    # TOML has no null.
    def unset_dropped(values: dict[str, Any]) -> dict[str, Any]:
        return {k: unset_dropped(v) if isinstance(v, dict) else v
                for k, v in values.items() if v is not None}  # fmt: skip

    def keys(values: dict[str, Any]) -> dict[str, Any]:
        return {k: keys(v) if isinstance(v, dict) else None for k, v in values.items()}

    # Every key, each with its default (sizes may be written "2GiB").
    assert keys(example) == keys(unset_dropped(Config().model_dump(mode="json")))
    assert load_config(EXAMPLE) == Config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobz = 2\n", "jobz: unknown key"),
        ("[archive]\nratoi = 0.5\n", "archive.ratoi: unknown key"),
        ("[archive]\nratio = 'big'\n", "archive.ratio"),
        ("after_done = 'shred'\n", "after_done"),
        ("jobs = \n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "videoarchiver.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("jobs = 1\n[archive]\nratio = 0.8\ngrace_seconds = 3\n")
    monkeypatch.setenv("VIDEOARCHIVER_ARCHIVE__RATIO", "0.5")
    monkeypatch.setenv("VIDEOARCHIVER_JOBS", "3")
    config = load_config(path)
    assert (config.jobs, config.archive.ratio, config.archive.grace_seconds) == (3, 0.5, 3)


def test_config_file_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDEOARCHIVER_CONFIG", raising=False)
    assert find_config_file(None, tmp_path) is None
    (tmp_path / "videoarchiver.toml").write_text("")
    assert find_config_file(None, tmp_path) == tmp_path / "videoarchiver.toml"
    monkeypatch.setenv("VIDEOARCHIVER_CONFIG", "/from/env.toml")
    assert find_config_file(None, tmp_path) == Path("/from/env.toml")
    assert find_config_file(Path("/explicit.toml"), tmp_path) == Path("/explicit.toml")
