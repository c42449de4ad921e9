"""Fixtures for the sandbox tests: an in-process client (httpx over ASGITransport, driven
synchronously) whose every response is checked against the API's document, a manual clock,
and fast settings (rate limits off unless a test sets them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_helpers import SyncClient, fast_settings

from contactpipe.sandbox import ManualClock, Sandbox, SandboxSettings, build_app


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings() -> SandboxSettings:
    return fast_settings()


@pytest.fixture
def sandbox(settings: SandboxSettings, clock: ManualClock) -> Sandbox:
    return build_app(settings, clock)


@pytest.fixture
def make_client(sandbox: Sandbox) -> Iterator[Any]:
    clients: list[SyncClient] = []

    def make(headers: dict[str, str] | None = None, app: Sandbox | None = None) -> SyncClient:
        client = SyncClient(app or sandbox, headers)
        clients.append(client)
        return client

    yield make
    violations = [v for client in clients for v in client.violations]
    for client in clients:
        client.close()
    assert not violations, "sandbox responses outside the contract:\n" + "\n".join(violations)


@pytest.fixture
def mf(make_client: Any, settings: SandboxSettings) -> SyncClient:
    """A client that authenticates to MsgFlash with the personal key."""
    return make_client({"x-api-key": settings.msgflash_api_key})


@pytest.fixture
def wa(make_client: Any, settings: SandboxSettings) -> SyncClient:
    """A client that authenticates to WAAPI with the read+write token."""
    return make_client({"Authorization": f"Bearer {settings.waapi_token}"})


@pytest.fixture
def wa_path(settings: SandboxSettings) -> str:
    return f"/api/external/contacts/{settings.waapi_encoded_phone_id}"


@pytest.fixture
def vb(make_client: Any, settings: SandboxSettings) -> SyncClient:
    """A client that authenticates to Vobiz with X-Auth-ID + X-Auth-Token."""
    return make_client(
        {"X-Auth-ID": settings.vobiz_auth_id, "X-Auth-Token": settings.vobiz_auth_token}
    )
