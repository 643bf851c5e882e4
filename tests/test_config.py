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
        ('active_hours = "25:00-07:00"\n', "active_hours: .*not two times of day"),
        ('[web]\nlisten = "localhost:99999"\n', "web.listen: .*port from 1 to 65535"),
        ('notify = ["bogus://x", "json://host/"]\n', "notify: .*Apprise .*: bogus://x"),
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


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "videoarchiver.toml"
    path.write_bytes(b"jobs = 1\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("-crf 20", ["-crf", "20"]),
        ('["-crf", "20"]', ["-crf", "20"]),
        ("-x264-params 'keyint=50:min-keyint=5' -tune film",
         ["-x264-params", "keyint=50:min-keyint=5", "-tune", "film"]),
        ("", []),
    ],
)  # fmt: skip
def test_list_variables_take_a_json_list_or_shell_words(
    monkeypatch: pytest.MonkeyPatch, value: str, words: list[str]
) -> None:
    monkeypatch.setenv("VIDEOARCHIVER_ARCHIVE__VIDEO_ARGS", value)
    monkeypatch.setenv("VIDEOARCHIVER_NOTIFY", "json://host/ 'ntfy://my topic'")
    config = load_config(None)
    assert config.archive.video_args == words
    assert config.notify == ["json://host/", "ntfy://my topic"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("VIDEOARCHIVER_ARCHIVE__VIDEO_ARGS", '["-crf", 20', "ARCHIVE__VIDEO_ARGS: .*JSON list"),
        ("VIDEOARCHIVER_PREVIEW__AUDIO_ARGS", "-b:a '10000", "PREVIEW__AUDIO_ARGS: .*words"),
        ("VIDEOARCHIVER_ARCHIVE", "x", "VIDEOARCHIVER_ARCHIVE: not a JSON object"),
        ("VIDEOARCHIVER_ACTIVE_HOURS", "22:00-24:30", "VIDEOARCHIVER_ACTIVE_HOURS: "),
    ],
)
def test_a_bad_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"environment variable .*{message}"):
        load_config(None)
