"""Fixtures for every test.

Each test gets its own sync state file (``CONTACTPIPE_STATE``): an import run by one test
(the CLI defaults to the per-user state) must never make another test's import skip rows,
nor write into the home directory of whoever runs the suite.  Likewise its own local rate
limit store (``CONTACTPIPE_RATE_LIMIT_STORE``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_helpers import redis_server


@pytest.fixture(autouse=True)
def _own_state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "contactpipe-state.sqlite"
    monkeypatch.setenv("CONTACTPIPE_STATE", str(path))
    return path


@pytest.fixture(autouse=True)
def _own_rate_limit_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default rate limit store (``local``), in the test's own folder: two tests never
    share an account's window, and nothing is written in the home directory."""
    path = tmp_path / "contactpipe-ratelimit"
    monkeypatch.setenv("CONTACTPIPE_RATE_LIMIT_STORE", f"local:{path}")
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (Debian's ``redis-server``, `make redis`) on a free port of
    127.0.0.1, with a password, no persistence, for the whole session (one per xdist worker):
    its ``redis://`` URL.  Missing: the test skips, or fails in CI (CI=true)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url
