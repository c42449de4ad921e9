"""report.html after real loads over HTTP to the sandbox: import (429s and retries on the
requests-over-time chart), migrate, delete and group changes all write the page."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from load_helpers import sandbox_env
from test_import_e2e import (
    VALID,
    WRITE,
    _fast_retries,  # noqa: F401 - the same autouse fixture here
    do_import,
    source_csv,
)
from test_manage_e2e import cli, imp

from contactpipe.report.html import REPORT_NAME
from contactpipe.run import RunOptions, migrate
from contactpipe.sandbox import SandboxServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: browser.py
from browser import check_in_browser, chromium_path, text_of


def test_import_page_marks_429s_and_retries(server: SandboxServer, tmp_path: Path) -> None:
    method, path = WRITE["msgflash"]
    server.app.faults.add("msgflash", method, path, times=1, status=429, code="RATE_LIMITED")
    server.app.faults.add("msgflash", method, path, times=2, status=503)
    result = do_import(server, "msgflash", source_csv(tmp_path), tmp_path / "r")
    load = result.summary["load"]
    assert (load["loaded"], load["rate_limited"]) == (VALID, 1)
    timeline = load["timeline"]
    assert sum(timeline["requests"]) == load["requests"]
    assert sum(timeline["rate_limited"]) == 1 and sum(timeline["retries"]) == load["retries"] == 3
    page = (tmp_path / "r" / REPORT_NAME).read_text(encoding="utf-8")
    text = text_of(page)
    assert "Load into msgflash" in text
    assert "429 rate limited: 1" in text and "retries: 3" in text
    assert page.count('fill="#d32f2f"><title>') == 1  # one bucket with a 429 marked
    # plan vs actual: the create endpoint planned 30 requests, sent 30 + 3 resends
    assert re.search(r"<code>POST /api/v1/contacts</code>.*?>30<.*?>33<", page, re.S)
    assert "Least total time under the documented rate limits" in text
    if chromium_path() is not None:
        check_in_browser(tmp_path / "r" / REPORT_NAME, "report-import-msgflash")


def test_migrate_page_has_the_export_and_what_was_not_carried(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    do_import(server, "msgflash", source_csv(tmp_path), tmp_path / "r0")
    result = migrate(imp(server, "msgflash"), imp(server, "vobiz"), RunOptions(), tmp_path / "m")
    assert result.summary["files_written"]["report_html"] == str(tmp_path / "m" / REPORT_NAME)
    text = text_of((tmp_path / "m" / REPORT_NAME).read_text(encoding="utf-8"))
    assert "Migrate msgflash → vobiz" in text
    assert f"{VALID} contact(s) exported from msgflash" in text
    assert "Export from msgflash" in text and "Load into vobiz" in text
    assert "export-msgflash.csv" in text
    for column, n in result.summary["migrate"]["not_carried"].items():
        assert f"{column} {n:,}" in text

    # --no-html: none written, none listed, no path printed
    out = tmp_path / "n"
    args = ["migrate", "--from", "msgflash", "--to", "waapi", "--report-dir", str(out), "-q"]
    done = cli(server, monkeypatch, *args, "--no-html")
    assert done.exit_code == 0, done.output
    assert not (out / REPORT_NAME).exists() and "page:" not in done.output
    assert "report_html" not in json.loads((out / "summary.json").read_text())["files_written"]


def test_delete_and_groups_write_the_page(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    do_import(server, "waapi", source_csv(tmp_path), tmp_path / "r0")
    listed = tmp_path / "some.csv"
    listed.write_text("phone,name\n+33612340001,x\n+33699999999,y\n", encoding="utf-8")
    for args, heading, folder in (
        (["groups", "add", "--group", "VIP"], "Group change in waapi", "g"),
        (["delete", "--dry-run"], "Delete from waapi (dry run: looked up, nothing changed)", "d1"),
        (["delete"], "Delete from waapi", "d2"),
    ):
        out = tmp_path / folder
        done = cli(
            server,
            monkeypatch,
            *args,
            str(listed),
            "--target",
            "waapi",
            "--report-dir",
            str(out),
            "-q",
        )
        assert done.exit_code == 0, done.output
        assert done.output.splitlines()[-1] == f"  page:     {out / REPORT_NAME}"
        text = text_of((out / REPORT_NAME).read_text(encoding="utf-8"))
        assert heading in text
        section = "groups" if args[0] == "groups" else "delete"
        part = json.loads((out / "summary.json").read_text())[section]
        assert part["not_found"] == 1
        verb = "changed" if section == "groups" else "deleted"
        if "--dry-run" in args:
            verb = f"would be {verb}"
        assert f"{verb}: 1 (" in text  # the outcome bar's legend
        assert f"not {verb} (not found or failed): 1 (" in text
    assert sandbox_env(server)  # the CLI ran against this sandbox


def test_dry_run_abort_and_threshold_pages_say_so(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = source_csv(tmp_path)
    do_import(server, "vobiz", src, tmp_path / "dry", dry_run=True)
    page = (tmp_path / "dry" / REPORT_NAME).read_text(encoding="utf-8")
    text = text_of(page)
    assert "Load into vobiz (dry run: nothing sent)" in text
    assert f"valid (dry run: not sent): {VALID} (" in text
    assert "failed at load" not in text  # nothing was sent: no such outcome
    assert re.search(r'href="dry-run/[^"]+"', page)
    if chromium_path() is not None:
        check_in_browser(tmp_path / "dry" / REPORT_NAME, "report-dry-run-vobiz")

    monkeypatch.setenv("WAAPI_TOKEN", "wrong-token-0123456789")
    for k, v in sandbox_env(server).items():
        if k != "WAAPI_TOKEN":
            monkeypatch.setenv(k, v)
    from click.testing import CliRunner

    from contactpipe.cli import main

    args = ["import", str(src), "--target", "waapi", "--region", "FR", "-q"]
    refused = CliRunner().invoke(main, [*args, "--report-dir", str(tmp_path / "a")])
    assert refused.exit_code == 4
    page = (tmp_path / "a" / REPORT_NAME).read_text(encoding="utf-8")
    assert '<p class="status bad">Aborted: ' in page and "wrong-token-0123456789" not in page
    assert f"failed at load: {VALID} (" in text_of(page)  # every valid row NOT_SENT

    over = CliRunner().invoke(
        main, [*args, "--max-error-rate", "0.01", "--report-dir", str(tmp_path / "t")]
    )
    assert over.exit_code == 3
    text = text_of((tmp_path / "t" / REPORT_NAME).read_text(encoding="utf-8"))
    assert "Nothing sent: not sent: " in text and "above --max-error-rate 1.0%" in text


def test_export_writes_its_page_and_summary(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    do_import(server, "msgflash", source_csv(tmp_path), tmp_path / "r0")
    out, report = tmp_path / "all.csv", tmp_path / "x"
    args = ["export", "--target", "msgflash", "-o", str(out), "--report-dir", str(report), "-q"]
    done = cli(server, monkeypatch, *args)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[-1] == f"  page:     {report / REPORT_NAME}"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["command"] == "export" and summary["rows"] == VALID
    assert summary["files_written"]["report_html"] == str(report / REPORT_NAME)
    page = (report / REPORT_NAME).read_text(encoding="utf-8")
    text = text_of(page)
    assert f"{VALID} contact(s) exported to {out}" in text  # the status line
    assert f"{VALID} rows written" in text and "Export from msgflash" in text
    assert "rows read" not in text and "What happened to every input row" not in text
    assert f"phone {VALID} 100.0%" in text  # columns filled
    assert re.search(r"<code>GET /api/v1/contacts[^<]*</code>", page)  # plan vs actual
    if chromium_path() is not None:
        check_in_browser(report / REPORT_NAME, "report-export-msgflash")

    # --no-html: summary.json only, no page, no path printed
    again = tmp_path / "n"
    args = ["export", "--target", "msgflash", "-o", str(out), "--report-dir", str(again)]
    done = cli(server, monkeypatch, *args, "--no-html", "-q")
    assert done.exit_code == 0, done.output
    assert not (again / REPORT_NAME).exists() and "page:" not in done.output
    assert "report_html" not in json.loads((again / "summary.json").read_text())["files_written"]
