"""WAAPI target over real HTTP against the sandbox: bulk upsert in batches, groups by name,
per-entry errors mapped to rows, the 100 / 15 min limit and its headers, aborts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from load_helpers import (
    contacts_df,
    make_target,
    phone,
    request_file_violations,
    sandbox_env,
    simple_contacts,
)

from contactpipe.errors import UsageError
from contactpipe.load.base import FAILED, LOADED
from contactpipe.load.client import AuthRefused, Unreachable, encode_json
from contactpipe.load.targets.waapi import Waapi, encoded_phone_id
from contactpipe.sandbox import SandboxServer

BULK = "/api/external/contacts/*/bulk"


def bulk_requests(server: SandboxServer) -> list[object]:
    return [e for e in server.app.journal.entries(api="waapi") if e.path.endswith("/bulk")]


def test_bulk_upsert_in_batches_creates_then_reports_unchanged(server: SandboxServer) -> None:
    df = simple_contacts(2_500, tags=["vip"], groups=["Clients"], custom_fields={"city": "Lyon"})
    target = make_target("waapi", server, batch_size=1_000)
    result = target.load(df)
    assert result.counts() == {
        "created": 2_500,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
        "loaded": 2_500,
    }
    assert len(bulk_requests(server)) == 3  # ceil(2500 / 1000)
    store = server.app.state.waapi
    assert len(store.contacts) == 2_500
    one = next(c for c in store.contacts.values() if c.phone == phone(7).lstrip("+"))
    assert one.name == "Contact 7"
    assert one.tags == ["vip"]
    assert one.custom_fields == {"city": "Lyon"}
    assert [g.name for g in store.groups.values()] == ["Clients"]
    assert len(next(iter(store.groups.values())).contacts) == 2_500

    again = make_target("waapi", server, batch_size=1_000).load(df)
    assert again.counts()["unchanged"] == 2_500
    assert again.counts()["created"] == again.counts()["updated"] == 0
    assert len(store.contacts) == 2_500


def test_changed_rows_are_updated(server: SandboxServer) -> None:
    make_target("waapi", server).load(simple_contacts(10))
    changed = contacts_df(
        [{"phone": phone(i), "name": f"Contact {i}" + ("!" if i < 3 else "")} for i in range(10)]
    )
    result = make_target("waapi", server).load(changed)
    assert result.counts()["updated"] == 3
    assert result.counts()["unchanged"] == 7


@pytest.mark.off_contract  # an invalid phone on purpose: how a refusal is reported
def test_entries_the_api_refuses_are_mapped_to_their_rows(server: SandboxServer) -> None:
    rows = [{"phone": phone(i), "name": f"C{i}"} for i in range(6)]
    rows[4]["phone"] = "+12"  # WAAPI refuses it: not E.164
    df = contacts_df(rows)
    result = make_target("waapi", server, batch_size=3).load(df)
    assert result.state[4] == FAILED
    code, message = result.failures[4]
    assert code == "API_REJECTED"
    assert "E.164" in message
    assert [s for i, s in enumerate(result.state) if i != 4] == [LOADED] * 5
    assert result.counts()["failed"] == 1


def test_retries_5xx_and_dropped_connections_without_losing_rows(server: SandboxServer) -> None:
    server.app.faults.add("waapi", "POST", BULK, times=1, status=500)
    server.app.faults.add("waapi", "POST", BULK, times=1, drop=True)
    df = simple_contacts(300)
    target = make_target("waapi", server, batch_size=100)
    result = target.load(df)
    assert result.counts()["loaded"] == 300
    assert target.stats.retries == 2
    assert len(server.app.state.waapi.contacts) == 300


def test_a_429_storm_is_waited_out(server: SandboxServer) -> None:
    server.app.faults.add("waapi", "POST", BULK, times=5, status=429, retry_after=0)
    target = make_target("waapi", server)
    result = target.load(simple_contacts(50))
    assert result.counts()["created"] == 50
    assert target.stats.rate_limited == 5


def test_ratelimit_headers_pause_before_the_server_refuses(server: SandboxServer) -> None:
    server.settings.waapi_rate_limit = 2
    server.settings.waapi_rate_window_s = 1.0
    server.app.reset()
    target = make_target("waapi", server, batch_size=10)
    result = target.load(simple_contacts(50))  # 5 requests, 2 allowed per second
    assert result.counts()["created"] == 50
    assert target.stats.rate_limited == 0  # RateLimit-Remaining: 0 made the client wait


def test_wrong_token_aborts_with_every_row_not_sent(server: SandboxServer) -> None:
    env = {**sandbox_env(server), "WAAPI_TOKEN": "not-the-token-0123456789"}
    result = make_target("waapi", server, env=env).load(simple_contacts(20))
    assert isinstance(result.aborted, AuthRefused)
    assert result.counts()["failed"] == 20
    assert {c for c, _ in result.failures.values()} == {"NOT_SENT"}
    assert "not-the-token" not in str(result.aborted)
    assert all("not-the-token" not in m for _, m in result.failures.values())


def test_a_batch_failing_after_every_retry_aborts_and_settles_every_row(
    server: SandboxServer,
) -> None:
    server.app.faults.add("waapi", "POST", BULK, times=None, status=503)
    result = make_target("waapi", server, batch_size=10).load(simple_contacts(30))
    assert isinstance(result.aborted, Unreachable)
    codes = [result.failures[i][0] for i in range(30)]
    assert codes == ["LOAD_FAILED"] * 10 + ["NOT_SENT"] * 20


def test_a_batch_the_api_refuses_whole_fails_alone(server: SandboxServer) -> None:
    server.app.faults.add("waapi", "POST", BULK, times=1, status=400)
    result = make_target("waapi", server, batch_size=10).load(simple_contacts(30))
    assert result.aborted is None
    assert [result.failures.get(i, ("",))[0] for i in (0, 9, 10)] == [
        "LOAD_FAILED",
        "LOAD_FAILED",
        "",
    ]
    assert result.counts()["loaded"] == 20


def test_dry_run_writes_the_exact_bodies(server: SandboxServer, tmp_path: Path) -> None:
    df = simple_contacts(25, groups=["G"])
    target = make_target("waapi", server, batch_size=10)
    files = target.dry_run(df, tmp_path)
    assert [f.name for f in files] == [
        "waapi-bulk-0001.json",
        "waapi-bulk-0002.json",
        "waapi-bulk-0003.json",
    ]
    assert [v for f in files for v in request_file_violations(f)] == []
    first = json.loads(files[0].read_bytes())
    assert first["contacts"][0] == {"phone": phone(0), "name": "Contact 0", "groups": ["G"]}
    assert len(server.app.journal.entries(api="waapi")) == 0  # nothing sent
    target.load(df)
    sent = [e for e in server.app.journal.entries(api="waapi")]
    assert len(sent) == 3
    assert files[0].read_bytes() == encode_json({"contacts": first["contacts"]})


def test_plan_counts_requests_and_the_15_minute_windows(server: SandboxServer) -> None:
    target = make_target("waapi", server, batch_size=10)
    (line,) = target.plan(simple_contacts(25))
    assert (line.requests, line.items, line.min_seconds) == (3, 25, 0)
    (big,) = target.plan(simple_contacts(1_001))
    assert big.requests == 101
    assert big.min_seconds == 900  # the 101st request waits for the next window


def test_config_from_env(server: SandboxServer) -> None:
    env = sandbox_env(server)
    config = Waapi.config_from_env(env, None)
    assert config.extra["encoded_phone_id"] == base64.b64encode(b"100000000000001").decode()
    assert encoded_phone_id(config.extra["encoded_phone_id"]) == config.extra["encoded_phone_id"]
    for var in ("WAAPI_TOKEN", "WAAPI_PHONE_ID", "WAAPI_BASE_URL"):
        with pytest.raises(UsageError, match=var):
            Waapi.config_from_env({k: v for k, v in env.items() if k != var}, None)
    with pytest.raises(UsageError, match="loopback"):
        Waapi.config_from_env(env, "http://waapi.example.com/api")
    assert Waapi.config_from_env(env, "https://waapi.example.com/api/").base_url == (
        "https://waapi.example.com/api"
    )


def test_the_request_file_check_catches_a_body_outside_the_contract(tmp_path: Path) -> None:
    bad = tmp_path / "waapi-bulk-0001.json"
    bad.write_bytes(encode_json({"contacts": [{"name": "No phone", "nickname": "x"}]}))
    assert request_file_violations(bad) == [
        "waapi-bulk-0001.json #1: body contacts/0/phone: required field missing",
        "waapi-bulk-0001.json #1: body contacts/0/nickname: field not in the contract",
    ]
    csv = tmp_path / "vobiz-import-0001.csv"
    csv.write_text("phone,name\n+33612345678,A\n", encoding="utf-8")
    assert request_file_violations(csv) == [
        "vobiz-import-0001.csv: CSV header lacks ['phone_number']"
    ]
