"""MsgFlash export, delete and groups against the sandbox over real HTTP: cursor pages that
match the store exactly (also while contacts are added, and through 429 / 5xx / dropped
connections), filters, memberships, the round trip, delete by phone or id (sync and async
bulk jobs, failed jobs, Ctrl-C cancelling the job), groups list / create / add / remove."""

from __future__ import annotations

import time
from collections import Counter as Tally
from typing import Any

import httpx
import polars as pl
import pytest
from load_helpers import contacts_df, make_target, phone

from contactpipe.errors import UsageError
from contactpipe.load.base import FAILED, LOADED, UNCHANGED, ExportFilters
from contactpipe.load.targets.msgflash import MsgFlash
from contactpipe.report.progress import Counter, NullProgress
from contactpipe.sandbox import SandboxServer
from contactpipe.sandbox.msgflash_store import OP_ADD

CONTACTS = "/api/v1/contacts"
GROUPS = "/api/v1/contacts/groups"
BULK_DELETE = "/api/v1/contacts/bulk-delete"


# -- helpers ----------------------------------------------------------------------------------
def store(server: SandboxServer) -> Any:
    return server.app.state.msgflash


def seed(server: SandboxServer, n: int, start: int = 0, tags: tuple[str, ...] = ()) -> list[str]:
    """``n`` contacts straight into the store (fast); their ids, oldest first."""
    st = store(server)
    with server.app.lock:
        return [
            st.create_contact(f"Contact {i}", phone(i), [*tags, f"t{i % 3}"], {}).id
            for i in range(start, start + n)
        ]


def seed_group(server: SandboxServer, name: str, ids: list[str]) -> str:
    st = store(server)
    with server.app.lock:
        group = st.create_group(name, None, None)
        for cid in ids:
            st.member_op(OP_ADD, group, cid)
        return group.id


def members(server: SandboxServer, gid: str) -> set[str]:
    return {cid for _, cid in store(server).groups[gid].members.iter_asc()}


def journal(server: SandboxServer, method: str | None = None, path: str | None = None) -> list[Any]:
    return server.app.journal.entries(api="msgflash", method=method, path=path)


def writes(server: SandboxServer) -> list[Any]:
    return [e for e in journal(server) if e.method != "GET"]


class Recorder(NullProgress):
    """Keeps every counter the target opens."""

    def __init__(self) -> None:
        self.counters: dict[str, Counter] = {}

    def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
        self.counters[name] = Counter(name, total, unit)
        return self.counters[name]


def target(server: SandboxServer, **options: Any) -> MsgFlash:
    """A target whose client-side limit is lifted (the sandbox fixture has none)."""
    t = make_target("msgflash", server, **options)
    assert isinstance(t, MsgFlash)
    t.RATE_LIMIT = 10_000
    return t


def export_all(t: MsgFlash, with_groups: bool = False, **filters: Any) -> list[list[dict]]:
    try:
        return list(t.export(ExportFilters(**filters), with_groups))
    finally:
        t.close()


def flat(pages: list[list[dict]]) -> list[dict]:
    return [row for page in pages for row in page]


def frame(rows: list[dict[str, Any]]) -> Any:
    """Contacts frame of the rows of a delete / members file."""
    return contacts_df(rows)


def api_client(server: SandboxServer) -> httpx.Client:
    """Someone else using the API meanwhile."""
    return httpx.Client(
        base_url=server.base_urls["msgflash"],
        headers={"x-api-key": server.settings.msgflash_api_key},
    )


def assert_settled_as_store(server: SandboxServer, result: Any, row_ids: list[str]) -> None:
    """Each row LOADED exactly when its contact is gone from the store."""
    assert result.pending() == []
    contacts = store(server).contacts
    for i, cid in enumerate(row_ids):
        gone = cid not in contacts
        assert (result.state[i] == LOADED) == gone, (i, result.failures.get(i))


# -- export -----------------------------------------------------------------------------------
def test_export_matches_the_store_across_pages(server: SandboxServer) -> None:
    ids = seed(server, 250, tags=("vip",))
    with server.app.lock:  # one phone stored without its +: the export adds it
        odd = store(server).create_contact("No Plus", "33799999999", [], {})
    t = target(server)
    t.progress = progress = Recorder()
    pages = export_all(t)
    rows = flat(pages)
    assert [len(p) for p in pages] == [100, 100, 51]
    bar = progress.counters["msgflash export"]
    assert (bar.total, bar.done, bar.unit) == (251, 251, "contacts")
    assert t.export_total == 251
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows) == 251
    assert set(by_id) == {*ids, odd.id} == set(store(server).contacts)
    for cid, row in by_id.items():
        c = store(server).contacts[cid]
        assert row["phone"].startswith("+")
        assert row["phone"] == (c.phone if c.phone.startswith("+") else "+" + c.phone)
        assert row["name"] == c.name and row["tags"] == c.tags
        assert (row["created_at"], row["updated_at"]) == (c.created_at, c.updated_at)
        assert row["temperature"] == c.temperature
        assert "groups" not in row and "custom_fields" not in row
    assert rows[0]["id"] == odd.id  # newest first
    gets = journal(server, "GET", CONTACTS)
    assert len(gets) == 3
    assert all("limit=100" in e.query and "sort=createdAt_desc" in e.query for e in gets)
    assert "cursor=" not in gets[0].query and all("cursor=" in e.query for e in gets[1:])


def test_export_while_contacts_are_added(server: SandboxServer) -> None:
    ids = seed(server, 230)
    t = target(server)
    pages = t.export(ExportFilters(), False)
    rows: list[dict] = []
    with api_client(server) as other:
        for k, page in enumerate(pages):
            rows += page
            if k < 2:  # someone adds contacts between pages
                for j in range(15):
                    body = {"name": "Late", "phone": phone(50_000 + 15 * k + j)}
                    other.post(CONTACTS, json=body).raise_for_status()
    t.close()
    seen = Tally(r["id"] for r in rows)
    assert max(seen.values()) == 1  # no repeat
    assert set(ids) <= set(seen)  # no gap: every contact there at the start
    assert len(store(server).contacts) == 260


def test_export_search_and_group_filters(server: SandboxServer) -> None:
    ids = seed(server, 150)
    gid = seed_group(server, "Clients VIP", ids[20:140])
    rows = flat(export_all(target(server), search="Contact 1"))
    want = {c.id for c in store(server).contacts.values() if "contact 1" in c.name.casefold()}
    assert {r["id"] for r in rows} == want and len(rows) == len(want) == 61
    assert "search=Contact+1" in journal(server, "GET", CONTACTS)[0].query

    t = target(server)
    rows = flat(export_all(t, group="  clients vip"))  # any case, blanks ignored
    assert [r["id"] for r in rows] == ids[20:140] and t.export_total == 120
    member_gets = journal(server, "GET", f"{GROUPS}/{gid}/members")
    assert len(member_gets) == 2 and all("limit=100" in e.query for e in member_gets)

    rows = flat(export_all(target(server), group="CLIENTS VIP", search="Contact 13"))
    assert sorted(r["name"] for r in rows) == [f"Contact {i}" for i in range(130, 140)]


def test_export_with_groups_matches_memberships(server: SandboxServer) -> None:
    ids = seed(server, 230)
    seed_group(server, "Empty", [])
    a = seed_group(server, "Alpha", ids[:150])
    b = seed_group(server, "beta", ids[100:])
    t = target(server)
    plan = t.export_plan(ExportFilters(), True)
    server.app.journal.clear()
    rows = flat(export_all(t, with_groups=True))
    names = {a: "Alpha", b: "beta"}
    assert len(rows) == 230
    for row in rows:
        want = sorted((names[g] for g in store(server).contacts[row["id"]].groups), key=str.lower)
        assert row["groups"] == want
    # requests: 1 group page + ceil(150/100) + ceil(130/100) member pages (Empty skipped)
    member_gets = [e for e in journal(server, "GET") if e.path.endswith("/members")]
    assert len(member_gets) == 4
    assert len(journal(server, "GET", GROUPS)) == 1
    by_endpoint = {line.endpoint: line for line in plan}
    assert by_endpoint[f"GET {GROUPS}/{{groupId}}/members"].requests == 4
    assert by_endpoint[f"GET {GROUPS}"].requests == 1
    assert by_endpoint[f"GET {CONTACTS}"].requests == 3

    # --group with --with-groups: the group's members come from the membership pass
    server.app.journal.clear()
    t = target(server)
    rows = flat(export_all(t, with_groups=True, group="alpha"))
    assert [r["id"] for r in rows] == ids[:150] and t.export_total == 150
    assert all("Alpha" in r["groups"] for r in rows)
    assert len([e for e in journal(server, "GET") if e.path == f"{GROUPS}/{a}/members"]) == 2
    assert journal(server, "GET", CONTACTS) == []


def test_unsupported_filters_refused_before_any_request(server: SandboxServer) -> None:
    seed(server, 3)
    t = target(server)
    for filters in (ExportFilters(tag="vip"), ExportFilters(opt_out=True)):
        with pytest.raises(UsageError, match=r"offers --search .* and --group"):
            t.export(filters, False)
        with pytest.raises(UsageError, match="cannot filter"):
            t.export_plan(filters, False)
    with pytest.raises(UsageError, match="at most 100"):
        t.export(ExportFilters(search="x" * 101), False)
    assert journal(server) == []
    with pytest.raises(UsageError, match="no group named 'Nope'"):
        export_all(t, group="Nope")
    assert writes(server) == []


def test_export_plan_counts_requests_at_the_rate_limit(server: SandboxServer) -> None:
    seed(server, 1234)
    real = make_target("msgflash", server)  # the documented 10 req/s
    plan = real.export_plan(ExportFilters(), False)
    assert len(plan) == 1
    line = plan[0]
    assert (line.endpoint, line.requests, line.items) == (f"GET {CONTACTS}", 13, 1234)
    assert line.min_seconds == pytest.approx(1.0)  # 10 at once, 3 a second later
    assert len(journal(server)) == 1 and "limit=1" in journal(server)[0].query
    (line,) = real.export_plan(ExportFilters(search="Contact 12"), False)
    assert line.items == 1 + 10 + 34 and line.requests == 1  # 12, 120-129, 1200-1233
    assert line.min_seconds == 0.0
    real.close()


def test_round_trip_changes_nothing(server: SandboxServer) -> None:
    ids = seed(server, 120, tags=("vip",))
    seed_group(server, "Alpha", ids[:30])
    before = {c.id: (c.name, list(c.tags), c.updated_at) for c in store(server).contacts.values()}
    rows = flat(export_all(target(server)))
    server.app.journal.clear()
    t = target(server)
    result = t.load(contacts_df(rows))
    t.close()
    assert result.counts()["unchanged"] == 120 and result.state.count(UNCHANGED) == 120
    assert writes(server) == []
    after = {c.id: (c.name, list(c.tags), c.updated_at) for c in store(server).contacts.values()}
    assert after == before

    # with the groups column: no contact written, the member adds change nothing
    rows = flat(export_all(target(server), with_groups=True))
    server.app.journal.clear()
    t = target(server)
    result = t.load(contacts_df(rows))
    t.close()
    assert result.state.count(UNCHANGED) == 120
    assert [e.method for e in writes(server)] == ["POST"]  # one members add (30 ids)
    assert writes(server)[0].path.endswith("/members") and writes(server)[0].items == 30
    assert {
        c.id: (c.name, list(c.tags), c.updated_at) for c in store(server).contacts.values()
    } == (before)


# -- delete -----------------------------------------------------------------------------------
def test_delete_by_phone_and_id_sync(server: SandboxServer) -> None:
    ids = seed(server, 30)
    rows = [{"phone": phone(i)} for i in range(10)]
    rows += [{"phone": phone(777)}, {"phone": None}]  # unknown phone, no phone at all
    df = frame(rows).with_columns(
        id=pl.Series([None] * 11 + [ids[20]], dtype=pl.String)  # the last row: by id
    )
    t = target(server)
    result = t.delete(df)
    t.close()
    assert result.counts()["loaded"] == 11 and result.counts()["failed"] == 1
    assert result.failures == {10: ("NOT_FOUND", f"no MsgFlash contact with phone {phone(777)}")}
    assert set(store(server).contacts) == set(ids) - set(ids[:10]) - {ids[20]}
    (post,) = journal(server, "POST", BULK_DELETE)
    assert post.items == 11 and post.status == 200
    assert t.result is result


def test_delete_async_jobs_in_batches(server: SandboxServer) -> None:
    ids = seed(server, 260)
    df = frame([{"phone": phone(i)} for i in range(230)])
    t = target(server, batch_size=100)
    t.progress = progress = Recorder()
    result = t.delete(df)
    t.close()
    assert result.state.count(LOADED) == 230 and result.aborted is None
    bar = progress.counters["msgflash delete"]
    assert (bar.total, bar.done) == (230, 230)
    assert set(store(server).contacts) == set(ids[230:])
    posts = journal(server, "POST", BULK_DELETE)
    assert [(e.items, e.status) for e in posts] == [(100, 202), (100, 202), (30, 200)]
    assert len([e for e in journal(server, "GET") if e.path.endswith("/progress")]) >= 2
    assert all(j.final == "done" for j in store(server).jobs.values())


def test_delete_one_phone_held_by_two_contacts(server: SandboxServer) -> None:
    server.settings.msgflash_duplicate_phone = "allow"
    seed(server, 5)
    with server.app.lock:
        twin = store(server).create_contact("Twin", phone(2), [], {})
    result = target(server).delete(frame([{"phone": phone(2)}, {"phone": phone(2)}]))
    assert result.state.count(LOADED) == 2
    assert twin.id not in store(server).contacts
    assert {c.phone for c in store(server).contacts.values()} == {phone(i) for i in (0, 1, 3, 4)}
    assert journal(server, "POST", BULK_DELETE)[0].items == 2


def test_delete_lookup_searches_when_cheaper_than_listing(server: SandboxServer) -> None:
    seed(server, 1000)
    result = target(server).delete(frame([{"phone": phone(5)}, {"phone": phone(900)}]))
    assert result.state.count(LOADED) == 2
    gets = journal(server, "GET", CONTACTS)
    assert len(gets) == 3  # the first page, then one search per phone
    assert sum("search=336" in e.query for e in gets) == 2

    server.app.journal.clear()
    result = target(server).delete(frame([{"phone": phone(i)} for i in range(10, 40)]))
    assert result.state.count(LOADED) == 30
    assert len(journal(server, "GET", CONTACTS)) == 10  # listing (10 pages) < 30 searches
    assert len(store(server).contacts) == 968


def test_delete_failed_job_settles_each_row_exactly(server: SandboxServer) -> None:
    ids = seed(server, 200)
    server.app.fail_next_msgflash_job(after=40, error="worker crashed")
    t = target(server)
    result = t.delete(frame([{"phone": phone(i)} for i in range(150)]))
    t.close()
    assert_settled_as_store(server, result, ids[:150])
    assert result.state.count(LOADED) == 40
    code, message = next(iter(result.failures.values()))
    assert code == "LOAD_FAILED" and "failed after 40 of 150" in message
    assert "worker crashed" in message


def test_ctrl_c_cancels_the_delete_job_and_settles_each_row(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.settings.msgflash_job_items_per_s = 50
    server.settings.msgflash_job_pending_s = 0.0
    server.app.reset()
    ids = seed(server, 320)
    polls = []
    real_poll = MsgFlash._poll_job

    def poll_then_interrupt(self: MsgFlash, job_id: str) -> dict[str, Any]:
        polls.append(job_id)
        if len(polls) > 1:
            raise KeyboardInterrupt
        return real_poll(self, job_id)

    monkeypatch.setattr(MsgFlash, "_poll_job", poll_then_interrupt)
    t = target(server, poll_interval_s=0.2, batch_size=250)
    with pytest.raises(KeyboardInterrupt):
        t.delete(frame([{"phone": phone(i)} for i in range(300)]))
    t.close()
    result = t.result
    assert result is not None
    (job,) = store(server).jobs.values()
    assert job.final == "cancelled"
    assert len(journal(server, "POST", f"{CONTACTS}/bulk-jobs/{job.id}/cancel")) == 1
    assert_settled_as_store(server, result, ids[:300])
    deleted = result.state.count(LOADED)
    assert 0 < deleted < 250
    reasons = {result.failures[i][0] for i in range(300) if result.state[i] == FAILED}
    assert reasons == {"NOT_SENT"}  # the cancelled job's rest and the batch never sent
    assert "cancelled before this contact" in result.failures[249][1]
    assert "interrupted" in result.failures[299][1]
    time.sleep(0.2)  # nothing more is deleted once cancelled
    assert len(store(server).contacts) == 320 - deleted


# -- groups -----------------------------------------------------------------------------------
def test_list_groups_every_page(server: SandboxServer) -> None:
    ids = seed(server, 3)
    for k in range(130):  # past one page (and past the plan limit: seeded in the store)
        seed_group(server, f"G{k:03d}", ids[: k % 4])
    groups = target(server).list_groups()
    assert len(groups) == 130 and len(journal(server, "GET", GROUPS)) == 2
    by_name = {g["name"]: g for g in groups}
    assert by_name["G005"]["members"] == 1 and by_name["G003"]["members"] == 3
    assert set(by_name["G000"]) == {"id", "name", "members", "description"}


def test_create_group_is_idempotent(server: SandboxServer) -> None:
    t = target(server)
    group, created = t.create_group(" Clients VIP ")
    assert created and group["name"] == "Clients VIP" and group["members"] == 0
    again, created = t.create_group("clients vip")
    assert not created and again["id"] == group["id"]
    assert len(journal(server, "POST", GROUPS)) == 1 and len(store(server).groups) == 1
    with pytest.raises(UsageError, match="1 to 100"):
        t.create_group("   ")


def test_add_members_creates_the_group_batches_and_reports_not_found(
    server: SandboxServer,
) -> None:
    ids = seed(server, 260)
    rows = [{"phone": phone(i)} for i in range(250)] + [{"phone": phone(5000)}]
    t = target(server, batch_size=100)
    result = t.change_members("Newsletter", frame(rows), add=True)
    t.close()
    (gid,) = store(server).groups
    assert store(server).groups[gid].name == "Newsletter"
    assert members(server, gid) == set(ids[:250])
    assert result.state.count(LOADED) == 250
    assert result.failures == {250: ("NOT_FOUND", f"no MsgFlash contact with phone {phone(5000)}")}
    assert "group 'Newsletter' created" in result.notes
    posts = journal(server, "POST", f"{GROUPS}/{gid}/members")
    assert [(e.items, e.status) for e in posts] == [(100, 202), (100, 202), (50, 200)]

    result = target(server).change_members("NEWSLETTER", frame(rows[:20]), add=True)
    assert result.state.count(LOADED) == 20
    assert result.notes == ["20 contact(s) were already in group 'Newsletter'"]
    assert len(store(server).groups) == 1


def test_remove_members_sync_async_and_missing_group(server: SandboxServer) -> None:
    ids = seed(server, 200)
    gid = seed_group(server, "Alpha", ids[:180])
    with pytest.raises(UsageError, match="no group named 'Beta'"):
        target(server).change_members("Beta", frame([{"phone": phone(1)}]), add=False)
    assert writes(server) == []
    rows = [{"phone": phone(i)} for i in range(150, 200)]  # 30 members, 20 not
    result = target(server).change_members("alpha", frame(rows), add=False)
    assert result.state.count(LOADED) == 50
    assert result.notes == ["20 contact(s) were not in group 'Alpha'"]
    assert members(server, gid) == set(ids[:150])
    (delete,) = journal(server, "DELETE", f"{GROUPS}/{gid}/members")
    assert delete.items == 50 and delete.status == 200

    result = target(server).change_members(
        "Alpha", frame([{"phone": phone(i)} for i in range(120)]), add=False
    )
    assert result.state.count(LOADED) == 120 and members(server, gid) == set(ids[120:150])
    assert journal(server, "DELETE", f"{GROUPS}/{gid}/members")[-1].status == 202


def test_failed_members_job_settles_each_row(server: SandboxServer) -> None:
    ids = seed(server, 150)
    gid = seed_group(server, "Alpha", [])
    server.app.fail_next_msgflash_job(after=30)
    result = target(server).change_members(
        "Alpha", frame([{"phone": phone(i)} for i in range(150)]), add=True
    )
    now_in = members(server, gid)
    assert len(now_in) == 30
    for i, cid in enumerate(ids):
        assert (result.state[i] == LOADED) == (cid in now_in)
        if cid not in now_in:
            assert result.failures[i][0] == "GROUP_NOT_ADDED"
