"""The operators in real Airflow DAGs run by ``dag.test()``: outcomes mapped to the task's
state (no retry for input, threshold and credential refusals; retries for network failures),
the XCom is the summary, the import's asset event carries the counts, templated report
directories, a deferral that resumes, and a ``pipeline.py`` in the DAGs folder."""

from __future__ import annotations

import datetime as dt
import json
import socket
import textwrap
from pathlib import Path

import pytest
from af_helpers import connection_json, contacts_csv, load_dag, put_dag, states, xcom

HEAD = """
import pendulum
from airflow.sdk import DAG
from contactpipe.airflow.operators import (
    ContactpipeDeleteOperator,
    ContactpipeExportOperator,
    ContactpipeImportOperator,
    ContactpipeValidateOperator,
)

with DAG(
    "{dag_id}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    default_args={{"retries": 3}},
):
"""


def one_dag(dag_id: str, body: str) -> None:
    put_dag(
        f"{dag_id}.py", HEAD.format(dag_id=dag_id) + textwrap.indent(textwrap.dedent(body), "    ")
    )


def test_bad_input_fails_without_retry(connections, dags_folder, tmp_path: Path) -> None:
    bad = tmp_path / "no-phones.csv"
    bad.write_text("name,city\nAda,Paris\n")
    one_dag(
        "cp_bad_input",
        f"""
        ContactpipeValidateOperator(task_id="validate", inputs={str(bad)!r})
        ContactpipeImportOperator(task_id="import", conn_id="msgflash_default", inputs={str(bad)!r})
        """,
    )
    run = load_dag("cp_bad_input").test()
    assert states(run) == {"validate": ("failed", 1), "import": ("failed", 1)}
    why = xcom(run, "import", key="summary")
    assert why["exit_code"] == 2 and "phone" in why["error"].lower()


def test_token_refusal_fails_without_retry_and_shows_no_token(
    connections, dags_folder, tmp_path: Path
) -> None:
    src = contacts_csv(tmp_path / "in.csv", 3)
    one_dag(
        "cp_refused",
        f"""
        ContactpipeImportOperator(
            task_id="import", conn_id="msgflash_refused", inputs={str(src)!r},
            report_dir={str(tmp_path / "r")!r},
        )
        """,
    )
    run = load_dag("cp_refused").test()
    assert states(run) == {"import": ("failed", 1)}
    why = xcom(run, "import", key="summary")
    assert why["exit_code"] == 4 and why["ok"] is False
    assert "not-the-token" not in json.dumps(why)
    assert "not-the-token" not in "".join(
        p.read_text(errors="replace") for p in (tmp_path / "r").rglob("*") if p.is_file()
    )


def test_network_failure_is_retried(
    connections, dags_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_MSGFLASH_DOWN",
        connection_json(sandbox, "msgflash", host=f"http://127.0.0.1:{port}"),
    )
    src = contacts_csv(tmp_path / "in.csv", 2)
    one_dag(
        "cp_down",
        f"""
        ContactpipeImportOperator(
            task_id="import", conn_id="msgflash_down", inputs={str(src)!r}, retries=1,
            retry={{"attempts": 1}},
        )
        """,
    )
    run = load_dag("cp_down").test()
    assert states(run) == {"import": ("failed", 2)}  # the first try was retried
    why = xcom(run, "import", key="summary")
    assert why["exit_code"] in (4, 5) and why["ok"] is False


def test_xcom_is_the_summary_and_report_dir_is_templated(
    connections, dags_folder, tmp_path: Path
) -> None:
    src = contacts_csv(tmp_path / "in.csv", 4, bad=1)
    one_dag(
        "cp_xcom",
        f"""
        ContactpipeImportOperator(
            task_id="import", conn_id="waapi_default", inputs={str(src)!r},
            report_dir={str(tmp_path)!r} + "/reports/{{{{ ds }}}}",
            state={str(tmp_path / "state.sqlite")!r}, options={{"region": "FR"}},
            rate_limit_store={"local:" + str(tmp_path / "limits")!r},
        )
        """,
    )
    run = load_dag("cp_xcom").test(logical_date=dt.datetime(2026, 3, 4, tzinfo=dt.UTC))
    assert states(run) == {"import": ("success", 1)}
    summary = xcom(run, "import")
    assert summary == json.loads(json.dumps(summary))  # JSON types only
    assert len(json.dumps(summary)) < 4000
    assert summary["report_dir"] == str(tmp_path / "reports" / "2026-03-04")
    full = json.loads((Path(summary["report_dir"]) / "summary.json").read_text())
    for key in ("rows_read", "valid", "rejected", "duplicates", "empty_rows", "by_code"):
        assert summary[key] == full[key]
    assert summary["load"]["loaded"] == full["load"]["loaded"] == 4
    assert summary["load"]["state"]["decided"]["sent"] == 4
    assert (summary["exit_code"], summary["ok"], summary["error"]) == (0, True, None)
    assert any((tmp_path / "limits").iterdir())  # the shared limiter's store was used


def test_import_emits_an_asset_event_on_the_account_with_the_counts(
    connections, sandbox, dags_folder, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetAliasModel, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from contactpipe.airflow.hooks import hook_for

    src = contacts_csv(tmp_path / "in.csv", 5, start=40, bad=2)
    one_dag(
        "cp_asset",
        f"""
        ContactpipeImportOperator(
            task_id="import", conn_id="vobiz_default", inputs={str(src)!r},
        )
        """,
    )
    run = load_dag("cp_asset").test()
    assert states(run) == {"import": ("success", 1)}
    account = hook_for("vobiz")(conn_id="vobiz_default").account()
    uri = f"contactpipe://vobiz/{account.key}"
    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.uri == uri).one()
        events = (
            session.query(AssetEvent)
            .filter(AssetEvent.asset_id == asset.id, AssetEvent.source_run_id == run.run_id)
            .all()
        )
        assert len(events) == 1
        extra = events[0].extra
        alias = session.query(AssetAliasModel).filter_by(name="contactpipe-vobiz_default").one()
        assert asset.id in {a.id for a in alias.assets}
    assert (extra["loaded"], extra["valid"], extra["rejected"], extra["rows_read"]) == (5, 5, 2, 7)
    assert extra["account"] == account.label
    from contactpipe.demo import sandbox_env

    assert sandbox_env(sandbox)["VOBIZ_AUTH_TOKEN"] not in json.dumps(extra)


def test_import_defers_on_a_long_rate_limit_wait_and_resumes(
    connections, sandbox, dags_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contactpipe.load.kit.timing import Rate
    from contactpipe.load.targets.waapi.core import WaapiCore

    # WAAPI's 100 requests / 15 min, shrunk to 5 requests / 2 s on both sides
    monkeypatch.setattr(WaapiCore, "rate", Rate(5, 2.0))
    before = (sandbox.settings.waapi_rate_limit, sandbox.settings.waapi_rate_window_s)
    sandbox.settings.waapi_rate_limit, sandbox.settings.waapi_rate_window_s = 5, 2.0
    try:
        src = contacts_csv(tmp_path / "in.csv", 12, start=500)
        one_dag(
            "cp_defer",
            f"""
            ContactpipeImportOperator(
                task_id="import", conn_id="waapi_default", inputs={str(src)!r},
                state={str(tmp_path / "state.sqlite")!r}, defer_after=1.0, batch_size=2,
                report_dir={str(tmp_path / "r")!r},
            )
            """,
        )
        run = load_dag("cp_defer").test()
    finally:
        sandbox.settings.waapi_rate_limit, sandbox.settings.waapi_rate_window_s = before
    assert states(run) == {"import": ("success", 1)}
    first = xcom(run, "import", key="summary")  # pushed when it deferred
    assert first["exit_code"] == 75 and first["load"]["deferred"]["rows"] == 2
    done = xcom(run, "import")
    assert done["ok"] is True and done["load"]["loaded"] == 12
    assert done["load"]["state"]["decided"] == {"sent": 2, "skipped_by_state": 0, "resumed": 10}
    assert len(sandbox.app.state.waapi.contacts) == 12


def test_a_busy_msgflash_import_yields_its_slot_in_slices(
    connections, sandbox, dags_folder, tmp_path: Path
) -> None:
    """MsgFlash's one create per contact at 10/s never waits long: ``yield_after`` defers the
    busy task itself (resume at once) and the resumed task finishes, each contact sent once."""
    src = contacts_csv(tmp_path / "in.csv", 30, start=700)
    one_dag(
        "cp_yield",
        f"""
        ContactpipeImportOperator(
            task_id="import", conn_id="msgflash_default", inputs={str(src)!r},
            state={str(tmp_path / "state.sqlite")!r}, yield_after=1.0,
            report_dir={str(tmp_path / "r")!r},
        )
        """,
    )
    run = load_dag("cp_yield").test()
    assert states(run) == {"import": ("success", 1)}
    first = xcom(run, "import", key="summary")  # pushed when it deferred
    assert first["exit_code"] == 75, first
    assert "yield_after" in first["load"]["deferred"]["reason"]
    done = xcom(run, "import")
    assert done["ok"] is True
    assert done["load"]["state"]["decided"]["resumed"] > 0
    stored = [c.phone for c in sandbox.app.state.msgflash.contacts.values()]
    assert len(stored) == len(set(stored)) == 30


def test_a_pipeline_py_in_the_dags_folder_does_not_break_the_operators(
    connections, dags_folder, tmp_path: Path
) -> None:
    import subprocess
    import sys

    # a user's own helper module called pipeline, which the DAG imports from the DAGs folder
    put_dag("pipeline.py", 'SOURCE = "the user pipeline module"\n')
    src = contacts_csv(tmp_path / "in.csv", 2, start=900)
    one_dag(
        "cp_shadow",
        f"""
        import pipeline
        assert pipeline.SOURCE == "the user pipeline module"
        ContactpipeValidateOperator(task_id="validate", inputs={str(src)!r})
        """,
    )
    sys.path.insert(0, str(dags_folder))  # where Airflow puts the DAGs folder
    try:
        run = load_dag("cp_shadow").test()
    finally:
        sys.path.remove(str(dags_folder))
        sys.modules.pop("pipeline", None)
    assert states(run) == {"validate": ("success", 1)}
    assert xcom(run, "validate")["valid"] == 2

    # a fresh interpreter with the DAGs folder first on sys.path, as a worker has it
    probe = (
        f"import sys; sys.path.insert(0, {str(dags_folder)!r}); import pipeline; "
        "import contactpipe.airflow.operators as o; import contactpipe.api; "
        "print(pipeline.SOURCE, o.ContactpipeImportOperator.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["the", "user", "pipeline", "module", "ContactpipeImportOperator"]


def test_a_mapped_import_emits_one_asset_event_per_file(
    connections, dags_folder, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from contactpipe.airflow.hooks import hook_for

    files = [str(contacts_csv(tmp_path / f"{i}.csv", 2 + i, start=700 + 10 * i)) for i in range(2)]
    one_dag(
        "cp_mapped",
        f"""
        ContactpipeImportOperator.partial(
            task_id="import", conn_id="msgflash_default",
        ).expand(inputs={files!r})
        """,
    )
    run = load_dag("cp_mapped").test()
    assert states(run) == {"import[0]": ("success", 1), "import[1]": ("success", 1)}
    account = hook_for("msgflash")(conn_id="msgflash_default").account()
    with create_session() as session:
        asset = (
            session.query(AssetModel).filter_by(uri=f"contactpipe://msgflash/{account.key}").one()
        )
        events = session.query(AssetEvent).filter_by(asset_id=asset.id, source_run_id=run.run_id)
        assert sorted(e.extra["loaded"] for e in events) == [2, 3]


def test_import_shares_the_rate_limit_through_a_redis_connection(
    connections, dags_folder, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rate_limit_conn_id`` names an Airflow connection of type ``redis`` (a real server):
    the account's window is kept there, and its password shows nowhere."""
    import redis
    from redis_helpers import REDIS_PASSWORD

    from contactpipe.airflow.hooks import redis_store_url

    url = redis.connection.parse_url(redis_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHARED_LIMIT",
        json.dumps(
            {
                "conn_type": "redis",
                "host": url["host"],
                "port": url["port"],
                "password": REDIS_PASSWORD,
                "extra": {"db": 3},
            }
        ),
    )
    src = contacts_csv(tmp_path / "in.csv", 5)
    one_dag(
        "cp_redis",
        f"""
        ContactpipeImportOperator(
            task_id="import", conn_id="waapi_default", inputs={str(src)!r},
            report_dir={str(tmp_path / "report")!r}, state={str(tmp_path / "state.sqlite")!r},
            options={{"region": "FR"}}, rate_limit_conn_id="shared_limit",
        )
        """,
    )
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    client.flushdb()
    run = load_dag("cp_redis").test()
    assert states(run) == {"import": ("success", 1)}
    summary = xcom(run, "import")
    assert summary["load"]["loaded"] == 5
    store = summary["load"]["rate_limit_store"]
    assert store.startswith("redis://") and store.endswith(f":{url['port']}/3"), store
    assert client.keys("*"), "the account's window is not in Redis db 3"
    assert REDIS_PASSWORD not in json.dumps(summary)
    for path in (tmp_path / "report").rglob("*"):
        assert not path.is_file() or REDIS_PASSWORD.encode() not in path.read_bytes(), path
    # the URL a connection gives: TLS from the extra, the database from the schema
    assert (
        redis_store_url(
            "c", conn_type="redis", host="r", port=None, schema="2", extra='{"ssl": true}'
        )
        == "rediss://r:6379/2"
    )
