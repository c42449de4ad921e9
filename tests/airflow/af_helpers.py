"""Helpers for the Airflow tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Airflow reads its configuration when first imported: this module, imported by conftest.py
# before anything imports Airflow, points it at a fresh AIRFLOW_HOME.
HOME = Path(tempfile.mkdtemp(prefix="contactpipe-airflow-home-"))
DAGS = HOME / "dags"
DAGS.mkdir()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "airflow" / "dags"

os.environ.update(
    {
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)


def connection_json(server: object, target: str, **override: str) -> str:
    """An Airflow connection (JSON form) of ``target`` on the sandbox: host = base URL,
    password = the key or token, login = the account id."""
    from contactpipe.demo import sandbox_env
    from contactpipe.load import registry

    env = sandbox_env(server)  # type: ignore[arg-type]
    info = registry.info(target)
    conn = {"conn_type": target, "host": env[info.base_url_var]}
    if info.secret:
        conn["password"] = env[info.secret]
    if info.account and info.account in env:
        conn["login"] = env[info.account]
    conn.update(override)
    return json.dumps(conn)


def put_dag(name: str, source: str | None = None) -> Path:
    """Copy example DAG ``name`` (or write ``source``) into the DAGs folder."""
    dest = DAGS / name
    if source is None:
        shutil.copyfile(EXAMPLES / name, dest)
    else:
        dest.write_text(source)
    return dest


def contacts_csv(path: Path, n: int, *, start: int = 0, bad: int = 0) -> Path:
    """``n`` valid French mobiles (+ ``bad`` rows whose phone is not one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "phone"])
        for i in range(start, start + n):
            w.writerow([f"Contact {i}", f"+336{i:08d}"])
        for i in range(bad):
            w.writerow([f"Bad {i}", f"12{i}"])
    return path


def load_dag(dag_id: str) -> Any:
    """The DAG ``dag_id`` as Airflow parses it from the DAGs folder, its retries kept but
    without their delay (``dag.test()`` would wait it out): a task that must not be retried
    shows try 1, one that is retried shows its last try."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    for task in dag.tasks:
        task.retry_delay = dt.timedelta(0)
        task.retry_exponential_backoff = False
    return dag


def states(run: Any) -> dict[str, tuple[str | None, int]]:
    """task id (``id[map]`` when mapped) -> (state, try number) of a finished dag run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
            .all()
        )
        return {
            (t.task_id if t.map_index < 0 else f"{t.task_id}[{t.map_index}]"): (
                None if t.state is None else str(t.state),
                t.try_number,
            )
            for t in tis
        }


def xcom(run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
                XComModel.map_index == map_index,
            )
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)
