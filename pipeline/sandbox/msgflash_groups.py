"""MsgFlash group endpoints (groups, members, a contact's groups) and shared helpers.

Choices are listed in :mod:`contactpipe.sandbox.msgflash`; this module only splits the code.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .base import json_response, set_items
from .common import ApiError
from .msgflash_store import OP_ADD, OP_REMOVE, Contact, Group, MsgFlashStore
from .settings import SandboxSettings

COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
BAD_KEY = "Invalid or missing API key"
SORTS = ("createdAt_desc", "name_asc")


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, [{"field": field, "message": message}])


def encode_cursor(kind: str, key: list[Any]) -> str:
    raw = json.dumps({"k": kind, "v": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None, kind: str) -> list[Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if data["k"] == kind and isinstance(data["v"], list):
            return data["v"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise invalid("cursor", "Invalid cursor")


class GroupEndpoints:
    """Group endpoints, mixed into :class:`~contactpipe.sandbox.msgflash.MsgFlashApp`, whose
    helpers (``_limit``, ``_search``, ``_object``, ``_contact``, ``_group``, ``_ids``,
    ``_bulk``) they use."""

    store: MsgFlashStore
    settings: SandboxSettings

    if TYPE_CHECKING:  # defined by MsgFlashApp

        def _limit(self, request: Request, default: int, maximum: int) -> int: ...
        @staticmethod
        def _search(request: Request) -> str | None: ...
        @staticmethod
        async def _object(request: Request) -> dict[str, Any]: ...
        def _contact(self, request: Request) -> Contact: ...
        def _group(self, request: Request) -> Group: ...
        def _ids(self, body: dict[str, Any], maximum: int) -> list[str]: ...
        def _bulk(self, operation: str, group: Group | None, ids: list[str]) -> Response: ...

    async def contact_groups(self, request: Request) -> Response:
        contact = self._contact(request)
        groups = sorted((self.store.groups[g] for g in contact.groups), key=lambda g: -g.seq)
        return json_response({"data": [g.to_dict() for g in groups]})

    # -- groups ------------------------------------------------------------------------
    def _group_fields(self, body: dict[str, Any], partial: bool) -> dict[str, Any]:
        errors: list[dict[str, str]] = []
        out: dict[str, Any] = {}
        if "name" in body or not partial:
            name = body.get("name")
            if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
                errors.append({"field": "name", "message": "name must be 1 to 100 characters"})
            else:
                out["name"] = name.strip()
        for key, ok in (
            ("description", lambda v: isinstance(v, str) and len(v) <= 500),
            ("color", lambda v: isinstance(v, str) and COLOR_RE.match(v)),
        ):
            if key in body and body[key] is not None:
                if not ok(body[key]):
                    errors.append({"field": key, "message": f"invalid {key}"})
                else:
                    out[key] = body[key]
        if errors:
            raise ApiError(400, "VALIDATION_ERROR", "Invalid request body", errors)
        return out

    def _check_group_name(self, name: str, exclude: str | None = None) -> None:
        owner = self.store.group_names.get(name.casefold())
        if owner is not None and owner != exclude:
            raise ApiError(409, "CONFLICT", "A group with the same name already exists")

    async def list_groups(self, request: Request) -> Response:
        limit = self._limit(
            request, self.settings.msgflash_page_default, self.settings.msgflash_page_max
        )
        search = self._search(request)
        needle = search.casefold() if search else None
        after = decode_cursor(request.query_params.get("cursor"), "groups")
        found: list[Group] = []
        for _, gid in self.store.group_order.iter_desc(after[0] if after else None):
            group = self.store.groups[gid]
            if needle is None or needle in group.name.casefold():
                found.append(group)
                if len(found) > limit:
                    break
        more = len(found) > limit
        data = {
            "groups": [g.to_dict() for g in found[:limit]],
            "nextCursor": encode_cursor("groups", [found[limit - 1].seq]) if more else None,
            "hasMore": more,
        }
        return json_response({"data": data})

    async def create_group(self, request: Request) -> Response:
        fields = self._group_fields(await self._object(request), partial=False)
        self._check_group_name(fields["name"])
        if len(self.store.groups) >= self.settings.msgflash_max_groups:
            raise ApiError(
                403, "MAX_CONTACT_GROUPS_REACHED", "Contact group limit reached for your plan"
            )
        group = self.store.create_group(
            fields["name"], fields.get("description"), fields.get("color")
        )
        return json_response({"data": group.to_dict()}, 201)

    async def get_group(self, request: Request) -> Response:
        return json_response({"data": self._group(request).to_dict()})

    async def update_group(self, request: Request) -> Response:
        group = self._group(request)
        fields = self._group_fields(await self._object(request), partial=True)
        if "name" in fields:
            self._check_group_name(fields["name"], exclude=group.id)
            self.store.rename_group(group, fields.pop("name"))
        for key, value in fields.items():
            setattr(group, key, value)
        group.updated_at = self.store.now_iso()
        return json_response({"data": group.to_dict()})

    async def delete_group(self, request: Request) -> Response:
        group = self._group(request)
        self.store.delete_group(group.id)
        return json_response({"data": {"id": group.id, "deleted": True}})

    async def list_members(self, request: Request) -> Response:
        group = self._group(request)
        limit = self._limit(
            request, self.settings.msgflash_page_default, self.settings.msgflash_page_max
        )
        search = self._search(request)
        needle = search.casefold() if search else None
        after = decode_cursor(request.query_params.get("cursor"), f"members:{group.id}")
        found: list[tuple[int, dict[str, Any]]] = []
        for seq, cid in group.members.iter_asc(after[0] if after else None):
            contact = self.store.contacts[cid]
            if needle is None or needle in contact.name.casefold() or needle in contact.phone:
                found.append((seq, {**contact.summary(), "addedAt": group.joined.get(cid)}))
                if len(found) > limit:
                    break
        more = len(found) > limit
        cursor = encode_cursor(f"members:{group.id}", [found[limit - 1][0]]) if more else None
        data = {"members": [m for _, m in found[:limit]], "nextCursor": cursor, "hasMore": more}
        return json_response({"data": data})

    async def add_members(self, request: Request) -> Response:
        return await self._members(request, OP_ADD)

    async def remove_members(self, request: Request) -> Response:
        return await self._members(request, OP_REMOVE)

    async def _members(self, request: Request, operation: str) -> Response:
        group = self._group(request)
        body = await self._object(request)
        if isinstance(body.get("contactIds"), list):
            set_items(request, len(body["contactIds"]))
        return self._bulk(operation, group, self._ids(body, self.settings.msgflash_members_max))
