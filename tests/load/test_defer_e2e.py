"""Deferral of long waits (issue 14), over real HTTP to the sandbox on 127.0.0.1: an import
whose next wait is longer than ``defer_after`` stops cleanly (every sent row settled, the
rest ``DEFERRED``, the state checkpointed, exit 75), and ``resume=True`` finishes it with
exactly the expected contacts and no request sent twice."""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from load_helpers import sandbox_env
from test_import_e2e import _fast_retries  # noqa: F401  (autouse: fast retries)

import contactpipe
from contactpipe.cli import main
from contactpipe.errors import EXIT_DEFERRED, Deferred, RemoteError, UsageError
from contactpipe.load.base import LoadOptions
from contactpipe.load.kit.timing import Rate
from contactpipe.load.targets.msgflash.core import MsgFlashCore
from contactpipe.load.targets.waapi.core import WaapiCore
from contactpipe.sandbox import SandboxServer


def write_csv(path: Path, n: int, group: str | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Name", "Phone", *(["Groups"] if group else [])])
        for i in range(n):
            w.writerow(
                [f"Client {i}", f"+33 6 12 00 {i // 100:02d} {i % 100:02d}"] + [group] * bool(group)
            )
    return path


def run(server: SandboxServer, src: Path, out: Path, state: Path, **kw: Any) -> contactpipe.Result:
    load = LoadOptions(
        poll_interval_s=kw.pop("poll", 0.05),
        batch_size=kw.pop("batch_size", 10_000),
        rate_limit_store=kw.pop("store", None),
    )
    return contactpipe.import_contacts(
        src,
        kw.pop("target"),
        contactpipe.RunOptions(region="FR"),
        load=load,
        credentials=sandbox_env(server),
        report_dir=out,
        state=state,
        **kw,
    )


def codes(result: contactpipe.Result) -> dict[str, int]:
    return {k: v for k, v in result.by_code.items() if v}


def posted_items(server: SandboxServer, method: str, pattern: str) -> int:
    """Contacts carried by the accepted (2xx) requests whose path matches the glob, per the
    sandbox journal."""
    return sum(
        (e.items if e.items is not None else 1)
        for e in server.app.journal
        if e.method == method
        and fnmatch.fnmatch(e.path, pattern)
        and e.status
        and 200 <= e.status < 300
    )


def wait_until(when: dt.datetime) -> None:
    left = (when - dt.datetime.now(dt.UTC)).total_seconds()
    assert left < 30, f"resume_at {when} is too far ahead for a test"
    if left > 0:
        time.sleep(left)


@pytest.mark.parametrize("store", [None, "none"])  # the local shared store, then none
def test_waapi_window_exhausted_defers_then_resume_finishes(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str | None
) -> None:
    # WAAPI's 100 requests / 15 min, shrunk to 5 requests / 6 s on both sides
    monkeypatch.setattr(WaapiCore, "rate", Rate(5, 6.0))
    server.settings.waapi_rate_limit = 5
    server.settings.waapi_rate_window_s = 6.0
    src = write_csv(tmp_path / "in.csv", 12)
    state = tmp_path / "state.db"

    first = run(
        server,
        src,
        tmp_path / "r1",
        state,
        target="waapi",
        batch_size=2,
        defer_after=2.0,
        store=store,
    )
    # 5 bulk requests of 2 contacts fill the window (an upsert: no listing): the 6th defers
    assert first.load is not None and first.load.requests == 5
    assert first.deferred is not None
    assert first.deferred.resume_at.tzinfo is not None
    assert first.deferred.resume_at > dt.datetime.now(dt.UTC)
    assert "rate limit" in first.deferred.reason or "pause" in first.deferred.reason
    assert codes(first) == {"DEFERRED": 2}
    assert first.load.loaded == 10 and first.load.failed == 2
    assert "OUTCOME_UNKNOWN" not in first.by_code
    assert isinstance(first.error(), Deferred) and first.exit_code == EXIT_DEFERRED == 75
    assert not isinstance(first.error(), RemoteError)  # never sorted as a refusal
    with pytest.raises(Deferred):
        first.raise_for_outcome()
    doc = first.to_dict()["load"]
    assert doc["deferred"]["resume_at"] == first.deferred.resume_at.isoformat()
    assert doc["deferred"]["reason"] == first.deferred.reason
    assert doc["deferred"]["rows"] == 2 and doc["deferred"]["defer_after_s"] == 2.0
    assert doc["aborted"] is None
    assert json.loads(first.reports.summary_json.read_text())["load"]["deferred"] == doc["deferred"]
    errors = first.reports.errors_csv.read_text()
    assert errors.count("DEFERRED") == 2
    assert len(server.app.state.waapi.contacts) == 10
    assert posted_items(server, "POST", "*/bulk") == 10

    wait_until(first.deferred.resume_at)
    second = run(
        server,
        src,
        tmp_path / "r2",
        state,
        target="waapi",
        batch_size=2,
        defer_after=2.0,
        resume=True,
        store=store,
    )
    assert second.deferred is None and second.ok, second.to_dict()["load"]
    assert second.summary["load"]["state"]["run_id"] == first.summary["load"]["state"]["run_id"]
    assert second.summary["load"]["state"]["decided"] == {
        "sent": 2,
        "skipped_by_state": 0,
        "resumed": 10,
    }
    phones = sorted("+" + c.phone for c in server.app.state.waapi.contacts.values())
    assert len(phones) == len(set(phones)) == 12
    # every contact went out in exactly one accepted bulk request over both runs
    assert posted_items(server, "POST", "*/bulk") == 12


def test_retry_after_longer_than_threshold_defers(server: SandboxServer, tmp_path: Path) -> None:
    """A server pause (429 + Retry-After: 8) above the threshold defers at once, nothing left
    unknown; once the pause is over the resume sends only the rest."""
    src = write_csv(tmp_path / "in.csv", 30)
    state = tmp_path / "state.db"
    # the first create is answered 429 with a pause of 8 s
    server.app.faults.add(
        "msgflash", "POST", "/api/v1/contacts", times=1, status=429, retry_after=8
    )
    started = time.monotonic()
    first = run(server, src, tmp_path / "r1", state, target="msgflash", defer_after=2.0)
    assert time.monotonic() - started < 8  # deferred, not waited out
    assert first.deferred is not None
    assert "pause of 8 s" in first.deferred.reason
    wait = (first.deferred.resume_at - dt.datetime.now(dt.UTC)).total_seconds()
    assert 0 < wait <= 9.5
    by = codes(first)
    assert set(by) == {"DEFERRED"}, by
    assert first.load is not None and first.load.loaded + by["DEFERRED"] == 30
    assert first.summary["load"]["deferred"]["rows"] == by["DEFERRED"]
    assert first.summary["load"]["deferred"]["wait_s"] > 2.0
    assert first.summary["load"]["rate_limited"] == 1
    stored = {c.phone for c in server.app.state.msgflash.contacts.values()}
    assert len(stored) == first.load.loaded

    # after resume_at the resume sends only the deferred rows, each once
    wait_until(first.deferred.resume_at)
    before = posted_items(server, "POST", "/api/v1/contacts")
    second = run(
        server, src, tmp_path / "r2", state, target="msgflash", defer_after=2.0, resume=True
    )
    assert second.ok and second.deferred is None, second.to_dict()["load"]
    assert posted_items(server, "POST", "/api/v1/contacts") - before == by["DEFERRED"]
    assert len({c.phone for c in server.app.state.msgflash.contacts.values()}) == 30


def test_short_wait_does_not_defer(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WaapiCore, "rate", Rate(5, 0.5))
    server.settings.waapi_rate_limit = 5
    server.settings.waapi_rate_window_s = 0.5
    src = write_csv(tmp_path / "in.csv", 12)
    result = run(
        server,
        src,
        tmp_path / "r",
        tmp_path / "s.db",
        target="waapi",
        batch_size=2,
        defer_after=10.0,
    )
    assert result.ok and result.deferred is None
    assert "deferred" not in result.to_dict()["load"]
    assert len(server.app.state.waapi.contacts) == 12


def test_defer_after_needs_state(server: SandboxServer, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", 3)
    with pytest.raises(UsageError, match="--defer-after needs the sync state"):
        contactpipe.import_contacts(
            src, "waapi", credentials=sandbox_env(server), report_dir=tmp_path / "r", defer_after=5
        )
    with pytest.raises(UsageError, match="positive"):
        run(server, src, tmp_path / "r", tmp_path / "s.db", target="waapi", defer_after=0)
    assert server.app.journal == [] or all(e.method == "GET" for e in server.app.journal)


def test_cli_defer_after_exits_75_and_resume_exits_0(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WaapiCore, "rate", Rate(3, 6.0))
    server.settings.waapi_rate_limit = 3
    server.settings.waapi_rate_window_s = 6.0
    for key, value in sandbox_env(server).items():
        monkeypatch.setenv(key, value)
    src = write_csv(tmp_path / "in.csv", 8)
    common = [
        "import", str(src), "--target", "waapi", "--region", "FR", "--batch-size", "2",
        "--state", str(tmp_path / "s.db"), "--defer-after", "2", "--poll-interval", "0.05",
    ]  # fmt: skip
    first = CliRunner().invoke(main, [*common, "--report-dir", str(tmp_path / "r1")])
    assert first.exit_code == 75, first.output
    assert "Deferred:" in first.output and "--resume after" in first.output
    doc = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert doc["load"]["deferred"]["rows"] == 2 == doc["by_code"]["DEFERRED"]
    wait_until(dt.datetime.fromisoformat(doc["load"]["deferred"]["resume_at"]))
    second = CliRunner().invoke(main, [*common, "--resume", "--report-dir", str(tmp_path / "r2")])
    assert second.exit_code == 0, second.output
    assert len(server.app.state.waapi.contacts) == 8
    bad = CliRunner().invoke(main, [*common[:-4], "--defer-after", "0"])
    assert bad.exit_code == 2


def test_msgflash_member_job_longer_than_threshold_defers_and_resume_follows_it(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150 contacts into one group: one member-add bulk job at 40 ids/s (~4 s) against a
    threshold of 1 s.  The import defers while the job runs; the resume follows that same
    job to its end and sends nothing else: no contact, no member request twice."""
    monkeypatch.setattr(MsgFlashCore, "RATE_LIMIT", 500)  # the sandbox has no limit here
    server.settings.msgflash_job_items_per_s = 40.0
    server.settings.msgflash_job_pending_s = 0.05
    n = 150
    src = write_csv(tmp_path / "in.csv", n, group="Clients")
    state = tmp_path / "state.db"

    first = run(server, src, tmp_path / "r1", state, target="msgflash", defer_after=1.0, poll=0.1)
    assert first.deferred is not None and "bulk job" in first.deferred.reason
    doc = first.to_dict()["load"]
    assert len(doc["deferred"]["jobs"]) == 1
    job_id = doc["deferred"]["jobs"][0]
    assert codes(first) == {"DEFERRED": n}  # created, but not (yet surely) in the group
    assert first.load is not None and first.load.created == 0 and first.load.failed == n
    assert len(server.app.state.msgflash.contacts) == n
    creates = posted_items(server, "POST", "/api/v1/contacts")
    members = [e for e in server.app.journal if e.method == "POST" and e.path.endswith("/members")]
    assert len(members) == 1 and creates == n

    wait_until(first.deferred.resume_at)
    second = run(
        server,
        src,
        tmp_path / "r2",
        state,
        target="msgflash",
        defer_after=30.0,
        resume=True,
        poll=0.1,
    )
    assert second.ok and second.deferred is None, second.to_dict()["load"]
    st = second.summary["load"]["state"]
    assert st["jobs_followed"] == {job_id: "done"}
    assert st["decided"] == {"sent": 0, "skipped_by_state": 0, "resumed": n}
    # nothing sent again: the only requests of the resume are the job's progress reads
    assert posted_items(server, "POST", "/api/v1/contacts") == creates
    assert [e for e in server.app.journal if e.method in ("POST", "PUT")][-1].path.endswith(
        "/members"
    )
    group = next(iter(server.app.state.msgflash.groups.values()))
    assert len(group.members) == n
    with sqlite3.connect(state) as db:
        left = db.execute(
            "SELECT count(*) FROM contacts WHERE remote_id IS NULL OR payload_hash LIKE 'job:%'"
        ).fetchone()[0]
    assert left == 0  # every checkpoint replaced by the real payload hash, ids kept
    # the state now holds every contact with its payload: a re-import sends nothing
    third = run(server, src, tmp_path / "r3", state, target="msgflash")
    assert third.ok and third.summary["load"]["state"]["decided"]["sent"] == 0


def test_yield_after_hands_the_worker_back_in_slices_and_loads_each_contact_once(
    server: SandboxServer, tmp_path: Path
) -> None:
    """MsgFlash sends one create per contact at 10/s: no wait is long, so ``defer_after``
    never fires; ``yield_after`` defers the busy load itself every second (resume at once),
    and the resumed slices load each contact exactly once."""
    src = write_csv(tmp_path / "in.csv", 40)
    state = tmp_path / "state.db"
    slices: list[contactpipe.Result] = []
    resume = False
    while True:
        result = run(
            server,
            src,
            tmp_path / f"r{len(slices)}",
            state,
            target="msgflash",
            yield_after=1.0,
            resume=resume,
        )
        slices.append(result)
        if result.deferred is None:
            break
        assert "yield_after" in result.deferred.reason
        assert result.summary["load"]["deferred"]["yield_after_s"] == 1.0
        assert result.summary["load"]["deferred"]["defer_after_s"] is None
        assert "OUTCOME_UNKNOWN" not in codes(result), codes(result)
        assert isinstance(result.error(), Deferred)
        wait_until(result.deferred.resume_at)
        resume = True
        assert len(slices) < 20, "the slices never ended"
    assert slices[-1].ok, slices[-1].to_dict()["load"]
    assert len(slices) >= 2, "a 4-second load was never sliced at 1 s"
    assert posted_items(server, "POST", "/api/v1/contacts") == 40  # each contact created once
    phones = [c.phone for c in server.app.state.msgflash.contacts.values()]
    assert len(phones) == len(set(phones)) == 40


def test_yield_after_needs_state(server: SandboxServer, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", 3)
    with pytest.raises(UsageError, match="--yield-after needs the sync state"):
        contactpipe.import_contacts(
            src,
            "msgflash",
            credentials=sandbox_env(server),
            report_dir=tmp_path / "r",
            yield_after=5,
        )
