"""One suite for every registered target, over real HTTP against the sandbox: the behaviours
that used to differ between targets, each pinned once for all of them.

- a file's ``id`` column is checked by the lookup in dry runs and real runs alike;
- a contact deleted by someone else between the lookup and the delete counts as deleted;
- delete and group plans count requests with the one time model, and so do import plans;
- the safety limit counts contacts found, before any write;
- group create is idempotent (targets with groups), refused clearly (the others).
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from load_helpers import make_target, phone, simple_contacts

from contactpipe.errors import UsageError
from contactpipe.load import registry
from contactpipe.load.base import FAILED, LOADED, ExportFilters, Target
from contactpipe.load.kit.timing import Rate
from contactpipe.report.progress import Counter, NullProgress
from contactpipe.sandbox import SandboxServer

TARGETS = registry.names()
GROUPED = registry.with_capability("groups")


def target(server: SandboxServer, name: str, **options: Any) -> Target:
    t = make_target(name, server, **options)
    if hasattr(t, "RATE_LIMIT"):  # MsgFlash's client-side limit, lifted as the sandbox's is
        t.RATE_LIMIT = 10_000  # type: ignore[attr-defined]
    return t


def seed(server: SandboxServer, name: str, n: int) -> None:
    t = target(server, name)
    try:
        assert t.load(simple_contacts(n)).counts()["loaded"] == n
    finally:
        t.close()


def writes(server: SandboxServer, name: str) -> list[Any]:
    return [
        e
        for e in server.app.journal.entries(api=name)
        if e.method in ("POST", "PUT", "DELETE") and "search" not in e.path
    ]


def existing_ids(t: Target, n: int) -> list[str]:
    """The ids of contacts 0..n-1, as the target's own export gives them."""
    rows = [c for page in t.export(ExportFilters(), False) for c in page]
    by_phone = {c["phone"]: c["id"] for c in rows}
    return [by_phone[phone(i)] for i in range(n)]


@pytest.mark.parametrize("name", TARGETS)
def test_ids_are_checked_in_dry_runs_and_real_runs_alike(server: SandboxServer, name: str) -> None:
    seed(server, name, 3)
    t = target(server, name)
    try:
        ids = existing_ids(t, 2)
        unknown = "0" * 24  # well formed for every API, held by no contact
        df = simple_contacts(3).with_columns(pl.Series("id", [ids[0], unknown, ids[1]]))
        server.app.journal.clear()
        dry = t.delete(df, dry_run=True)
        assert list(dry.state) == [LOADED, FAILED, LOADED]
        assert dry.failures[1] == ("NOT_FOUND", f"no {t.title} contact with id {unknown}")
        assert writes(server, name) == []
        real = t.delete(df)
        assert list(real.state) == list(dry.state) and real.failures == dry.failures
        assert len(writes(server, name)) == (1 if "async_jobs" in t.capabilities else 2)
    finally:
        t.close()


class DeleteBehind(NullProgress):
    """When the delete starts, another client deletes ``victim`` (after the lookup)."""

    def __init__(self, server: SandboxServer, name: str, victim: pl.DataFrame) -> None:
        self.server, self.name, self.victim, self.done = server, name, victim, False

    def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
        if name == f"{self.name} delete" and not self.done:
            self.done = True
            other = target(self.server, self.name)
            try:
                assert other.delete(self.victim).counts()["loaded"] == 1
            finally:
                other.close()
        return Counter(name, total, unit)


@pytest.mark.parametrize("name", TARGETS)
def test_a_contact_deleted_meanwhile_counts_as_deleted(server: SandboxServer, name: str) -> None:
    seed(server, name, 4)
    t = target(server, name)
    t.progress = DeleteBehind(server, name, simple_contacts(1, start=2))
    try:
        result = t.delete(simple_contacts(4))
    finally:
        t.close()
    assert t.progress.done  # type: ignore[attr-defined]
    assert list(result.state) == [LOADED] * 4 and result.aborted is None
    assert any("1 contact(s) were already gone" in note for note in result.notes)


def least(rate: Rate | None, before: int, requests: int) -> float | None:
    if rate is None:
        return None
    return rate.least_seconds(before + requests) - rate.least_seconds(before)


def assert_one_time_model(t: Target, plan: list[Any], before: int) -> None:
    """Every line is timed by the target's documented rate, the lines sharing one budget in
    the order they are sent (after ``before`` requests), the first window free."""
    for line in plan:
        assert line.min_seconds == least(t.rate, before, line.requests), line
        before += line.requests


@pytest.mark.parametrize("name", TARGETS)
def test_every_plan_uses_the_one_time_model(server: SandboxServer, name: str) -> None:
    seed(server, name, 150)
    t = target(server, name, batch_size=40)
    try:
        assert_one_time_model(t, t.plan(simple_contacts(150, start=1000)), 0)
        made = t.stats.requests
        plan = t.delete_plan(simple_contacts(120))
        assert_one_time_model(t, plan, made)
        assert t.stats.requests == made + 1  # one request: how many contacts the lookup lists
        assert sum(line.items for line in plan if "lookup" in line.note) == 120
        if name in GROUPED:
            made = t.stats.requests
            assert_one_time_model(t, t.members_plan("VIP", simple_contacts(120), add=True), made)
        else:
            with pytest.raises(UsageError, match="no contact groups"):
                t.members_plan("VIP", simple_contacts(1), add=True)
    finally:
        t.close()


@pytest.mark.parametrize("name", TARGETS)
def test_the_safety_limit_counts_contacts_found_before_any_write(
    server: SandboxServer, name: str
) -> None:
    seed(server, name, 6)
    df = simple_contacts(9, start=3)  # 3 found, 6 not
    t = target(server, name)
    try:
        server.app.journal.clear()
        with pytest.raises(
            UsageError, match="3 contacts would be deleted, above the safety limit of 2"
        ):
            t.delete(df, limit=2)
        assert writes(server, name) == []
        dry = t.delete(df, dry_run=True, limit=2)  # a dry run lists, never refuses
        assert dry.counts()["loaded"] == 3 and writes(server, name) == []
        assert t.delete(df, limit=3).counts()["loaded"] == 3  # at the limit: deleted
        assert t.delete(df, dry_run=True).counts()["loaded"] == 0  # and gone
    finally:
        t.close()


@pytest.mark.parametrize("name", TARGETS)
def test_group_create_is_idempotent_or_refused(server: SandboxServer, name: str) -> None:
    t = target(server, name)
    try:
        if name not in GROUPED:
            with pytest.raises(UsageError, match="no contact groups"):
                t.create_group("Team")
            return
        first, created = t.create_group("Team")
        again, created_again = t.create_group("  team ")
        assert (created, created_again) == (True, False)
        assert again["id"] == first["id"]
        assert [g["name"] for g in t.list_groups()] == ["Team"]
    finally:
        t.close()


LISTING = {  # the sandbox path each API lists contacts on (where the faults go)
    "msgflash": "/api/v1/contacts",
    "waapi": "/api/external/contacts/*",
    "vobiz": "/api/v1/messaging/contacts",
}


@pytest.mark.parametrize("name", TARGETS)
def test_faults_during_a_long_export_lose_and_repeat_nothing(
    server: SandboxServer, name: str
) -> None:
    """429s, 5xx and dropped connections before and during the walk: every contact exported
    once, each fault retried (the listing's loop guard never mistakes a retry for a loop)."""
    seed(server, name, 450)
    faults = server.app.faults
    path = LISTING[name]
    injected = [
        {"status": 429, "retry_after": 0},
        {"status": 500},
        {"drop": True},
        {"status": 503},
        {"drop": True},
    ]
    t = target(server, name)
    server.app.journal.clear()
    rows: list[dict[str, Any]] = []
    try:
        for k, page in enumerate(t.export(ExportFilters(), False)):
            rows += page
            if k in (0, 2):  # between pages: the next request meets them
                for fault in injected[:3] if k == 0 else injected[3:]:
                    faults.add(name, "GET", path, **fault)
    finally:
        t.close()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 450
    assert sorted(r["phone"] for r in rows) == sorted(phone(i) for i in range(450))
    faulted = [e for e in server.app.journal.entries(api=name) if e.fault]
    assert len(faulted) == 5
    assert t.stats.retries == 5 and t.stats.rate_limited == 1


DELETE_WRITE = {  # the sandbox endpoint each API deletes through (where the faults go)
    "msgflash": ("POST", "/api/v1/contacts/bulk-delete"),
    "waapi": ("DELETE", "/api/external/contacts/*"),
    "vobiz": ("DELETE", "/api/v1/messaging/contacts/*"),
}


@pytest.mark.parametrize("name", TARGETS)
def test_a_delete_stops_when_the_api_stays_down(server: SandboxServer, name: str) -> None:
    """The request in flight fails LOAD_FAILED (whether it took effect is unknown), every row
    after it is NOT_SENT, a row not found stays NOT_FOUND, and nothing is deleted."""
    seed(server, name, 8)
    method, path = DELETE_WRITE[name]
    server.app.faults.add(name, method, path, status=503, times=None)
    t = target(server, name)
    try:
        result = t.delete(simple_contacts(5).vstack(simple_contacts(1, start=99)))
    finally:
        t.close()
    assert result.aborted is not None and result.pending() == []
    codes = [result.failures[i][0] for i in range(6)]
    assert codes[5] == "NOT_FOUND"
    in_flight = 5 if "async_jobs" in t.capabilities else 1  # one bulk request, or one contact
    assert codes[:5] == ["LOAD_FAILED"] * in_flight + ["NOT_SENT"] * (5 - in_flight)
    t2 = target(server, name)
    try:
        assert t2.delete(simple_contacts(8), dry_run=True).counts()["loaded"] == 8  # all there
    finally:
        t2.close()
