"""MsgFlash sandbox: the docs' curl examples, auth, validation, pagination, groups, limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from sandbox_helpers import SyncClient, fast_settings

from contactpipe.sandbox import ManualClock, build_app

# Literals copied from msgflash-contacts-and-groups.md
DOC_CREATE = {
    "name": "Awa Doe",
    "phone": "+33612345000",
    "tags": ["vip", "newsletter"],
    "meta": {"city": "Cotonou"},
}
DOC_GROUP = {"name": "Clients VIP", "description": "High-value clients", "color": "#F59E0B"}
LIST_KEYS = {"id", "name", "phone", "tags", "temperature", "createdAt", "updatedAt"}


def make_contacts(client: SyncClient, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        r = client.post(
            "/api/v1/contacts", json={"name": f"Person {i:04d}", "phone": f"+3361{i:07d}"}
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["data"]["id"])
    return ids


def error(r: Any) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


# -- the docs' curl examples --------------------------------------------------------
def test_curl_create_contact(mf: SyncClient) -> None:
    r = mf.post("/api/v1/contacts", json=DOC_CREATE)
    assert r.status_code == 201
    data = r.json()["data"]
    assert set(data) == {"id", "name", "phone"}
    assert data["id"].startswith("cnt_")
    assert (data["name"], data["phone"]) == ("Awa Doe", "+33612345000")
    full = mf.get(f"/api/v1/contacts/{data['id']}").json()["data"]
    assert full["meta"] == {"city": "Cotonou"} and full["tags"] == ["vip", "newsletter"]


def test_curl_bulk_delete(mf: SyncClient) -> None:
    (existing,) = make_contacts(mf, 1)
    r = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": [existing, "CONTACT_UUID_2"]})
    assert r.status_code == 200
    assert r.json() == {"data": {"requested": 2, "deleted": 1, "notFound": ["CONTACT_UUID_2"]}}


def test_curl_create_group_add_and_list_members(mf: SyncClient) -> None:
    r = mf.post("/api/v1/contacts/groups", json=DOC_GROUP)
    assert r.status_code == 201
    group = r.json()["data"]
    assert {"id", "name", "description", "color", "contactCount", "createdAt"} <= set(group)
    assert group["contactCount"] == 0
    awa = mf.post("/api/v1/contacts", json=DOC_CREATE).json()["data"]["id"]
    other = make_contacts(mf, 1)[0]
    r = mf.post(
        f"/api/v1/contacts/groups/{group['id']}/members",
        json={"contactIds": [awa, other, "CONTACT_UUID_2"]},
    )
    assert r.status_code == 200
    assert r.json()["data"] == {"added": 2, "alreadyInGroup": 0, "notFound": 1, "total": 2}
    r = mf.get(f"/api/v1/contacts/groups/{group['id']}/members?limit=20&search=awa")
    assert r.status_code == 200
    data = r.json()["data"]
    assert set(data) == {"members", "nextCursor", "hasMore"}
    assert [m["id"] for m in data["members"]] == [awa]
    assert (data["nextCursor"], data["hasMore"]) == (None, False)


def test_curl_usage_is_out_of_scope(mf: SyncClient) -> None:
    r = mf.get("/api/v1/usage")
    assert r.status_code == 404
    assert error(r)["code"] == "NOT_FOUND"


# -- authentication -----------------------------------------------------------------
def test_auth_rules(make_client: Any, settings: Any) -> None:
    key = settings.msgflash_api_key
    team = build_app(
        fast_settings(msgflash_team_key="msgf_team_" + "ab" * 20, msgflash_team_id="team-1")
    )
    cases = [
        ({}, 401, "UNAUTHORIZED"),
        ({"Authorization": f"Bearer {key}"}, 401, "UNAUTHORIZED"),
        ({"x-api-key": "msgf_live_" + "0" * 64}, 401, "UNAUTHORIZED"),
        ({"x-api-key": key, "X-Team-Id": "team-1"}, 403, "TEAM_KEY_REQUIRED"),
        ({"x-api-key": "msgf_team_" + "ab" * 20}, 401, "UNAUTHORIZED"),
        ({"x-api-key": "msgf_team_" + "ab" * 20, "X-Team-Id": "team-2"}, 401, "UNAUTHORIZED"),
        ({"x-api-key": "msgf_team_" + "ab" * 20, "X-Team-Id": "team-1"}, 200, None),
        ({"x-api-key": key}, 200, None),
    ]
    messages = set()
    for headers, status, code in cases:
        r = make_client(headers, app=team).get("/api/v1/contacts")
        assert r.status_code == status, (headers.keys(), r.text)
        if code:
            assert error(r)["code"] == code
            if status == 401:
                messages.add(error(r)["message"])
    assert len(messages) == 1  # a wrong team id reads exactly like an invalid key


# -- validation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"name": "A", "phone": "0612345678"},
        {"name": "A", "phone": "+0612345678"},
        {"name": "A", "phone": "+33 6 12 34 56 78"},
        {"name": "A", "phone": "+12345"},
        {"name": "A", "phone": "+1234567890123456"},
        {"name": "A", "phone": 33612345678},
        {"phone": "+33612345678"},
        {"name": "  ", "phone": "+33612345678"},
        {"name": "A", "phone": "+33612345678", "tags": "vip"},
        {"name": "A", "phone": "+33612345678", "meta": []},
        [],
    ],
)
def test_create_validation_error(mf: SyncClient, body: Any) -> None:
    r = mf.post("/api/v1/contacts", json=body)
    assert r.status_code == 400
    assert error(r)["code"] == "VALIDATION_ERROR"


def test_malformed_json_is_bad_request(mf: SyncClient) -> None:
    r = mf.post("/api/v1/contacts", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and error(r)["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "query",
    ["limit=101", "limit=0", "limit=x", "sort=name_desc", "cursor=zzz", "search=" + "a" * 101],
)
def test_list_parameters_validated(mf: SyncClient, query: str) -> None:
    r = mf.get(f"/api/v1/contacts?{query}")
    assert r.status_code == 400 and error(r)["code"] == "VALIDATION_ERROR"


def test_duplicate_phone_conflict_or_allowed(
    mf: SyncClient, make_client: Any, settings: Any
) -> None:
    assert mf.post("/api/v1/contacts", json=DOC_CREATE).status_code == 201
    r = mf.post("/api/v1/contacts", json=DOC_CREATE)
    assert r.status_code == 409 and error(r)["code"] == "CONFLICT"
    lax = build_app(fast_settings(msgflash_duplicate_phone="allow"))
    client = make_client({"x-api-key": settings.msgflash_api_key}, app=lax)
    assert [client.post("/api/v1/contacts", json=DOC_CREATE).status_code for _ in "ab"] == [
        201,
        201,
    ]


def test_contact_crud(mf: SyncClient) -> None:
    cid = mf.post("/api/v1/contacts", json=DOC_CREATE).json()["data"]["id"]
    listed = mf.get("/api/v1/contacts").json()["data"]["contacts"][0]
    assert set(listed) == LIST_KEYS  # no meta in lists
    r = mf.put(f"/api/v1/contacts/{cid}", json={"tags": ["renewed"], "meta": {"tier": "gold"}})
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["tags"] == ["renewed"] and data["meta"] == {"tier": "gold"}
    assert data["name"] == "Awa Doe"
    other = make_contacts(mf, 1)[0]
    assert mf.put(f"/api/v1/contacts/{other}", json={"phone": "+33612345000"}).status_code == 409
    assert mf.delete(f"/api/v1/contacts/{cid}").json() == {"data": {"id": cid, "deleted": True}}
    r = mf.get(f"/api/v1/contacts/{cid}")
    assert r.status_code == 404 and error(r)["code"] == "NOT_FOUND"


# -- pagination ---------------------------------------------------------------------
def walk(client: SyncClient, query: str, on_page: Any = None) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        url = f"/api/v1/contacts?{query}" + (f"&cursor={cursor}" if cursor else "")
        data = client.get(url).json()["data"]
        seen += [c["id"] for c in data["contacts"]]
        if on_page:
            on_page()
        if not data["hasMore"]:
            assert data["nextCursor"] is None
            return seen
        cursor = data["nextCursor"]


@pytest.mark.parametrize("sort", ["createdAt_desc", "name_asc"])
def test_cursor_walk_sees_every_contact_once_while_adding(mf: SyncClient, sort: str) -> None:
    ids = make_contacts(mf, 230)
    added = iter(range(1000, 1100))

    def add_two() -> None:
        make_contacts(mf, 2, start=next(added) * 2)

    seen = walk(mf, f"limit=100&sort={sort}", on_page=add_two)
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)
    if sort == "createdAt_desc":
        assert seen == ids[::-1]  # newest first, nothing added later shows up


def test_list_total_limit_and_search(mf: SyncClient) -> None:
    make_contacts(mf, 120)
    data = mf.get("/api/v1/contacts").json()["data"]
    assert (data["total"], data["limit"], len(data["contacts"]), data["hasMore"]) == (
        120,
        50,
        50,
        True,
    )
    data = mf.get("/api/v1/contacts?search=person%20011&limit=100").json()["data"]
    assert data["total"] == 10 and all("011" in c["name"] for c in data["contacts"])
    assert mf.get("/api/v1/contacts?search=%2B33610000005").json()["data"]["total"] == 1


def test_cursor_is_bound_to_its_sort(mf: SyncClient) -> None:
    make_contacts(mf, 3)
    cursor = mf.get("/api/v1/contacts?limit=1").json()["data"]["nextCursor"]
    assert mf.get(f"/api/v1/contacts?limit=1&sort=name_asc&cursor={cursor}").status_code == 400


# -- groups ---------------------------------------------------------------------------
def test_group_conflict_limit_crud_and_contact_groups(make_client: Any, settings: Any) -> None:
    app = build_app(fast_settings(msgflash_max_groups=2))
    mf = make_client({"x-api-key": settings.msgflash_api_key}, app=app)
    gid = mf.post("/api/v1/contacts/groups", json=DOC_GROUP).json()["data"]["id"]
    r = mf.post("/api/v1/contacts/groups", json={"name": "clients vip"})
    assert r.status_code == 409 and error(r)["code"] == "CONFLICT"
    assert mf.post("/api/v1/contacts/groups", json={"name": "Second"}).status_code == 201
    r = mf.post("/api/v1/contacts/groups", json={"name": "Third"})
    assert r.status_code == 403 and error(r)["code"] == "MAX_CONTACT_GROUPS_REACHED"
    assert (
        mf.post("/api/v1/contacts/groups", json={"name": "X", "color": "orange"}).status_code == 400
    )
    assert mf.put(f"/api/v1/contacts/groups/{gid}", json={"name": "Second"}).status_code == 409
    r = mf.put(f"/api/v1/contacts/groups/{gid}", json={"description": "Top"})
    assert r.json()["data"]["description"] == "Top"
    (cid,) = make_contacts(mf, 1)
    mf.post(f"/api/v1/contacts/groups/{gid}/members", json={"contactIds": [cid]})
    groups = mf.get(f"/api/v1/contacts/{cid}/groups").json()["data"]
    assert [g["id"] for g in groups] == [gid]
    r = mf.request(
        "DELETE", f"/api/v1/contacts/groups/{gid}/members", json={"contactIds": [cid, "x"]}
    )
    assert r.json()["data"] == {"removed": 1, "notInGroup": 1}
    assert mf.delete(f"/api/v1/contacts/groups/{gid}").status_code == 200
    assert mf.get(f"/api/v1/contacts/groups/{gid}").status_code == 404
    assert mf.get(f"/api/v1/contacts/{cid}").status_code == 200  # contacts survive


def test_groups_and_members_cursor_pages(mf: SyncClient) -> None:
    for i in range(5):
        mf.post("/api/v1/contacts/groups", json={"name": f"G{i}"})
    page = mf.get("/api/v1/contacts/groups?limit=3").json()["data"]
    assert [g["name"] for g in page["groups"]] == ["G4", "G3", "G2"] and page["hasMore"]
    rest = mf.get(f"/api/v1/contacts/groups?limit=3&cursor={page['nextCursor']}").json()["data"]
    assert [g["name"] for g in rest["groups"]] == ["G1", "G0"] and not rest["hasMore"]
    gid = page["groups"][0]["id"]
    ids = make_contacts(mf, 7)
    mf.post(f"/api/v1/contacts/groups/{gid}/members", json={"contactIds": ids})
    members, cursor = [], ""
    while True:
        data = mf.get(f"/api/v1/contacts/groups/{gid}/members?limit=3{cursor}").json()["data"]
        members += [m["id"] for m in data["members"]]
        if not data["hasMore"]:
            break
        cursor = f"&cursor={data['nextCursor']}"
    assert members == ids


# -- bulk limits ------------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 10_001])
def test_bulk_delete_size_limits(mf: SyncClient, count: int) -> None:
    r = mf.post(
        "/api/v1/contacts/bulk-delete", json={"contactIds": [f"c{i}" for i in range(count)]}
    )
    assert r.status_code == 400 and error(r)["code"] == "VALIDATION_ERROR"


def test_bulk_delete_limit_is_configurable(make_client: Any, settings: Any) -> None:
    app = build_app(fast_settings(msgflash_bulk_delete_max=500))  # the older French page
    mf = make_client({"x-api-key": settings.msgflash_api_key}, app=app)
    ids = [f"c{i}" for i in range(501)]
    assert mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids}).status_code == 400
    assert (
        mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids[:500]}).status_code == 202
    )


def test_members_size_limit(mf: SyncClient) -> None:
    gid = mf.post("/api/v1/contacts/groups", json=DOC_GROUP).json()["data"]["id"]
    ids = [f"c{i}" for i in range(10_001)]
    r = mf.post(f"/api/v1/contacts/groups/{gid}/members", json={"contactIds": ids})
    assert r.status_code == 400 and error(r)["code"] == "VALIDATION_ERROR"
    r = mf.post("/api/v1/contacts/groups/nope/members", json={"contactIds": ["a"]})
    assert r.status_code == 404


# -- rate limit and quota ---------------------------------------------------------------
def test_rate_limit_ten_per_second_per_key(make_client: Any, settings: Any) -> None:
    clock = ManualClock()
    app = build_app(
        fast_settings(
            msgflash_rate_limit=10,
            msgflash_team_key="msgf_team_" + "cd" * 20,
            msgflash_team_id="t1",
        ),
        clock,
    )
    mf = make_client({"x-api-key": settings.msgflash_api_key}, app=app)
    team = make_client({"x-api-key": "msgf_team_" + "cd" * 20, "X-Team-Id": "t1"}, app=app)
    statuses = []
    for _ in range(11):
        statuses.append(mf.get("/api/v1/contacts").status_code)
        clock.advance(0.05)
    assert statuses == [200] * 10 + [429]
    r = mf.get("/api/v1/contacts")
    assert error(r)["code"] == "API_RATE_LIMIT_EXCEEDED"
    assert not any(h.lower().startswith(("ratelimit", "x-ratelimit")) for h in r.headers)
    assert team.get("/api/v1/contacts").status_code == 200  # per key
    clock.advance(1.0)
    assert mf.get("/api/v1/contacts").status_code == 200


def test_monthly_quota(make_client: Any, settings: Any) -> None:
    app = build_app(fast_settings(msgflash_monthly_quota=3))
    mf = make_client({"x-api-key": settings.msgflash_api_key}, app=app)
    statuses = [mf.get("/api/v1/contacts").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert error(mf.get("/api/v1/contacts"))["code"] == "MONTHLY_API_REQUEST_QUOTA_EXCEEDED"


@settings_(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    initial=st.integers(0, 40),
    limit=st.integers(1, 15),
    sort=st.sampled_from(["createdAt_desc", "name_asc"]),
    changes=st.lists(st.tuples(st.booleans(), st.integers(0, 10_000)), max_size=12),
)
def test_walk_property(
    make_client: Any, settings: Any, initial: int, limit: int, sort: str, changes: list[Any]
) -> None:
    """Walking while contacts are added and deleted: no contact twice, and every contact that
    existed for the whole walk is seen."""
    mf = make_client({"x-api-key": settings.msgflash_api_key}, app=build_app(fast_settings()))
    ids = make_contacts(mf, initial)
    deleted: set[str] = set()
    steps = iter(changes)
    fresh = iter(range(100_000, 200_000))

    def mutate() -> None:
        step = next(steps, None)
        if step is None:
            return
        add, n = step
        if add or not ids:
            make_contacts(mf, 1, start=next(fresh))
        else:
            victim = ids[n % len(ids)]
            mf.delete(f"/api/v1/contacts/{victim}")
            deleted.add(victim)

    seen = walk(mf, f"limit={limit}&sort={sort}", on_page=mutate)
    assert len(seen) == len(set(seen))
    assert set(ids) - deleted <= set(seen)
