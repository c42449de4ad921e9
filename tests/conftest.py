"""Fixtures for every test.

Each test gets its own sync state file (``CONTACTPIPE_STATE``): an import run by one test
(the CLI defaults to the per-user state) must never make another test's import skip rows,
nor write into the home directory of whoever runs the suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _own_state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "contactpipe-state.sqlite"
    monkeypatch.setenv("CONTACTPIPE_STATE", str(path))
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server (``tests/pgserver.py``) for the session (one per xdist
    worker).  Outside CI a machine that cannot run one skips these tests and says why; in CI
    (``CI=true``) that is a failure: ``make postgresql`` must have installed it."""
    import pgserver

    try:
        ctx = pgserver.running()
        server = ctx.__enter__()
    except Exception as exc:
        reason = f"no PostgreSQL server for the tests: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield server
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """A PostgreSQL state URL whose tables land in a new, empty schema."""
    return str(postgres.fresh_url())
