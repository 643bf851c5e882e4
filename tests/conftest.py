from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from media import FAST_CONFIG
from pgcluster import Cluster


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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL server for the whole run, started when first needed."""
    cluster = Cluster()
    yield cluster
    cluster.remove()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """The URL of a new, empty PostgreSQL database."""
    return pg_cluster.database()
