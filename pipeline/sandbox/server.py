"""Serving the sandbox over real HTTP: a background-thread server for tests and the demo,
a blocking server for ``contactpipe sandbox``, and the description the CLI prints.

Base URLs follow each doc: MsgFlash's base URL is the host (endpoints are ``/api/v1/...``),
WAAPI's is ``<host>/api``, Vobiz's is ``<host>/api/v1/messaging``.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from .app import ADMIN_PREFIX, Sandbox, build_app
from .common import Clock
from .settings import SandboxSettings


def base_urls(url: str) -> dict[str, str]:
    """Each API's base URL, as its doc defines it, on a sandbox served at ``url``."""
    url = url.rstrip("/")
    return {"msgflash": url, "waapi": f"{url}/api", "vobiz": f"{url}/api/v1/messaging"}


def describe(settings: SandboxSettings, url: str) -> list[dict[str, Any]]:
    """Per API: name, base URL, and the credential env vars (with values) to use."""
    urls = base_urls(url)
    if settings.msgflash_team_key and settings.msgflash_team_id:
        msgflash_env = {
            "MSGFLASH_API_KEY": settings.msgflash_team_key,
            "MSGFLASH_TEAM_ID": settings.msgflash_team_id,
        }
        note = "team key with X-Team-Id; the personal key is also accepted (without X-Team-Id)"
    else:
        msgflash_env = {"MSGFLASH_API_KEY": settings.msgflash_api_key}
        note = "send the key as x-api-key; endpoints are /api/v1/..."
    return [
        {
            "api": "msgflash",
            "name": "MsgFlash",
            "base_url": urls["msgflash"],
            "env": msgflash_env,
            "note": note,
        },
        {
            "api": "waapi",
            "name": "WAAPI",
            "base_url": urls["waapi"],
            "env": {"WAAPI_TOKEN": settings.waapi_token, "WAAPI_PHONE_ID": settings.waapi_phone_id},
            "note": "paths carry base64 of the phone id: "
            f"/external/contacts/{settings.waapi_encoded_phone_id}",
        },
        {
            "api": "vobiz",
            "name": "Vobiz",
            "base_url": urls["vobiz"],
            "env": {
                "VOBIZ_AUTH_ID": settings.vobiz_auth_id,
                "VOBIZ_AUTH_TOKEN": settings.vobiz_auth_token,
            },
            "note": "X-Auth-ID + X-Auth-Token; Authorization: Bearer <jwt> also accepted",
        },
        {
            "api": "admin",
            "name": "Sandbox admin",
            "base_url": f"{url.rstrip('/')}{ADMIN_PREFIX}",
            "env": {},
            "note": "faults, journal, reset, counts (no auth)",
        },
    ]


def _config(app: Sandbox, host: str, port: int, quiet: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        timeout_graceful_shutdown=2,
    )


def run_forever(settings: SandboxSettings, host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve the sandbox until interrupted (Ctrl+C).  The access log holds no credentials."""
    app = build_app(settings)
    server = uvicorn.Server(_config(app, host, port, quiet=False))
    app.attach_server(server)
    server.run()


class SandboxServer:
    """The sandbox on a real port, in a background thread, for a ``with`` block.

    >>> with SandboxServer() as sb:  # doctest: +SKIP
    ...     httpx.get(sb.base_urls["vobiz"] + "/contacts", headers=...)
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        app: Sandbox | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or (app.settings if app else SandboxSettings())
        self.app = app or build_app(self.settings, clock)
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_urls(self) -> dict[str, str]:
        return base_urls(self.url)

    def start(self) -> SandboxServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
        # is TCP; without it every response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._server = uvicorn.Server(_config(self.app, self.host, self.port, quiet=True))
        self.app.attach_server(self._server)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="sandbox-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox server did not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self.app.detach_server(self._server)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
