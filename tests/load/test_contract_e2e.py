"""The same 150-row file through every command a user runs, per target, against the strict
sandbox: import, re-run, export, group changes and delete each end in exactly the expected
state, and no request is outside the API's contract (the ``server`` fixture audits each one)
or refused for a contract reason."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from load_helpers import sandbox_env
from test_import_e2e import _fast_retries  # noqa: F401 - the same autouse fixture here

from contactpipe.cli import main
from contactpipe.load import registry
from contactpipe.sandbox import SandboxServer

ROWS = 150
GROUPED = ("msgflash", "waapi")


def source(path: Path, rows: range) -> Path:
    """Rows ``Client i`` with a French national phone; even rows tagged ``vip``."""
    body = [["Nom", "Téléphone", "Tags"]]
    body += [
        [f"Client {i}", f"06 12 3{i // 100} {i % 100:02d} 00", "vip" if i % 2 == 0 else ""]
        for i in rows
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(body)
    return path


def phone_of(i: int) -> str:
    return f"+336123{i // 100}{i % 100:02d}00"


def contacts(server: SandboxServer, target: str) -> dict[str, tuple[str, list[str]]]:
    """E.164 phone -> (name, tags) of every contact the API holds."""
    state = server.app.state
    if target == "msgflash":
        items = [(c.phone, c.name, c.tags) for c in state.msgflash.contacts.values()]
    elif target == "waapi":
        items = [("+" + c.phone, c.name, c.tags) for c in state.waapi.contacts.values()]
    else:
        items = [(c.phone_number, c.name, c.tags) for c in state.vobiz.contacts.values()]
    assert len({p for p, _, _ in items}) == len(items), "a phone stored twice"
    return {p: (n, sorted(t)) for p, n, t in items}


def expected(rows: range) -> dict[str, tuple[str, list[str]]]:
    return {phone_of(i): (f"Client {i}", ["vip"] if i % 2 == 0 else []) for i in rows}


def members(server: SandboxServer, target: str, group: str) -> set[str]:
    """E.164 phones of the members of ``group``."""
    state = server.app.state
    if target == "msgflash":
        store = state.msgflash
        (g,) = [g for g in store.groups.values() if g.name == group]
        return {store.contacts[cid].phone for _, cid in g.members.iter_asc()}
    store = state.waapi
    (g,) = [g for g in store.groups.values() if g.name == group]
    return {"+" + store.contacts[cid].phone for cid in g.contacts}


def run(server: SandboxServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    for k, v in sandbox_env(server).items():
        monkeypatch.setenv(k, v)
    result = CliRunner().invoke(main, [*args, "-q"])
    assert result.exit_code == 0, result.output
    return result


def summary(report: Path, section: str) -> dict[str, Any]:
    return json.loads((report / "summary.json").read_text())[section]


@pytest.mark.slow
@pytest.mark.parametrize("target", registry.names())
def test_a_150_row_file_through_every_command_ends_in_the_expected_state(
    server: SandboxServer, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # report directories land here
    everyone = range(ROWS)
    src = source(tmp_path / "contacts.csv", everyone)
    common = ["--target", target, "--region", "FR", "--poll-interval", "0.05"]
    grouping = ["--group", "E2E"] if target in GROUPED else []

    # import
    run(server, monkeypatch, "import", str(src), *common, *grouping, "--report-dir", "r1")
    assert contacts(server, target) == expected(everyone)
    if target in GROUPED:
        assert members(server, target, "E2E") == set(expected(everyone))

    # re-run: nothing changes, nothing is created twice; the sync state answers alone,
    # then --full-refresh asks the API again
    for refresh in ([], ["--full-refresh"]):
        writes_before = len(server.app.journal)
        run(
            server,
            monkeypatch,
            "import",
            str(src),
            *common,
            *grouping,
            *refresh,
            "--report-dir",
            "r2",
        )
        again = summary(tmp_path / "r2", "load")
        assert (again["created"], again["unchanged"], again["failed"]) == (0, ROWS, 0)
        assert contacts(server, target) == expected(everyone)
        if target in GROUPED:
            assert members(server, target, "E2E") == set(expected(everyone))
        assert (len(server.app.journal) > writes_before) == bool(refresh)

    # export: every contact, exactly as stored
    out = tmp_path / "export.csv"
    run(server, monkeypatch, "export", "--target", target, "-o", str(out))
    with out.open(encoding="utf-8") as fh:
        exported = {r["phone"]: r["name"] for r in csv.DictReader(fh)}
    assert exported == {p: name for p, (name, _) in expected(everyone).items()}

    # group change: the first 50 leave E2E and join VIP
    if target in GROUPED:
        first = source(tmp_path / "first.csv", range(50))
        args = ["--target", target, "--region", "FR", "--poll-interval", "0.05"]
        run(server, monkeypatch, "groups", "remove", str(first), "--group", "E2E", *args)
        run(server, monkeypatch, "groups", "add", str(first), "--group", "VIP", *args)
        assert members(server, target, "E2E") == set(expected(range(50, ROWS)))
        assert members(server, target, "VIP") == set(expected(range(50)))

    # delete the last 40
    doomed = source(tmp_path / "doomed.csv", range(110, ROWS))
    run(server, monkeypatch, "delete", str(doomed), *common, "--yes", "--report-dir", "r3")
    assert contacts(server, target) == expected(range(110))

    refused = [e for e in server.app.journal if e.status in (400, 415, 422)]
    assert refused == [], "requests refused by the API"
