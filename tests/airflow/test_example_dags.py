"""``dag.test()`` on every example DAG of examples/airflow/dags, against the sandbox."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from af_helpers import contacts_csv, load_dag, states, xcom
from conftest import EXAMPLES, put_dag


def test_every_example_dag_has_a_test() -> None:
    tested = {
        "contactpipe_daily_export.py",
        "contactpipe_drop_import.py",
        "contactpipe_drop_mapped.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_daily_export_writes_the_accounts_contacts_to_parquet(
    connections, dags_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contactpipe
    from contactpipe.airflow.hooks import hook_for

    creds = hook_for("msgflash")(conn_id="msgflash_default").get_conn()
    contactpipe.import_contacts(
        contacts_csv(tmp_path / "seed.csv", 7),
        "msgflash",
        credentials=creds,
        report_dir=tmp_path / "seed",
        check=True,
    )
    monkeypatch.setenv("CONTACTPIPE_EXPORTS", str(tmp_path / "exports"))
    put_dag("contactpipe_daily_export.py")
    dag = load_dag("contactpipe_daily_export")
    run = dag.test()
    assert states(run) == {"export": ("success", 1)}
    out = xcom(run, "export")
    parquet = Path(out["output"])
    assert parquet.name == "contacts.parquet" and parquet.parent.parent == tmp_path / "exports"
    assert out["rows"] == 7
    assert sorted(pl.read_parquet(parquet)["phone"].to_list()) == [f"+336{i:08d}" for i in range(7)]
