"""export, delete, groups and migrate end to end, over real HTTP to the sandbox, through the
same run functions and CLI a user calls."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from load_helpers import sandbox_env
from test_import_e2e import (
    TARGETS,
    VALID,
    _fast_retries,  # noqa: F401 - the same autouse fixture here
    do_import,
    phones_in,
    source_csv,
)

from contactpipe.cli import main
from contactpipe.load import registry
from contactpipe.load.base import ExportFilters, LoadOptions
from contactpipe.run import ImportOptions, RunOptions, export_contacts, import_files, migrate
from contactpipe.sandbox import SandboxServer

GROUPED = registry.with_capability("groups")


def imp(server: SandboxServer, target: str, **load: Any) -> ImportOptions:
    load.setdefault("poll_interval_s", 0.02)
    return ImportOptions(target=target, load=LoadOptions(**load), env=sandbox_env(server))


def cli(server: SandboxServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    for k, v in sandbox_env(server).items():
        monkeypatch.setenv(k, v)
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("target", "suffix"),
    [*((t, ".csv") for t in TARGETS), ("waapi", ".xlsx"), ("msgflash", ".parquet")],
)
def test_export_then_reimport_changes_nothing(
    server: SandboxServer, target: str, suffix: str, tmp_path: Path
) -> None:
    do_import(server, target, source_csv(tmp_path), tmp_path / "r1")
    out = tmp_path / f"export{suffix}"
    with_groups = target in GROUPED
    summary = export_contacts(imp(server, target), out, ExportFilters(), with_groups=with_groups)
    assert summary["rows"] == VALID
    frame = pl.read_parquet(out) if suffix == ".parquet" else None
    if frame is not None:
        assert frame.schema["tags"] == pl.List(pl.String)
        assert sorted(frame.get_column("phone").to_list()) == sorted(phones_in(server, target))
    journal_before = len(server.app.journal.entries(api=target))
    again = import_files([str(out)], RunOptions(), imp(server, target), tmp_path / "r2")
    load = again.summary["load"]
    assert (load["created"], load["updated"], load["unchanged"]) == (0, 0, VALID)
    assert again.summary["rejected"] == again.summary["duplicates"] == 0
    later = server.app.journal.entries(api=target)[journal_before:]
    creates_or_updates = [
        e.path
        for e in later
        if e.method == "PUT"
        or (e.method == "POST" and e.path.rstrip("/").endswith(("/contacts", "/import")))
    ]
    assert creates_or_updates == []  # WAAPI's bulk upsert is allowed: it reported no change
    if with_groups:
        assert "groups" in summary["columns"]


def test_export_csv_for_excel_has_a_bom_and_text_phones(
    server: SandboxServer, tmp_path: Path
) -> None:
    do_import(server, "vobiz", source_csv(tmp_path), tmp_path / "r1")
    out = tmp_path / "excel.csv"
    export_contacts(imp(server, "vobiz"), out, ExportFilters(), excel=True)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert len(rows) == VALID and all(r["phone"].startswith("+33") for r in rows)


def test_an_interrupted_export_leaves_no_file(server: SandboxServer, tmp_path: Path) -> None:
    do_import(server, "vobiz", source_csv(tmp_path), tmp_path / "r1")
    out = tmp_path / "never.csv"
    server.app.faults.add("vobiz", "GET", "/api/v1/messaging/contacts", times=None, status=503)
    with pytest.raises(Exception, match="Vobiz"):
        export_contacts(imp(server, "vobiz"), out, ExportFilters())
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".never")] == []


@pytest.mark.parametrize(("source", "dest"), list(itertools.permutations(TARGETS, 2)))
def test_migrate_between_every_pair(
    server: SandboxServer, source: str, dest: str, tmp_path: Path
) -> None:
    do_import(server, source, source_csv(tmp_path), tmp_path / "r0")
    result = migrate(imp(server, source), imp(server, dest), RunOptions(), tmp_path / "m")
    load = result.summary["load"]
    assert (load["created"], load["failed"]) == (VALID, 0)
    assert sorted(phones_in(server, dest)) == sorted(phones_in(server, source))
    moved = result.summary["migrate"]
    assert (moved["from"], moved["to"], moved["exported"]) == (source, dest, VALID)
    assert moved["not_carried"]["id"] == VALID  # the source's own ids stay behind, listed
    if source in GROUPED and dest not in GROUPED:
        assert moved["not_carried"]["groups"] == VALID  # Vobiz has no groups: listed
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["command"] == "migrate" and summary["migrate"]["to"] == dest


@pytest.mark.parametrize("target", TARGETS)
def test_delete_is_safe_by_default(
    server: SandboxServer, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = source_csv(tmp_path)
    do_import(server, target, src, tmp_path / "r0")
    # a file of 12 phones: 10 in the API, 2 unknown
    doomed = tmp_path / "doomed.csv"
    doomed.write_text(
        "phone,name\n"
        + "".join(f"+3361234{i // 100:02d}{i % 100:02d},x\n" for i in range(10))
        + "+33699999998,x\n+33699999999,x\n",
        encoding="utf-8",
    )
    base = ["delete", str(doomed), "--target", target, "-q"]
    dry = cli(server, monkeypatch, *base, "--dry-run", "--report-dir", str(tmp_path / "d1"))
    assert dry.exit_code == 0, dry.output
    assert len(phones_in(server, target)) == VALID
    summary = json.loads((tmp_path / "d1" / "summary.json").read_text())["delete"]
    assert (summary["loaded"], summary["not_found"]) == (10, 2)

    refused = cli(
        server, monkeypatch, *base, "--max-delete", "5", "--report-dir", str(tmp_path / "d2")
    )
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr and "10" in refused.stderr
    assert len(phones_in(server, target)) == VALID

    done = cli(
        server,
        monkeypatch,
        *base,
        "--max-delete",
        "5",
        "--yes",
        "--report-dir",
        str(tmp_path / "d3"),
    )
    assert done.exit_code == 0, done.output
    assert len(phones_in(server, target)) == VALID - 10
    with (tmp_path / "d3" / "errors.csv").open(encoding="utf-8") as fh:
        codes = {int(r["row"]): r["code"] for r in csv.DictReader(fh)}
    assert codes == {12: "NOT_FOUND", 13: "NOT_FOUND"}


@pytest.mark.parametrize("target", GROUPED)
def test_groups_commands(
    server: SandboxServer, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    do_import(server, target, source_csv(tmp_path), tmp_path / "r0")
    created = cli(server, monkeypatch, "groups", "create", "VIP", "--target", target)
    assert created.exit_code == 0 and "created" in created.output
    again = cli(server, monkeypatch, "groups", "create", "vip", "--target", target)
    assert again.exit_code == 0 and "already exists" in again.output
    members = tmp_path / "vip.csv"
    members.write_text("phone\n+33612340001\n+33612340002\n+33699999999\n", encoding="utf-8")
    add = cli(
        server,
        monkeypatch,
        "groups",
        "add",
        str(members),
        "--group",
        "VIP",
        "--target",
        target,
        "--default-name",
        "x",
        "--report-dir",
        str(tmp_path / "g1"),
        "-q",
    )
    assert add.exit_code == 0, add.output
    part = json.loads((tmp_path / "g1" / "summary.json").read_text())["groups"]
    assert (part["loaded"], part["not_found"]) == (2, 1)
    listed = cli(server, monkeypatch, "groups", "list", "--target", target, "--json")
    groups = {g["name"]: g for g in json.loads(listed.output)}
    assert groups["VIP"]["members"] == 2 and groups["E2E"]["members"] == VALID
    remove = cli(
        server,
        monkeypatch,
        "groups",
        "remove",
        str(members),
        "--group",
        "VIP",
        "--target",
        target,
        "--default-name",
        "x",
        "--report-dir",
        str(tmp_path / "g2"),
        "-q",
    )
    assert remove.exit_code == 0, remove.output
    listed = cli(server, monkeypatch, "groups", "list", "--target", target, "--json")
    assert {g["name"]: g["members"] for g in json.loads(listed.output)}["VIP"] == 0


def test_vobiz_says_it_has_no_groups(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cli(server, monkeypatch, "groups", "list", "--target", "vobiz")
    assert result.exit_code == 2
    assert "Vobiz has no contact groups" in result.stderr
    assert len(server.app.journal.entries()) == 0


@pytest.mark.parametrize(
    ("target", "command"),
    [
        *((t, ["delete"]) for t in TARGETS),
        *((t, ["groups", "add", "--group", "VIP"]) for t in GROUPED),
    ],
)
def test_delete_and_group_changes_print_their_plan_first(
    server: SandboxServer,
    target: str,
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = source_csv(tmp_path)
    do_import(server, target, src, tmp_path / "r0")
    args = [*command, str(src), "--target", target, "--region", "FR"]
    result = cli(server, monkeypatch, *args, "--report-dir", str(tmp_path / "r1"))
    assert result.exit_code == 0, result.output
    planned = [line for line in result.stderr.splitlines() if line.startswith("plan: ")]
    assert planned and all(line.startswith(f"plan: {target}: ") for line in planned)
    assert any(f"request(s) for {VALID} item(s)" in line for line in planned)
    section = "delete" if command == ["delete"] else "groups"
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())[section]
    assert summary["plan"] and summary["loaded"] == VALID
    assert summary["plan"][-1]["items"] == VALID  # the writes: one item per contact found
    quiet = cli(server, monkeypatch, *args, "-q", "--report-dir", str(tmp_path / "r2"))
    assert "plan: " not in quiet.stderr
