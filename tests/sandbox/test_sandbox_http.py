"""End-to-end: the sandbox over real HTTP on 127.0.0.1, one server per test module."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sandbox_helpers import fast_settings, response_violations

from contactpipe.sandbox import SandboxServer


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    settings = fast_settings(
        waapi_rate_limit=100,
        msgflash_job_pending_s=0.05,
        msgflash_job_items_per_s=2000,
    )
    with SandboxServer(settings) as running:
        yield running


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    """A client whose every answer from an API is checked against that API's document."""
    server.app.reset()
    outside: list[str] = []

    def check(response: httpx.Response) -> None:
        response.read()
        faulted = server.app.journal and server.app.journal[-1].fault is not None
        if not faulted:
            outside.extend(response_violations(server.app, response))

    with httpx.Client(timeout=10, event_hooks={"response": [check]}) as client:
        yield client
    assert not outside, "sandbox responses outside the contract:\n" + "\n".join(outside)


def test_connections_use_tcp_nodelay(server: SandboxServer, http: httpx.Client) -> None:
    """Without TCP_NODELAY every response waits ~40 ms for a delayed ACK."""
    http.get(f"{server.url}/__sandbox__/counts")
    connections = server._server.server_state.connections  # type: ignore[union-attr]
    sockets = [c.transport.get_extra_info("socket") for c in connections]
    assert sockets and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


def test_server_urls(server: SandboxServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    assert server.base_urls == {
        "msgflash": server.url,
        "waapi": f"{server.url}/api",
        "vobiz": f"{server.url}/api/v1/messaging",
    }


def test_msgflash_over_http_job_runs_in_real_time(
    server: SandboxServer, http: httpx.Client
) -> None:
    base, key = server.base_urls["msgflash"], {"x-api-key": server.settings.msgflash_api_key}
    ids = []
    for i in range(120):
        r = http.post(
            f"{base}/api/v1/contacts", json={"name": f"P{i}", "phone": f"+3361{i:07d}"}, headers=key
        )
        ids.append(r.json()["data"]["id"])
    r = http.post(f"{base}/api/v1/contacts/bulk-delete", json={"contactIds": ids}, headers=key)
    assert r.status_code == 202
    job_url = f"{base}/api/v1/contacts/bulk-jobs/{r.json()['data']['jobId']}/progress"
    statuses = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = http.get(job_url, headers=key).json()["data"]["status"]
        statuses.append(status)
        if status == "done":
            break
        time.sleep(0.01)
    assert statuses[0] == "pending" and statuses[-1] == "done"
    assert http.get(f"{base}/api/v1/contacts", headers=key).json()["data"]["total"] == 0


def test_waapi_over_http(server: SandboxServer, http: httpx.Client) -> None:
    s = server.settings
    url = f"{server.base_urls['waapi']}/external/contacts/{s.waapi_encoded_phone_id}"
    auth = {"Authorization": f"Bearer {s.waapi_token}"}
    contacts = [
        {"name": f"N{i}", "phone": f"+9190{i:08d}", "groups": ["VIP Customers"]} for i in range(300)
    ]
    r = http.post(f"{url}/bulk", json={"contacts": contacts}, headers=auth)
    assert r.status_code == 200 and r.json()["data"]["created"] == 300
    r = http.get(url, headers=auth)
    assert r.json()["data"]["pagination"]["total"] == 300
    assert int(r.headers["RateLimit-Remaining"]) < 100 and "RateLimit-Reset" in r.headers


def test_vobiz_over_http_csv_upload(server: SandboxServer, http: httpx.Client) -> None:
    s = server.settings
    auth = {"X-Auth-ID": s.vobiz_auth_id, "X-Auth-Token": s.vobiz_auth_token}
    csv = b'phone_number,name,tags\n+919876543210,Rahul Sharma,"vip,enterprise"\n98765,Bad,\n'
    r = http.post(
        f"{server.base_urls['vobiz']}/contacts/import", files={"file": ("c.csv", csv)}, headers=auth
    )
    assert r.status_code == 200
    assert r.json()["created"] == 1 and r.json()["errors"][0]["row"] == 3


@pytest.mark.parametrize("api", ["msgflash", "waapi", "vobiz"])
def test_drop_really_closes_the_connection(
    server: SandboxServer, http: httpx.Client, api: str
) -> None:
    s = server.settings
    url, headers = {
        "msgflash": (f"{server.url}/api/v1/contacts", {"x-api-key": s.msgflash_api_key}),
        "waapi": (
            f"{server.url}/api/external/contacts/{s.waapi_encoded_phone_id}",
            {"Authorization": f"Bearer {s.waapi_token}"},
        ),
        "vobiz": (
            f"{server.url}/api/v1/messaging/contacts",
            {"X-Auth-ID": s.vobiz_auth_id, "X-Auth-Token": s.vobiz_auth_token},
        ),
    }[api]
    http.post(f"{server.url}/__sandbox__/faults", json={"api": api, "path": "*", "drop": True})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.get(url, headers=headers)
    assert http.get(url, headers=headers).status_code == 200
    entries: list[dict[str, Any]] = http.get(f"{server.url}/__sandbox__/journal?api={api}").json()[
        "entries"
    ]
    assert [e["fault"] for e in entries] == ["drop", None]
