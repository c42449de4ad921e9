"""Vobiz export, delete and (absent) groups against the sandbox over real HTTP: page/limit
listing with no gaps or repeats (also while contacts are added, and under faults), filters,
round trip, delete by phone or id with its safety limit and dry run."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import polars as pl
import pytest
from load_helpers import contacts_df, make_target, phone, simple_contacts

from contactpipe.errors import UsageError
from contactpipe.load.base import FAILED, LOADED, UNCHANGED, ExportFilters, LoadResult
from contactpipe.load.targets.vobiz import NO_GROUPS, Vobiz
from contactpipe.sandbox import SandboxServer

LIST = "/api/v1/messaging/contacts"
ONE = "/api/v1/messaging/contacts/*"
NONE = ExportFilters()


def vobiz(server: SandboxServer, **options: Any) -> Vobiz:
    target = make_target("vobiz", server, **options)
    assert isinstance(target, Vobiz)
    return target


def api(server: SandboxServer) -> httpx.Client:
    """A plain HTTP client on the sandbox's Vobiz API (to change data behind the target)."""
    s = server.settings
    return httpx.Client(
        base_url=server.base_urls["vobiz"],
        headers={"X-Auth-ID": s.vobiz_auth_id, "X-Auth-Token": s.vobiz_auth_token},
    )


def seed(server: SandboxServer, n: int, start: int = 0, **fields: Any) -> None:
    """``n`` contacts through the CSV import (one request), then a clean journal."""
    target = vobiz(server)
    try:
        result = target.load(simple_contacts(n, start, **fields))
    finally:
        target.close()
    assert result.counts()["failed"] == 0
    server.app.journal.clear()


def store(server: SandboxServer) -> dict[str, Any]:
    """id -> contact object of every contact the sandbox holds."""
    return dict(server.app.state.vobiz.contacts)


def export(target: Vobiz, filters: ExportFilters = NONE) -> list[list[dict[str, Any]]]:
    try:
        return list(target.export(filters, False))
    finally:
        target.close()


def flat(pages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [c for page in pages for c in page]


def requests(server: SandboxServer, method: str | None = None, path: str | None = None) -> list:
    return server.app.journal.entries(api="vobiz", method=method, path=path)


def query(entry: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(entry.query).items()}


def writes(server: SandboxServer) -> list:
    return [e for e in requests(server) if e.method != "GET"]


def run_delete(server: SandboxServer, df: pl.DataFrame, **kw: Any) -> tuple[LoadResult, Vobiz]:
    target = vobiz(server)
    try:
        return target.delete(df, **kw), target
    finally:
        target.close()


def phones_df(*numbers: str) -> pl.DataFrame:
    return contacts_df([{"phone": p, "name": "x"} for p in numbers])


# -- export ------------------------------------------------------------------------------


def test_export_matches_the_store_across_pages(server: SandboxServer) -> None:
    seed(server, 250, tags=["b", "a"])
    with api(server) as http:
        some = next(iter(store(server)))
        http.put(f"/contacts/{some}", json={"custom_attributes": {"company": "Acme", "n": 3}})
    server.app.journal.clear()
    target = vobiz(server)
    pages = export(target)
    got = flat(pages)
    assert [len(p) for p in pages] == [100, 100, 50]
    assert target.export_total == 250
    held = store(server)
    assert sorted(c["id"] for c in got) == sorted(held)  # every contact once
    for c in got:
        s = held[c["id"]]
        assert c["phone"] == s.phone_number and c["phone"].startswith("+336")
        assert c["name"] == s.name and c["tags"] == ["b", "a"]
        assert c["custom_fields"] == s.custom_attributes
        assert c["account_id"] == server.settings.vobiz_auth_id
        assert (c["created_at"], c["updated_at"]) == (s.created_at, s.updated_at)
        assert "last_active_at" not in c  # the sandbox omits it: absent, not None
        assert "groups" not in c and "email" not in c
    assert next(c for c in got if c["id"] == some)["custom_fields"] == {"company": "Acme", "n": 3}
    assert [(query(e)["page"], query(e)["limit"]) for e in requests(server)] == [
        ("1", "100"),
        ("2", "100"),
        ("3", "100"),
    ]


def test_export_carries_last_active_at_when_the_api_gives_it() -> None:
    from contactpipe.load.targets.vobiz import export_contact

    item = {
        "id": "9b8a",
        "account_id": "MA_X",
        "phone_number": "919876543210",
        "name": "Rahul",
        "tags": ["vip"],
        "custom_attributes": {"company": "Acme"},
        "last_active_at": "2026-03-17T14:22:00Z",
        "created_at": "2026-03-01T10:00:00Z",
        "updated_at": "2026-03-01T10:00:00Z",
    }
    assert export_contact(item) == {
        "id": "9b8a",
        "phone": "+919876543210",
        "name": "Rahul",
        "tags": ["vip"],
        "custom_fields": {"company": "Acme"},
        "created_at": "2026-03-01T10:00:00Z",
        "updated_at": "2026-03-01T10:00:00Z",
        "account_id": "MA_X",
        "last_active_at": "2026-03-17T14:22:00Z",
    }


def test_empty_account_exports_nothing_in_one_request(server: SandboxServer) -> None:
    target = vobiz(server)
    assert flat(export(target)) == []
    assert target.export_total == 0
    assert len(requests(server)) == 1


def test_contacts_added_during_the_export_cause_no_gap_or_repeat(server: SandboxServer) -> None:
    seed(server, 300)
    before = set(store(server))
    target = vobiz(server)
    got: list[dict[str, Any]] = []
    with api(server) as http:
        for k, page in enumerate(target.export(NONE, False)):
            got.extend(page)
            if k < 2:  # newest first: each insert pushes every listed contact one place on
                for j in range(37):
                    resp = http.post(
                        "/contacts", json={"phone_number": phone(5_000 + 100 * k + j), "name": "N"}
                    )
                    assert resp.status_code == 201
    target.close()
    ids = Tally(c["id"] for c in got)
    assert max(ids.values()) == 1  # nothing repeats
    assert before <= set(ids)  # every contact of the start is there
    assert target.export_total == 300
    assert len(requests(server, "GET", LIST)) >= 4  # the shifted items spill onto a 4th page


def test_search_and_tag_filters(server: SandboxServer) -> None:
    seed(server, 120, tags=["old"])
    seed(server, 130, start=1_000, tags=["vip", "new"])
    target = vobiz(server)
    vip = flat(export(target, ExportFilters(tag="vip")))
    assert len(vip) == 130 and target.export_total == 130
    assert {c["phone"] for c in vip} == {phone(i) for i in range(1_000, 1_130)}
    assert {query(e).get("tag") for e in requests(server)} == {"vip"}
    server.app.journal.clear()
    one = flat(export(vobiz(server), ExportFilters(search="Contact 1012", tag="vip")))
    assert [c["phone"] for c in one] == [phone(1012)]
    assert query(requests(server)[0])["search"] == "Contact 1012"


@pytest.mark.parametrize(
    ("filters", "with_groups", "match"),
    [
        (ExportFilters(group="VIP"), False, "--group: Vobiz has no contact groups"),
        (NONE, True, "--with-groups: Vobiz has no contact groups"),
        (ExportFilters(opt_out=True), False, "--opt-out.*--search.*--tag"),
    ],
)
def test_unsupported_filters_refused_before_any_request(
    server: SandboxServer, filters: ExportFilters, with_groups: bool, match: str
) -> None:
    target = vobiz(server)
    with pytest.raises(UsageError, match=match):
        target.export(filters, with_groups)  # at the call, not at the first next()
    with pytest.raises(UsageError, match=match):
        target.export_plan(filters, with_groups)
    assert requests(server) == []


def test_export_plan_counts_pages_with_one_small_request(server: SandboxServer) -> None:
    seed(server, 250, tags=["t"])
    target = vobiz(server)
    [line] = target.export_plan(NONE, False)
    assert (line.endpoint, line.requests, line.items, line.min_seconds) == (
        "GET /contacts",
        3,
        250,
        None,
    )
    assert "100 contacts per page" in line.note
    [entry] = requests(server)
    assert query(entry) == {"page": "1", "limit": "1"}
    [tagged] = target.export_plan(ExportFilters(tag="nope"), False)
    assert (tagged.requests, tagged.items) == (1, 0)
    target.close()


def test_a_server_that_clamps_lower_is_followed(server: SandboxServer) -> None:
    seed(server, 95)
    server.settings.vobiz_page_max = 30
    target = vobiz(server)
    got = flat(export(target))
    assert sorted(c["id"] for c in got) == sorted(store(server))
    assert [(query(e)["page"], query(e)["limit"]) for e in requests(server)] == [
        ("1", "100"),
        ("2", "30"),
        ("3", "30"),
        ("4", "30"),
    ]
    assert target.page_size == 30 and Vobiz.page_size == 100
    assert target.export_plan(NONE, False)[0].requests == 4  # plans count its pages now


def test_a_larger_page_size_is_asked_then_clamped(server: SandboxServer) -> None:
    seed(server, 250)
    target = vobiz(server)
    target.page_size = 1_000
    got = flat(export(target))
    assert len({c["id"] for c in got}) == len(got) == 250
    assert [query(e)["limit"] for e in requests(server)] == ["1000", "100", "100"]


def test_export_stops_on_wrong_credentials(server: SandboxServer) -> None:
    from load_helpers import sandbox_env

    from contactpipe.load.client import AuthRefused

    env = sandbox_env(server) | {"VOBIZ_AUTH_TOKEN": "wrong"}
    target = make_target("vobiz", server, env=env)
    with pytest.raises(AuthRefused):
        list(target.export(NONE, False))
    target.close()


# -- round trip --------------------------------------------------------------------------


def test_round_trip_reports_every_row_unchanged_and_sends_nothing(server: SandboxServer) -> None:
    seed(server, 150, tags=["x", "y"])
    with api(server) as http:
        ids = list(store(server))
        for cid in ids[:5]:
            http.put(f"/contacts/{cid}", json={"custom_attributes": {"plan": "gold"}})
        # set through the JSON API: a tag with a comma, which no CSV import row can carry
        resp = http.post(
            "/contacts",
            json={"phone_number": phone(9_999), "name": "  Comma  ", "tags": ["a,b", "c"]},
        )
        assert resp.status_code == 201
    server.app.journal.clear()
    exported = flat(export(vobiz(server)))
    assert len(exported) == 151
    frame = contacts_df(
        [{k: c.get(k) for k in ("phone", "name", "tags", "custom_fields")} for c in exported]
    )
    server.app.journal.clear()
    target = vobiz(server)
    try:
        result = target.load(frame)
    finally:
        target.close()
    assert set(result.state) == {UNCHANGED}
    assert result.counts() == {
        "created": 0,
        "updated": 0,
        "unchanged": 151,
        "failed": 0,
        "loaded": 151,
    }
    assert result.not_carried == {"custom_fields": 5}  # listed, never sent
    assert writes(server) == []
    assert {e.path for e in requests(server)} == {LIST}


# -- delete ------------------------------------------------------------------------------


def test_delete_by_phone_reports_rows_not_found(server: SandboxServer) -> None:
    seed(server, 10)
    df = phones_df(phone(1), phone(4), "+33700000000", phone(7), phone(4))
    result, target = run_delete(server, df)
    assert list(result.state) == [LOADED, LOADED, FAILED, LOADED, LOADED]
    assert result.failures[2][0] == "NOT_FOUND" and "+33700000000" in result.failures[2][1]
    assert result.aborted is None and result.pending() == []
    left = {c.phone_number for c in store(server).values()}
    assert left == {phone(i) for i in range(10)} - {phone(1), phone(4), phone(7)}
    # one page lists the account; the phone repeated in the file is deleted once
    assert target.stats.by_endpoint == {"GET /contacts": 1, "DELETE /contacts/{id}": 3}
    assert all(e.status == 204 for e in requests(server, "DELETE"))
    assert set(result.seconds) == {"lookup", "delete"}


def test_delete_few_rows_of_a_large_account_searches_by_phone(server: SandboxServer) -> None:
    seed(server, 450)  # 5 pages; newest first: phone(449) is on page 1
    result, _ = run_delete(server, phones_df(phone(3), phone(449), phone(7)))
    assert set(result.state) == {LOADED}
    gets = requests(server, "GET", LIST)
    assert [query(e) for e in gets] == [
        {"page": "1", "limit": "100"},
        {"page": "1", "limit": "100", "search": phone(3)[1:]},
        {"page": "1", "limit": "100", "search": phone(7)[1:]},
    ]
    assert len(store(server)) == 447
    server.app.journal.clear()
    one, _ = run_delete(server, phones_df(phone(10)))  # a single row: one search, no probe
    assert set(one.state) == {LOADED}
    assert [query(e).get("search") for e in requests(server, "GET")] == [phone(10)[1:]]


def test_delete_many_rows_lists_the_account(server: SandboxServer) -> None:
    seed(server, 450)
    df = phones_df(*(phone(i) for i in range(0, 450, 50)), "+33700000001")
    result, target = run_delete(server, df)
    assert result.counts()["loaded"] == 9 and result.failures[9][0] == "NOT_FOUND"
    assert target.stats.by_endpoint["GET /contacts"] == 5  # 5 pages < 10 searches
    assert len(store(server)) == 441


def test_dry_run_sends_no_write(server: SandboxServer) -> None:
    seed(server, 5)
    held = store(server)
    some = next(iter(held))
    df = phones_df(phone(0), phone(1), "+33700000002").with_columns(
        pl.Series("id", [None, None, None], dtype=pl.String)
    )
    df = pl.concat(
        [
            df,
            phones_df(phone(99), phone(98)).with_columns(
                pl.Series("id", [some, "no-such-id"], dtype=pl.String)
            ),
        ]
    )
    result, _ = run_delete(server, df, dry_run=True, limit=1)  # the limit guards deletes only
    assert list(result.state) == [LOADED, LOADED, FAILED, LOADED, FAILED]
    assert result.failures[2][0] == "NOT_FOUND"
    assert result.failures[4] == ("NOT_FOUND", "no Vobiz contact with id no-such-id")
    assert writes(server) == []
    assert store(server).keys() == held.keys()


def test_delete_retries_server_errors_and_drops(server: SandboxServer) -> None:
    seed(server, 4)
    server.app.faults.add("vobiz", "DELETE", ONE, status=500)
    server.app.faults.add("vobiz", "DELETE", ONE, drop=True)
    server.app.faults.add("vobiz", "DELETE", ONE, status=429, retry_after=0)
    result, target = run_delete(server, phones_df(phone(0), phone(2)))
    assert list(result.state) == [LOADED, LOADED] and result.notes == []
    assert {c.phone_number for c in store(server).values()} == {phone(1), phone(3)}
    assert target.stats.retries == 3 and target.stats.rate_limited == 1


def test_delete_404_after_a_retry_counts_as_deleted(server: SandboxServer) -> None:
    seed(server, 2)
    server.app.faults.add("vobiz", "DELETE", ONE, drop=True)
    victim = next(c.id for c in store(server).values() if c.phone_number == phone(1))
    target = vobiz(server)
    client = target.client()
    real_sleep = client._sleep

    def sleep_then_delete_behind(delay: float) -> None:
        with api(server) as http:
            assert http.delete(f"/contacts/{victim}").status_code == 204
        real_sleep(delay)

    client._sleep = sleep_then_delete_behind
    try:
        result = target.delete(phones_df(phone(1)))
    finally:
        target.close()
    assert list(result.state) == [LOADED]
    assert "already gone when the delete ran" in result.notes[0]


def test_delete_with_wrong_credentials_aborts_every_row(server: SandboxServer) -> None:
    from load_helpers import sandbox_env

    seed(server, 2)
    env = sandbox_env(server) | {"VOBIZ_AUTH_TOKEN": "wrong"}
    target = make_target("vobiz", server, env=env)
    try:
        result = target.delete(phones_df(phone(0), phone(1)))
    finally:
        target.close()
    assert result.aborted is not None
    assert {code for code, _ in result.failures.values()} == {"NOT_SENT"}
    assert len(store(server)) == 2


def test_delete_progress_counts_contacts(server: SandboxServer) -> None:
    from contactpipe.report.progress import Counter

    seed(server, 3)
    counters: list[Counter] = []

    class Progress:
        def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
            counters.append(Counter(name, total, unit))
            return counters[-1]

        def stage(self, name: str, detail: str = "") -> Any:
            raise AssertionError

    target = vobiz(server)
    target.progress = Progress()  # type: ignore[assignment]
    try:
        target.delete(phones_df(phone(0), phone(1)))
        list(target.export(NONE, False))
    finally:
        target.close()
    assert [(c.name, c.total, c.done) for c in counters] == [
        ("vobiz lookup", 2, 2),
        ("vobiz delete", 2, 2),
        ("vobiz export", 1, 1),
    ]


# -- groups ------------------------------------------------------------------------------


def test_groups_are_refused_clearly(server: SandboxServer) -> None:
    target = vobiz(server)
    calls: Iterator[Any] = iter(
        [
            target.list_groups,
            lambda: target.create_group("VIP"),
            lambda: target.change_members("VIP", simple_contacts(2), add=True),
            lambda: target.change_members("VIP", simple_contacts(2), add=False),
        ]
    )
    for call in calls:
        with pytest.raises(UsageError) as info:
            call()
        assert str(info.value) == NO_GROUPS
    assert "tags instead" in NO_GROUPS and "export --tag NAME" in NO_GROUPS
    assert requests(server) == []
