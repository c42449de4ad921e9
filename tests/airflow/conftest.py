"""Real Apache Airflow 3 for the provider's tests (run by ``make test-airflow`` with the
``.venv-airflow`` interpreter; the main suite skips this folder, which needs Airflow).

Airflow reads its configuration when it is first imported, so this module points it at a
fresh AIRFLOW_HOME (SQLite metadata, a DAGs folder, no example DAGs) before anything imports
it, then ``airflow db migrate`` builds the database once per session.  The sandbox runs in a
thread of the test process: ``dag.test()`` runs the tasks in this process too, and the
connections are ``AIRFLOW_CONN_*`` variables (JSON) built from the sandbox's credentials."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from af_helpers import DAGS, HOME, connection_json  # first: it configures Airflow


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """``airflow db migrate`` on the session's SQLite database (the real command)."""
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return HOME / "airflow.db"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[object]:
    from contactpipe.sandbox import SandboxServer, SandboxSettings

    settings = SandboxSettings(
        msgflash_rate_limit=None,
        waapi_rate_limit=None,
        vobiz_rate_limit=None,
        msgflash_job_pending_s=0.02,
        msgflash_job_items_per_s=200_000.0,
        contract_audit=True,
    )
    with SandboxServer(settings) as server:
        yield server


@pytest.fixture
def connections(
    sandbox: object, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """``<target>_default`` connections to the sandbox, and ``<target>_refused`` ones whose
    token the sandbox refuses."""
    from contactpipe.load import registry

    sandbox.app.reset()  # type: ignore[attr-defined]
    ids = {}
    for target in registry.names():
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{target.upper()}_DEFAULT", connection_json(sandbox, target)
        )
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{target.upper()}_REFUSED",
            connection_json(sandbox, target, password="not-the-token"),
        )
        ids[target] = f"{target}_default"
    return ids


@pytest.fixture
def dags_folder() -> Iterator[Path]:
    """The session's DAGs folder, emptied after the test."""
    yield DAGS
    for child in DAGS.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
