"""The Vobiz fake: ``/api/v1/messaging/contacts...`` with ``X-Auth-ID`` + ``X-Auth-Token``.

Documented behaviour reproduced: ``X-Auth-ID`` (``MA_...``) + ``X-Auth-Token`` or
``Authorization: Bearer <JWT>``, the error body
``{"status": "error", "error": {"code", "message", "details"}, "timestamp", "requestId"}``,
page/limit lists ``{items, total, page, limit, has_more}`` (default 25) filtered by ``search`` and
``tag``, create 201, update 200, delete 204, CSV import (multipart field ``file``, columns
``phone_number,name[,tags]``, per-row errors ``{row, phone_number, reason}``).

Choices made where the docs are silent
--------------------------------------
- Rate limit: ``vobiz_rate_limit`` (100) accepted requests per ``vobiz_rate_window_s`` (1 s) per
  credential, checked after authentication; a 429 carries ``Retry-After`` (seconds) and no
  other rate-limit header.
- Error codes: ``BAD_REQUEST`` (400, malformed JSON), ``UNAUTHORIZED`` (401),
  ``FORBIDDEN`` (403: a token registered without the ``write`` permission, on a write),
  ``NOT_FOUND`` (404), ``CONFLICT`` (409: duplicate ``phone_number`` on create),
  ``VALIDATION_ERROR`` (422, ``details`` = ``[{"field", "message"}]``), ``RATE_LIMITED`` (429),
  ``INTERNAL_ERROR`` (500).  ``details`` is null except for 422.  Every response carries
  ``X-Request-ID`` (on errors, equal to ``requestId``).
- Success bodies are bare (no envelope), like the documented list and import bodies; create
  and update return the contact object.  ``last_active_at`` is omitted (no activity here).
- Every request is first held to ``schemas/apis/vobiz.yaml`` (see :mod:`.contract`): a JSON
  body without ``Content-Type: application/json``, an import that is not ``multipart/form-data``
  with a ``text/csv`` part ``file``, a field or query parameter the document does not list or
  a wrong type -> 422 ``VALIDATION_ERROR`` (malformed JSON -> 400 ``BAD_REQUEST``).
- ``limit`` above ``vobiz_page_max`` (100) is clamped; ``page`` or ``limit`` below 1 or not an
  integer -> 422.  Contacts are listed newest first.  ``search`` is a case-insensitive substring
  of name or phone; ``tag`` an exact tag.
- ``PUT`` updates ``name``, ``tags`` and ``custom_attributes`` (replaced, not merged); any
  other field, ``phone_number`` included, is ignored as a Go JSON decoder would.
- Import: the header row is row 1, so the first data row is row 2 (the doc's example reports
  its second data row as ``row: 3``).  Header names are matched case-insensitively after
  trimming, a UTF-8 BOM is tolerated, blank lines are skipped and not counted, extra columns
  are ignored.  Rows are matched to existing contacts by ``phone_number``: the name is
  replaced, and the tags too when the file has a ``tags`` column (an empty cell clears them).
  A phone repeated in the file updates the contact the earlier row created.  A row with an
  invalid phone or an empty name fails alone.  Missing ``file`` field, a body that is not
  multipart, a file that is not UTF-8, has no header or lacks a required column, or exceeds
  ``vobiz_import_max_rows`` (50,000 data rows) or ``vobiz_import_max_bytes`` (10 MiB)
  -> 422 for the whole request, nothing imported.
"""

from __future__ import annotations

import csv
import hmac
import io
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, ClassVar

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .base import ApiApp, ext, json_response, read_json, set_items
from .common import ApiError, SlidingWindowLimiter, found, is_e164, iso_s, parse_int, str_list
from .contract import Violation
from .settings import VOBIZ_READ, VOBIZ_WRITE

PREFIX = "/api/v1/messaging"
INVALID_PHONE = "invalid phone_number: must be E.164 format"


@dataclass(slots=True)
class Contact:
    id: str
    account_id: str
    phone_number: str
    name: str
    created_at: str
    updated_at: str
    tags: list[str] = field(default_factory=list)
    custom_attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "phone_number": self.phone_number,
            "name": self.name,
            "tags": list(self.tags),
            "custom_attributes": dict(self.custom_attributes),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class VobizStore:
    contacts: dict[str, Contact] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)


def _invalid(fields: list[tuple[str, str]], message: str = "validation failed") -> ApiError:
    details = [{"field": f, "message": m} for f, m in fields]
    return ApiError(422, "VALIDATION_ERROR", message, details)


def split_tags(cell: str) -> list[str]:
    return [t.strip() for t in cell.split(",") if t.strip()]


class VobizApp(ApiApp):
    name = "vobiz"
    prefix = PREFIX
    status_codes: ClassVar[dict[int, str]] = {
        400: "BAD_REQUEST",
        401: "UNAUTHORIZED",
        402: "INSUFFICIENT_BALANCE",
        403: "FORBIDDEN",
        404: "NOT_FOUND",
        409: "CONFLICT",
        422: "VALIDATION_ERROR",
        429: "RATE_LIMITED",
        500: "INTERNAL_ERROR",
        502: "BAD_GATEWAY",
        503: "SERVICE_UNAVAILABLE",
        504: "GATEWAY_TIMEOUT",
    }

    def reset(self) -> None:
        s = self.settings
        self.store = VobizStore()
        self.limiter = SlidingWindowLimiter(s.vobiz_rate_limit, s.vobiz_rate_window_s, self.clock)

    def routes(self) -> Sequence[BaseRoute]:
        c = f"{PREFIX}/contacts"
        return [
            Route(c, self.list_contacts, methods=["GET"]),
            Route(c, self.create_contact, methods=["POST"]),
            Route(f"{c}/import", self.import_csv, methods=["POST"]),
            Route(f"{c}/{{contact_id}}", self.get_contact, methods=["GET"]),
            Route(f"{c}/{{contact_id}}", self.update_contact, methods=["PUT"]),
            Route(f"{c}/{{contact_id}}", self.delete_contact, methods=["DELETE"]),
        ]

    def render_error(self, err: ApiError) -> Response:
        request_id = f"req_{uuid.uuid4().hex}"
        body = {
            "status": "error",
            "error": {"code": err.code, "message": err.message, "details": err.details},
            "timestamp": iso_s(self.clock.wall()),
            "requestId": request_id,
        }
        return json_response(body, err.status, {**err.headers, "X-Request-ID": request_id})

    def not_found(self) -> ApiError:
        return ApiError(404, "NOT_FOUND", "resource not found")

    def contract_error(self, problems: list[Violation]) -> ApiError:
        err = super().contract_error(problems)
        if err.code == "VALIDATION_ERROR":
            err.status = 422
        return err

    def count_items(self, method: str, path: str, body: bytes) -> int | None:
        if method != "POST" or not path.endswith("/contacts/import") or not body.startswith(b"--"):
            return None
        boundary = body.split(b"\r\n", 1)[0]
        for part in body.split(boundary):
            head, _, content = part.partition(b"\r\n\r\n")
            if b'name="file"' in head:
                lines = content.rstrip(b"\r\n-").splitlines()
                return max(0, sum(1 for line in lines if line.strip()) - 1)
        return None

    def permissions(self, request: Request) -> tuple[str, frozenset[str]] | None:
        s = self.settings
        everything = frozenset({VOBIZ_READ, VOBIZ_WRITE})
        auth_id = request.headers.get("x-auth-id")
        token = request.headers.get("x-auth-token")
        if auth_id is not None and token is not None:
            if not hmac.compare_digest(auth_id, s.vobiz_auth_id):
                return None
            if hmac.compare_digest(token, s.vobiz_auth_token):
                return "token", everything
            extra = s.vobiz_extra_tokens.get(token)
            return ("token", extra) if extra is not None else None
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            return None
        bearer = bearer.strip()
        if hmac.compare_digest(bearer, s.vobiz_bearer_token):
            return "bearer", everything
        extra = s.vobiz_extra_tokens.get(bearer)
        return ("bearer", extra) if extra is not None else None

    async def gate(self, request: Request) -> None:
        ext(request)["headers"]["X-Request-ID"] = f"req_{uuid.uuid4().hex}"
        found = self.permissions(request)
        if found is None:
            raise ApiError(401, "UNAUTHORIZED", "missing or invalid credentials")
        principal, perms = found
        decision = self.limiter.hit(principal)
        if not decision.allowed:
            raise ApiError(
                429,
                "RATE_LIMITED",
                "rate limit exceeded",
                headers={"Retry-After": str(decision.retry_after_s)},
            )
        needed = VOBIZ_READ if request.method in ("GET", "HEAD") else VOBIZ_WRITE
        if needed not in perms:
            raise ApiError(403, "FORBIDDEN", "insufficient permission")

    # -- helpers -----------------------------------------------------------------------
    def now(self) -> str:
        return iso_s(self.clock.wall())

    @staticmethod
    async def _object(request: Request) -> dict[str, Any]:
        body = await read_json(request, "BAD_REQUEST")
        if not isinstance(body, dict):
            raise ApiError(400, "BAD_REQUEST", "request body must be a JSON object")
        return body

    def _contact(self, request: Request) -> Contact:
        return found(self.store.contacts, request.path_params["contact_id"], "contact not found")

    @staticmethod
    def _fields(body: dict[str, Any], partial: bool) -> dict[str, Any]:
        errors: list[tuple[str, str]] = []
        out: dict[str, Any] = {}
        if not partial:
            if not is_e164(body.get("phone_number")):
                errors.append(("phone_number", "must be E.164 format"))
            else:
                out["phone_number"] = body["phone_number"]
        if "name" in body or not partial:
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                errors.append(("name", "is required"))
            else:
                out["name"] = name.strip()
        if "tags" in body:
            if not str_list(body["tags"]):
                errors.append(("tags", "must be an array of strings"))
            else:
                out["tags"] = list(body["tags"])
        if "custom_attributes" in body:
            if not isinstance(body["custom_attributes"], dict):
                errors.append(("custom_attributes", "must be an object"))
            else:
                out["custom_attributes"] = dict(body["custom_attributes"])
        if errors:
            raise _invalid(errors)
        return out

    def _create(self, phone: str, name: str, now: str) -> Contact:
        contact = Contact(str(uuid.uuid4()), self.settings.vobiz_auth_id, phone, name, now, now)
        self.store.contacts[contact.id] = contact
        self.store.by_phone[phone] = contact.id
        return contact

    # -- endpoints ---------------------------------------------------------------------
    async def list_contacts(self, request: Request) -> Response:
        q = request.query_params
        page = parse_int(q.get("page"), 1)
        limit = parse_int(q.get("limit"), self.settings.vobiz_page_default)
        errors = [
            (n, "must be a positive integer")
            for n, v in (("page", page), ("limit", limit))
            if v is None or v < 1
        ]
        if errors:
            raise _invalid(errors)
        assert page is not None and limit is not None
        limit = min(limit, self.settings.vobiz_page_max)
        search = q.get("search", "").strip().casefold()
        tag = q.get("tag") or None
        newest: Any = reversed(self.store.contacts.values())
        if search or tag:
            matches = [
                c
                for c in newest
                if (not search or search in c.name.casefold() or search in c.phone_number)
                and (tag is None or tag in c.tags)
            ]
            total, newest = len(matches), matches
        else:
            total = len(self.store.contacts)
        # a page past the end (even past sys.maxsize items) is an empty page, not a 500
        items = list(
            islice(newest, min((page - 1) * limit, sys.maxsize), min(page * limit, sys.maxsize))
        )
        return json_response(
            {
                "items": [c.to_dict() for c in items],
                "total": total,
                "page": page,
                "limit": limit,
                "has_more": page * limit < total,
            }
        )

    async def create_contact(self, request: Request) -> Response:
        fields = self._fields(await self._object(request), partial=False)
        if fields["phone_number"] in self.store.by_phone:
            raise ApiError(409, "CONFLICT", "contact with this phone_number already exists")
        contact = self._create(fields.pop("phone_number"), fields.pop("name"), self.now())
        for key, value in fields.items():
            setattr(contact, key, value)
        return json_response(contact.to_dict(), 201)

    async def get_contact(self, request: Request) -> Response:
        return json_response(self._contact(request).to_dict())

    async def update_contact(self, request: Request) -> Response:
        contact = self._contact(request)
        for key, value in self._fields(await self._object(request), partial=True).items():
            setattr(contact, key, value)
        contact.updated_at = self.now()
        return json_response(contact.to_dict())

    async def delete_contact(self, request: Request) -> Response:
        contact = self._contact(request)
        del self.store.contacts[contact.id]
        del self.store.by_phone[contact.phone_number]
        return Response(status_code=204)

    async def import_csv(self, request: Request) -> Response:
        s = self.settings
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise _invalid([("file", "send the CSV as multipart/form-data field 'file'")])
        async with request.form(max_files=10, max_part_size=s.vobiz_import_max_bytes) as form:
            upload = form.get("file")
            if upload is None:
                raise _invalid([("file", "is required")])
            raw = await upload.read() if isinstance(upload, UploadFile) else upload.encode()
        if len(raw) > s.vobiz_import_max_bytes:
            raise _invalid([("file", f"must be at most {s.vobiz_import_max_bytes} bytes")])
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _invalid([("file", "must be UTF-8 encoded CSV")]) from exc
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
        if not rows:
            raise _invalid([("file", "is empty")])
        header = [h.strip().lower() for h in rows[0]]
        missing = [c for c in ("phone_number", "name") if c not in header]
        if missing:
            raise _invalid([("file", f"missing required column(s): {', '.join(missing)}")])
        set_items(request, len(rows) - 1)
        if len(rows) - 1 > s.vobiz_import_max_rows:
            raise _invalid([("file", f"at most {s.vobiz_import_max_rows} rows per import")])
        return json_response(self._import_rows(header, rows[1:]))

    def _import_rows(self, header: list[str], rows: list[list[str]]) -> dict[str, Any]:
        i_phone, i_name = header.index("phone_number"), header.index("name")
        i_tags = header.index("tags") if "tags" in header else None
        now = self.now()
        created = updated = 0
        errors: list[dict[str, Any]] = []
        for number, row in enumerate(rows, start=2):
            cells = row + [""] * (len(header) - len(row))
            phone, name = cells[i_phone].strip(), cells[i_name].strip()
            if not is_e164(phone):
                errors.append({"row": number, "phone_number": phone, "reason": INVALID_PHONE})
                continue
            if not name:
                errors.append({"row": number, "phone_number": phone, "reason": "name is required"})
                continue
            existing = self.store.by_phone.get(phone)
            contact = self.store.contacts[existing] if existing else self._create(phone, name, now)
            if existing:
                contact.name, contact.updated_at = name, now
                updated += 1
            else:
                created += 1
            if i_tags is not None:
                contact.tags = split_tags(cells[i_tags])
        return {
            "total": len(rows),
            "created": created,
            "updated": updated,
            "failed": len(errors),
            "errors": errors,
        }
