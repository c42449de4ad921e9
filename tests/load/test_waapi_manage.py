"""WAAPI export, delete and groups over real HTTP against the sandbox: page/limit listing at
100 per page with no repeat and no gap (contacts created meanwhile included), filters, groups
column, faults, the round trip, delete by phone or id, and group membership in batches."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from load_helpers import contacts_df, make_target, phone, sandbox_env, simple_contacts

from contactpipe.errors import TerminalRemoteError, UsageError
from contactpipe.load.base import FAILED, LOADED, ExportFilters
from contactpipe.load.client import RetryPolicy
from contactpipe.load.targets.waapi import Waapi
from contactpipe.sandbox import SandboxServer

LIST = "/api/external/contacts/*"
NONE = ExportFilters()


def target(server: SandboxServer, **options: Any) -> Waapi:
    t = make_target("waapi", server, **options)
    assert isinstance(t, Waapi)
    return t


def seed(server: SandboxServer, n: int, start: int = 0, **extra: Any) -> None:
    result = target(server).load(simple_contacts(n, start=start, **extra))
    assert result.counts()["created"] == n


def exported(t: Waapi, filters: ExportFilters = NONE, with_groups: bool = False) -> list[dict]:
    return [c for page in t.export(filters, with_groups) for c in page]


def store_ids(server: SandboxServer) -> set[str]:
    return set(server.app.state.waapi.contacts)


def requests(server: SandboxServer, method: str | None = None) -> list[Any]:
    return [
        e for e in server.app.journal.entries(api="waapi") if method is None or e.method == method
    ]


def queries(server: SandboxServer, method: str = "GET") -> list[dict[str, list[str]]]:
    return [parse_qs(e.query) for e in requests(server, method)]


# -- export --------------------------------------------------------------------------------
def test_export_equals_the_store_across_pages(server: SandboxServer) -> None:
    seed(server, 250, tags=["vip"], custom_fields={"city": "Lyon"})
    server.app.journal.clear()
    t = target(server)
    pages = list(t.export(NONE, False))
    assert [len(p) for p in pages] == [100, 100, 50]
    assert t.export_total == 250
    rows = [c for p in pages for c in p]
    store = server.app.state.waapi.contacts
    assert [c["id"] for c in rows] == list(reversed(store))  # newest first, each once
    for c in rows:
        s = store[c["id"]]
        assert c["phone"] == "+" + s.phone
        assert c["name"] == s.name and c["tags"] == ["vip"] and c["opt_out"] is False
        assert c["created_at"] == s.created_at
        # the listing's subset: no custom fields, notes, language, updatedAt
        assert not {"custom_fields", "notes", "language_code", "updated_at"} & c.keys()
    assert [q["limit"] for q in queries(server)] == [["100"]] * 3
    assert [q["page"] for q in queries(server)] == [["1"], ["2"], ["3"]]


def test_contacts_created_during_the_export_are_neither_lost_nor_repeated(
    server: SandboxServer,
) -> None:
    seed(server, 250)
    before = store_ids(server)
    t = target(server)
    rows: list[dict] = []
    for k, page in enumerate(t.export(NONE, False)):
        rows += page
        if k == 0:  # 30 new contacts: newest first, they push 30 old ones onto page 2
            seed(server, 30, start=1_000)
    ids = [c["id"] for c in rows]
    assert len(ids) == len(set(ids))
    assert before <= set(ids)
    assert set(ids) <= store_ids(server)
    assert len(requests(server, "GET")) == 3  # 280 contacts at the last page: 3 pages


def test_filters_are_passed_to_the_api(server: SandboxServer) -> None:
    rows = [
        {"phone": phone(i), "name": f"Ann {i}" if i % 3 == 0 else f"Bob {i}"}
        | ({"tags": ["vip"]} if i % 2 == 0 else {})
        | ({"opt_out": True} if i % 5 == 0 else {})
        for i in range(60)
    ]
    target(server).load(contacts_df(rows))
    store = server.app.state.waapi.contacts.values()
    server.app.journal.clear()
    t = target(server)
    vip = exported(t, ExportFilters(tag="vip"))
    assert {c["id"] for c in vip} == {c.id for c in store if "vip" in c.tags}
    assert t.export_total == 30
    ann_out = exported(t, ExportFilters(search="ann", opt_out=True))
    assert {c["id"] for c in ann_out} == {
        c.id for c in store if c.name.startswith("Ann") and c.opt_out
    }
    by_phone = exported(t, ExportFilters(search=phone(7)))
    assert [c["phone"] for c in by_phone] == [phone(7)]
    assert queries(server)[:2] == [
        {"tag": ["vip"], "page": ["1"], "limit": ["100"]},
        {"search": ["ann"], "opt_out": ["true"], "page": ["1"], "limit": ["100"]},
    ]


def test_group_export_carries_every_field_and_filters_its_members(server: SandboxServer) -> None:
    target(server).load(
        contacts_df(
            [
                {
                    "phone": phone(i),
                    "name": f"C{i}",
                    "groups": ["Team"] if i < 8 else [],
                    "tags": ["vip"] if i % 2 else [],
                    "notes": f"note {i}",
                    "language_code": "fr",
                    "custom_fields": {"city": "Lyon"},
                }
                for i in range(12)
            ]
        )
    )
    t = target(server)
    rows = exported(t, ExportFilters(group="team"))  # any case
    team = next(iter(server.app.state.waapi.groups.values()))
    assert {c["id"] for c in rows} == set(team.contacts)
    assert t.export_total == 8
    one = rows[0]
    assert one["custom_fields"] == {"city": "Lyon"}
    assert one["notes"].startswith("note ") and one["language_code"] == "fr"
    assert one["reply_bot_enabled"] is True and "updated_at" in one
    vip = exported(t, ExportFilters(group="Team", tag="vip"))
    assert sorted(c["phone"] for c in vip) == [phone(i) for i in (1, 3, 5, 7)]
    with pytest.raises(UsageError, match="no group named 'Nope'"):
        exported(t, ExportFilters(group="Nope"))


def test_an_empty_group_name_is_refused_before_any_request(server: SandboxServer) -> None:
    with pytest.raises(UsageError):
        target(server).export(ExportFilters(group="  "), False)
    assert requests(server) == []


def test_with_groups_adds_each_contacts_group_names(server: SandboxServer) -> None:
    target(server).load(
        contacts_df(
            [
                {"phone": phone(i), "name": f"C{i}", "groups": g}
                for i, g in enumerate([["b", "A"], ["A"], [], ["b"]])
            ]
        )
    )
    server.app.journal.clear()
    rows = exported(target(server), with_groups=True)
    assert {c["phone"]: c["groups"] for c in rows} == {
        phone(0): ["A", "b"],
        phone(1): ["A"],
        phone(2): [],
        phone(3): ["b"],
    }
    paths = [e.path for e in requests(server)]
    assert len(paths) == 2 and paths[0] == paths[1] + "/groups"  # 1 groups page, 1 contacts page


def test_export_at_the_servers_rate_limit_is_never_refused(server: SandboxServer) -> None:
    server.settings.waapi_rate_limit = 2
    server.settings.waapi_rate_window_s = 0.4
    server.app.reset()
    server.app.state.waapi.bulk_upsert([{"phone": phone(i), "name": "x"} for i in range(350)])
    t = target(server)
    assert len(exported(t)) == 350  # 4 pages, 2 allowed per 0.4 s
    assert t.stats.rate_limited == 0  # RateLimit-Remaining: 0 made the client wait


def test_round_trip_reports_every_row_unchanged(server: SandboxServer) -> None:
    target(server).load(
        contacts_df(
            [
                {
                    "phone": phone(i),
                    "name": f"C{i}",
                    "email": f"c{i}@example.com" if i % 2 else None,
                    "tags": ["b", "a"] if i % 3 else [],
                    "groups": ["G1"] if i % 4 else [],
                    "notes": "kept",
                    "opt_out": i % 5 == 0,
                    "language_code": "en",
                    "custom_fields": {"city": "Lyon"},
                }
                for i in range(130)
            ]
        )
    )
    store = server.app.state.waapi
    updated = {c.id: c.updated_at for c in store.contacts.values()}
    for filters, with_groups in ((NONE, True), (ExportFilters(group="G1"), True), (NONE, False)):
        rows = exported(target(server), filters, with_groups)
        result = target(server).load(contacts_df(rows))
        assert result.counts() == {
            "created": 0,
            "updated": 0,
            "unchanged": len(rows),
            "failed": 0,
            "loaded": len(rows),
        }
    assert {c.id: c.updated_at for c in store.contacts.values()} == updated
    assert all(
        c.notes == "kept" and c.custom_fields == {"city": "Lyon"} for c in store.contacts.values()
    )


def test_export_plan_counts_pages_and_the_time_the_limit_needs(server: SandboxServer) -> None:
    store = server.app.state.waapi
    store.bulk_upsert([{"phone": phone(i), "name": "x"} for i in range(99_950)])
    store.create_group("G", None)
    t = target(server)
    plan = t.export_plan(NONE, with_groups=True)
    assert [(p.requests, p.items) for p in plan] == [(1, 1), (1_000, 99_950)]
    assert plan[0].min_seconds == 0
    assert sum(p.min_seconds or 0 for p in plan) == 10 * 900  # 1,001 requests: 2 h 30 min
    assert len(requests(server)) == 2
    assert [q["limit"] for q in queries(server)] == [["1"], ["1"]]
    (alone,) = t.export_plan(NONE, with_groups=False)
    # 1,000 pages after the plan's own count requests (same 15-minute windows): 2 h 30 min
    assert alone.min_seconds == 10 * 900
    assert t.export_plan(ExportFilters(tag="none"), False)[0].requests == 1
    seed(server, 3, start=200_000, groups=["Team"])
    group_plan = t.export_plan(ExportFilters(group="team", tag="vip"), False)
    assert [(p.requests, p.items) for p in group_plan] == [(1, 1), (1, 3)]


def test_a_wrong_phone_id_stops_the_export(server: SandboxServer) -> None:
    env = {**sandbox_env(server), "WAAPI_PHONE_ID": "123"}
    with pytest.raises(TerminalRemoteError, match="Phone number not found") as info:
        list(make_target("waapi", server, env=env).export(NONE, False))
    assert "WAAPI_PHONE_ID" in str(info.value)


# -- delete --------------------------------------------------------------------------------
def test_delete_by_phone_searches_each_phone_in_a_big_account(server: SandboxServer) -> None:
    seed(server, 450)
    df = contacts_df(
        [{"phone": phone(3)}, {"phone": phone(999_999)}, {"phone": phone(40)}, {"phone": phone(3)}]
    )
    server.app.journal.clear()
    result = target(server).delete(df)
    assert list(result.state) == [LOADED, FAILED, LOADED, LOADED]
    assert result.failures[1][0] == "NOT_FOUND"
    left = {c.phone for c in server.app.state.waapi.contacts.values()}
    assert len(left) == 448 and phone(3)[1:] not in left and phone(40)[1:] not in left
    # page 1 (newest 100) did not have them; 3 unknown phones < 4 more pages: 3 searches
    gets = queries(server)
    assert len(gets) == 4 and all("search" in q for q in gets[1:])
    assert len(requests(server, "DELETE")) == 2  # a phone twice in the file: deleted once


def test_delete_reads_the_listing_when_that_is_cheaper(server: SandboxServer) -> None:
    seed(server, 250)
    df = simple_contacts(20, start=0)  # the oldest: on the last page
    server.app.journal.clear()
    result = target(server).delete(df)
    assert result.counts()["loaded"] == 20
    assert [q["page"] for q in queries(server)] == [["1"], ["2"], ["3"]]
    assert len(server.app.state.waapi.contacts) == 230


SLOW_RETRY = RetryPolicy(attempts=3, backoff_s=1.0, backoff_cap_s=1.0)


def test_a_delete_whose_answer_was_lost_counts_as_deleted(server: SandboxServer) -> None:
    seed(server, 1)
    # the server deletes after 0.3 s; the client gave up at 0.15 s and checks before resending
    server.app.faults.add("waapi", "DELETE", LIST, times=1, delay_s=0.3)
    t = make_target("waapi", server, policy=SLOW_RETRY)
    t.client()._http.timeout = httpx.Timeout(0.15)
    result = t.delete(simple_contacts(1))
    assert list(result.state) == [LOADED]
    assert t.stats.by_endpoint["DELETE contact"] == 1
    assert t.stats.by_endpoint["GET contact"] == 1
    assert server.app.state.waapi.contacts == {}


# -- groups --------------------------------------------------------------------------------
def test_groups_list_and_create_is_idempotent(server: SandboxServer) -> None:
    t = target(server)
    group, created = t.create_group("Clients")
    assert created and group["name"] == "Clients" and group["members"] == 0
    again, created = t.create_group(" clients ")
    assert not created and again["id"] == group["id"]
    for i in range(120):
        server.app.state.waapi.create_group(f"g{i:03d}", "d")
    seed(server, 3, groups=["Clients"])
    listed = t.list_groups()
    assert len(listed) == 121 and len({g["id"] for g in listed}) == 121
    clients = next(g for g in listed if g["name"] == "Clients")
    assert clients == {"id": group["id"], "name": "Clients", "members": 3, "description": None}
    assert len(server.app.state.waapi.groups) == 121


def test_add_members_in_batches_with_not_found_rows(server: SandboxServer) -> None:
    seed(server, 90)
    store = server.app.state.waapi
    in_already = next(c for c in store.contacts.values() if c.phone == phone(0)[1:])
    t = target(server)
    t.create_group("Team")
    store.join(store.group_named("Team"), in_already)
    server.app.journal.clear()
    df = simple_contacts(95)  # 90 exist, 5 do not; phone(0) is already a member
    result = t.change_members("TEAM", df, add=True)
    assert result.counts()["loaded"] == 90
    assert {result.failures[i][0] for i in range(90, 95)} == {"NOT_FOUND"}
    assert len(store.group_named("Team").contacts) == 90
    assert any("already in group" in n for n in result.notes)
    adds = [e for e in requests(server, "POST") if e.path.endswith("/add")]
    assert [e.items for e in adds] == [89]
    small = target(server, batch_size=40).change_members("New", simple_contacts(90), add=True)
    assert small.counts()["loaded"] == 90 and any("created" in n for n in small.notes)
    adds = [e for e in requests(server, "POST") if e.path.endswith("/add")]
    assert [e.items for e in adds] == [89, 40, 40, 10]
    assert len(store.group_named("New").contacts) == 90


def test_remove_members_reports_non_members(server: SandboxServer) -> None:
    seed(server, 10, groups=["Team"])
    seed(server, 5, start=10)
    t = target(server)
    result = t.change_members("team", simple_contacts(16), add=False)
    codes = [result.failures.get(i, ("",))[0] for i in range(16)]
    assert codes == [""] * 10 + ["NOT_IN_GROUP"] * 5 + ["NOT_FOUND"]
    assert server.app.state.waapi.group_named("Team").contacts == {}
    assert len(server.app.state.waapi.contacts) == 15
    with pytest.raises(UsageError, match="no group named 'Gone'"):
        t.change_members("Gone", simple_contacts(1), add=False)
    assert "Gone" not in {g.name for g in server.app.state.waapi.groups.values()}


def test_a_group_create_whose_answer_was_lost_is_not_duplicated(server: SandboxServer) -> None:
    server.app.faults.add("waapi", "POST", "*/groups", times=1, delay_s=0.3)
    t = make_target("waapi", server, policy=SLOW_RETRY)
    t.client()._http.timeout = httpx.Timeout(0.15)
    group, created = t.create_group("Once")
    assert created and group["name"] == "Once"
    assert [g.name for g in server.app.state.waapi.groups.values()] == ["Once"]
    assert t.stats.by_endpoint["POST groups"] == 1
