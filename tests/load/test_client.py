"""The shared client and limiters: sliding window and adaptive limits on a fake clock, header
parsing, retries, the non-idempotent recover hook, and messages free of credentials."""

from __future__ import annotations

import httpx
import pytest

from contactpipe.errors import UsageError
from contactpipe.load.client import (
    ApiClient,
    ApiRefused,
    AuthRefused,
    QuotaExceeded,
    RetryPolicy,
    Unreachable,
    retry_after_s,
)
from contactpipe.load.config import check_base_url, is_loopback
from contactpipe.load.ratelimit import Adaptive, ArrivalWindow, SlidingWindow, Stopped
from contactpipe.sandbox import SandboxServer

POLICY = RetryPolicy(attempts=3, backoff_s=0.01, backoff_cap_s=0.02, throttle_backoff_s=0.01)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_sliding_window_never_starts_more_than_the_limit_per_window() -> None:
    t = FakeTime()
    lim = SlidingWindow(10, 1.0, margin=0.0, clock=t.clock, sleep=t.sleep)
    starts = []
    for _ in range(35):
        lim.acquire()
        starts.append(t.now)
    for i in range(10, 35):
        assert starts[i] - starts[i - 10] >= 1.0 - 1e-9
    assert starts[-1] == pytest.approx(3.0)  # 35 starts in 3 s: exactly at the limit


def test_server_pauses_hold_every_request() -> None:
    t = FakeTime()
    lim = SlidingWindow(100, 1.0, clock=t.clock, sleep=t.sleep)
    lim.pause_for(5.0)
    assert lim.acquire() == pytest.approx(5.0)


def test_adaptive_halves_on_429_then_creeps_up() -> None:
    t = FakeTime()
    lim = Adaptive(clock=t.clock, sleep=t.sleep)
    for _ in range(150):
        lim.acquire()
        t.now += 0.01  # 100 req/s: the server's limit, in its last second
    lim.on_throttled()
    assert lim.ceiling == pytest.approx(100, abs=1)
    assert lim.rate == pytest.approx(50, rel=0.1)
    before = lim.rate
    lim.on_success()
    assert lim.rate > before
    for _ in range(100):
        lim.on_success()
    assert lim.rate == pytest.approx(95, rel=0.1)  # back under the rate that met the 429
    for _ in range(1000):
        lim.on_success()
    assert lim.rate > 96  # a probe above it, once per 1,000 requests
    lim.on_throttled()
    assert lim.rate < before * 2 and lim.ceiling < 101


def test_retry_after_parsing() -> None:
    def resp(**headers: str) -> httpx.Response:
        return httpx.Response(429, headers=headers)

    assert retry_after_s(resp(**{"Retry-After": "7"})) == 7
    when = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert retry_after_s(resp(**{"Retry-After": when}), now=lambda: 1445412480.0) == 10
    assert retry_after_s(resp(**{"RateLimit-Remaining": "0", "RateLimit-Reset": "42"})) == 42
    assert retry_after_s(resp(**{"RateLimit-Remaining": "3", "RateLimit-Reset": "42"})) is None
    assert retry_after_s(resp()) is None


def test_loopback_only_for_plain_http() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")
    assert check_base_url("http://[::1]:8900/api/", "X") == "http://[::1]:8900/api"
    for bad in ("http://10.0.0.1/api", "ftp://x", "https://user:pw@host", "https://h/?a=1"):
        with pytest.raises(UsageError):
            check_base_url(bad, "X")


@pytest.fixture
def vobiz(server: SandboxServer) -> ApiClient:
    s = server.settings
    headers = {"X-Auth-ID": s.vobiz_auth_id, "X-Auth-Token": s.vobiz_auth_token}
    with ApiClient("Vobiz", server.base_urls["vobiz"], headers, policy=POLICY) as client:
        yield client


def test_retries_then_gives_up_with_a_clear_message(
    server: SandboxServer, vobiz: ApiClient
) -> None:
    server.app.faults.add("vobiz", "GET", "/api/v1/messaging/contacts", times=2, status=502)
    assert vobiz.request("GET", "/contacts").status_code == 200
    assert vobiz.stats.retries == 2
    server.app.faults.add("vobiz", "GET", "/api/v1/messaging/contacts", times=None, drop=True)
    with pytest.raises(Unreachable, match="Vobiz GET /contacts: connection failed"):
        vobiz.request("GET", "/contacts")


def test_refusals_carry_the_api_code(server: SandboxServer, vobiz: ApiClient) -> None:
    with pytest.raises(ApiRefused) as info:
        vobiz.request("GET", "/contacts/nope")
    assert (info.value.status, info.value.code) == (404, "NOT_FOUND")


def test_auth_refused_never_quotes_the_credential(server: SandboxServer) -> None:
    secret = "vobiz_wrong_token_0123456789abcdef"
    client = ApiClient(
        "Vobiz",
        server.base_urls["vobiz"],
        {"X-Auth-ID": "MA_SANDBOX0", "X-Auth-Token": secret},
        policy=POLICY,
    )
    with client, pytest.raises(AuthRefused) as info:
        client.request("GET", "/contacts")
    assert "401" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value.args)


def test_quota_429_is_terminal(server: SandboxServer) -> None:
    server.app.faults.add(
        "msgflash", "*", "*", times=1, status=429, code="MONTHLY_API_REQUEST_QUOTA_EXCEEDED"
    )
    client = ApiClient(
        "MsgFlash",
        server.base_urls["msgflash"],
        {"x-api-key": server.settings.msgflash_api_key},
        policy=POLICY,
        terminal_429_codes=frozenset({"MONTHLY_API_REQUEST_QUOTA_EXCEEDED"}),
    )
    with client, pytest.raises(QuotaExceeded):
        client.request("GET", "/api/v1/contacts")
    assert client.stats.rate_limited == 0


def test_a_non_idempotent_request_asks_before_resending(
    server: SandboxServer, vobiz: ApiClient
) -> None:
    server.app.faults.add("vobiz", "POST", "/api/v1/messaging/contacts", times=1, status=503)
    asked = []

    def recover() -> httpx.Response | None:
        asked.append(True)
        return None  # the first attempt did not take effect: resend

    body = {"phone_number": "+33612345678", "name": "Awa"}
    resp = vobiz.request("POST", "/contacts", json_body=body, idempotent=False, recover=recover)
    assert resp.status_code == 201 and asked == [True]

    server.app.faults.add("vobiz", "POST", "/api/v1/messaging/contacts", times=1, drop=True)
    found = httpx.Response(200, json={"id": "already-there"})
    resp = vobiz.request(
        "POST", "/contacts", json_body=body, idempotent=False, recover=lambda: found
    )
    assert resp is found
    assert len(server.app.state.vobiz.contacts) == 1


def test_a_429_despite_the_window_widens_it() -> None:
    t = FakeTime()
    lim = SlidingWindow(10, 1.0, margin=0.0, clock=t.clock, sleep=t.sleep)
    lim.on_throttled()
    assert lim.window == pytest.approx(1.05)
    for _ in range(20):
        lim.on_throttled()
    assert lim.window == pytest.approx(1.5)


def test_limiter_keeps_a_slow_request_s_slot_longer() -> None:
    """A request slower than the quickest seen reached the server late: its slot is held
    longer by the difference; one still in flight holds its slot until it ends."""
    now = [0.0]
    window = ArrivalWindow(2, 1.0, margin=0.0, clock=lambda: now[0])
    window.acquire()  # A at 0.0, answered at 0.1 (the quickest: 0.1 s)
    now[0] = 0.1
    window.done()
    window.acquire()  # B at 0.1, answered at 0.4: 0.2 s slower than A, stamp 0.3
    now[0] = 0.4
    window.done()
    now[0] = 0.5
    assert window._next_delay() == pytest.approx(0.5)  # A's slot frees at 1.0
    now[0] = 1.0
    window.acquire()  # C at 1.0, never answered
    now[0] = 1.05
    assert window._next_delay() == pytest.approx(0.25)  # B frees at 1.3, not 1.1
    now[0] = 5.0
    assert window._next_delay() == 0.0  # B's slot is free again...
    assert [window._stamp(s, now[0]) for s in window._slots] == [pytest.approx(4.9)]  # ...not C
    window.stop.set()
    with pytest.raises(Stopped):
        window.acquire()


def test_one_parser_reads_every_api_s_error_envelope() -> None:
    from contactpipe.load.client import parse_error

    waapi = {"success": False, "message": "Contact not found.", "error": "NOT_FOUND"}
    assert parse_error(httpx.Response(404, json=waapi)) == ("NOT_FOUND", "Contact not found.")
    vobiz = {
        "status": "error",
        "error": {
            "code": "VALIDATION_ERROR",
            "message": "invalid body",
            "details": [{"field": "phone_number", "message": "must be E.164"}],
        },
        "timestamp": "2026-11-29T00:00:00Z",
        "requestId": "r1",
    }
    assert parse_error(httpx.Response(422, json=vobiz)) == (
        "VALIDATION_ERROR",
        "invalid body (phone_number: must be E.164)",
    )
    assert parse_error(httpx.Response(500, json=["?"])) == (
        "HTTP_500",
        "Internal Server Error",
    )


@pytest.mark.off_contract  # the second request is sent without its content type on purpose
def test_a_raw_body_needs_its_content_type_and_the_audit_sees_it(server: SandboxServer) -> None:
    path = f"/external/contacts/{server.settings.waapi_encoded_phone_id}/bulk"
    auth = {"Authorization": f"Bearer {server.settings.waapi_token}"}
    body = b'{"contacts":[{"phone":"+33612345678","name":"A"}]}'
    with ApiClient("waapi", server.base_urls["waapi"], auth, policy=POLICY) as client:
        with pytest.raises(ValueError, match="content type"):
            client.request("POST", path, content=body)
        assert client.request("POST", path, content=body, content_type="application/json")
    # what a client without the guard would send: the sandbox refuses it, the audit names it
    raw = httpx.post(server.base_urls["waapi"] + path, content=body, headers=auth)
    assert raw.status_code == 400 and raw.json()["error"] == "VALIDATION_ERROR"
    first, second = server.app.journal.entries(api="waapi")
    assert first.violations == ()
    assert second.violations == (
        "content_type Content-Type: must be application/json, got no Content-Type",
    )
