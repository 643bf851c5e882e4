from __future__ import annotations

from pathlib import Path

import pytest

from media import FAST_CONFIG


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root folder with `raw/` and a config that takes files at once and encodes fast."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "videoarchiver.toml").write_text(FAST_CONFIG)
    return tmp_path


@pytest.fixture
def anyio_backend() -> str:
    """The daemon runs on asyncio; async tests use the same backend."""
    return "asyncio"
