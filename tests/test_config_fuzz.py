"""No setting crashes it: mutated config files and environments given to `config` and to
`run --once` end in exit 0 or 2 (a message naming the key), never a traceback, and `run`
accepts exactly what `config` accepts."""

from __future__ import annotations

import io
import json
import math
import random
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from videoarchiver import tools
from videoarchiver.cli import main
from videoarchiver.config import env_variable

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"
CASES = 240
WARNING = "videoarchiver: warning: "
# Values a hand or a template gets wrong: types, signs, ranges, encodings, shapes.
HOSTILE: list[Any] = [
    "", " ", -1, 0, 1, 2.5, -0.0, 1e309, -1e309, 10**20, True, "yes", "ÉtÉ 🎞", "\x00",
    "25:00-07:00", "07:00-25:61", "7-9", "23:59-00:00", "-crf 20", "json://host/", "bogus://x",
    "ntfy://topic", "0.0.0.0:0", "localhost:99999", "[::1]:8080", "2GiB", "-5GiB", "1e3",
    [], ["x"], ["-crf", 20], [["nested"]], {"a": 1}, {"ratio": "x"}, "/nonexistent",
]  # fmt: skip
ENVIRONMENT: list[str] = [
    "", "-crf 20", '["-crf", "20"]', '["-crf", 20]', "[oops", "'unclosed", "json://host/",
    "3", "-3", "nan", "inf", "1e999", "true", "25:00-07:00", "08:00-09:00", "x" * 300,
    '{"ratio": 0.5}', "{oops", "0.0.0.0:65536", "keep", "shred",
]  # fmt: skip
WELL_MEANT: dict[str, list[Any]] = {
    "after_done": ["keep", "move", "delete"],
    "active_hours": ["22:00-07:00", "00:00-00:00", "09:30-17:45"],
    "web.listen": ["127.0.0.1:8080", "[::1]:9000", "0.0.0.0:8081", "localhost:80"],
    "notify": [[], ["json://localhost:1/"]],  # refused at once: no network wait
    "min_free_space": ["2GiB", "0", "500MB", 1024],
}
# Not given to `run`: a reachable-looking database would be connected to, a root elsewhere.
CONFIG_ONLY = {"root", "state"}


def _keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _get(values: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        values = values[part]
    return values


def _set(values: dict[str, Any], key: str, value: Any) -> None:
    *sections, last = key.split(".")
    for section in sections:
        values = values.setdefault(section, {})
    values[last] = value


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value in (math.inf, -math.inf):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"


def _dump(values: dict[str, Any]) -> str:
    top = [f"{k} = {_toml(v)}" for k, v in values.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "".join(f"{key} = {_toml(v)}\n" for key, v in table.items())
        for k, table in values.items()
        if isinstance(table, dict)
    ]
    return "\n".join(top) + "\n" + "\n".join(tables)


def _plausible(rng: random.Random, key: str, default: Any) -> Any:
    """A value a user may well mean: the default, or another of its kind."""
    if key in WELL_MEANT:
        return rng.choice(WELL_MEANT[key])
    if isinstance(default, bool) or default is None:
        return default
    if isinstance(default, int | float):
        return rng.choice([default, 0, 1, default * 2, 0.5, 3600])
    if isinstance(default, list):
        return rng.choice([default, [], default[:1], [*default, "-x"]])
    return default


def _case(rng: random.Random, defaults: dict[str, Any]) -> tuple[bytes, dict[str, str], set[str]]:
    """A config file's bytes, environment variables, and the keys the case touches: each
    touched key gets a value a user may mean, or (one time in four) a hostile one."""
    keys = sorted(defaults)

    def value(key: str) -> Any:
        if rng.random() < 1 / 4:
            return rng.choice(HOSTILE)
        return _plausible(rng, key, defaults[key])

    values: dict[str, Any] = {}
    touched = set()
    for key in rng.sample(keys, rng.randint(1, 2)):
        _set(values, key, value(key))
        touched.add(key)
    if rng.random() < 0.05:
        _set(values, rng.choice(["jobz", "archive.ratoi", "web.port"]), 1)
    text = _dump(values).encode()
    if rng.random() < 0.05:  # cut short, or not UTF-8
        text = rng.choice([text[: rng.randint(0, len(text))], text + b"# \xff\xfe\n"])
    environment = {}
    for key in rng.sample(keys, rng.choice([0, 0, 1, 2])):
        meant = value(key)
        hostile = rng.choice(ENVIRONMENT)
        given = meant if isinstance(meant, str) else json.dumps(meant)
        given = given.replace("\x00", "")  # no environment holds a NUL
        environment[env_variable(key)] = rng.choice([given, hostile])
        touched.add(key)
    if rng.random() < 0.05:
        environment[rng.choice(["VIDEOARCHIVER_ARCHIVE", "VIDEOARCHIVER_JOBZ"])] = "x"
    return text, environment, touched


_TOOLS: dict[str, list[bytes]] = {}
_real_outputs = tools._outputs


async def _tools_once(commands: list[tuple[list[str], str]]) -> list[bytes]:
    """ffmpeg's real answers (versions, encoders, demuxers), asked once for all cases."""
    key = repr(commands)
    if key not in _TOOLS:
        _TOOLS[key] = await _real_outputs(commands)
    return _TOOLS[key]


def _main(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), Console(file=out, width=100))
    return code, out.getvalue()


@pytest.mark.parametrize("seed", range(CASES // 40))
def test_mutated_settings_exit_0_or_2_and_run_refuses_only_what_config_refuses(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with EXAMPLE.open("rb") as handle:
        example = tomllib.load(handle)
    defaults = {key: _get(example, key) for key in _keys(example)}
    defaults |= {"root": "/", "state": "postgresql://nobody@localhost:1/x", "active_hours": ""}
    monkeypatch.setattr(tools, "_outputs", _tools_once)
    rng = random.Random(seed)
    for number in range(40):
        text, environment, touched = _case(rng, defaults)
        root = tmp_path / f"case{number}"
        (root / "raw").mkdir(parents=True)
        (root / "videoarchiver.toml").write_bytes(text)
        with monkeypatch.context() as patched:
            for name, value in environment.items():
                patched.setenv(name, value)
            shown = f"case {seed}/{number}: {text!r} {environment}"
            code, _ = _main("config", "--root", str(root))
            refused = capsys.readouterr().err
            assert code in (0, 2), shown
            said = [line for line in refused.splitlines() if not line.startswith(WARNING)]
            assert (code == 2) == (said[-1:] != [] and said[-1].startswith("videoarchiver: ")), (
                shown, refused,
            )  # fmt: skip
            if touched & CONFIG_ONLY:
                continue
            ran, _ = _main("run", "--once", "--root", str(root))
            ran_said = capsys.readouterr().err
            assert ran == code, f"{shown}: config said {refused!r}, run said {ran_said!r}"
