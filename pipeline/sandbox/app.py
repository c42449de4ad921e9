"""The sandbox: one ASGI app serving MsgFlash, WAAPI, Vobiz and the admin endpoints.

Path prefixes decide the API (checked in this order, so Vobiz's ``/api/v1/messaging`` is not
taken by MsgFlash's ``/api/v1``; MsgFlash has no ``messaging`` endpoint):

    /__sandbox__/...                  admin (faults, journal, reset, counts): no auth
    /api/v1/messaging/...             Vobiz
    /api/external/contacts/...        WAAPI
    /api/v1/...                       MsgFlash

Every API request goes: read body -> (audit against the contract, when
``settings.contract_audit``) -> fault switch -> per-API latency (+ fault delay) -> API gate
(auth, rate limit) -> contract (``schemas/apis/<api>.yaml``: a request outside it is refused
in the API's own error envelope) -> handler -> journal.  Handlers run under one lock and their
response is buffered, so Python code in another thread (a test, a benchmark) can read the
state safely while a server thread serves.  Any other path answers a plain JSON 404.

Dropped connections: served by :class:`~contactpipe.sandbox.server.SandboxServer` or
:func:`~contactpipe.sandbox.server.run_forever`, the TCP connection is aborted with no response
at all; in-process (``httpx.ASGITransport``) the app raises ``httpx.RemoteProtocolError``,
which is what an httpx client sees when a real server drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from .base import SCOPE_KEY, ApiApp
from .common import ApiError, Clock, paused_gc
from .faults import FaultSwitch
from .journal import Journal, JournalEntry
from .msgflash import MsgFlashApp
from .msgflash_store import MsgFlashStore
from .settings import SandboxSettings
from .vobiz import VobizApp, VobizStore
from .waapi import WaapiApp
from .waapi_store import WaapiStore

ADMIN_PREFIX = "/__sandbox__"
BIG_BODY = 256 * 1024  # bodies above this are handled with the cyclic GC paused
log = logging.getLogger("contactpipe.sandbox")


@dataclass
class SandboxState:
    """The in-memory data of each API (live objects: mutate at your own risk)."""

    msgflash: MsgFlashStore
    waapi: WaapiStore
    vobiz: VobizStore


class Sandbox:
    """ASGI application of the three fake APIs; see the module docstring."""

    def __init__(self, settings: SandboxSettings | None = None, clock: Clock | None = None) -> None:
        from .admin import build_admin  # admin needs Sandbox's public surface only

        self.settings = settings or SandboxSettings()
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.journal = Journal(self.settings.journal_max_entries)
        self.faults = FaultSwitch()
        self.msgflash = MsgFlashApp(self.settings, self.clock)
        self.waapi = WaapiApp(self.settings, self.clock)
        self.vobiz = VobizApp(self.settings, self.clock)
        self.admin = build_admin(self)
        for api in self.apis.values():
            _ = api.contract  # load and warm the documents now, not on a first request
        self._servers: list[Any] = []

    # -- Python surface ----------------------------------------------------------------
    @property
    def apis(self) -> dict[str, ApiApp]:
        return {"msgflash": self.msgflash, "waapi": self.waapi, "vobiz": self.vobiz}

    @property
    def state(self) -> SandboxState:
        with self.lock:
            self.msgflash.store.advance_jobs()
            return SandboxState(self.msgflash.store, self.waapi.store, self.vobiz.store)

    def reset(self) -> None:
        """Forget all data, rate-limit counters, faults and journal entries."""
        with self.lock:
            for api in self.apis.values():
                api.reset()
            self.faults.clear()
            self.journal.clear()

    def counts(self) -> dict[str, dict[str, int]]:
        """How many objects each API holds (MsgFlash jobs advanced to now first)."""
        with self.lock:
            mf = self.msgflash.store
            mf.advance_jobs()
            return {
                "msgflash": {
                    "contacts": len(mf.contacts),
                    "groups": len(mf.groups),
                    "jobs": len(mf.jobs),
                    "active_jobs": len(mf.active_jobs),
                },
                "waapi": {
                    "contacts": len(self.waapi.store.contacts),
                    "groups": len(self.waapi.store.groups),
                },
                "vobiz": {"contacts": len(self.vobiz.store.contacts)},
            }

    def fail_next_msgflash_job(
        self, after: int = 0, error: str = "Internal error while processing the job"
    ) -> None:
        """Make the next MsgFlash bulk job fail once it has processed ``after`` ids."""
        with self.lock:
            self.msgflash.store.job_failures.append((after, error))

    def attach_server(self, server: Any) -> None:
        """Register a uvicorn ``Server`` serving this app, so drops can abort its sockets."""
        self._servers.append(server)

    def detach_server(self, server: Any) -> None:
        with contextlib.suppress(ValueError):
            self._servers.remove(server)

    def api_for(self, path: str) -> ApiApp | None:
        for prefix, api in (
            ("/api/v1/messaging", self.vobiz),
            ("/api/external/contacts", self.waapi),
            ("/api/v1", self.msgflash),
        ):
            if path == prefix or path.startswith(prefix + "/"):
                return api
        return None

    # -- ASGI --------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1003})
            return
        path: str = scope["path"]
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            await self.admin(scope, receive, send)
            return
        api = self.api_for(path)
        if api is None:
            body = {"error": "no sandbox API serves this path", "admin": ADMIN_PREFIX + "/"}
            await JSONResponse(body, status_code=404)(scope, receive, send)
            return
        await self._serve_api(api, scope, receive, send)

    async def _serve_api(self, api: ApiApp, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        body = await _read_body(receive)
        fault = self.faults.take(api.name, method, path)
        delay = getattr(self.settings, f"{api.name}_latency_ms") / 1000
        delay += fault.delay_s if fault else 0.0
        if delay > 0:
            await asyncio.sleep(delay)

        audit: tuple[str, ...] = ()
        if self.settings.contract_audit:
            problems = api.contract.check_request(
                method,
                path,
                scope.get("query_string", b"").decode("latin-1"),
                Headers(scope=scope),
                body,
            )
            audit = tuple(map(str, problems))

        def record(status: int | None, items: int | None, kind: str | None) -> None:
            entry = JournalEntry(
                api=api.name,
                method=method,
                path=path,
                query=scope.get("query_string", b"").decode("latin-1"),
                status=status,
                items=items,
                fault=kind,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                violations=audit,
            )
            self.journal.record(entry)

        if fault is not None and fault.drop:
            record(None, api.count_items(method, path, body), "drop")
            await self._drop(scope, receive)
            return
        if fault is not None and fault.status is not None:
            response = api.fault_error(fault.status, fault.code, fault.retry_after)
            record(fault.status, api.count_items(method, path, body), "status")
            await response(scope, receive, send)
            return
        scratch: dict[str, Any] = {"body": body}
        messages = await self._run(api, {**scope, SCOPE_KEY: scratch}, body)
        record(messages[0]["status"], scratch.get("items"), "delay" if fault else None)
        for message in messages:
            await send(message)

    async def _run(self, api: ApiApp, scope: Scope, body: bytes) -> list[Message]:
        messages: list[Message] = []
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            messages.append(message)

        pause = paused_gc() if len(body) > BIG_BODY else contextlib.nullcontext()
        with self.lock, pause:
            try:
                await api(scope, replay, capture)
            except Exception:
                log.exception(
                    "sandbox %s handler failed on %s %s", api.name, scope["method"], scope["path"]
                )
                messages.clear()
                error = api.render_error(ApiError(500, "INTERNAL_ERROR", "Internal server error"))
                await error(scope, replay, capture)
        return messages

    async def _drop(self, scope: Scope, receive: Receive) -> None:
        client = tuple(scope.get("client") or ())
        for server in list(self._servers):
            state = getattr(server, "server_state", None)
            for protocol in list(getattr(state, "connections", ())):
                transport = getattr(protocol, "transport", None)
                if getattr(protocol, "client", None) == client and transport is not None:
                    transport.abort()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(receive(), timeout=1.0)
                    return
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def build_app(settings: SandboxSettings | None = None, clock: Clock | None = None) -> Sandbox:
    """A fresh :class:`Sandbox` (an ASGI app) with ``settings`` (default: documented values)."""
    return Sandbox(settings, clock)
