"""Helpers shared by the sandbox tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from pipeline.sandbox import Sandbox, SandboxSettings


class SyncClient:
    """httpx.AsyncClient over ASGITransport, run on a private event loop."""

    def __init__(self, app: Sandbox, headers: dict[str, str] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test", headers=headers
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.request(method, url, **kwargs))

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
