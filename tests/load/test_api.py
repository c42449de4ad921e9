"""The public Python API (``import contactpipe``): typed results that are ``summary.json``,
outcomes raised as the exceptions whose exit codes the CLI uses, credentials passed explicitly,
an injected transport and retry policy.  Runs against the sandbox on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from load_helpers import sandbox_env

import contactpipe as contactpipe
from contactpipe.cli import main
from contactpipe.errors import (
    IncompleteLoadError,
    Interrupted,
    RemoteError,
    TerminalRemoteError,
    ThresholdError,
    TransientRemoteError,
)
from contactpipe.sandbox import SandboxServer

FAST = contactpipe.RetryPolicy(attempts=3, backoff_s=0.005, backoff_cap_s=0.01)
LOAD = contactpipe.LoadOptions(retry=FAST, poll_interval_s=0.02)
VALID = 12


def source_csv(tmp_path: Path, name: str = "contacts.csv") -> Path:
    """VALID good rows, a bad phone, a row without a phone and a duplicate of the first."""
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Nom", "Téléphone", "Tags"])
        for i in range(VALID):
            w.writerow([f"Client {i}", f"06 12 34 56 {i:02d}", "vip"])
        w.writerow(["Bad phone", "12", ""])
        w.writerow(["No phone", "", ""])
        w.writerow(["Client 0 again", "+33 6 12 34 56 00", ""])
    return path


def _no_target_env(monkeypatch: pytest.MonkeyPatch, server: SandboxServer) -> dict[str, str]:
    """The sandbox's variables, removed from os.environ: credentials must come from the
    mapping the test passes."""
    env = sandbox_env(server)
    for var in env:
        monkeypatch.delenv(var, raising=False)
    return env


def test_validate_result_is_its_summary_json(tmp_path: Path) -> None:
    result = contactpipe.validate(
        source_csv(tmp_path), contactpipe.RunOptions(region="FR"), report_dir=tmp_path / "r"
    )
    on_disk = json.loads(result.reports.summary_json.read_text(encoding="utf-8"))
    assert result.to_dict() == on_disk
    assert (result.command, result.rows_read, result.valid) == ("validate", 15, VALID)
    assert (result.rejected, result.duplicates) == (2, 1)
    assert result.rows_read == result.empty_rows + result.valid + result.rejected + 1
    assert dict(result.by_code) == on_disk["by_code"] and result.by_code["DUPLICATE"] == 1
    assert result.load is None and result.migrate is None and result.aborted is None
    assert result.reports.directory == tmp_path / "r"
    assert result.reports.errors_csv.is_file() and result.reports.report_html is not None
    assert result.contacts.height == VALID
    assert result.ok and result.exit_code == 0 and result.raise_for_outcome() is result


def test_without_a_report_dir_the_report_goes_to_a_new_temporary_folder(tmp_path: Path) -> None:
    first = contactpipe.validate([str(source_csv(tmp_path))], contactpipe.RunOptions(region="FR"))
    second = contactpipe.validate(source_csv(tmp_path), contactpipe.RunOptions(region="FR"))
    for r in (first, second):
        assert r.reports.directory.name.startswith("contactpipe-validate-")
        assert r.reports.summary_json.is_file()
    assert first.reports.directory != second.reports.directory


def test_the_threshold_is_raised_as_threshold_error_as_the_cli_exits_3(tmp_path: Path) -> None:
    options = contactpipe.RunOptions(region="FR", max_error_rate=0.05)
    result = contactpipe.validate(source_csv(tmp_path), options, report_dir=tmp_path / "r")
    assert result.threshold_exceeded and not result.ok and result.exit_code == 3
    with pytest.raises(ThresholdError, match=r"13\.3% of rows rejected, above") as info:
        result.raise_for_outcome()
    assert info.value.exit_code == 3
    with pytest.raises(ThresholdError):
        contactpipe.validate(source_csv(tmp_path), options, report_dir=tmp_path / "r2", check=True)
    cli = CliRunner().invoke(
        main,
        [
            "validate",
            str(source_csv(tmp_path)),
            "--region",
            "FR",
            "--max-error-rate",
            "0.05",
            "--report-dir",
            str(tmp_path / "r3"),
            "-q",
        ],
    )
    assert cli.exit_code == result.exit_code == 3
    assert str(result.error()) in cli.stderr


def test_import_with_explicit_credentials_and_typed_load_figures(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = _no_target_env(monkeypatch, server)
    result = contactpipe.import_contacts(
        source_csv(tmp_path),
        "waapi",
        contactpipe.RunOptions(region="FR", extra_groups=("API",)),
        load=LOAD,
        credentials=creds,
        report_dir=tmp_path / "r",
        check=True,
    )
    load = result.load
    assert load is not None and load.section == "load" and load.target == "waapi"
    assert (load.loaded, load.created, load.failed) == (VALID, VALID, 0)
    assert load.requests >= 1 and load.plan and load.plan[0].requests >= 1
    assert result.valid == load.loaded + load.failed
    assert result.to_dict() == json.loads(result.reports.summary_json.read_text("utf-8"))
    assert len(server.app.state.waapi.contacts) == VALID
    # without the mapping, the environment (emptied above) is what is read
    with pytest.raises(contactpipe.UsageError, match="WAAPI_BASE_URL"):
        contactpipe.import_contacts(source_csv(tmp_path), "waapi", report_dir=tmp_path / "r2")


def test_credentials_never_show_in_a_repr(server: SandboxServer) -> None:
    creds = contactpipe.Credentials(sandbox_env(server), EXTRA_TOKEN="s3cr3t-value-123")
    assert "s3cr3t" not in repr(creds) and "EXTRA_TOKEN=***" in repr(creds)
    assert creds["EXTRA_TOKEN"] == "s3cr3t-value-123" and len(creds) == len(sandbox_env(server)) + 1
    from contactpipe.api import _target

    imp = _target("waapi", {"WAAPI_TOKEN": "s3cr3t-value-123"}, None, None)
    assert "s3cr3t" not in repr(imp)


def test_refused_credentials_are_a_terminal_remote_error_as_the_cli_exits_4(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = {**_no_target_env(monkeypatch, server), "WAAPI_TOKEN": "not-the-token-123"}
    result = contactpipe.import_contacts(
        source_csv(tmp_path), "waapi", contactpipe.RunOptions(region="FR"), load=LOAD,
        credentials=creds, report_dir=tmp_path / "r",
    )  # fmt: skip
    assert isinstance(result.aborted, TerminalRemoteError) and result.exit_code == 4
    assert result.load is not None and result.load.failed == VALID and result.load.aborted
    assert result.by_code["NOT_SENT"] == VALID
    with pytest.raises(TerminalRemoteError) as info:
        result.raise_for_outcome()
    assert "not-the-token" not in str(info.value)
    for k, v in creds.items():
        monkeypatch.setenv(k, v)
    args = ["import", str(source_csv(tmp_path)), "--target", "waapi", "--region", "FR", "-q"]
    cli = CliRunner().invoke(main, [*args, "--report-dir", str(tmp_path / "r2")])
    assert cli.exit_code == 4


def test_an_injected_transport_and_retry_policy_carry_every_request(tmp_path: Path) -> None:
    """No server at all: the MockTransport answers 503, the policy allows 2 attempts."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(503, json={"error": {"code": "DOWN", "message": "down"}})

    load = contactpipe.LoadOptions(
        transport=httpx.MockTransport(answer),
        retry=contactpipe.RetryPolicy(attempts=2, backoff_s=0.001, backoff_cap_s=0.002),
    )
    result = contactpipe.import_contacts(
        source_csv(tmp_path),
        "vobiz",
        contactpipe.RunOptions(region="FR"),
        load=load,
        credentials={
            "VOBIZ_AUTH_ID": "MA_TEST01",
            "VOBIZ_AUTH_TOKEN": "token-0123456789",
            "VOBIZ_BASE_URL": "http://127.0.0.1:9/api/v1",  # never reached
        },
        report_dir=tmp_path / "r",
    )
    assert len(seen) == 2 and seen[0] == seen[1]
    assert isinstance(result.aborted, TransientRemoteError) and result.exit_code == 4
    assert result.load is not None and (result.load.requests, result.load.retries) == (2, 1)
    with pytest.raises(RemoteError):
        result.raise_for_outcome()


def test_rows_that_did_not_reach_the_api_raise_incomplete_load_as_the_cli_exits_5(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.app.faults.add("waapi", "POST", "/api/external/contacts/*/bulk", times=1, status=400)
    creds = _no_target_env(monkeypatch, server)
    load = contactpipe.LoadOptions(retry=FAST, batch_size=5)
    with pytest.raises(IncompleteLoadError) as info:
        contactpipe.import_contacts(
            source_csv(tmp_path), "waapi", contactpipe.RunOptions(region="FR"), load=load,
            credentials=creds, report_dir=tmp_path / "r", check=True,
        )  # fmt: skip
    assert info.value.rows == 5 and info.value.exit_code == 5
    assert "Re-running the same command finishes them" in str(info.value)
    again = contactpipe.import_contacts(
        source_csv(tmp_path), "waapi", contactpipe.RunOptions(region="FR"), load=load,
        credentials=creds, report_dir=tmp_path / "r2",
    )  # fmt: skip
    assert again.ok and again.load is not None and again.load.created == 5


def test_ctrl_c_during_the_load_is_returned_then_raised_as_interrupted(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contactpipe.load.client import ApiClient

    original = ApiClient.request
    calls: list[str] = []

    def request(self: ApiClient, method: str, path: str, **kwargs: Any) -> Any:
        if method == "POST":
            calls.append(path)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(ApiClient, "request", request)
    creds = _no_target_env(monkeypatch, server)
    load = contactpipe.LoadOptions(retry=FAST, batch_size=5, concurrency=1)
    result = contactpipe.import_contacts(
        source_csv(tmp_path), "waapi", contactpipe.RunOptions(region="FR"), load=load,
        credentials=creds, report_dir=tmp_path / "r",
    )  # fmt: skip
    assert isinstance(result.aborted, Interrupted) and result.exit_code == 130
    assert not isinstance(result.aborted, RemoteError)  # a retry must not restart it
    assert result.load is not None and result.load.loaded + result.load.failed == VALID
    with pytest.raises(Interrupted):
        result.raise_for_outcome()


def test_export_delete_groups_and_migrate_through_the_api(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = _no_target_env(monkeypatch, server)
    src = source_csv(tmp_path)
    options = contactpipe.RunOptions(region="FR")
    planned: list[tuple[contactpipe.PlanLine, ...]] = []

    def refuse(plan: tuple[contactpipe.PlanLine, ...]) -> None:
        planned.append(plan)
        raise contactpipe.UsageError("stop here")

    kw: dict[str, Any] = {"load": LOAD, "credentials": creds, "check": True}
    contactpipe.import_contacts(src, "msgflash", options, report_dir=tmp_path / "i", **kw)

    with pytest.raises(contactpipe.UsageError, match="stop here"):
        contactpipe.export_contacts(  # on_plan sees the plan before the first page
            "msgflash", tmp_path / "no.csv", load=LOAD, credentials=creds, on_plan=refuse
        )
    assert planned and planned[0][0].requests >= 1 and not (tmp_path / "no.csv").exists()
    before = set(tmp_path.iterdir())
    exported = contactpipe.export_contacts(
        "msgflash", tmp_path / "out.csv", load=LOAD, credentials=creds
    )
    assert exported.rows == VALID == exported.total_reported and exported.output.is_file()
    assert "phone" in exported.columns and exported.filled["phone"] == VALID
    assert exported.requests >= 1 and exported.to_dict()["command"] == "export"
    assert exported.seconds >= 0 and exported.plan == planned[0]
    assert exported.report_html is None is exported.summary_json  # no report_dir: no folder
    assert set(tmp_path.iterdir()) - before == {tmp_path / "out.csv"}
    with pytest.raises(contactpipe.UsageError, match=r"writes its own summary\.json"):
        contactpipe.export_contacts(  # the report would overwrite the output: refused first
            "msgflash",
            tmp_path / "x" / "summary.json",
            report_dir=tmp_path / "x",
            load=LOAD,
            credentials=creds,
        )
    kept = contactpipe.export_contacts(
        "msgflash", tmp_path / "out.csv", report_dir=tmp_path / "x", load=LOAD, credentials=creds
    )
    assert kept.report_html == tmp_path / "x" / "report.html" and kept.report_html.is_file()
    assert (
        kept.summary_json is not None and json.loads(kept.summary_json.read_text())["rows"] == VALID
    )

    added = contactpipe.change_group(
        src, "msgflash", "VIP", options, report_dir=tmp_path / "g", **kw
    )
    assert added.command == "groups add" and added.load is not None
    assert (added.load.section, added.load.loaded) == ("groups", VALID)

    moved = contactpipe.migrate(
        "msgflash", "waapi", report_dir=tmp_path / "m", load=LOAD, credentials=creds, check=True
    )
    assert moved.migrate is not None and moved.migrate.exported == VALID
    assert moved.migrate.export_file.is_file() and moved.load is not None
    assert moved.load.created == VALID and len(server.app.state.waapi.contacts) == VALID

    with pytest.raises(contactpipe.UsageError, match="above the safety limit of 3"):
        contactpipe.delete_contacts(
            src, "msgflash", options, max_delete=3, report_dir=tmp_path / "d0", **kw
        )
    assert len(server.app.state.msgflash.contacts) == VALID  # nothing deleted
    deleted = contactpipe.delete_contacts(
        src, "msgflash", options, max_delete=None, report_dir=tmp_path / "d", **kw
    )
    assert deleted.load is not None and (deleted.load.section, deleted.load.loaded) == (
        "delete",
        VALID,
    )
    assert len(server.app.state.msgflash.contacts) == 0


def test_the_package_exports_a_sorted_all_without_loading_polars() -> None:
    names = contactpipe.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(contactpipe, name) is not None, name
    probe = "import sys, contactpipe; print('polars' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    with pytest.raises(AttributeError):
        _ = contactpipe.no_such_name  # type: ignore[attr-defined]
    assert os.fspath(Path(contactpipe.__file__).parent / "py.typed")
    assert (Path(contactpipe.__file__).parent / "py.typed").is_file()
