"""The WAAPI fake: ``/api/external/contacts/{encodedPhoneId}...`` with Bearer tokens.

Documented behaviour reproduced: Bearer tokens with ``read_contacts`` / ``write_contacts``
(403 with the doc's exact message), the base64 phone id in every path, the
``{"success", "data", "message"}`` envelope and ``{"success": false, "message", "error"}``
errors, phones returned without ``+``, 409 on a duplicate phone at create, page/limit lists
(default 20, max 100) filtered by ``search``, ``tag``, ``opt_out``, bulk upsert of up to 50,000
contacts with groups auto-created by name, groups CRUD and add/remove, notes of at most 2,000
characters, 100 requests per 15 minutes.

Choices made where the docs are silent
--------------------------------------
- Order of checks: rate limit, then token (401), then phone id (404), then permission (403),
  then routing.  The rate limiter works like express-rate-limit's defaults: keyed by client
  IP, every request counts (401s and 429s included), a fixed window that starts at the first
  hit.  Every response carries draft-6 headers ``RateLimit-Policy: 100;w=900``,
  ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds); a 429 adds
  ``Retry-After`` (seconds) and the JSON envelope with ``error: "RATE_LIMIT_EXCEEDED"``.
- ``encodedPhoneId`` is decoded leniently like Node's ``Buffer.from(s, "base64")`` (standard or
  URL-safe alphabet, padding optional); anything that does not decode to the configured phone
  id is 404 ``NOT_FOUND`` ("Phone number not found.").
- Error codes (``error``): ``VALIDATION_ERROR``, ``BAD_REQUEST`` (malformed JSON),
  ``UNAUTHORIZED``, ``FORBIDDEN``, ``NOT_FOUND``, ``CONFLICT``, ``RATE_LIMIT_EXCEEDED``,
  ``INTERNAL_ERROR``.  Messages are the doc's where it gives one.
- Every request is first held to ``schemas/apis/waapi.yaml`` (see :mod:`.contract`): no
  ``Content-Type: application/json`` on a body, a field or query parameter it does not list,
  a wrong type, ``limit`` above 100 or ``page`` below 1 -> 400 ``VALIDATION_ERROR`` (malformed
  JSON -> 400 ``BAD_REQUEST``).  Bulk entries are checked one by one (see below).
  Contacts and groups are listed newest
  first.  ``search`` is a case-insensitive substring of the name or the stored phone (a
  leading ``+`` in the query is ignored); ``tag`` an exact tag; ``opt_out`` ``true``/``false``.
- List items carry the doc example's subset (``_id, name, phone, email, tags, opt_out,
  createdAt``); single contacts carry every field.
- Group add/remove take at most ``waapi_group_ids_max`` (50,000) ``contact_ids`` and answer
  ``data: {group, added, already_in_group, not_found: [ids]}`` /
  ``data: {group, removed, not_in_group}``; unknown ids never fail the call.
- ``PUT`` and group routes answer 200 with the updated object; deletes answer
  ``data: null``.  An update to a phone another contact has -> 409.
- Bulk: a missing or empty ``contacts`` array, or more than ``waapi_bulk_max`` entries, is a
  400 for the whole call (nothing written); see :mod:`.waapi_store` for per-entry rules.
- Trailing slashes are not normalised (404).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import sys
from collections.abc import Sequence
from itertools import islice
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .base import ApiApp, ext, json_field_count, json_response, read_json, set_items
from .common import ApiError, FixedWindowLimiter, found, str_list
from .contract import Violation
from .settings import WAAPI_READ, WAAPI_WRITE
from .waapi_store import Contact, FieldError, Group, WaapiStore, check_fields

PREFIX = "/api/external/contacts"


def decode_phone_id(segment: str) -> str | None:
    """Node-style lenient base64 decoding; None when it is not base64 of UTF-8 text."""
    cleaned = segment.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True).decode()
    except (binascii.Error, ValueError):
        return None


def _bad(message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message)


def ok(data: Any, message: str, status: int = 200) -> Response:
    return json_response({"success": True, "data": data, "message": message}, status)


class WaapiApp(ApiApp):
    name = "waapi"
    prefix = PREFIX
    status_codes: ClassVar[dict[int, str]] = {
        400: "BAD_REQUEST",
        401: "UNAUTHORIZED",
        403: "FORBIDDEN",
        404: "NOT_FOUND",
        409: "CONFLICT",
        429: "RATE_LIMIT_EXCEEDED",
        500: "INTERNAL_ERROR",
    }

    def reset(self) -> None:
        s = self.settings
        self.store = WaapiStore(s, self.clock)
        self.limiter = FixedWindowLimiter(s.waapi_rate_limit, s.waapi_rate_window_s, self.clock)

    def routes(self) -> Sequence[BaseRoute]:
        p = f"{PREFIX}/{{phone_id}}"
        g = f"{p}/groups/{{group_id}}"
        return [
            Route(p, self.list_contacts, methods=["GET"]),
            Route(p, self.create_contact, methods=["POST"]),
            Route(f"{p}/bulk", self.bulk, methods=["POST"]),
            Route(f"{p}/groups", self.list_groups, methods=["GET"]),
            Route(f"{p}/groups", self.create_group, methods=["POST"]),
            Route(g, self.get_group, methods=["GET"]),
            Route(g, self.update_group, methods=["PUT"]),
            Route(g, self.delete_group, methods=["DELETE"]),
            Route(f"{g}/add", self.add_to_group, methods=["POST"]),
            Route(f"{g}/remove", self.remove_from_group, methods=["POST"]),
            Route(f"{p}/{{contact_id}}", self.get_contact, methods=["GET"]),
            Route(f"{p}/{{contact_id}}", self.update_contact, methods=["PUT"]),
            Route(f"{p}/{{contact_id}}", self.delete_contact, methods=["DELETE"]),
        ]

    def render_error(self, err: ApiError) -> Response:
        body = {"success": False, "message": err.message, "error": err.code}
        return json_response(body, err.status, err.headers)

    def not_found(self) -> ApiError:
        return ApiError(404, "NOT_FOUND", "Route not found.")

    def contract_error(self, problems: list[Violation]) -> ApiError:
        err = super().contract_error(problems)
        if err.code == "VALIDATION_ERROR":  # no details field in WAAPI's envelope
            err.message = f"{err.message}: " + "; ".join(map(str, problems[:5]))
        return err

    def count_items(self, method: str, path: str, body: bytes) -> int | None:
        if method == "POST" and path.endswith("/bulk"):
            return json_field_count(body, "contacts")
        if method == "POST" and (path.endswith("/add") or path.endswith("/remove")):
            return json_field_count(body, "contact_ids")
        return None

    def token_permissions(self, token: str) -> frozenset[str] | None:
        if token and hmac.compare_digest(token, self.settings.waapi_token):
            return frozenset({WAAPI_READ, WAAPI_WRITE})
        return self.settings.waapi_extra_tokens.get(token)

    async def gate(self, request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        decision = self.limiter.hit(client)
        if decision.limit:
            s = self.settings
            ext(request)["headers"].update(
                {
                    "RateLimit-Policy": f"{decision.limit};w={math.ceil(s.waapi_rate_window_s)}",
                    "RateLimit-Limit": str(decision.limit),
                    "RateLimit-Remaining": str(decision.remaining),
                    "RateLimit-Reset": str(max(0, math.ceil(decision.reset_s))),
                }
            )
        if not decision.allowed:
            raise ApiError(
                429,
                "RATE_LIMIT_EXCEEDED",
                "Too many requests, please try again later.",
                headers={"Retry-After": str(decision.retry_after_s)},
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        perms = self.token_permissions(token.strip()) if scheme.lower() == "bearer" else None
        if perms is None:
            raise ApiError(401, "UNAUTHORIZED", "Unauthorized. Missing, invalid or expired token.")
        segment = request.url.path[len(PREFIX) + 1 :].split("/", 1)[0]
        if decode_phone_id(segment) != self.settings.waapi_phone_id:
            raise ApiError(404, "NOT_FOUND", "Phone number not found.")
        needed = WAAPI_READ if request.method in ("GET", "HEAD") else WAAPI_WRITE
        if needed not in perms:
            raise ApiError(
                403,
                "FORBIDDEN",
                f"Permission denied. This token does not have '{needed}' permission.",
            )

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    async def _object(request: Request) -> dict[str, Any]:
        body = await read_json(request, "BAD_REQUEST")
        if not isinstance(body, dict):
            raise _bad("Request body must be a JSON object.")
        return body

    @staticmethod
    def _paging(request: Request, default: int, maximum: int) -> tuple[int, int]:
        def number(name: str, fallback: int) -> int:
            try:
                return int(request.query_params.get(name, ""))
            except ValueError:
                return fallback

        return max(1, number("page", 1)), min(maximum, max(1, number("limit", default)))

    @staticmethod
    def _page(items: Any, total: int, page: int, limit: int) -> tuple[list[Any], dict[str, int]]:
        # a page past the end (even past sys.maxsize items) is an empty page, not a 500
        chunk = list(
            islice(items, min((page - 1) * limit, sys.maxsize), min(page * limit, sys.maxsize))
        )
        meta = {
            "page": page,
            "limit": limit,
            "total": total,
            "totalPages": math.ceil(total / limit),
        }
        return chunk, meta

    def _contact(self, request: Request) -> Contact:
        return found(self.store.contacts, request.path_params["contact_id"], "Contact not found.")

    def _group(self, request: Request) -> Group:
        return found(self.store.groups, request.path_params["group_id"], "Group not found.")

    def _conflict(self, phone: str, exclude: str | None = None) -> None:
        owner = self.store.by_phone.get(phone)
        if owner is not None and owner != exclude:
            raise ApiError(409, "CONFLICT", "A contact with this phone number already exists.")

    # -- contacts ----------------------------------------------------------------------
    async def list_contacts(self, request: Request) -> Response:
        s = self.settings
        page, limit = self._paging(request, s.waapi_page_default, s.waapi_page_max)
        q = request.query_params
        search = q.get("search", "").strip().casefold()
        digits = search.lstrip("+")
        tag = q.get("tag") or None
        opt_out = {"true": True, "false": False}.get(q.get("opt_out", "").lower())
        newest = reversed(self.store.contacts.values())
        if search or tag or opt_out is not None:
            matches = [
                c
                for c in newest
                if (not search or search in c.name.casefold() or (digits and digits in c.phone))
                and (tag is None or tag in c.tags)
                and (opt_out is None or c.opt_out is opt_out)
            ]
            items, meta = self._page(matches, len(matches), page, limit)
        else:
            items, meta = self._page(newest, len(self.store.contacts), page, limit)
        data = {"contacts": [c.summary() for c in items], "pagination": meta}
        return ok(data, "Contacts retrieved successfully.")

    async def create_contact(self, request: Request) -> Response:
        body = await self._object(request)
        try:
            fields = check_fields(body, self.settings, partial=False)
        except FieldError as exc:
            raise _bad(str(exc)) from exc
        self._conflict(fields["phone"])
        contact = self.store.create(fields)
        return ok({"contact": contact.full()}, "Contact created successfully.", 201)

    async def get_contact(self, request: Request) -> Response:
        return ok({"contact": self._contact(request).full()}, "Contact retrieved successfully.")

    async def update_contact(self, request: Request) -> Response:
        contact = self._contact(request)
        body = await self._object(request)
        try:
            fields = check_fields(body, self.settings, partial=True)
        except FieldError as exc:
            raise _bad(str(exc)) from exc
        if "phone" in fields:
            self._conflict(fields["phone"], exclude=contact.id)
        self.store.apply(contact, self.store.changes(contact, fields))
        return ok({"contact": contact.full()}, "Contact updated successfully.")

    async def delete_contact(self, request: Request) -> Response:
        self.store.delete(self._contact(request).id)
        return ok(None, "Contact deleted successfully.")

    async def bulk(self, request: Request) -> Response:
        body = await self._object(request)
        entries = body.get("contacts")
        if not isinstance(entries, list) or not entries:
            raise _bad("contacts must be a non-empty array.")
        set_items(request, len(entries))
        if len(entries) > self.settings.waapi_bulk_max:
            raise _bad(f"Too many contacts: at most {self.settings.waapi_bulk_max} per request.")
        return ok(self.store.bulk_upsert(entries), "Bulk import complete.")

    # -- groups ------------------------------------------------------------------------
    def _group_fields(self, body: dict[str, Any], partial: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "name" in body or not partial:
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                raise _bad("Group name is required.")
            out["name"] = name.strip()
        if "description" in body:
            if body["description"] is not None and not isinstance(body["description"], str):
                raise _bad("description must be a string.")
            out["description"] = body["description"]
        return out

    def _name_free(self, name: str, exclude: str | None = None) -> None:
        existing = self.store.group_named(name)
        if existing is not None and existing.id != exclude:
            raise ApiError(409, "CONFLICT", "A group with this name already exists.")

    async def list_groups(self, request: Request) -> Response:
        s = self.settings
        page, limit = self._paging(request, s.waapi_page_default, s.waapi_groups_page_max)
        search = request.query_params.get("search", "").strip().casefold()
        groups = [g for g in reversed(self.store.groups.values()) if search in g.name.casefold()]
        items, meta = self._page(groups, len(groups), page, limit)
        data = {"groups": [g.to_dict() for g in items], "pagination": meta}
        return ok(data, "Groups retrieved successfully.")

    async def create_group(self, request: Request) -> Response:
        fields = self._group_fields(await self._object(request), partial=False)
        self._name_free(fields["name"])
        group = self.store.create_group(fields["name"], fields.get("description"))
        return ok({"group": group.to_dict()}, "Group created successfully.", 201)

    async def get_group(self, request: Request) -> Response:
        group = self._group(request)
        members = [self.store.contacts[cid].full() for cid in group.contacts]
        return ok({"group": group.to_dict(members)}, "Group retrieved successfully.")

    async def update_group(self, request: Request) -> Response:
        group = self._group(request)
        fields = self._group_fields(await self._object(request), partial=True)
        if "name" in fields:
            self._name_free(fields["name"], exclude=group.id)
            self.store.rename_group(group, fields["name"])
        if "description" in fields:
            group.description = fields["description"]
        group.updated_at = self.store.now_iso()
        return ok({"group": group.to_dict()}, "Group updated successfully.")

    async def delete_group(self, request: Request) -> Response:
        self.store.delete_group(self._group(request).id)
        return ok(None, "Group deleted successfully.")

    async def _ids(self, request: Request) -> list[str]:
        body = await self._object(request)
        ids = body.get("contact_ids")
        if isinstance(ids, list):
            set_items(request, len(ids))
        maximum = self.settings.waapi_group_ids_max
        if not str_list(ids) or not 1 <= len(ids) <= maximum:
            raise _bad(f"contact_ids must be an array of 1 to {maximum} contact ids.")
        return list(dict.fromkeys(ids))

    async def add_to_group(self, request: Request) -> Response:
        group = self._group(request)
        added = already = 0
        not_found: list[str] = []
        for cid in await self._ids(request):
            contact = self.store.contacts.get(cid)
            if contact is None:
                not_found.append(cid)
            elif self.store.join(group, contact):
                added += 1
            else:
                already += 1
        group.updated_at = self.store.now_iso()
        data = {
            "group": group.to_dict(),
            "added": added,
            "already_in_group": already,
            "not_found": not_found,
        }
        return ok(data, "Contacts added to group successfully.")

    async def remove_from_group(self, request: Request) -> Response:
        group = self._group(request)
        removed = missing = 0
        for cid in await self._ids(request):
            if self.store.leave(group, cid):
                removed += 1
            else:
                missing += 1
        group.updated_at = self.store.now_iso()
        data = {"group": group.to_dict(), "removed": removed, "not_in_group": missing}
        return ok(data, "Contacts removed from group successfully.")
