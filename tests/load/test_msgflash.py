"""MsgFlash target against the sandbox over real HTTP: creates, re-runs, updates, groups and
bulk jobs, faults and retries, aborts, credentials, the client-side rate limit, plan and dry
run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from load_helpers import (
    FAST_POLICY,
    contacts_df,
    make_target,
    phone,
    sandbox_env,
    simple_contacts,
)

from contactpipe.errors import UsageError
from contactpipe.load.base import CREATED, FAILED, UNCHANGED, UPDATED, build_entries, field_map
from contactpipe.load.client import (
    AuthRefused,
    QuotaExceeded,
    RetryPolicy,
    Unreachable,
    encode_json,
    parse_error,
)
from contactpipe.load.targets.msgflash import MsgFlash
from contactpipe.load.targets.msgflash.importer import _Known
from contactpipe.report.progress import Counter, LogProgress
from contactpipe.sandbox import SandboxServer
from contactpipe.sandbox.settings import DEFAULT_MSGFLASH_TEAM_ID, DEFAULT_MSGFLASH_TEAM_KEY

CONTACTS = "/api/v1/contacts"


def store(server: SandboxServer) -> Any:
    return server.app.state.msgflash


def by_phone(server: SandboxServer) -> dict[str, Any]:
    """phone -> contact; fails if a phone is held twice."""
    out: dict[str, Any] = {}
    for c in store(server).contacts.values():
        assert c.phone not in out, f"duplicate contact for {c.phone}"
        out[c.phone] = c
    return out


def requests(server: SandboxServer, method: str, path: str = CONTACTS) -> list[Any]:
    return server.app.journal.entries(api="msgflash", method=method, path=path)


def fast_target(server: SandboxServer, **options: Any) -> Any:
    """A target whose client-side limit is lifted (the sandbox fixture has no rate limit):
    only the rate-limit test runs at the documented 10 req/s."""
    target = make_target("msgflash", server, **options)
    target.RATE_LIMIT = 10_000
    return target


def load(server: SandboxServer, df: Any, **options: Any) -> Any:
    target = fast_target(server, **options)
    try:
        return target.load(df), target
    finally:
        target.close()


def api_post(server: SandboxServer, path: str, body: dict[str, Any]) -> httpx.Response:
    resp = httpx.post(
        server.base_urls["msgflash"] + path,
        json=body,
        headers={"x-api-key": server.settings.msgflash_api_key},
    )
    resp.raise_for_status()
    return resp


def settled(result: Any) -> None:
    assert result.pending() == []
    counts = result.counts()
    assert counts["loaded"] + counts["failed"] == result.n


# -- creates, re-runs, updates ---------------------------------------------------------------
def test_create_sends_name_tags_and_meta(server: SandboxServer) -> None:
    df = contacts_df(
        [
            {
                "phone": phone(1),
                "name": "Awa Doe",
                "tags": ["vip", "newsletter"],
                "email": "awa@example.com",
                "notes": "met in Cotonou",
                "opt_out": False,
                "custom_fields": {"city": "Cotonou", "empty": None},
            },
            {"phone": phone(2), "name": "Bob"},
            *({"phone": phone(i), "name": f"C {i}"} for i in range(3, 12)),
        ]
    )
    result, target = load(server, df)
    settled(result)
    assert result.counts()["created"] == 11
    assert result.aborted is None
    contacts = by_phone(server)
    assert len(contacts) == 11
    awa = contacts[phone(1)]
    assert awa.name == "Awa Doe"
    assert awa.tags == ["vip", "newsletter"]
    assert awa.meta == {
        "city": "Cotonou",
        "email": "awa@example.com",
        "notes": "met in Cotonou",
        "opt_out": False,
    }
    assert contacts[phone(2)].tags == [] and contacts[phone(2)].meta == {}
    assert len(requests(server, "POST")) == 11
    assert target.stats.requests == 12  # one listing + 11 creates
    assert set(result.seconds) == {"list", "create", "update", "groups"}


def test_rerun_is_unchanged_without_any_write(server: SandboxServer) -> None:
    df = simple_contacts(25, tags=["a", "b"])
    first, _ = load(server, df)
    assert first.counts()["created"] == 25
    server.app.journal.clear()
    # tags in another order are the same set
    again = simple_contacts(25, tags=["b", "a"])
    result, _ = load(server, again)
    settled(result)
    assert result.counts() == {
        "created": 0,
        "updated": 0,
        "unchanged": 25,
        "failed": 0,
        "loaded": 25,
    }
    assert requests(server, "POST") == []
    assert server.app.journal.entries(api="msgflash", method="PUT") == []
    assert len(by_phone(server)) == 25


def test_listing_follows_cursor_pages(server: SandboxServer) -> None:
    load(server, simple_contacts(230))
    server.app.journal.clear()
    result, _ = load(server, simple_contacts(230))
    assert result.counts()["unchanged"] == 230
    pages = requests(server, "GET")
    assert len(pages) == 3
    assert all("limit=100" in e.query and "sort=createdAt_desc" in e.query for e in pages)


def test_changed_name_or_tags_update_but_meta_only_does_not(server: SandboxServer) -> None:
    rows = [{"phone": phone(i), "name": f"N {i}", "tags": ["t"], "notes": "x"} for i in range(4)]
    load(server, contacts_df(rows))
    server.app.journal.clear()
    rows[0]["name"] = "Renamed"
    rows[1]["tags"] = ["t", "new"]
    rows[2]["notes"] = "meta only"  # not visible in the listing: documented limitation
    rows[3]["tags"] = []  # no opinion: the stored tags stay, no difference
    result, _ = load(server, contacts_df(rows))
    settled(result)
    assert list(result.state) == [UPDATED, UPDATED, UNCHANGED, UNCHANGED]
    assert len(server.app.journal.entries(api="msgflash", method="PUT")) == 2
    assert requests(server, "POST") == []
    contacts = by_phone(server)
    assert contacts[phone(0)].name == "Renamed"
    assert contacts[phone(1)].tags == ["t", "new"]
    assert contacts[phone(2)].meta == {"notes": "x"}
    assert contacts[phone(3)].tags == ["t"]


@pytest.mark.off_contract  # an invalid phone on purpose: how a refusal is reported
def test_validation_error_fails_only_that_row(server: SandboxServer) -> None:
    df = contacts_df(
        [
            {"phone": phone(1), "name": "Ok"},
            {"phone": "12345", "name": "Bad phone"},
            {"phone": phone(2), "name": "Ok too"},
        ]
    )
    result, _ = load(server, df)
    settled(result)
    assert list(result.state) == [CREATED, FAILED, CREATED]
    code, message = result.failures[1]
    assert code == "API_REJECTED"
    assert message.startswith("VALIDATION_ERROR: ")
    assert "phone: must be an E.164 number" in message
    assert result.aborted is None


def test_empty_frame_sends_nothing(server: SandboxServer) -> None:
    result, _ = load(server, simple_contacts(0))
    assert result.n == 0 and result.counts()["loaded"] == 0
    assert server.app.journal.entries(api="msgflash") == []


# -- conflicts, stale listings, recovery -------------------------------------------------------
def test_conflict_on_create_is_looked_up_and_compared(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Contacts created by someone else after our listing: the create answers 409."""
    api_post(server, CONTACTS, {"name": "Same", "phone": phone(1), "tags": ["x"]})
    api_post(server, CONTACTS, {"name": "Old name", "phone": phone(2)})
    target = fast_target(server)
    monkeypatch.setattr(target, "_list_contacts", dict)  # the listing saw neither
    df = contacts_df(
        [
            {"phone": phone(1), "name": "Same", "tags": ["x"]},
            {"phone": phone(2), "name": "New name"},
            {"phone": phone(3), "name": "Fresh"},
        ]
    )
    result = target.load(df)
    target.close()
    settled(result)
    assert list(result.state) == [UNCHANGED, UPDATED, CREATED]
    conflicts = [e for e in requests(server, "POST") if e.status == 409]
    assert len(conflicts) == 2
    searches = [e for e in requests(server, "GET") if "search=" in e.query]
    assert len(searches) == 2
    contacts = by_phone(server)
    assert len(contacts) == 3
    assert contacts[phone(2)].name == "New name"


def test_put_answering_404_creates_the_contact(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = fast_target(server)
    stale = {phone(1): _Known("cnt_deleted-meanwhile", "Old", [])}
    monkeypatch.setattr(target, "_list_contacts", lambda: stale)
    result = target.load(contacts_df([{"phone": phone(1), "name": "Back"}]))
    target.close()
    assert list(result.state) == [CREATED]
    assert [e.status for e in server.app.journal.entries(api="msgflash", method="PUT")] == [404]
    assert by_phone(server)[phone(1)].name == "Back"


def test_create_that_took_effect_without_answer_is_not_sent_again(
    server: SandboxServer,
) -> None:
    """The first POST is answered after the client gave up (read timeout): ``recover``
    finds the contact by phone before resending, so no 409 and no duplicate."""
    server.app.faults.add("msgflash", "POST", CONTACTS, delay_s=0.4)
    policy = RetryPolicy(attempts=3, backoff_s=1.2, backoff_cap_s=1.2)
    target = fast_target(server, policy=policy, concurrency=1)
    target.timeout = httpx.Timeout(5.0, read=0.15)
    result = target.load(contacts_df([{"phone": phone(7), "name": "Once", "tags": ["t"]}]))
    target.close()
    settled(result)
    assert list(result.state) == [CREATED]
    assert [e.status for e in requests(server, "POST")] == [201]
    assert len(by_phone(server)) == 1
    assert target.stats.retries == 1


@pytest.mark.parametrize("fault", [{"status": 503}, {"drop": True}])
def test_server_errors_and_drops_are_retried_without_duplicates(
    server: SandboxServer, fault: dict[str, Any]
) -> None:
    server.app.faults.add("msgflash", "POST", CONTACTS, times=3, **fault)
    result, target = load(server, simple_contacts(12))
    settled(result)
    assert result.counts()["created"] == 12
    assert len(by_phone(server)) == 12
    assert target.stats.retries == 3
    # each resend of a create was preceded by a search for its phone
    assert len([e for e in requests(server, "GET") if "search=" in e.query]) == 3


def test_rate_limit_answers_are_waited_out(server: SandboxServer) -> None:
    server.app.faults.add(
        "msgflash", "POST", CONTACTS, times=4, status=429, code="API_RATE_LIMIT_EXCEEDED"
    )
    result, target = load(server, simple_contacts(10))
    settled(result)
    assert result.counts()["created"] == 10
    assert target.stats.rate_limited == 4
    assert len(by_phone(server)) == 10


def test_client_side_limit_keeps_under_ten_per_second(server: SandboxServer) -> None:
    server.settings.msgflash_rate_limit = 10
    server.settings.msgflash_latency_ms = 100
    server.app.reset()
    target = make_target("msgflash", server)  # the documented rate, not fast_target
    result = target.load(simple_contacts(30))
    target.close()
    settled(result)
    assert result.counts()["created"] == 30
    assert [e for e in server.app.journal.entries(api="msgflash") if e.status == 429] == []
    assert target.stats.rate_limited == 0
    assert (MsgFlash.RATE_LIMIT, MsgFlash.RATE_WINDOW_S) == (10, 1.0)


# -- aborts ------------------------------------------------------------------------------------
def test_monthly_quota_aborts_and_leaves_the_rest_not_sent(server: SandboxServer) -> None:
    server.settings.msgflash_monthly_quota = 6  # the listing + 5 creates
    df = simple_contacts(40, groups=["G"])
    target = make_target("msgflash", server, concurrency=8)  # the documented 10 req/s
    result = target.load(df)
    target.close()
    settled(result)
    assert isinstance(result.aborted, QuotaExceeded)
    assert len(by_phone(server)) == 5
    codes = [code for code, _ in result.failures.values()]
    # created, but the run stopped before their group was applied
    assert codes.count("GROUP_NOT_ADDED") == 5
    assert codes.count("NOT_SENT") == 35
    assert result.counts()["loaded"] == 0
    # The pool stopped at once: the workers waiting for the next 1 s window (the listing
    # and 9 creates filled the first) never sent anything.
    assert len(requests(server, "POST")) <= 9
    assert "quota" in result.aborted.message.lower()


def test_quota_code_on_a_429_is_terminal(server: SandboxServer) -> None:
    server.app.faults.add(
        "msgflash",
        "POST",
        CONTACTS,
        times=None,
        status=429,
        code="MONTHLY_API_REQUEST_QUOTA_EXCEEDED",
    )
    result, target = load(server, simple_contacts(20))
    settled(result)
    assert isinstance(result.aborted, QuotaExceeded)
    assert {code for code, _ in result.failures.values()} == {"NOT_SENT"}
    assert target.stats.rate_limited == 0
    assert len(requests(server, "POST")) <= target.options.concurrency


def test_api_down_fails_the_row_and_aborts(server: SandboxServer) -> None:
    server.app.faults.add("msgflash", "POST", CONTACTS, times=None, status=503)
    result, _ = load(server, simple_contacts(15), concurrency=1)
    settled(result)
    assert isinstance(result.aborted, Unreachable)
    codes = [result.failures[i][0] for i in range(15)]
    assert codes[0] == "LOAD_FAILED" and set(codes[1:]) == {"NOT_SENT"}
    assert "MsgFlash POST /api/v1/contacts: 503" in result.failures[0][1]
    assert len(requests(server, "POST")) == FAST_POLICY.attempts


def test_refused_listing_aborts_without_raising(server: SandboxServer) -> None:
    server.app.faults.add("msgflash", "GET", CONTACTS, status=400, code="VALIDATION_ERROR")
    result, _ = load(server, simple_contacts(4))
    settled(result)
    assert result.aborted is not None and "VALIDATION_ERROR" in result.aborted.message
    assert {code for code, _ in result.failures.values()} == {"NOT_SENT"}
    assert requests(server, "POST") == []


def test_wrong_key_aborts_before_sending_and_never_shows_the_key(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "msgf_live_" + "0123456789abcdef" * 4
    env = {**sandbox_env(server), "MSGFLASH_API_KEY": bad}
    target = fast_target(server, env=env)
    assert target.config.secrets == (bad,)
    with caplog.at_level(logging.DEBUG):
        result = target.load(simple_contacts(10))
    target.close()
    settled(result)
    assert isinstance(result.aborted, AuthRefused)
    assert {code for code, _ in result.failures.values()} == {"NOT_SENT"}
    assert len(server.app.journal.entries(api="msgflash")) == 1  # the listing only
    texts = [str(result.aborted), *(m for _, m in result.failures.values()), caplog.text]
    assert all(bad not in t for t in texts)


# -- credentials -------------------------------------------------------------------------------
def test_team_key_sends_team_id(server: SandboxServer) -> None:
    server.settings.msgflash_team_key = DEFAULT_MSGFLASH_TEAM_KEY
    server.settings.msgflash_team_id = DEFAULT_MSGFLASH_TEAM_ID
    env = {
        **sandbox_env(server),
        "MSGFLASH_API_KEY": DEFAULT_MSGFLASH_TEAM_KEY,
        "MSGFLASH_TEAM_ID": DEFAULT_MSGFLASH_TEAM_ID,
    }
    target = fast_target(server, env=env)
    assert target.config.headers["X-Team-Id"] == DEFAULT_MSGFLASH_TEAM_ID
    result = target.load(simple_contacts(3))
    target.close()
    assert result.counts()["created"] == 3 and result.aborted is None


def test_personal_key_never_sends_team_id(server: SandboxServer) -> None:
    server.settings.msgflash_team_key = DEFAULT_MSGFLASH_TEAM_KEY
    server.settings.msgflash_team_id = DEFAULT_MSGFLASH_TEAM_ID
    personal = server.settings.msgflash_api_key
    env = {**sandbox_env(server), "MSGFLASH_API_KEY": personal}
    env["MSGFLASH_TEAM_ID"] = DEFAULT_MSGFLASH_TEAM_ID
    target = fast_target(server, env=env)
    assert "X-Team-Id" not in target.config.headers
    result = target.load(simple_contacts(3))  # with X-Team-Id: 403 TEAM_KEY_REQUIRED
    target.close()
    assert result.counts()["created"] == 3 and result.aborted is None


def test_config_from_env() -> None:
    key = "msgf_live_" + "a" * 64
    cfg = MsgFlash.config_from_env({"MSGFLASH_API_KEY": key}, None)
    assert cfg.base_url == "https://srv.msgflash.com"
    assert cfg.headers == {"x-api-key": key}
    assert cfg.secrets == (key,)
    env = {"MSGFLASH_API_KEY": key, "MSGFLASH_BASE_URL": "https://proxy.example/"}
    assert MsgFlash.config_from_env(env, None).base_url == "https://proxy.example"
    assert MsgFlash.config_from_env(env, "http://127.0.0.1:9").base_url == "http://127.0.0.1:9"

    with pytest.raises(UsageError, match="MSGFLASH_API_KEY"):
        MsgFlash.config_from_env({}, None)
    team = "msgf_team_" + "b" * 32
    with pytest.raises(UsageError, match="MSGFLASH_TEAM_ID") as err:
        MsgFlash.config_from_env({"MSGFLASH_API_KEY": team}, None)
    assert team not in str(err.value)
    with pytest.raises(UsageError, match="http://") as err:
        MsgFlash.config_from_env({"MSGFLASH_API_KEY": key}, "http://api.example.com")
    assert key not in str(err.value)


def test_error_parser_reads_the_envelope() -> None:
    body = {
        "error": {
            "code": "VALIDATION_ERROR",
            "message": "Invalid request body",
            "details": [{"field": "name", "message": "name is required"}],
        }
    }
    assert parse_error(httpx.Response(400, json=body)) == (
        "VALIDATION_ERROR",
        "Invalid request body (name: name is required)",
    )
    assert parse_error(httpx.Response(502, text="<html>")) == ("HTTP_502", "Bad Gateway")


# -- groups ------------------------------------------------------------------------------------
def group_named(server: SandboxServer, name: str) -> Any:
    groups = [g for g in store(server).groups.values() if g.name.casefold() == name.casefold()]
    assert len(groups) == 1, f"{len(groups)} groups named {name!r}"
    return groups[0]


def members(server: SandboxServer, name: str) -> set[str]:
    s = store(server)
    return {s.contacts[cid].phone for _, cid in group_named(server, name).members.iter_asc()}


def test_groups_small_sync_and_large_async(server: SandboxServer) -> None:
    rows = [
        {"phone": phone(i), "name": f"C {i}", "groups": ["Big"] + (["Small"] if i < 10 else [])}
        for i in range(150)
    ]
    rows[11]["groups"] = ["Big", " small "]  # same group, another spelling
    result, _ = load(server, contacts_df(rows))
    settled(result)
    assert result.counts()["created"] == 150 and result.aborted is None
    assert members(server, "Big") == {phone(i) for i in range(150)}
    assert members(server, "Small") == {phone(i) for i in [*range(10), 11]}
    assert group_named(server, "Small").name == "Small"
    adds = [
        e
        for e in server.app.journal.entries(api="msgflash", method="POST")
        if e.path.endswith("/members")
    ]
    assert sorted((e.status, e.items) for e in adds) == [(200, 11), (202, 150)]
    polls = [e for e in requests(server, "GET", None) if e.path.endswith("/progress")]
    assert polls and all(e.status == 200 for e in polls)
    assert store(server).jobs and all(j.final == "done" for j in store(server).jobs.values())

    # re-run: nothing written, members already there
    server.app.journal.clear()
    again, _ = load(server, contacts_df(rows))
    assert again.counts()["unchanged"] == 150
    assert len(requests(server, "POST", "/api/v1/contacts/groups")) == 0
    assert len(group_named(server, "Big").members) == 150


def test_existing_group_is_reused_case_insensitively(server: SandboxServer) -> None:
    api_post(server, "/api/v1/contacts/groups", {"name": "VIP"})
    result, _ = load(server, simple_contacts(5, groups=["vip"]))
    assert result.counts()["created"] == 5
    assert len(requests(server, "POST", "/api/v1/contacts/groups")) == 1  # api_post's only
    assert members(server, "VIP") == {phone(i) for i in range(5)}


def test_member_batches_follow_batch_size(server: SandboxServer) -> None:
    result, _ = load(server, simple_contacts(130, groups=["G"]), batch_size=60)
    assert result.counts()["created"] == 130
    adds = [e for e in requests(server, "POST", None) if e.path.endswith("/members")]
    assert [e.items for e in adds] == [60, 60, 10]
    assert all(e.status == 200 for e in adds)
    assert len(group_named(server, "G").members) == 130


def test_failed_job_fails_its_rows_only(server: SandboxServer) -> None:
    server.app.fail_next_msgflash_job(after=0, error="boom")
    rows = [
        {"phone": phone(i), "name": f"C {i}", "groups": ["Big"] + (["Small"] if i < 3 else [])}
        for i in range(120)
    ]
    rows.append({"phone": phone(500), "name": "Only small", "groups": ["Small"]})
    result, _ = load(server, contacts_df(rows))
    settled(result)
    assert result.aborted is None
    failed = {i for i, (code, _) in result.failures.items() if code == "GROUP_NOT_ADDED"}
    assert failed == set(range(120))
    assert "failed" in result.failures[0][1] and "boom" in result.failures[0][1]
    assert result.state[120] == CREATED
    assert members(server, "Small") == {phone(0), phone(1), phone(2), phone(500)}
    assert len(by_phone(server)) == 121  # the contacts themselves are loaded


def test_job_that_cannot_be_followed_fails_its_rows(server: SandboxServer) -> None:
    server.app.faults.add("msgflash", "GET", "/api/v1/contacts/bulk-jobs/*/progress", status=404)
    result, _ = load(server, simple_contacts(100, groups=["G"]))
    settled(result)
    assert result.aborted is None
    assert {code for code, _ in result.failures.values()} == {"GROUP_NOT_ADDED"}
    assert len(result.failures) == 100 and "cannot be followed" in result.failures[0][1]


def test_group_limit_fails_that_groups_rows_without_aborting(server: SandboxServer) -> None:
    server.settings.msgflash_max_groups = 1
    rows = [
        {"phone": phone(1), "name": "A", "groups": ["One"]},
        {"phone": phone(2), "name": "B", "groups": ["Two"]},
        {"phone": phone(3), "name": "C"},
    ]
    result, _ = load(server, contacts_df(rows))
    settled(result)
    assert result.aborted is None
    assert result.state[0] == CREATED and result.state[2] == CREATED
    code, message = result.failures[1]
    assert code == "GROUP_NOT_ADDED" and "MAX_CONTACT_GROUPS_REACHED" in message


def test_api_down_during_groups_fails_the_unconfirmed_rows(server: SandboxServer) -> None:
    server.app.faults.add(
        "msgflash", "POST", "/api/v1/contacts/groups/*/members", times=None, status=503
    )
    rows = [
        {"phone": phone(i), "name": f"C {i}", "groups": ["G"] if i < 4 else []} for i in range(6)
    ]
    result, _ = load(server, contacts_df(rows))
    settled(result)
    assert isinstance(result.aborted, Unreachable)
    assert [result.failures[i][0] for i in range(4)] == ["GROUP_NOT_ADDED"] * 4
    assert list(result.state[4:]) == [CREATED, CREATED]
    assert len(by_phone(server)) == 6


def test_group_created_meanwhile_is_found_after_a_conflict(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_post(server, "/api/v1/contacts/groups", {"name": "Late"})
    target = fast_target(server)
    real = target._list_groups
    monkeypatch.setattr(target, "_list_groups", lambda search=None: real(search) if search else {})
    result = target.load(simple_contacts(3, groups=["late"]))
    target.close()
    settled(result)
    assert result.counts()["created"] == 3
    creates = requests(server, "POST", "/api/v1/contacts/groups")
    assert [e.status for e in creates] == [201, 409]
    assert members(server, "Late") == {phone(i) for i in range(3)}


class RecordingProgress:
    def __init__(self) -> None:
        self.counters: list[Counter] = []

    def stage(self, name: str, detail: str = "") -> Any:
        raise AssertionError("not used by targets")

    def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
        c = Counter(name, total, unit)
        self.counters.append(c)
        return c


def test_progress_counters_reach_their_totals(server: SandboxServer) -> None:
    target = fast_target(server)
    target.progress = RecordingProgress()
    target.load(simple_contacts(120, groups=["G"]))
    target.close()
    seen = {c.name: (c.done, c.total) for c in target.progress.counters}
    assert seen == {
        "msgflash list": (0, 0),
        "msgflash create": (120, 120),
        "msgflash groups": (120, 120),
    }


def test_logged_progress_is_chunked(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    target = fast_target(server)
    target.progress = LogProgress()
    with caplog.at_level(logging.INFO, logger="contactpipe"):
        target.load(simple_contacts(120))
    target.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("msgflash")]
    assert lines == ["msgflash create: 120/120 contacts (created)"]  # not one per request


# -- plan and dry run --------------------------------------------------------------------------
def test_plan_counts_requests_without_sending(server: SandboxServer) -> None:
    rows = [
        {"phone": phone(i), "name": f"C {i}", "groups": ["Big"] + (["small"] if i < 5 else [])}
        for i in range(250)
    ]
    target = make_target("msgflash", server, batch_size=100)
    plan = {line.endpoint: line for line in target.plan(contacts_df(rows))}
    assert server.app.journal.entries(api="msgflash") == []
    create = plan["POST /api/v1/contacts"]
    assert (create.requests, create.items, create.min_seconds) == (250, 250, 25.0)
    assert "upper bound" in create.note
    assert plan["GET /api/v1/contacts"].requests == 1
    assert plan["POST /api/v1/contacts/groups"].requests == 2
    add = plan["POST /api/v1/contacts/groups/{groupId}/members"]
    assert (add.requests, add.items) == (3 + 1, 255)
    assert plan["GET /api/v1/contacts/bulk-jobs/{jobId}/progress"].requests == 2
    # one time model: the lines share the 10-per-second budget, the first second free
    requests = sum(line.requests for line in plan.values())
    assert sum(line.min_seconds for line in plan.values()) == (-(-requests // 10) - 1) * 1.0


def test_dry_run_writes_the_exact_bodies(server: SandboxServer, tmp_path: Path) -> None:
    rows = [
        {
            "phone": phone(i),
            "name": f"Ünïcode {i}",
            "tags": ["t"],
            "custom_fields": {"b": 1, "a": "x"},
            "groups": ["G"] if i % 2 else [],
        }
        for i in range(5)
    ]
    df = contacts_df(rows)
    target = fast_target(server, batch_size=2)
    files = target.dry_run(df, tmp_path / "out")
    assert server.app.journal.entries(api="msgflash") == []
    names = [f.name for f in files]
    assert names == [
        "msgflash-contacts-0001.ndjson",
        "msgflash-contacts-0002.ndjson",
        "msgflash-contacts-0003.ndjson",
        "msgflash-groups.json",
    ]
    entries = build_entries(df, field_map("msgflash"))
    sent = b"".join(f.read_bytes() for f in files[:3])
    assert sent == b"".join(encode_json(e) + b"\n" for e in entries)
    assert files[0].read_bytes().count(b"\n") == 2
    assert json.loads(files[3].read_bytes()) == {"G": [phone(1), phone(3)]}
