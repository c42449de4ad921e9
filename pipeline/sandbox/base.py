"""What the three fake APIs share: a Starlette app behind a gate (auth, rate limits).

Each API subclasses :class:`ApiApp`, lists its routes, implements ``gate`` (authentication,
rate limiting, run before routing so unknown paths are authenticated too, as behind a real
API gateway) and ``render_error`` (its error envelope).  Handlers raise
:class:`~contactpipe.sandbox.common.ApiError`; the app renders it.  Unknown routes and methods
answer the API's 404 envelope (no 405, no trailing-slash redirects).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Scope, Send

from .common import ApiError, Clock
from .contract import Contract, Violation, contract
from .settings import SandboxSettings

SCOPE_KEY = "contactpipe.sandbox"


def ext(request: Request) -> dict[str, Any]:
    """The per-request scratch dict the sandbox shares with handlers (items, headers...)."""
    return request.scope.setdefault(SCOPE_KEY, {})


def set_items(request: Request, count: int) -> None:
    ext(request)["items"] = count


class ApiApp:
    """One fake API: a gate, then a Starlette router; subclasses fill in the details."""

    name: str = ""
    prefix: str = ""
    status_codes: ClassVar[dict[int, str]] = {}

    def __init__(self, settings: SandboxSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.app = Starlette(
            routes=self.routes(),
            exception_handlers={ApiError: self._on_api_error, HTTPException: self._on_http},
        )
        self.app.router.redirect_slashes = False
        self.reset()

    # -- to implement ------------------------------------------------------------------
    def routes(self) -> Sequence[BaseRoute]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all state (contacts, groups, jobs, rate-limit counters)."""
        raise NotImplementedError

    async def gate(self, request: Request) -> None:
        """Authenticate and rate-limit; raise ApiError to refuse the request."""
        raise NotImplementedError

    def render_error(self, err: ApiError) -> Response:
        raise NotImplementedError

    def not_found(self) -> ApiError:
        return ApiError(404, "NOT_FOUND", "Route not found")

    @property
    def contract(self) -> Contract:
        """This API's document (``schemas/apis/<name>.yaml``), which every request must meet."""
        return contract(self.name)

    def contract_error(self, problems: list[Violation]) -> ApiError:
        """How this API refuses a request outside its contract (see each API's docstring)."""
        first = problems[0]
        if first.kind == "not_found":
            return self.not_found()
        if first.kind == "malformed":
            return ApiError(400, "BAD_REQUEST", f"Malformed request body: {first.message}")
        details = [{"field": p.field, "message": p.message} for p in problems]
        summary = {
            "security": "Missing credentials",
            "query": "Invalid query parameter",
            "content_type": f"Content-Type {first.message}",
        }.get(first.kind, "Invalid request body")
        return ApiError(400, "VALIDATION_ERROR", summary, details)

    def count_items(self, method: str, path: str, body: bytes) -> int | None:
        """Items a bulk request carries (for the journal when no handler ran)."""
        return None

    # -- shared ------------------------------------------------------------------------
    def fault_error(self, status: int, code: str | None, retry_after: int | None) -> Response:
        err = ApiError(
            status,
            code or self.status_codes.get(status, "INTERNAL_ERROR"),
            f"Injected fault: HTTP {status}",
        )
        if retry_after is not None:
            err.headers["Retry-After"] = str(retry_after)
        return self.render_error(err)

    async def _on_api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return self.render_error(exc)

    async def _on_http(self, request: Request, exc: Exception) -> Response:
        return self.render_error(self.not_found())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        scratch = ext(request)
        scratch.setdefault("headers", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for key, value in scratch["headers"].items():
                    if key.lower().encode() not in present:
                        headers.append((key.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.gate(request)
            self.enforce_contract(request, scratch.get("body", b""))
        except ApiError as err:
            await self.render_error(err)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def enforce_contract(self, request: Request, body: bytes) -> None:
        """Refuse (ApiError) a request outside this API's document, before any handler runs.
        Bulk entries marked ``x-contactpipe-item-errors`` are left to the handler."""
        problems = self.contract.check_request(
            request.method,
            request.url.path,
            request.scope.get("query_string", b"").decode("latin-1"),
            request.headers,
            body,
            strict=False,
            parsed=ext(request),
        )
        if problems:
            raise self.contract_error(problems)


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(content, status_code=status, headers=headers)


async def read_json(request: Request, code: str, status: int = 400) -> Any:
    """The parsed JSON body (decoded once, by the contract check, when it ran); a malformed
    body raises ApiError(status, code)."""
    scratch = ext(request)
    if "json" in scratch:
        return scratch.pop("json")
    raw = await request.body()
    if not raw.strip():
        raise ApiError(status, code, "Request body must be a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(status, code, "Request body is not valid JSON") from exc


def json_field_count(body: bytes, key: str) -> int | None:
    """len(body[key]) when the body is a JSON object holding a list there, else None."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return len(value) if isinstance(value, list) else None
