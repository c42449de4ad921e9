"""Helpers shared by the sandbox tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from contactpipe.sandbox import Sandbox, SandboxSettings


def response_violations(app: Sandbox, response: httpx.Response) -> list[str]:
    """How a sandbox response steps outside its API's document (admin paths, undocumented
    paths and injected faults excepted: the contract does not describe them)."""
    request = response.request
    api = app.api_for(request.url.path)
    if api is None:
        return []
    matched = api.contract.match(request.method, request.url.path)
    if matched is None:
        return []
    problems = api.contract.check_response(
        request.method, request.url.path, response.status_code, response.headers, response.content
    )
    where = f"{request.method} {request.url.path} -> {response.status_code}"
    return [f"{where}: {p}" for p in problems]


class SyncClient:
    """httpx.AsyncClient over ASGITransport, run on a private event loop.  Every response is
    checked against its API's document; ``violations`` collects what is outside it."""

    def __init__(self, app: Sandbox, headers: dict[str, str] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self.app = app
        self.violations: list[str] = []
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test", headers=headers
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._loop.run_until_complete(self._client.request(method, url, **kwargs))
        faulted = self.app.journal and self.app.journal[-1].fault is not None
        if not faulted:
            self.violations += response_violations(self.app, response)
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


def fast_settings(**overrides: Any) -> SandboxSettings:
    values: dict[str, Any] = {
        "msgflash_rate_limit": None,
        "waapi_rate_limit": None,
        "vobiz_rate_limit": None,
    }
    values.update(overrides)
    return SandboxSettings(**values)
