"""Helpers for the Airflow tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

from conftest import DAGS


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
