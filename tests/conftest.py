"""Fixtures for every test.

Each test gets its own sync state file (``CONTACTPIPE_STATE``): an import run by one test
(the CLI defaults to the per-user state) must never make another test's import skip rows,
nor write into the home directory of whoever runs the suite.  Likewise its own local rate
limit store (``CONTACTPIPE_RATE_LIMIT_STORE``).  The whole session shares one folder of
compiled phonenumbers patterns (``CONTACTPIPE_PATTERN_CACHE``), set before any test runs: the
cache is read once per process, and it must not be the home directory's."""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_helpers import redis_server

# the processes the tests start (the CLI, pool workers) inherit it
os.environ["CONTACTPIPE_PATTERN_CACHE"] = _patterns = tempfile.mkdtemp(prefix="cp-patterns-")
atexit.register(shutil.rmtree, _patterns, True)


def _has_airflow() -> bool:
    # by its distribution: `find_spec("airflow")` would find tests/airflow itself (tests/ is on
    # sys.path, and a folder without __init__ is a namespace package)
    try:
        importlib.metadata.version("apache-airflow-core")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# tests/airflow needs Apache Airflow, which lives in its own venv: `make test-airflow` (part of
# `make test`) runs that folder with .venv-airflow's pytest.
collect_ignore = [] if _has_airflow() else ["airflow"]


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
