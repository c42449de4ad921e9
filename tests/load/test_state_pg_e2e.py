"""The sync state on a real PostgreSQL server, end to end over real HTTP to the sandbox: the
incremental import for every target, the CLI and the API taking a ``postgresql://`` URL
(``--state``, ``CONTACTPIPE_STATE``, ``state=``), two processes importing into one account
at once, a state written on one "machine" read on another, and a password that never shows
(summary, report files, output, errors)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from load_helpers import sandbox_env
from pgserver import ADMIN_PASSWORD, free_port
from test_import_e2e import _fast_retries  # noqa: F401
from test_state_e2e import (
    TARGETS,
    WRITE,
    do_import,
    requests_made,
    resume,
    start_import,
    stored,
    wait_for_writes,
    write_csv,
)

import contactpipe
from contactpipe.cli import main
from contactpipe.sandbox import SandboxServer
from contactpipe.state import mask_location, open_store


def no_password_in(folder: Path, *texts: str) -> None:
    for text in texts:
        assert ADMIN_PASSWORD not in text and "s3cret-pw" not in text
    for path in folder.rglob("*"):
        if path.is_file():
            assert ADMIN_PASSWORD.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("target", TARGETS)
def test_unchanged_reimport_sends_nothing_and_one_percent_sends_only_that(
    server: SandboxServer, target: str, tmp_path: Path, pg_url: str
) -> None:
    src = write_csv(tmp_path / "in.csv", 150)
    first = do_import(server, target, src, tmp_path / "r1", pg_url)  # type: ignore[arg-type]
    load = first.summary["load"]
    assert (load["loaded"], load["failed"], load["state"]["mode"]) == (150, 0, "first")
    assert load["state"]["path"] == mask_location(pg_url)

    server.app.journal.clear()
    again = do_import(server, target, src, tmp_path / "r2", pg_url)  # type: ignore[arg-type]
    assert requests_made(server) == []
    assert again.summary["load"]["state"]["decided"]["skipped_by_state"] == 150

    server.app.journal.clear()
    src2 = write_csv(tmp_path / "in2.csv", 150, changed={3, 99})
    third = do_import(server, target, src2, tmp_path / "r3", pg_url)  # type: ignore[arg-type]
    load = third.summary["load"]
    assert load["state"]["decided"] == {"sent": 2, "skipped_by_state": 148, "resumed": 0}
    assert (load["loaded"], load["failed"]) == (150, 0)
    assert not any(m.startswith("GET") for m in requests_made(server))
    assert stored(server, target)["+33612000099"] == "Client 99 (new name)"
    with open_store(pg_url) as store:
        assert store.count(target, load["state"]["run_id"]) == 0  # keyed by account, not run
    for out in ("r1", "r2", "r3"):
        no_password_in(tmp_path / out)


def test_cli_and_api_take_a_url_and_never_show_its_password(
    server: SandboxServer, tmp_path: Path, pg_url: str
) -> None:
    src = write_csv(tmp_path / "in.csv", 30)
    env = sandbox_env(server)
    base = ["import", str(src), "--target", "vobiz", "--region", "FR"]
    first = CliRunner().invoke(
        main, [*base, "--state", pg_url, "--report-dir", str(tmp_path / "r1")], env=env
    )
    assert first.exit_code == 0, first.output
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text("utf-8"))
    assert summary["load"]["state"]["path"].startswith("postgresql://cpadmin:***@127.0.0.1:")
    no_password_in(tmp_path / "r1", first.output)

    server.app.journal.clear()  # CONTACTPIPE_STATE names the server
    second = CliRunner().invoke(
        main,
        [*base, "-q", "--report-dir", str(tmp_path / "r2")],
        env={**env, "CONTACTPIPE_STATE": pg_url},
    )
    assert second.exit_code == 0, second.output
    assert requests_made(server) == []
    no_password_in(tmp_path / "r2", second.output)

    result = contactpipe.import_contacts(  # the API's state= takes the URL as well
        src,
        "vobiz",
        contactpipe.RunOptions(region="FR"),
        credentials=env,
        report_dir=tmp_path / "r3",
        state=pg_url,
    )
    assert result.exit_code == 0
    assert result.summary["load"]["state"]["decided"]["skipped_by_state"] == 30
    assert ADMIN_PASSWORD not in json.dumps(result.to_dict())
    assert requests_made(server) == []
    no_password_in(tmp_path / "r3")


def test_cli_errors_of_the_state_server_are_exit_4_without_traceback_or_password(
    server: SandboxServer, tmp_path: Path, postgres: Any
) -> None:
    src = write_csv(tmp_path / "in.csv", 5)
    base = ["import", str(src), "--target", "waapi", "--region", "FR"]
    cases = {
        "cannot reach the server": (
            f"postgresql://ana:s3cret-pw@127.0.0.1:{free_port()}/db?connect_timeout=3"
        ),
        "refused the connection": postgres.url(password="s3cret-pw"),
    }
    for message, url in cases.items():
        out = tmp_path / f"r-{len(message)}"
        ran = CliRunner().invoke(
            main, [*base, "--state", url, "--report-dir", str(out)], env=sandbox_env(server)
        )
        assert ran.exit_code == 4, ran.output
        assert message in ran.output and "Traceback" not in ran.output
        assert "s3cret-pw" not in ran.output and "***" in ran.output
    assert requests_made(server) == []  # nothing sent without the state asked for
    bad = CliRunner().invoke(main, [*base, "--state", "postgresql://a:s3cret-pw@[::1/x"])
    assert bad.exit_code == 2 and "s3cret-pw" not in bad.output, bad.output


def cli(
    server: SandboxServer, args: list[str], cwd: Path, home: Path, **env: str
) -> subprocess.Popen[bytes]:
    """The CLI in its own process, as if on another machine: its own working directory and
    home (so no per-user state file in common), the state only through the URL."""
    cwd.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    full = {**os.environ, **sandbox_env(server), "HOME": str(home), **env}
    full.pop("CONTACTPIPE_STATE", None)
    full.update(env)
    full.pop("XDG_STATE_HOME", None)
    return subprocess.Popen(
        [sys.executable, "-m", "contactpipe.cli", *args],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("target", ["waapi", "msgflash"])
def test_two_processes_import_into_one_account_at_once_through_one_state(
    server: SandboxServer, target: str, tmp_path: Path, pg_url: str
) -> None:
    """Overlapping files, small batches, slowed requests: both runs' confirmations interleave
    in one account's state.  Every contact is in the account once and in the state once, both
    runs are finished, and re-importing either file sends nothing."""
    n, overlap = (160, 60) if target == "waapi" else (60, 20)
    setattr(server.settings, f"{target}_latency_ms", 20.0)
    a = write_csv(tmp_path / "a.csv", n)
    b = write_csv(tmp_path / "b.csv", n, start=n - overlap)
    args = ["import", "--target", target, "--region", "FR", "-q", "--batch-size", "10"]
    procs = [
        cli(
            server,
            [*args, str(src), "--state", pg_url, "--report-dir", str(tmp_path / f"out-{k}")],
            tmp_path / f"machine-{k}",
            tmp_path / f"home-{k}",
        )
        for k, src in enumerate((a, b))
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, (out + err).decode()
        assert ADMIN_PASSWORD.encode() not in out + err
    setattr(server.settings, f"{target}_latency_ms", 0.0)
    total = 2 * n - overlap
    in_account = stored(server, target)
    assert len(in_account) == total
    summaries = [
        json.loads((tmp_path / f"out-{k}" / "summary.json").read_text("utf-8")) for k in (0, 1)
    ]
    assert [s["load"]["loaded"] for s in summaries] == [n, n]
    with open_store(pg_url) as store:
        account = summaries[0]["load"]["state"]["account"]
        assert account == summaries[1]["load"]["state"]["account"]
        (key,) = _accounts(pg_url, target)  # one account key, both runs wrote under it
        assert set(store.lookup(target, key)) == set(in_account)
        for s in summaries:
            assert store.unfinished_run(target, key) is None
            assert s["load"]["state"]["batches"].get("sent", 0) == 0
    server.app.journal.clear()
    for k, src in enumerate((a, b)):
        again = do_import(server, target, src, tmp_path / f"again-{k}", pg_url)  # type: ignore[arg-type]
        assert again.summary["load"]["state"]["decided"]["sent"] == 0
    assert requests_made(server) == []


def _accounts(url: str, target: str) -> list[str]:
    """The account keys the state holds for ``target`` (through the store's own tables)."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT account FROM contactpipe_contacts WHERE target = %s", (target,)
        ).fetchall()
    assert len(rows) == 1, rows
    return [r[0] for r in rows]


def test_a_state_written_on_one_machine_is_read_on_another(
    server: SandboxServer, tmp_path: Path, pg_url: str
) -> None:
    src = write_csv(tmp_path / "in.csv", 40)
    args = ["import", str(src), "--target", "waapi", "--region", "FR", "-q"]
    first = cli(
        server,
        [*args, "--report-dir", str(tmp_path / "one")],
        tmp_path / "machine-1",
        tmp_path / "home-1",
        CONTACTPIPE_STATE=pg_url,
    )
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, (out + err).decode()
    server.app.journal.clear()
    second = cli(
        server,
        [*args, "--state", pg_url, "--report-dir", str(tmp_path / "two")],
        tmp_path / "machine-2",
        tmp_path / "home-2",
    )
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, (out + err).decode()
    assert requests_made(server) == []
    summary = json.loads((tmp_path / "two" / "summary.json").read_text("utf-8"))
    assert summary["load"]["state"]["mode"] == "incremental"
    assert summary["load"]["state"]["contacts_in_state_before"] == 40
    for home in ("home-1", "home-2"):  # no per-user state file was made on either
        assert not list((tmp_path / home).rglob("*.sqlite"))


def test_delete_forgets_in_the_shared_state_and_refuses_to_start_without_it(
    server: SandboxServer, tmp_path: Path, pg_url: str
) -> None:
    src = write_csv(tmp_path / "in.csv", 10)
    do_import(server, "waapi", src, tmp_path / "r1", pg_url)  # type: ignore[arg-type]
    doomed = write_csv(tmp_path / "doomed.csv", 3)
    base = ["delete", str(doomed), "--target", "waapi", "-q", "--region", "FR"]
    env = sandbox_env(server)

    down = f"postgresql://ana:s3cret-pw@127.0.0.1:{free_port()}/db?connect_timeout=3"
    refused = CliRunner().invoke(
        main, [*base, "--report-dir", str(tmp_path / "d0")], env={**env, "CONTACTPIPE_STATE": down}
    )
    assert refused.exit_code == 4 and "cannot reach the server" in refused.output
    assert "s3cret-pw" not in refused.output
    assert len(stored(server, "waapi")) == 10  # nothing deleted while the state was out of reach

    deleted = CliRunner().invoke(
        main,
        [*base, "--report-dir", str(tmp_path / "d1")],
        env={**env, "CONTACTPIPE_STATE": pg_url},
    )
    assert deleted.exit_code == 0, deleted.output
    assert len(stored(server, "waapi")) == 7
    server.app.journal.clear()
    again = do_import(server, "waapi", src, tmp_path / "r2", pg_url)  # type: ignore[arg-type]
    assert again.summary["load"]["state"]["decided"]["sent"] == 3  # forgotten: sent again
    assert len(stored(server, "waapi")) == 10


@pytest.mark.off_contract  # a request cut by kill -9 reaches the sandbox truncated
def test_resume_after_kill_9_through_the_server(
    server: SandboxServer, tmp_path: Path, pg_url: str
) -> None:
    """The killed process's session ends on the server (its locks go with it); the resume,
    from another process, finds the run and sends only the rest."""
    target, src = "vobiz", write_csv(tmp_path / "in.csv", 40)
    proc = start_import(server, target, src, tmp_path / "out", pg_url)  # type: ignore[arg-type]
    wait_for_writes(server, target, proc, 2)
    proc.kill()
    proc.communicate(timeout=60)
    with open_store(pg_url) as store:
        (account,) = _accounts(pg_url, target)
        run = store.unfinished_run(target, account)
        assert run is not None  # killed: still "running"
        kept = store.count(target, account)
    assert kept >= 10
    server.app.journal.clear()
    again = resume(server, target, src, tmp_path / "again", pg_url)  # type: ignore[arg-type]
    load = again["load"]
    assert load["state"]["run_id"] == run[0]
    assert load["state"]["decided"]["resumed"] == kept
    assert (load["loaded"], load["failed"]) == (40, 0)
    assert len(stored(server, target)) == 40
    writes = [e for e in server.app.journal if e.method == WRITE[target][0]]
    assert len(writes) <= (40 - kept) // 10 + 1


@pytest.mark.parametrize("target", TARGETS)
def test_the_state_server_gone_mid_load_leaves_every_row_in_the_report_and_exit_4(
    server: SandboxServer, target: str, tmp_path: Path, postgres: Any
) -> None:
    """PostgreSQL stops while an import writes to it: the load stops before its next batch,
    the report still lists every row (loaded, or NOT_SENT / OUTCOME_UNKNOWN with its row
    number), exit 4, no traceback, no password; the next import finishes the job."""
    import pgserver

    src = write_csv(tmp_path / "in.csv", 40)
    out = tmp_path / "out"
    with pgserver.running() as own:  # its own server: this test stops it
        url = own.fresh_url()
        proc = start_import(server, target, src, out, url)  # type: ignore[arg-type]
        wait_for_writes(server, target, proc, 2)
        own.halt()
        stdout, stderr = proc.communicate(timeout=120)
    output = (stdout + stderr).decode()
    assert proc.returncode == 4, output
    assert "Traceback" not in output and "Unexpected error" not in output
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    load = summary["load"]
    assert 2 <= load["loaded"] <= 40 and load["loaded"] + load["failed"] == 40
    if target != "msgflash":  # stopped before its next batch; MsgFlash (a request a row,
        assert load["loaded"] < 40  # no batch to stop before) goes on, unrecorded
    assert load["state"]["unavailable"] and "state" in load["aborted"]
    assert load["aborted"] in output
    with (out / "errors.csv").open(encoding="utf-8") as fh:
        errors = list(csv.DictReader(fh))
    assert len(errors) == load["failed"]
    assert {e["code"] for e in errors} <= {"NOT_SENT", "OUTCOME_UNKNOWN"}
    assert all(e["row"].isdigit() and e["message"] for e in errors)
    assert len(stored(server, target)) >= load["loaded"]  # in flight may have landed too
    no_password_in(out, output)

    setattr(server.settings, f"{target}_latency_ms", 0.0)
    again = do_import(server, target, src, tmp_path / "again", None)  # no state: plain import
    assert (again.summary["load"]["loaded"], again.summary["load"]["failed"]) == (40, 0)
    assert len(stored(server, target)) == 40  # no duplicate
