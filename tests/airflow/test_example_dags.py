"""``dag.test()`` on every example DAG of examples/airflow/dags, against the sandbox."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from af_helpers import EXAMPLES, contacts_csv, load_dag, put_dag, states, xcom


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


def _sandbox_phones(tmp_path: Path) -> set[str]:
    """Every phone the sandbox's MsgFlash account holds (a real export)."""
    import contactpipe
    from contactpipe.airflow.hooks import hook_for

    creds = hook_for("msgflash")(conn_id="msgflash_default").get_conn()
    out = tmp_path / "check.parquet"
    contactpipe.export_contacts("msgflash", out, credentials=creds)
    return set(pl.read_parquet(out)["phone"].to_list())


def test_drop_folder_dag_imports_a_drop_and_archives_it_to_done(
    connections, sandbox, dags_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drops = tmp_path / "drops"
    monkeypatch.setenv("CONTACTPIPE_DROPS", str(drops))
    monkeypatch.setenv("CONTACTPIPE_STATE_DB", str(tmp_path / "state.sqlite"))
    contacts_csv(drops / "inbox" / "week1.csv", 5, bad=1)
    contacts_csv(drops / "inbox" / "week1-more.csv", 3, start=5)
    (drops / "inbox" / "upload.csv.part").write_text("name,phone\n")  # still arriving
    put_dag("contactpipe_drop_import.py")
    run = load_dag("contactpipe_drop_import").test(logical_date=None)

    assert states(run) == {
        "claim": ("success", 1),
        "validate": ("success", 1),
        "import": ("success", 1),
        "archive": ("success", 1),
    }
    summary = xcom(run, "import")
    assert summary["ok"] is True and summary["exit_code"] == 0
    assert (summary["rows_read"], summary["valid"], summary["rejected"]) == (9, 8, 1)
    assert summary["load"]["loaded"] == 8 and summary["load"]["failed"] == 0
    assert {f"+336{i:08d}" for i in range(8)} <= _sandbox_phones(tmp_path)
    done = sorted(p.name for p in (drops / "done").rglob("*.csv") if p.is_file())
    assert done == ["week1-more.csv", "week1.csv"]
    assert [p.name for p in (drops / "inbox").iterdir()] == ["upload.csv.part"]
    assert not list((drops / "failed").iterdir())

    # the same content dropped again is not imported twice
    contacts_csv(drops / "inbox" / "week1-again.csv", 5, bad=1)
    again = load_dag("contactpipe_drop_import").test(logical_date=None)
    assert states(again)["claim"] == ("skipped", 1)
    assert len(list((drops / "done").iterdir())) == 3


def test_drop_folder_dag_archives_a_bad_drop_to_failed_without_retry(
    connections, dags_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drops = tmp_path / "drops"
    monkeypatch.setenv("CONTACTPIPE_DROPS", str(drops))
    monkeypatch.setenv("CONTACTPIPE_STATE_DB", str(tmp_path / "state.sqlite"))
    contacts_csv(drops / "inbox" / "mostly-bad.csv", 2, bad=8)
    put_dag("contactpipe_drop_import.py")
    run = load_dag("contactpipe_drop_import").test(logical_date=None)

    got = states(run)
    assert got["validate"] == ("failed", 1)  # threshold: exit 3, no retry although retries=2
    assert got["import"] == ("upstream_failed", 0)
    assert got["archive"] == ("failed", 1)
    assert str(run.state) == "failed"
    failed = [p for p in (drops / "failed").rglob("mostly-bad.csv") if p.is_file()]
    assert len(failed) == 1
    why = xcom(run, "validate", key="summary")
    assert why["exit_code"] == 3 and why["rejected"] == 8


def test_mapped_drop_dag_imports_each_file_in_its_own_mapped_task(
    connections, sandbox, dags_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drops = tmp_path / "mapped"
    monkeypatch.setenv("CONTACTPIPE_MAPPED_DROPS", str(drops))
    monkeypatch.setenv("CONTACTPIPE_STATE_DB", str(tmp_path / "state.sqlite"))
    contacts_csv(drops / "inbox" / "a.csv", 4, start=100)
    contacts_csv(drops / "inbox" / "b.csv", 6, start=200)
    contacts_csv(drops / "inbox" / "c.csv", 1, start=300, bad=9)
    put_dag("contactpipe_drop_mapped.py")
    run = load_dag("contactpipe_drop_mapped").test(logical_date=None)

    got = states(run)
    assert got["claim"] == ("success", 1)
    imports = {k: v for k, v in got.items() if k.startswith("one_file.import[")}
    assert len(imports) == 3
    loaded = {}
    for i in range(3):
        s = xcom(run, "one_file.import", map_index=i) or xcom(
            run, "one_file.validate", key="summary", map_index=i
        )
        loaded[Path(s["report_dir"]).parent.name] = s
    ok = sorted(s["load"]["loaded"] for s in loaded.values() if s.get("ok"))
    assert ok == [4, 6]
    assert sorted(p.name for p in (drops / "done").rglob("*.csv") if p.is_file()) == [
        "a.csv",
        "b.csv",
    ]
    assert [p.name for p in (drops / "failed").rglob("*.csv") if p.is_file()] == ["c.csv"]
    assert str(run.state) == "failed"  # one file failed: the run says so
    phones = _sandbox_phones(tmp_path)
    assert {f"+336{i:08d}" for i in [*range(100, 104), *range(200, 206)]} <= phones
