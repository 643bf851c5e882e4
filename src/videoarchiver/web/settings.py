"""The settings page's content: the configuration the page's process runs with, as
`videoarchiver config` prints it (`config.shown_settings`: where each value came from, no
secret), in the sections of the configuration file."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from videoarchiver.config import Config, shown_settings

Setting = tuple[str, Any, str]  # name in its section, value, where it came from


@dataclass(frozen=True)
class Settings:
    path: Path | None  # the configuration file read, if any
    sections: list[tuple[str, list[Setting]]]  # "" first: the settings of no section

    @classmethod
    def of(cls, config: Config, path: Path | None) -> Settings:
        def section(row: tuple[str, Any, str]) -> str:
            return row[0].rpartition(".")[0]

        sections = [
            (name, [(key.rpartition(".")[2], value, source) for key, value, source in rows])
            for name, rows in groupby(shown_settings(config, path), key=section)
        ]
        return cls(path, sections)
