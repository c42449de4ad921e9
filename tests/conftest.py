"""Fixtures for every test.

Each test gets its own sync state file (``CONTACTPIPE_STATE``): an import run by one test
(the CLI defaults to the per-user state) must never make another test's import skip rows,
nor write into the home directory of whoever runs the suite."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest


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
