"""``contactpipe import`` end to end, one suite for the three targets: a CSV goes through
extract -> transform -> load -> report over real HTTP to the sandbox on 127.0.0.1, and every
source row ends loaded, rejected, a duplicate or failed at load, with its source row."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from load_helpers import request_file_violations, sandbox_env

from contactpipe import run as run_module
from contactpipe.cli import main
from contactpipe.load import registry
from contactpipe.load.base import LoadOptions, Target
from contactpipe.load.client import RetryPolicy
from contactpipe.run import ImportOptions, RunOptions, RunResult, import_files
from contactpipe.sandbox import SandboxServer

TARGETS = registry.names()
VALID = 30
# the default number of attempts, without the waiting
POLICY = RetryPolicy(attempts=6, backoff_s=0.005, backoff_cap_s=0.02, throttle_backoff_s=0.02)
# the endpoint each target writes contacts through (fault injection)
WRITE = {
    "msgflash": ("POST", "/api/v1/contacts"),
    "waapi": ("POST", "/api/external/contacts/*/bulk"),
    "vobiz": ("POST", "/api/v1/messaging/contacts/import"),
}


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests wait milliseconds, not seconds, between retries (test_manage_e2e imports it)."""
    original = Target.__init__

    def init(self: Target, *args: Any, **kwargs: Any) -> None:
        kwargs["policy"] = POLICY
        original(self, *args, **kwargs)

    monkeypatch.setattr(Target, "__init__", init)


def source_csv(tmp_path: Path) -> Path:
    """VALID good rows, then a bad phone, a missing phone and a duplicate of row 2."""
    path = tmp_path / "contacts.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Nom", "Téléphone", "Tags", "Ville"])
        for i in range(VALID):
            w.writerow([f"Client {i}", f"06 12 34 {i // 100:02d} {i % 100:02d}", "vip", "Lyon"])
        w.writerow(["Bad phone", "12", "", ""])
        w.writerow(["No phone", "", "", ""])
        w.writerow(["Client 0 again", "+33 6 12 34 00 00", "", ""])
    return path


def phones_in(server: SandboxServer, target: str) -> list[str]:
    state = server.app.state
    if target == "msgflash":
        return [c.phone for c in state.msgflash.contacts.values()]
    if target == "waapi":
        return ["+" + c.phone for c in state.waapi.contacts.values()]
    return [c.phone_number for c in state.vobiz.contacts.values()]


def do_import(server: SandboxServer, target: str, src: Path, out: Path, **load: Any) -> RunResult:
    imp = ImportOptions(
        target=target,
        load=LoadOptions(poll_interval_s=0.02, **load),
        env=sandbox_env(server),
    )
    options = RunOptions(region="FR", extra_groups=("E2E",))
    return import_files([str(src)], options, imp, out)


def error_rows(result: RunResult) -> dict[int, str]:
    with open(result.report_files["errors_csv"], encoding="utf-8") as fh:
        return {int(r["row"]): r["code"] for r in csv.DictReader(fh)}


def check_accounting(summary: dict[str, Any]) -> None:
    load = summary["load"]
    assert summary["rows_read"] == (
        summary["empty_rows"]
        + load["loaded"]
        + load["failed"]
        + summary["rejected"]
        + summary["duplicates"]
    )
    assert load["loaded"] == load["created"] + load["updated"] + load["unchanged"]


@pytest.mark.parametrize("target", TARGETS)
def test_import_then_rerun_changes_nothing(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    src = source_csv(tmp_path)
    first = do_import(server, target, src, tmp_path / "r1")
    load = first.summary["load"]
    assert (load["created"], load["failed"], load["loaded"]) == (VALID, 0, VALID)
    check_accounting(first.summary)
    assert error_rows(first) == {32: "INVALID_NUMBER", 33: "MISSING_PHONE", 34: "DUPLICATE"}
    phones = phones_in(server, target)
    assert sorted(phones) == sorted(f"+3361234{i // 100:02d}{i % 100:02d}" for i in range(VALID))
    summary = json.loads(Path(first.report_files["summary_json"]).read_text())
    assert summary["load"]["target"] == target

    again = do_import(server, target, src, tmp_path / "r2")
    load = again.summary["load"]
    assert (load["created"], load["updated"], load["unchanged"]) == (0, 0, VALID)
    assert sorted(phones_in(server, target)) == sorted(phones)  # no duplicate anywhere
    check_accounting(again.summary)


@pytest.mark.parametrize("target", TARGETS)
def test_429_storm_5xx_and_dropped_connections_lose_and_duplicate_nothing(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    method, path = WRITE[target]
    faults = server.app.faults
    faults.add(target, method, path, times=4, status=429, retry_after=0)
    faults.add(target, method, path, times=2, status=500)
    faults.add(target, method, path, times=1, status=503)
    faults.add(target, method, path, times=2, drop=True)
    result = do_import(server, target, source_csv(tmp_path), tmp_path / "r", batch_size=7)
    load = result.summary["load"]
    assert (load["loaded"], load["failed"]) == (VALID, 0)
    assert load["rate_limited"] == 4
    assert load["retries"] >= 9
    phones = phones_in(server, target)
    assert len(phones) == len(set(phones)) == VALID
    check_accounting(result.summary)


@pytest.mark.parametrize("target", TARGETS)
def test_a_request_refused_by_the_api_is_traced_to_its_source_rows(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    method, path = WRITE[target]
    status = 422 if target == "vobiz" else 400
    server.app.faults.add(target, method, path, times=1, status=status)
    result = do_import(server, target, source_csv(tmp_path), tmp_path / "r", batch_size=10)
    errors = error_rows(result)
    failed = {row: code for row, code in errors.items() if code in ("API_REJECTED", "LOAD_FAILED")}
    # MsgFlash creates one contact per request: one row; the bulk APIs: the first batch of 10
    assert len(failed) == (1 if target == "msgflash" else 10)
    assert all(2 <= row <= VALID + 1 for row in failed)
    assert result.summary["load"]["failed"] == len(failed)
    assert result.summary["load"]["loaded"] == VALID - len(failed)
    assert len(phones_in(server, target)) == VALID - len(failed)
    check_accounting(result.summary)


@pytest.mark.parametrize("target", TARGETS)
def test_dry_run_writes_payloads_and_sends_nothing(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    stale = tmp_path / "r" / "dry-run" / f"{target}-stale-9999.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # left by an earlier, larger plan
    result = do_import(server, target, source_csv(tmp_path), tmp_path / "r", dry_run=True)
    assert not stale.exists()
    load = result.summary["load"]
    assert load["dry_run"] is True
    files = [Path(f) for f in load["request_files"]]
    assert files and all(f.parent == tmp_path / "r" / "dry-run" and f.stat().st_size for f in files)
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    assert "+33612340000" in text and "Client 29" in text and "Bad phone" not in text
    assert [v for f in files for v in request_file_violations(f)] == []
    assert sum(line["items"] for line in load["plan"] if "contacts" in line["endpoint"]) >= VALID
    assert len(server.app.journal.entries(api=target)) == 0


@pytest.mark.parametrize("target", TARGETS)
def test_wrong_credentials_exit_4_with_a_clear_message_and_no_secret(
    server: SandboxServer, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = sandbox_env(server)
    secret_var = {
        "msgflash": "MSGFLASH_API_KEY",
        "waapi": "WAAPI_TOKEN",
        "vobiz": "VOBIZ_AUTH_TOKEN",
    }[target]
    secret = "msgf_live_" + "ab" * 32 if target == "msgflash" else "wrong-secret-0123456789"
    env[secret_var] = secret
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "r"
    src = source_csv(tmp_path)
    args = ["import", str(src), "--target", target, "--region", "FR", "--report-dir", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 4, result.output
    assert "refused" in result.stderr and "401" in result.stderr
    assert "Re-running the same import is safe" in result.stderr
    files = b"".join(p.read_bytes() for p in out.iterdir())
    assert secret not in result.output and secret.encode() not in files
    summary = json.loads((out / "summary.json").read_text())
    assert summary["load"]["failed"] == VALID and summary["load"]["aborted"]
    assert set(error_rows_from(out).values()) >= {"NOT_SENT"}


def error_rows_from(out: Path) -> dict[int, str]:
    with (out / "errors.csv").open(encoding="utf-8") as fh:
        return {int(r["row"]): r["code"] for r in csv.DictReader(fh)}


@pytest.mark.parametrize("target", TARGETS)
def test_an_interrupted_load_still_reports_every_row(
    server: SandboxServer, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of the load: the report is written, what was loaded is counted,
    every other row is NOT_SENT, and a re-run completes the import without duplicates."""
    from contactpipe.load.client import ApiClient

    method, path = WRITE[target]
    original = ApiClient.request
    writes = []

    def request(self: ApiClient, m: str, p: str, **kwargs: Any) -> Any:
        if m == method and p.rstrip("/").endswith(path.rsplit("/", 1)[-1]):
            writes.append(p)
            if len(writes) == 2:
                raise KeyboardInterrupt
        return original(self, m, p, **kwargs)

    monkeypatch.setattr(ApiClient, "request", request)
    src = source_csv(tmp_path)
    result = do_import(server, target, src, tmp_path / "r", batch_size=10, concurrency=1)
    assert isinstance(result.aborted, run_module.Interrupted)
    load = result.summary["load"]
    assert load["loaded"] + load["failed"] == VALID
    codes = list(error_rows(result).values())
    # MsgFlash adds groups after the creates: a contact created before Ctrl-C is in the API
    # but not in its group, and says so
    in_api = load["loaded"] + codes.count("GROUP_NOT_ADDED")
    assert 1 <= in_api <= 20
    assert codes.count("NOT_SENT") + codes.count("GROUP_NOT_ADDED") == load["failed"]
    assert len(phones_in(server, target)) == in_api

    monkeypatch.setattr(ApiClient, "request", original)
    again = do_import(server, target, src, tmp_path / "r2", batch_size=10)
    assert again.summary["load"]["unchanged"] == in_api
    assert again.summary["load"]["created"] == VALID - in_api
    assert again.summary["load"]["failed"] == 0
    assert len(set(phones_in(server, target))) == len(phones_in(server, target)) == VALID


def test_too_many_rejects_sends_nothing_and_exits_3(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in sandbox_env(server).items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "r"
    args = ["import", str(source_csv(tmp_path)), "--target", "waapi", "--region", "FR"]
    args += ["--report-dir", str(out), "--max-error-rate", "0.01", "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    assert "load skipped, nothing sent" in result.output
    assert len(server.app.journal.entries(api="waapi")) == 0
    codes = error_rows_from(out)
    assert list(codes.values()).count("NOT_SENT") == VALID


def test_dry_run_prints_the_plan(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MSGFLASH_API_KEY", raising=False)  # a dry run needs no credentials
    out = tmp_path / "r"
    args = ["import", str(source_csv(tmp_path)), "--target", "msgflash", "--region", "FR"]
    args += ["--report-dir", str(out), "--dry-run", "-q", "--batch-size", "20"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "dry run: nothing was sent" in result.output
    assert "POST /api/v1/contacts: 30 request(s) for 30 item(s), >= 3.0 s" in result.output
    assert "least total time under the rate limits" in result.output
    assert sorted(p.name for p in (out / "dry-run").iterdir())[:2] == [
        "msgflash-contacts-0001.ndjson",
        "msgflash-contacts-0002.ndjson",
    ]
    assert len(server.app.journal.entries()) == 0


def run_cli(server: SandboxServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    for k, v in sandbox_env(server).items():
        monkeypatch.setenv(k, v)
    return CliRunner().invoke(main, ["import", *args, "--region", "FR", "-q"])


def test_a_batch_that_did_not_reach_the_api_exits_5_until_a_rerun_finishes(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: WAAPI answered 400 to a bulk batch; the run used to exit 0."""
    server.app.faults.add("waapi", *WRITE["waapi"], times=1, status=400)
    src = str(source_csv(tmp_path))
    args = [src, "--target", "waapi", "--batch-size", "10"]
    first = run_cli(server, monkeypatch, *args, "--report-dir", str(tmp_path / "r1"))
    assert first.exit_code == 5, first.output
    assert "incomplete load: 10 rows did not reach the API" in first.stderr
    assert "Re-running the same command finishes them" in first.stderr
    assert list(error_rows_from(tmp_path / "r1").values()).count("LOAD_FAILED") == 10
    assert len(phones_in(server, "waapi")) == VALID - 10
    again = run_cli(server, monkeypatch, *args, "--report-dir", str(tmp_path / "r2"))
    assert again.exit_code == 0, again.output
    assert len(phones_in(server, "waapi")) == VALID


def test_a_group_not_applied_exits_5(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.app.faults.add("msgflash", "POST", "/api/v1/contacts/groups/*/members", status=400)
    args = [str(source_csv(tmp_path)), "--target", "msgflash", "--group", "Newsletter"]
    result = run_cli(server, monkeypatch, *args, "--report-dir", str(tmp_path / "r"))
    assert result.exit_code == 5, result.output
    codes = list(error_rows_from(tmp_path / "r").values())
    assert codes.count("GROUP_NOT_ADDED") == VALID
    assert len(phones_in(server, "msgflash")) == VALID  # the contacts are there, not the group


def test_max_error_rate_counts_the_rows_the_api_refused(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = str(source_csv(tmp_path))
    server.app.faults.add("msgflash", *WRITE["msgflash"], times=2, status=400)
    r0 = str(tmp_path / "r0")
    lenient = run_cli(server, monkeypatch, src, "--target", "msgflash", "--report-dir", r0)
    assert lenient.exit_code == 0, lenient.output  # refused rows are reported, not a failure
    server.app.reset()
    server.app.faults.add("msgflash", *WRITE["msgflash"], times=2, status=400)
    out = tmp_path / "r"
    args = [src, "--target", "msgflash", "--report-dir", str(out), "--max-error-rate", "0.1"]
    result = run_cli(server, monkeypatch, *args)
    # 2 rows rejected here (bad and missing phone) + 2 refused by the API, of 33 non-empty
    summary = json.loads((out / "summary.json").read_text())
    assert summary["by_code"]["API_REJECTED"] == 2
    assert summary["error_rate"] == round(4 / 33, 6)
    assert result.exit_code == 3, result.output
    assert "12.1% of rows rejected" in result.stderr


@pytest.mark.parametrize("command", [["import"], ["delete"], ["migrate"], ["groups", "add"]])
def test_help_documents_the_incomplete_load_exit_code(command: list[str]) -> None:
    text = " ".join(CliRunner().invoke(main, [*command, "--help"]).output.split())
    assert "5 incomplete load: rows did not reach the API" in text
    assert "re-run the same command to finish" in text


@pytest.mark.parametrize("target", TARGETS)
def test_an_import_prints_its_plan_before_the_first_request(
    server: SandboxServer, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in sandbox_env(server).items():
        monkeypatch.setenv(k, v)
    args = ["import", str(source_csv(tmp_path)), "--target", target, "--region", "FR"]
    result = CliRunner().invoke(main, [*args, "--report-dir", str(tmp_path / "r")])
    planned = [line for line in result.stderr.splitlines() if line.startswith("plan: ")]
    assert planned and all(line.startswith(f"plan: {target}: ") for line in planned)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())["load"]
    assert summary["loaded"] == VALID and summary["plan"]
    assert len(planned) >= len(summary["plan"])  # every line, then the total when timed
