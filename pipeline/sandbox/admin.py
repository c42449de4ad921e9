"""Admin HTTP endpoints under ``/__sandbox__/`` (no API auth; sandbox only).

    GET    /__sandbox__/                     what is served where
    GET    /__sandbox__/counts               objects per API
    POST   /__sandbox__/reset                forget data, counters, faults, journal
    GET    /__sandbox__/journal              entries (filters: api, method, path)
    DELETE /__sandbox__/journal              clear the journal
    GET    /__sandbox__/faults               registered faults
    POST   /__sandbox__/faults               add one: {api, method, path, times, status,
                                             delay_s, drop, code, retry_after} -> 201
    DELETE /__sandbox__/faults               clear all faults
    DELETE /__sandbox__/faults/{id}          remove one fault
    POST   /__sandbox__/msgflash/fail-next-job   {after, error}: the next job fails

Nothing here returns a key or token: credentials are printed by the CLI only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from .app import Sandbox

FAULT_FIELDS = (
    "api",
    "method",
    "path",
    "times",
    "status",
    "delay_s",
    "drop",
    "code",
    "retry_after",
)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise HTTPException(400, "body is not JSON") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, "body must be a JSON object")
    return body


def build_admin(sandbox: Sandbox) -> Starlette:
    """The admin Starlette app bound to ``sandbox``."""

    async def index(request: Request) -> Response:
        return JSONResponse(
            {
                "apis": {
                    "msgflash": "/api/v1/",
                    "waapi": "/api/external/contacts/{encodedPhoneId}/",
                    "vobiz": "/api/v1/messaging/",
                },
                "admin": ["counts", "reset", "journal", "faults", "msgflash/fail-next-job"],
            }
        )

    async def counts(request: Request) -> Response:
        return JSONResponse(sandbox.counts())

    async def reset(request: Request) -> Response:
        sandbox.reset()
        return JSONResponse({"reset": True})

    async def journal(request: Request) -> Response:
        q = request.query_params
        entries = sandbox.journal.entries(q.get("api"), q.get("method"), q.get("path"))
        return JSONResponse({"entries": [e.to_dict() for e in entries]})

    async def clear_journal(request: Request) -> Response:
        sandbox.journal.clear()
        return JSONResponse({"cleared": True})

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"faults": [f.to_dict() for f in sandbox.faults.list()]})

    async def add_fault(request: Request) -> Response:
        body = await _json(request)
        unknown = sorted(set(body) - set(FAULT_FIELDS))
        if unknown or "api" not in body:
            return _error(400, f"need 'api'; known fields: {', '.join(FAULT_FIELDS)}")
        try:
            fault = sandbox.faults.add(**body)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return JSONResponse({"fault": fault.to_dict()}, status_code=201)

    async def clear_faults(request: Request) -> Response:
        sandbox.faults.clear()
        return JSONResponse({"cleared": True})

    async def remove_fault(request: Request) -> Response:
        if not sandbox.faults.remove(request.path_params["fault_id"]):
            return _error(404, "no such fault")
        return JSONResponse({"removed": True})

    async def fail_next_job(request: Request) -> Response:
        body = await _json(request)
        after = body.get("after", 0)
        error = body.get("error", "Internal error while processing the job")
        if not isinstance(after, int) or after < 0 or not isinstance(error, str):
            return _error(400, "after must be an integer >= 0 and error a string")
        sandbox.fail_next_msgflash_job(after, error)
        return JSONResponse({"queued": True}, status_code=201)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    p = "/__sandbox__"
    app = Starlette(
        routes=[
            Route(p, index, methods=["GET"]),
            Route(f"{p}/", index, methods=["GET"]),
            Route(f"{p}/counts", counts, methods=["GET"]),
            Route(f"{p}/reset", reset, methods=["POST"]),
            Route(f"{p}/journal", journal, methods=["GET"]),
            Route(f"{p}/journal", clear_journal, methods=["DELETE"]),
            Route(f"{p}/faults", list_faults, methods=["GET"]),
            Route(f"{p}/faults", add_fault, methods=["POST"]),
            Route(f"{p}/faults", clear_faults, methods=["DELETE"]),
            Route(f"{p}/faults/{{fault_id:int}}", remove_fault, methods=["DELETE"]),
            Route(f"{p}/msgflash/fail-next-job", fail_next_job, methods=["POST"]),
        ],
        exception_handlers={HTTPException: on_http},
    )
    app.router.redirect_slashes = False
    return app
