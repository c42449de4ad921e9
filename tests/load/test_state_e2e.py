"""Sync state end to end, one suite for every target, over real HTTP to the sandbox on
127.0.0.1: a re-import of an unchanged file sends no contact request, 1% changed sends only
that, ``--full-refresh`` rebuilds the state from the account, an interrupted run keeps what
was confirmed, and two runs share one state file."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from load_helpers import sandbox_env
from test_import_e2e import (  # the same constants and autouse fixture here
    WRITE,
    _fast_retries,  # noqa: F401
)

from contactpipe.cli import main
from contactpipe.errors import UsageError
from contactpipe.load import registry
from contactpipe.load.base import LoadOptions
from contactpipe.run import ImportOptions, RunOptions, RunResult, import_files
from contactpipe.sandbox import SandboxServer

TARGETS = registry.names()
ROOT = Path(__file__).resolve().parents[2]


def write_csv(path: Path, n: int, changed: set[int] = frozenset(), start: int = 0) -> Path:  # type: ignore[assignment]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Name", "Phone", "Tags"])
        for i in range(start, start + n):
            name = f"Client {i}" + (" (new name)" if i in changed else "")
            w.writerow(
                [name, f"+33 6 12 {i // 10000:02d} {i // 100 % 100:02d} {i % 100:02d}", "vip"]
            )
    return path


def stored(server: SandboxServer, target: str) -> dict[str, str]:
    """Phone -> name of every contact in the sandbox account."""
    state = server.app.state
    if target == "msgflash":
        return {c.phone: c.name for c in state.msgflash.contacts.values()}
    if target == "waapi":
        return {"+" + c.phone: c.name for c in state.waapi.contacts.values()}
    return {c.phone_number: c.name for c in state.vobiz.contacts.values()}


def do_import(
    server: SandboxServer, target: str, src: Path, out: Path, state: Path | None, **kw: Any
) -> RunResult:
    imp = ImportOptions(
        target=target,
        load=LoadOptions(poll_interval_s=0.02, batch_size=kw.pop("batch_size", 10_000)),
        env=sandbox_env(server),
        state=state,
        **kw,
    )
    return import_files([str(src)], RunOptions(region="FR"), imp, out)


def requests_made(server: SandboxServer) -> list[str]:
    return [f"{e.method} {e.path}" for e in server.app.journal]


@pytest.mark.parametrize("target", TARGETS)
def test_unchanged_reimport_sends_nothing_and_one_percent_sends_only_that(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    src = write_csv(tmp_path / "in.csv", 200)
    first = do_import(server, target, src, tmp_path / "r1", state)
    load = first.summary["load"]
    assert (load["loaded"], load["failed"]) == (200, 0)
    assert load["state"]["mode"] == "first"
    assert load["state"]["decided"] == {"sent": 200, "skipped_by_state": 0, "resumed": 0}
    assert len(stored(server, target)) == 200

    server.app.journal.clear()
    again = do_import(server, target, src, tmp_path / "r2", state)
    load = again.summary["load"]
    assert requests_made(server) == []  # not a listing, not a write
    assert (load["unchanged"], load["loaded"], load["failed"]) == (200, 200, 0)
    assert load["state"]["mode"] == "incremental"
    assert load["state"]["decided"] == {"sent": 0, "skipped_by_state": 200, "resumed": 0}
    avoided = {"msgflash": 202, "waapi": 1, "vobiz": 3}  # listing pages and writes
    assert load["state"]["saved"]["requests_avoided"] == avoided[target]
    assert load["state"]["saved"]["requests_planned"] == 0

    server.app.journal.clear()
    changed = {7, 150}  # 1%
    src2 = write_csv(tmp_path / "in2.csv", 200, changed=changed)
    third = do_import(server, target, src2, tmp_path / "r3", state)
    load = third.summary["load"]
    assert load["state"]["decided"] == {"sent": 2, "skipped_by_state": 198, "resumed": 0}
    assert (load["loaded"], load["failed"], load["unchanged"]) == (200, 0, 198)
    made = requests_made(server)
    assert not any(m.startswith("GET") for m in made), made  # the state answered: no listing
    if target == "msgflash":  # one update each, by the id the state kept
        assert sorted(m.split(" ")[0] for m in made) == ["PUT", "PUT"]
        assert load["updated"] == 2
    else:  # one batch
        assert len(made) == 1
    names = stored(server, target)
    assert len(names) == 200
    assert names["+33612000007"] == "Client 7 (new name)"
    assert names["+33612000150"] == "Client 150 (new name)"


@pytest.mark.parametrize("target", TARGETS)
def test_new_rows_are_created_and_a_contact_made_elsewhere_is_not_duplicated(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    do_import(server, target, write_csv(tmp_path / "a.csv", 20), tmp_path / "r1", state)
    # a contact the state does not know, already in the account (loaded without state)
    other = write_csv(tmp_path / "b.csv", 1, start=20)
    do_import(server, target, other, tmp_path / "r-other", state=None)  # unknown to the state
    src = write_csv(tmp_path / "c.csv", 25)  # 20 known + 1 made elsewhere + 4 new
    result = do_import(server, target, src, tmp_path / "r2", state)
    load = result.summary["load"]
    assert load["state"]["decided"] == {"sent": 5, "skipped_by_state": 20, "resumed": 0}
    assert (load["loaded"], load["failed"]) == (25, 0)
    phones = stored(server, target)
    assert len(phones) == 25  # no duplicate of the contact made elsewhere
    if target == "msgflash":  # created, met the duplicate answer, looked up: unchanged
        assert (load["created"], load["unchanged"]) == (4, 21)


@pytest.mark.parametrize("target", TARGETS)
def test_full_refresh_sees_drift_the_state_cannot(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    src = write_csv(tmp_path / "in.csv", 10)
    do_import(server, target, src, tmp_path / "r1", state)
    server.app.reset()  # someone emptied the account behind contactpipe's back
    blind = do_import(server, target, src, tmp_path / "r2", state)
    assert blind.summary["load"]["state"]["decided"]["skipped_by_state"] == 10
    assert stored(server, target) == {}  # the drift the state cannot see
    full = do_import(server, target, src, tmp_path / "r3", state, full_refresh=True)
    load = full.summary["load"]
    assert load["state"]["mode"] == "full_refresh"
    assert (load["created"], load["loaded"]) == (10, 10)
    assert len(stored(server, target)) == 10
    # the state was rebuilt: only the input's contacts, and the next run skips them all
    smaller = write_csv(tmp_path / "small.csv", 4)
    do_import(server, target, smaller, tmp_path / "r4", state, full_refresh=True)
    with sqlite3.connect(state) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM contacts WHERE target = ?", (target,)
        ).fetchone()
    assert count == 4


def test_two_concurrent_runs_share_one_state_file(server: SandboxServer, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    results: dict[str, RunResult] = {}
    errors: list[BaseException] = []

    def run(target: str) -> None:
        try:
            src = write_csv(tmp_path / f"{target}.csv", 300)
            results[target] = do_import(
                server, target, src, tmp_path / f"out-{target}", state, batch_size=50
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in TARGETS]
    threads += [threading.Thread(target=run, args=(TARGETS[0],))]  # twice the same account
    for t in threads[:-1]:
        t.start()
    for t in threads[:-1]:
        t.join()
    assert not errors, errors
    for target in TARGETS:
        assert results[target].summary["load"]["loaded"] == 300
    server.app.journal.clear()
    both = []
    for k in range(2):  # two runs at once on the same account: both skip everything
        both.append(threading.Thread(target=run, args=(TARGETS[k % len(TARGETS)],)))
    for t in both:
        t.start()
    for t in both:
        t.join()
    assert not errors, errors
    assert requests_made(server) == []
    with sqlite3.connect(state) as db:
        rows = dict(db.execute("SELECT target, count(*) FROM contacts GROUP BY target").fetchall())
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert rows == dict.fromkeys(TARGETS, 300)
    assert mode == "wal"


def start_import(server: SandboxServer, target: str, src: Path, out: Path, state: Path) -> Any:
    """The CLI in its own process, each request slowed down so that it can be stopped."""
    setattr(server.settings, f"{target}_latency_ms", 300.0)
    env = {**os.environ, **sandbox_env(server), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "contactpipe.cli", "import", str(src), "--target", target]
    args += ["--batch-size", "10", "--report-dir", str(out), "-q"]
    args += ["--state", str(state), "--region", "FR"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_writes(server: SandboxServer, target: str, proc: Any, n: int) -> None:
    method, _ = WRITE[target]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        done = sum(1 for e in server.app.journal if e.method == method and e.status in (200, 201))
        if done >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"the import ended or stalled before {n} writes")


def resume(server: SandboxServer, target: str, src: Path, out: Path, state: Path) -> dict:
    time.sleep(0.5)  # a request still in flight lands
    setattr(server.settings, f"{target}_latency_ms", 0.0)
    args = ["import", str(src), "--target", target, "--state", str(state), "-q"]
    args += ["--region", "FR", "--report-dir", str(out), "--resume"]
    result = CliRunner().invoke(main, args, env=sandbox_env(server))
    assert result.exit_code == 0, result.output
    summary: dict = json.loads((out / "summary.json").read_text("utf-8"))
    return summary


@pytest.mark.off_contract  # SIGTERM while httpx writes a body: the sandbox gets it cut (422)
@pytest.mark.parametrize("target", TARGETS)
def test_resume_after_sigterm_sends_only_the_rest(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    state, src = tmp_path / "state.sqlite", write_csv(tmp_path / "in.csv", 40)
    proc = start_import(server, target, src, tmp_path / "out", state)
    wait_for_writes(server, target, proc, 2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, (stdout + stderr).decode()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text("utf-8"))
    confirmed = summary["load"]["state"]["confirmed_this_run"]
    assert 2 <= confirmed < 40
    assert confirmed == summary["load"]["loaded"]
    run_id = summary["load"]["state"]["run_id"]

    again = resume(server, target, src, tmp_path / "again", state)
    load = again["load"]
    assert load["state"]["run_id"] == run_id  # one run, continued
    assert load["state"]["mode"] == "resume"
    assert load["state"]["decided"]["resumed"] == confirmed
    assert load["state"]["decided"]["sent"] == 40 - confirmed
    assert (load["loaded"], load["failed"]) == (40, 0)  # the report covers the whole run
    assert len(stored(server, target)) == 40  # exact, no duplicate
    if target != "msgflash":  # the ledger: the batch in flight at SIGTERM was settled
        ledger = load["state"]["batches"]
        assert "sent" not in ledger
        assert ledger.get("settled", 0) == load["state"]["unknown_batches_settled"] <= 1
        assert ledger["confirmed"] == confirmed // 10 + 1  # then the rest in one batch


@pytest.mark.off_contract  # a request cut by kill -9 reaches the sandbox truncated
@pytest.mark.parametrize("target", TARGETS)
def test_resume_after_kill_9(server: SandboxServer, target: str, tmp_path: Path) -> None:
    state, src = tmp_path / "state.sqlite", write_csv(tmp_path / "in.csv", 40)
    proc = start_import(server, target, src, tmp_path / "out", state)
    # two batches, or two rounds of MsgFlash's 8 concurrent creates (recorded every 0.25 s)
    wait_for_writes(server, target, proc, 16 if target == "msgflash" else 2)
    time.sleep(0.05)  # the last answer is read and recorded
    proc.kill()
    proc.communicate(timeout=60)
    assert not (tmp_path / "out" / "summary.json").exists()
    with sqlite3.connect(state) as db:
        (status,) = db.execute("SELECT status FROM runs").fetchone()
        (kept,) = db.execute("SELECT count(*) FROM contacts").fetchone()
    assert status == "running"  # killed: never closed
    assert kept >= 1  # confirmations were written as they came
    with sqlite3.connect(state) as db:
        unknown = db.execute("SELECT count(*) FROM batches WHERE status = 'sent'").fetchone()[0]
    assert unknown == (0 if target == "msgflash" else 1)  # the batch in flight when killed

    server.app.journal.clear()
    again = resume(server, target, src, tmp_path / "again", state)
    load = again["load"]
    assert load["state"]["decided"]["resumed"] == kept
    assert load["state"]["unknown_batches_settled"] == unknown
    assert (load["loaded"], load["failed"]) == (40, 0)
    phones = stored(server, target)
    assert len(phones) == 40  # exact, no duplicate
    writes = [e for e in server.app.journal if e.method == WRITE[target][0]]
    if target != "msgflash":  # what was left, in batches of 10, at most one batch again
        assert len(writes) <= (40 - kept) // 10 + 1
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("finished",)]


@pytest.mark.off_contract  # a request cut by kill -9 reaches the sandbox truncated
def test_resume_refuses_other_inputs_and_nothing_to_resume(
    server: SandboxServer, tmp_path: Path
) -> None:
    state, src = tmp_path / "state.sqlite", write_csv(tmp_path / "in.csv", 40)
    target = "waapi"
    args = ["import", str(src), "--target", target, "--state", str(state), "-q"]
    args += ["--region", "FR", "--report-dir", str(tmp_path / "r"), "--resume"]
    result = CliRunner().invoke(main, args, env=sandbox_env(server))
    assert result.exit_code == 2
    assert "no interrupted import into this WAAPI account" in result.output
    proc = start_import(server, target, src, tmp_path / "out", state)
    wait_for_writes(server, target, proc, 1)
    proc.kill()
    proc.communicate(timeout=60)
    setattr(server.settings, f"{target}_latency_ms", 0.0)
    write_csv(src, 40, changed={3})  # the file changed since
    result = CliRunner().invoke(main, args, env=sandbox_env(server))
    assert result.exit_code == 2
    assert "the input files differ from those of the interrupted run" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("target", TARGETS)
def test_mirror_deletes_what_this_tool_loaded_and_the_input_no_longer_has(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    do_import(server, target, write_csv(tmp_path / "a.csv", 30), tmp_path / "r1", state)
    # someone else's contact: --mirror leaves it, --mirror=all deletes it
    other = write_csv(tmp_path / "other.csv", 1, start=500)
    imp = ImportOptions(
        target=target, load=LoadOptions(poll_interval_s=0.02), env=sandbox_env(server)
    )
    import_files([str(other)], RunOptions(region="FR"), imp, tmp_path / "r-other")
    smaller = write_csv(tmp_path / "b.csv", 25)

    server.app.journal.clear()
    imp = dataclasses.replace(imp, state=state, mirror="state", load=LoadOptions(dry_run=True))
    dry = import_files([str(smaller)], RunOptions(region="FR"), imp, tmp_path / "r-dry")
    assert len(dry.summary["load"]["mirror"]["would_delete"]) == 5
    assert requests_made(server) == [] and len(stored(server, target)) == 31
    with pytest.raises(UsageError, match="above the safety limit of 4"):
        do_import(server, target, smaller, tmp_path / "r2", state, mirror="state", max_delete=4)
    refused = json.loads((tmp_path / "r2" / "summary.json").read_text("utf-8"))["load"]
    assert "refused" in refused["mirror"] and refused["loaded"] == 25
    assert len(stored(server, target)) == 31  # nothing deleted

    done = do_import(server, target, smaller, tmp_path / "r3", state, mirror="state")
    mirror = done.summary["load"]["mirror"]
    assert (mirror["candidates"], mirror["deleted"], mirror["failed"]) == (5, 5, 0)
    assert sorted(stored(server, target)) == sorted(
        [f"+33612{i // 10000:02d}{i // 100 % 100:02d}{i % 100:02d}" for i in (*range(25), 500)]
    )
    with sqlite3.connect(state) as db:
        (count,) = db.execute("SELECT count(*) FROM contacts").fetchone()
    assert count == 25  # the deleted contacts are forgotten

    everything = do_import(server, target, smaller, tmp_path / "r4", state, mirror="all")
    mirror = everything.summary["load"]["mirror"]
    assert (mirror["mode"], mirror["candidates"], mirror["deleted"]) == ("all", 1, 1)
    assert len(stored(server, target)) == 25


def test_mirror_waits_for_a_complete_import(server: SandboxServer, tmp_path: Path) -> None:
    target = "waapi"
    state = tmp_path / "state.sqlite"
    do_import(server, target, write_csv(tmp_path / "a.csv", 30), tmp_path / "r1", state)
    server.app.faults.add(target, *WRITE[target], status=503, times=None)
    result = do_import(
        server, target, write_csv(tmp_path / "b.csv", 20, changed={1}), tmp_path / "r2", state,
        mirror="state",
    )  # fmt: skip
    assert result.summary["load"]["mirror"] == {
        "skipped": "the import did not complete: nothing deleted"
    }
    server.app.faults.clear()
    assert len(stored(server, target)) == 30


def test_resume_after_the_msgflash_quota_stop(server: SandboxServer, tmp_path: Path) -> None:
    state, src = tmp_path / "state.sqlite", write_csv(tmp_path / "in.csv", 30)
    server.settings.msgflash_monthly_quota = 12  # one listing page, then 11 creates
    stopped = do_import(server, "msgflash", src, tmp_path / "r1", state)
    load = stopped.summary["load"]
    assert load["aborted"] and 0 < load["loaded"] < 30
    assert stopped.aborted is not None and stopped.aborted.exit_code == 4
    server.settings.msgflash_monthly_quota = None  # a new month
    again = do_import(server, "msgflash", src, tmp_path / "r2", state, resume=True)
    load = again.summary["load"]
    assert load["state"]["run_id"] == stopped.summary["load"]["state"]["run_id"]
    assert load["state"]["decided"]["resumed"] == stopped.summary["load"]["loaded"]
    assert (load["loaded"], load["failed"]) == (30, 0)
    assert len(stored(server, "msgflash")) == 30


def test_cli_state_file_from_the_environment_and_no_state(
    server: SandboxServer, tmp_path: Path, _own_state_file: Path
) -> None:
    src = write_csv(tmp_path / "in.csv", 12)
    base = ["import", str(src), "--target", "waapi", "-q", "--region", "FR"]
    env = sandbox_env(server)
    first = CliRunner().invoke(main, [*base, "--report-dir", str(tmp_path / "r1")], env=env)
    assert first.exit_code == 0, first.output
    assert _own_state_file.is_file()  # CONTACTPIPE_STATE, set for every test
    server.app.journal.clear()
    again = CliRunner().invoke(main, [*base, "--report-dir", str(tmp_path / "r2")], env=env)
    assert again.exit_code == 0 and requests_made(server) == []
    off = CliRunner().invoke(
        main, [*base, "--no-state", "--report-dir", str(tmp_path / "r3")], env=env
    )
    assert off.exit_code == 0 and len(requests_made(server)) == 1  # today's behaviour
    summary = json.loads((tmp_path / "r3" / "summary.json").read_text("utf-8"))
    assert "state" not in summary["load"]
    both = CliRunner().invoke(main, [*base, "--no-state", "--state", str(tmp_path / "x")])
    assert both.exit_code == 2 and "contradict" in both.output
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"garbage" * 200)
    broken = CliRunner().invoke(main, [*base, "--state", str(bad)], env=env)
    assert broken.exit_code == 2 and "Traceback" not in broken.output
    assert "state file" in broken.output


def test_mirror_stopped_by_the_api_is_not_a_success(server: SandboxServer, tmp_path: Path) -> None:
    target, state = "waapi", tmp_path / "state.sqlite"
    do_import(server, target, write_csv(tmp_path / "a.csv", 12), tmp_path / "r1", state)
    server.app.faults.add(target, "DELETE", "*", status=503, times=None)
    result = do_import(
        server, target, write_csv(tmp_path / "b.csv", 10), tmp_path / "r2", state, mirror="state"
    )
    server.app.faults.clear()
    assert result.aborted is not None and result.aborted.exit_code == 4
    assert result.summary["load"]["mirror"]["aborted"]
    assert len(stored(server, target)) == 12
