"""Sandbox machinery: settings, describe, fault switch, journal, admin endpoints, ASGI use."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_helpers import SyncClient, fast_settings

import contactpipe.sandbox as sandbox_pkg
from contactpipe.errors import UsageError
from contactpipe.sandbox import Sandbox, SandboxSettings, SettingsError, build_app, describe

ENV = {
    "MSGFLASH_API_KEY": "msgf_live_" + "1" * 64,
    "WAAPI_TOKEN": "tok-rw",
    "WAAPI_PHONE_ID": "106540352242922",
    "VOBIZ_AUTH_ID": "MA_ABCDEFGH",
    "VOBIZ_AUTH_TOKEN": "vz-token",
}


def test_sandbox_never_imports_the_loader() -> None:
    for path in Path(sandbox_pkg.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert "contactpipe.load" not in source.replace("never imports :mod:`contactpipe.load`", "")
        assert "from ..load" not in source and "from .. import load" not in source


def test_public_surface() -> None:
    assert sandbox_pkg.__all__ == sorted(sandbox_pkg.__all__)
    for name in ("SandboxSettings", "SandboxServer", "build_app", "describe", "run_forever"):
        assert name in sandbox_pkg.__all__


def test_default_settings_are_documented_values() -> None:
    s = SandboxSettings()
    assert re.fullmatch(r"msgf_live_[0-9a-f]{64}", s.msgflash_api_key)
    assert s.vobiz_auth_id.startswith("MA_") and s.vobiz_bearer_token.count(".") == 2
    assert (s.msgflash_rate_limit, s.msgflash_rate_window_s) == (10, 1.0)
    assert (s.waapi_rate_limit, s.waapi_rate_window_s) == (100, 900.0)
    assert (s.msgflash_bulk_delete_max, s.waapi_bulk_max, s.waapi_notes_max) == (
        10_000,
        50_000,
        2000,
    )
    assert (s.msgflash_page_max, s.waapi_page_max, s.vobiz_page_default) == (100, 100, 25)
    assert s.msgflash_monthly_quota is None and s.msgflash_team_key is None


def test_from_env_reads_the_six_variables() -> None:
    s = SandboxSettings.from_env(ENV)
    assert s.msgflash_api_key == ENV["MSGFLASH_API_KEY"] and s.msgflash_team_id is None
    assert (s.waapi_token, s.waapi_phone_id) == ("tok-rw", "106540352242922")
    assert (s.vobiz_auth_id, s.vobiz_auth_token) == ("MA_ABCDEFGH", "vz-token")
    assert SandboxSettings.from_env({}) == SandboxSettings()
    team = SandboxSettings.from_env(
        {"MSGFLASH_API_KEY": "msgf_team_" + "9" * 40, "MSGFLASH_TEAM_ID": "t-1"}
    )
    assert (team.msgflash_team_key, team.msgflash_team_id) == ("msgf_team_" + "9" * 40, "t-1")
    assert SandboxSettings.from_env({"MSGFLASH_TEAM_ID": "t-2"}).msgflash_team_enabled


def test_invalid_key_error_does_not_echo_the_value() -> None:
    with pytest.raises(SettingsError) as info:
        SandboxSettings.from_env({"MSGFLASH_API_KEY": "msgf_live_SECRETVALUE"})
    assert "SECRETVALUE" not in str(info.value) and "MSGFLASH_API_KEY" in str(info.value)
    assert isinstance(info.value, UsageError) and isinstance(info.value, ValueError)
    with pytest.raises(SettingsError):
        SandboxSettings(msgflash_team_key="msgf_team_" + "a" * 20)  # team id missing


def test_describe_lists_base_urls_and_credentials() -> None:
    s = SandboxSettings.from_env(ENV)
    apis = {d["api"]: d for d in describe(s, "http://127.0.0.1:8900")}
    assert apis["msgflash"]["base_url"] == "http://127.0.0.1:8900"
    assert apis["waapi"]["base_url"] == "http://127.0.0.1:8900/api"
    assert apis["vobiz"]["base_url"] == "http://127.0.0.1:8900/api/v1/messaging"
    assert apis["msgflash"]["env"] == {"MSGFLASH_API_KEY": ENV["MSGFLASH_API_KEY"]}
    assert apis["waapi"]["env"] == {"WAAPI_TOKEN": "tok-rw", "WAAPI_PHONE_ID": "106540352242922"}
    assert apis["vobiz"]["env"] == {"VOBIZ_AUTH_ID": "MA_ABCDEFGH", "VOBIZ_AUTH_TOKEN": "vz-token"}
    assert all({"api", "name", "base_url", "env"} <= set(d) for d in apis.values())


def test_async_client_over_asgi_transport() -> None:
    app = build_app(fast_settings())

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sb") as client:
            headers = {"x-api-key": app.settings.msgflash_api_key}
            return await client.get("/api/v1/contacts", headers=headers)

    assert asyncio.run(run()).status_code == 200


# -- faults -------------------------------------------------------------------------------
def test_status_fault_uses_each_api_envelope(
    mf: SyncClient, wa: SyncClient, vb: SyncClient, sandbox: Sandbox, wa_path: str
) -> None:
    sandbox.faults.add("msgflash", "GET", "/api/v1/contacts", times=2, status=502)
    sandbox.faults.add("waapi", "*", f"{wa_path}*", status=500)
    sandbox.faults.add("vobiz", "GET", "/api/v1/messaging/*", status=429, retry_after=7)
    first, second, third = (mf.get("/api/v1/contacts") for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [502, 502, 200]
    assert first.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
    r = wa.get(wa_path)
    assert r.status_code == 500 and r.json()["success"] is False
    r = vb.get("/api/v1/messaging/contacts")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.json()["error"]["code"] == "RATE_LIMITED"
    assert len(sandbox.faults) == 0


def test_fault_matching_and_code_override(mf: SyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add("msgflash", "POST", "/api/v1/contacts/bulk-*", status=500, code="X_FAIL")
    assert mf.get("/api/v1/contacts").status_code == 200  # other method and path untouched
    r = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ["a", "b", "c"]})
    assert r.status_code == 500 and r.json()["error"]["code"] == "X_FAIL"
    entry = sandbox.journal.entries(path="/api/v1/contacts/bulk-delete")[-1]
    assert (entry.status, entry.items, entry.fault) == (500, 3, "status")
    sandbox.faults.add("vobiz", "POST", "*/import", status=503)
    csv = b"phone_number,name\n+919800000000,A\n+919800000001,B\n"
    files = {"file": ("c.csv", csv)}
    headers = {"X-Auth-ID": sandbox.settings.vobiz_auth_id, "X-Auth-Token": "x"}
    assert (
        mf.post("/api/v1/messaging/contacts/import", files=files, headers=headers).status_code
        == 503
    )
    assert sandbox.journal[-1].items == 2
    forever = sandbox.faults.add("msgflash", "*", "*", times=None, status=503)
    assert {mf.get("/api/v1/contacts").status_code for _ in range(3)} == {503}
    sandbox.faults.remove(forever.id)
    assert mf.get("/api/v1/contacts").status_code == 200


def test_delay_fault_then_normal_answer(mf: SyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add("msgflash", "GET", "/api/v1/contacts", delay_s=0.05)
    assert mf.get("/api/v1/contacts").status_code == 200
    entry = sandbox.journal[-1]
    assert entry.fault == "delay" and entry.status == 200 and entry.duration_ms >= 50


def test_latency_setting(make_client: Any, settings: Any) -> None:
    app = build_app(fast_settings(vobiz_latency_ms=40))
    vb = make_client(
        {"X-Auth-ID": settings.vobiz_auth_id, "X-Auth-Token": settings.vobiz_auth_token}, app=app
    )
    vb.get("/api/v1/messaging/contacts")
    assert app.journal[-1].duration_ms >= 40


def test_drop_in_process_raises_like_a_dropped_connection(vb: SyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add("vobiz", "*", "*", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        vb.get("/api/v1/messaging/contacts")
    assert sandbox.journal[-1].status is None and sandbox.journal[-1].fault == "drop"
    assert vb.get("/api/v1/messaging/contacts").status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"status": 500, "drop": True},
        {"status": 42},
        {"status": 500, "times": 0},
        {"api": "x", "status": 500},
    ],
)
def test_invalid_faults_are_refused(sandbox: Sandbox, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        sandbox.faults.add(**{"api": "msgflash", **kwargs})


# -- journal and admin ----------------------------------------------------------------------
def test_journal_counts_items_per_bulk_call(
    mf: SyncClient, wa: SyncClient, vb: SyncClient, sandbox: Sandbox, wa_path: str
) -> None:
    mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ["a", "b"]})
    wa.post(f"{wa_path}/bulk", json={"contacts": [{"phone": f"+9190000000{i}"} for i in range(5)]})
    vb.post(
        "/api/v1/messaging/contacts/import",
        files={"file": ("c.csv", b"phone_number,name\n+919800000000,A\n")},
    )
    mf.get("/api/v1/contacts")
    items = [(e.api, e.method, e.status, e.items) for e in sandbox.journal]
    assert items == [
        ("msgflash", "POST", 200, 2),
        ("waapi", "POST", 200, 5),
        ("vobiz", "POST", 200, 1),
        ("msgflash", "GET", 200, None),
    ]


def test_admin_http(make_client: Any, mf: SyncClient, sandbox: Sandbox) -> None:
    admin = make_client()
    assert admin.get("/__sandbox__/").status_code == 200
    r = admin.post(
        "/__sandbox__/faults",
        json={"api": "msgflash", "method": "GET", "path": "/api/v1/contacts", "status": 500},
    )
    assert r.status_code == 201 and r.json()["fault"]["status"] == 500
    assert (
        admin.post("/__sandbox__/faults", json={"api": "msgflash", "bogus": 1}).status_code == 400
    )
    assert len(admin.get("/__sandbox__/faults").json()["faults"]) == 1
    assert mf.get("/api/v1/contacts").status_code == 500
    mf.post("/api/v1/contacts", json={"name": "A", "phone": "+33612345678"})
    assert admin.get("/__sandbox__/counts").json()["msgflash"]["contacts"] == 1
    entries = admin.get("/__sandbox__/journal?api=msgflash").json()["entries"]
    assert [e["status"] for e in entries] == [500, 201]
    assert admin.delete("/__sandbox__/journal").status_code == 200 and len(sandbox.journal) == 0
    assert admin.post("/__sandbox__/msgflash/fail-next-job", json={"after": 5}).status_code == 201
    assert admin.post("/__sandbox__/reset").json() == {"reset": True}
    assert sandbox.counts()["msgflash"]["contacts"] == 0
    assert admin.get("/__sandbox__/nope").status_code == 404
    assert admin.get("/elsewhere").status_code == 404


def test_no_credential_in_journal_or_admin(
    make_client: Any,
    mf: SyncClient,
    wa: SyncClient,
    vb: SyncClient,
    sandbox: Sandbox,
    settings: SandboxSettings,
    wa_path: str,
) -> None:
    mf.get("/api/v1/contacts")
    wa.get(wa_path)
    vb.get("/api/v1/messaging/contacts")
    admin = make_client()
    dump = json.dumps([e.to_dict() for e in sandbox.journal])
    dump += admin.get("/__sandbox__/journal").text + admin.get("/__sandbox__/").text
    for secret in (
        settings.msgflash_api_key,
        settings.waapi_token,
        settings.vobiz_auth_token,
        settings.vobiz_bearer_token,
    ):
        assert secret not in dump
