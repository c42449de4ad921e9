"""The MsgFlash fake: ``/api/v1/contacts...`` with ``x-api-key`` auth, as its docs describe.

Documented behaviour reproduced: ``x-api-key`` personal keys (``msgf_live_`` + 64 hex) and
team keys (``msgf_team_...`` + matching ``X-Team-Id``; missing or wrong team id -> 401 with the
invalid-key message; personal key + ``X-Team-Id`` -> 403 ``TEAM_KEY_REQUIRED``; Bearer alone
-> 401), 10 requests/s per key (429 ``API_RATE_LIMIT_EXCEEDED``), the monthly quota
(429 ``MONTHLY_API_REQUEST_QUOTA_EXCEEDED``), ``{"data": ...}`` and
``{"error": {"code", "message", "details": []}}`` envelopes, cursor pages, bulk delete and
group members (sync under 100 ids, 202 + job at 100 or more), jobs, groups.

Choices made where the docs are silent
--------------------------------------
- Authentication, rate limit and quota are checked before routing: an unknown path with a
  valid key is 404 ``NOT_FOUND``; without one, 401.  Out-of-scope endpoints (messages,
  templates, billing...) and wrong methods answer 404 ``NOT_FOUND``.
- No rate-limit headers at all (none documented), not even ``Retry-After``: clients must back
  off on their own.  Only accepted requests count toward the 10 req/s sliding window.
  Personal and team keys have separate limits and separate monthly quotas.
- ``limit`` above the maximum (100), below 1 or not an integer -> 400 ``VALIDATION_ERROR``
  (no clamping); the same for an unknown ``sort``, a ``search`` over 100 characters, and a
  malformed cursor or one issued for another sort.  An empty ``search`` is ignored.
- Cursors are opaque base64url strings; ``nextCursor`` is null on the last page.
- Duplicate phone on create or update -> 409 ``CONFLICT`` (setting
  ``msgflash_duplicate_phone="allow"`` accepts duplicates instead).
- Every request is first held to ``schemas/apis/msgflash.yaml`` (see :mod:`.contract`): a
  body without ``Content-Type: application/json``, a body field or query parameter the
  document does not list, a wrong type or too many ids -> 400 ``VALIDATION_ERROR``.
  Validation errors list ``{"field", "message"}`` objects in ``details``.  A malformed JSON
  body -> 400 ``BAD_REQUEST``.
- ``PUT`` returns the full contact (with ``meta``); ``DELETE`` returns
  ``{"data": {"id", "deleted": true}}`` with 200.
- Add members ``total`` is the group's member count after the call.  ``notInGroup`` counts ids
  that are unknown or not members.
- Group names are unique case-insensitively (409 ``CONFLICT``, checked before the plan limit);
  names are 1-100 characters, descriptions at most 500, ``color`` ``#RGB`` or ``#RRGGBB``;
  ``MAX_CONTACT_GROUPS_REACHED`` (403) past ``msgflash_max_groups`` (100).  Groups are listed
  newest first; their ``search`` matches the name only.
- Members pages carry the contact list items plus ``addedAt``; ``GET /contacts/{id}/groups``
  is a simple list ``{"data": [group, ...]}``.
- Progress endpoint: ``{id, status, progress, processedCount, requestedCount}``.  Cancelling a
  finished job -> 409 ``CONFLICT``.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .base import ApiApp, json_field_count, json_response, read_json, set_items
from .common import ApiError, SlidingWindowLimiter, found, is_e164, parse_int, str_list
from .msgflash_groups import BAD_KEY, SORTS, GroupEndpoints, decode_cursor, encode_cursor, invalid
from .msgflash_store import OP_DELETE, Contact, Group, Job, MsgFlashStore


class MsgFlashApp(GroupEndpoints, ApiApp):
    name = "msgflash"
    prefix = "/api/v1"
    status_codes: ClassVar[dict[int, str]] = {
        400: "BAD_REQUEST",
        401: "UNAUTHORIZED",
        403: "FORBIDDEN",
        404: "NOT_FOUND",
        409: "CONFLICT",
        429: "API_RATE_LIMIT_EXCEEDED",
        500: "INTERNAL_ERROR",
        502: "PROVIDER_UNAVAILABLE",
        503: "PROVIDER_UNAVAILABLE",
        504: "PROVIDER_TIMEOUT",
    }

    def reset(self) -> None:
        s = self.settings
        self.store = MsgFlashStore(s, self.clock)
        self.limiter = SlidingWindowLimiter(
            s.msgflash_rate_limit, s.msgflash_rate_window_s, self.clock
        )
        self.quota_used: dict[str, int] = {}

    def routes(self) -> Sequence[BaseRoute]:
        c = "/api/v1/contacts"
        return [
            Route(c, self.list_contacts, methods=["GET"]),
            Route(c, self.create_contact, methods=["POST"]),
            Route(f"{c}/bulk-delete", self.bulk_delete, methods=["POST"]),
            Route(f"{c}/bulk-jobs", self.list_jobs, methods=["GET"]),
            Route(f"{c}/bulk-jobs/{{job_id}}", self.get_job, methods=["GET"]),
            Route(f"{c}/bulk-jobs/{{job_id}}/progress", self.job_progress, methods=["GET"]),
            Route(f"{c}/bulk-jobs/{{job_id}}/cancel", self.cancel_job, methods=["POST"]),
            Route(f"{c}/groups", self.list_groups, methods=["GET"]),
            Route(f"{c}/groups", self.create_group, methods=["POST"]),
            Route(f"{c}/groups/{{group_id}}", self.get_group, methods=["GET"]),
            Route(f"{c}/groups/{{group_id}}", self.update_group, methods=["PUT"]),
            Route(f"{c}/groups/{{group_id}}", self.delete_group, methods=["DELETE"]),
            Route(f"{c}/groups/{{group_id}}/members", self.list_members, methods=["GET"]),
            Route(f"{c}/groups/{{group_id}}/members", self.add_members, methods=["POST"]),
            Route(f"{c}/groups/{{group_id}}/members", self.remove_members, methods=["DELETE"]),
            Route(f"{c}/{{contact_id}}", self.get_contact, methods=["GET"]),
            Route(f"{c}/{{contact_id}}", self.update_contact, methods=["PUT"]),
            Route(f"{c}/{{contact_id}}", self.delete_contact, methods=["DELETE"]),
            Route(f"{c}/{{contact_id}}/groups", self.contact_groups, methods=["GET"]),
        ]

    def render_error(self, err: ApiError) -> Response:
        details = err.details if err.details is not None else []
        body = {"error": {"code": err.code, "message": err.message, "details": details}}
        return json_response(body, err.status, err.headers)

    def count_items(self, method: str, path: str, body: bytes) -> int | None:
        if path.endswith("/bulk-delete") or (path.endswith("/members") and method != "GET"):
            return json_field_count(body, "contactIds")
        return None

    async def gate(self, request: Request) -> None:
        s = self.settings
        key = request.headers.get("x-api-key", "")
        team_id = request.headers.get("x-team-id")
        if key and hmac.compare_digest(key, s.msgflash_api_key):
            if team_id is not None:
                raise ApiError(
                    403, "TEAM_KEY_REQUIRED", "X-Team-Id requires a team API key (msgf_team_...)"
                )
            principal = "personal"
        elif (
            s.msgflash_team_key
            and s.msgflash_team_id
            and hmac.compare_digest(key, s.msgflash_team_key)
            and team_id is not None
            and hmac.compare_digest(team_id, s.msgflash_team_id)
        ):
            principal = "team"
        else:
            raise ApiError(401, "UNAUTHORIZED", BAD_KEY)
        if not self.limiter.hit(principal).allowed:
            raise ApiError(429, "API_RATE_LIMIT_EXCEEDED", "Too many API requests")
        quota = s.msgflash_monthly_quota
        used = self.quota_used.get(principal, 0)
        if quota is not None and used >= quota:
            raise ApiError(
                429, "MONTHLY_API_REQUEST_QUOTA_EXCEEDED", "Monthly API request quota exceeded"
            )
        self.quota_used[principal] = used + 1
        self.store.advance_jobs()

    # -- helpers -----------------------------------------------------------------------
    def _limit(self, request: Request, default: int, maximum: int) -> int:
        limit = parse_int(request.query_params.get("limit"), default)
        if limit is None or not 1 <= limit <= maximum:
            raise invalid("limit", f"limit must be an integer between 1 and {maximum}")
        return limit

    @staticmethod
    def _search(request: Request) -> str | None:
        search = request.query_params.get("search", "").strip()
        if len(search) > 100:
            raise invalid("search", "search must be 1 to 100 characters")
        return search or None

    @staticmethod
    async def _object(request: Request) -> dict[str, Any]:
        body = await read_json(request, "BAD_REQUEST")
        if not isinstance(body, dict):
            raise ApiError(400, "VALIDATION_ERROR", "Request body must be a JSON object", [])
        return body

    def _contact(self, request: Request) -> Contact:
        return found(self.store.contacts, request.path_params["contact_id"], "Contact not found")

    def _group(self, request: Request) -> Group:
        return found(self.store.groups, request.path_params["group_id"], "Group not found")

    def _job(self, request: Request) -> Job:
        return found(self.store.jobs, request.path_params["job_id"], "Bulk job not found")

    def _contact_fields(self, body: dict[str, Any], partial: bool) -> dict[str, Any]:
        errors: list[dict[str, str]] = []
        changes: dict[str, Any] = {}
        if "name" in body or not partial:
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                errors.append({"field": "name", "message": "name is required"})
            else:
                changes["name"] = name.strip()
        if "phone" in body or not partial:
            phone = body.get("phone")
            if not is_e164(phone):
                errors.append({"field": "phone", "message": "phone must be an E.164 number"})
            else:
                changes["phone"] = phone
        if "tags" in body:
            if not str_list(body["tags"]):
                errors.append({"field": "tags", "message": "tags must be an array of strings"})
            else:
                changes["tags"] = list(body["tags"])
        if "meta" in body:
            if not isinstance(body["meta"], dict):
                errors.append({"field": "meta", "message": "meta must be an object"})
            else:
                changes["meta"] = dict(body["meta"])
        if errors:
            raise ApiError(400, "VALIDATION_ERROR", "Invalid request body", errors)
        return changes

    def _check_phone_free(self, phone: str, exclude: str | None = None) -> None:
        if self.settings.msgflash_duplicate_phone == "conflict" and self.store.phone_owner(
            phone, exclude
        ):
            raise ApiError(
                409,
                "CONFLICT",
                "A contact with this phone number already exists",
                [{"field": "phone", "message": "already exists"}],
            )

    def _ids(self, body: dict[str, Any], maximum: int) -> list[str]:
        ids = body.get("contactIds")
        if not str_list(ids) or not 1 <= len(ids) <= maximum:
            raise invalid("contactIds", f"contactIds must hold 1 to {maximum} ids")
        return ids

    def _bulk(self, operation: str, group: Group | None, ids: list[str]) -> Response:
        if len(ids) < self.settings.msgflash_async_threshold:
            return json_response({"data": self.store.run_sync(operation, group, ids)})
        job = self.store.create_job(operation, group.id if group else None, ids)
        data = {
            "mode": "async",
            "jobId": job.id,
            "status": "pending",
            "operation": operation,
            "requestedCount": len(ids),
            "groupId": job.group_id,
            "progress": 0,
            "message": f"Bulk job queued; poll GET /api/v1/contacts/bulk-jobs/{job.id}/progress",
        }
        return json_response({"data": data}, 202)

    # -- contacts ----------------------------------------------------------------------
    async def list_contacts(self, request: Request) -> Response:
        limit = self._limit(
            request, self.settings.msgflash_page_default, self.settings.msgflash_page_max
        )
        sort = request.query_params.get("sort") or "createdAt_desc"
        if sort not in SORTS:
            raise invalid("sort", "sort must be createdAt_desc or name_asc")
        search = self._search(request)
        after = decode_cursor(request.query_params.get("cursor"), f"contacts:{sort}")
        page, last, total = self.store.list_contacts(sort, after, search, limit)
        data = {
            "contacts": [c.summary() for c in page],
            "total": total,
            "limit": limit,
            "sort": sort,
            "nextCursor": encode_cursor(f"contacts:{sort}", last) if last else None,
            "hasMore": last is not None,
        }
        return json_response({"data": data})

    async def create_contact(self, request: Request) -> Response:
        fields = self._contact_fields(await self._object(request), partial=False)
        self._check_phone_free(fields["phone"])
        contact = self.store.create_contact(
            fields["name"], fields["phone"], fields.get("tags", []), fields.get("meta", {})
        )
        return json_response(
            {"data": {"id": contact.id, "name": contact.name, "phone": contact.phone}}, 201
        )

    async def get_contact(self, request: Request) -> Response:
        return json_response({"data": self._contact(request).full()})

    async def update_contact(self, request: Request) -> Response:
        contact = self._contact(request)
        changes = self._contact_fields(await self._object(request), partial=True)
        if "phone" in changes:
            self._check_phone_free(changes["phone"], exclude=contact.id)
        self.store.update_contact(contact, changes)
        return json_response({"data": contact.full()})

    async def delete_contact(self, request: Request) -> Response:
        contact = self._contact(request)
        self.store.delete_contact(contact.id)
        return json_response({"data": {"id": contact.id, "deleted": True}})

    async def bulk_delete(self, request: Request) -> Response:
        body = await self._object(request)
        ids = body.get("contactIds")
        if isinstance(ids, list):
            set_items(request, len(ids))
        return self._bulk(OP_DELETE, None, self._ids(body, self.settings.msgflash_bulk_delete_max))

    # -- jobs --------------------------------------------------------------------------
    async def list_jobs(self, request: Request) -> Response:
        s = self.settings
        limit = self._limit(request, s.msgflash_jobs_page_default, s.msgflash_jobs_page_max)
        after = decode_cursor(request.query_params.get("cursor"), "jobs")
        jobs: list[Job] = []
        for _, job_id in self.store.job_order.iter_desc(after[0] if after else None):
            jobs.append(self.store.jobs[job_id])
            if len(jobs) > limit:
                break
        more = len(jobs) > limit
        return json_response(
            {
                "data": {
                    "jobs": [self.store.job_dict(j) for j in jobs[:limit]],
                    "nextCursor": encode_cursor("jobs", [jobs[limit - 1].seq]) if more else None,
                    "hasMore": more,
                }
            }
        )

    async def get_job(self, request: Request) -> Response:
        return json_response({"data": self.store.job_dict(self._job(request))})

    async def job_progress(self, request: Request) -> Response:
        job = self.store.job_dict(self._job(request))
        keys = ("id", "status", "progress", "processedCount", "requestedCount")
        return json_response({"data": {k: job[k] for k in keys}})

    async def cancel_job(self, request: Request) -> Response:
        job = self._job(request)
        if not self.store.cancel_job(job):
            raise ApiError(409, "CONFLICT", f"Job is already {job.final}")
        return json_response({"data": self.store.job_dict(job)})
