"""MsgFlash's configuration, client, listings and groups, shared by every command."""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
import polars as pl

from contactpipe.errors import RemoteError, UsageError

from ... import config
from ...base import Target, TargetConfig
from ...client import ApiClient, ApiRefused, AuthRefused
from ...kit.groups import create_once, group_key, named
from ...kit.jobs import follow_jobs
from ...kit.lookup import Directory, Listing, exists_by_get
from ...kit.paging import Page, cursor_pages
from ...kit.phones import norm_phone, search_digits
from ...kit.timing import Rate
from ...ratelimit import ArrivalWindow
from . import INFO

log = logging.getLogger("contactpipe")

CONTACTS = "/api/v1/contacts"
GROUPS = "/api/v1/contacts/groups"
JOBS = "/api/v1/contacts/bulk-jobs"
BULK_DELETE = f"{CONTACTS}/bulk-delete"
MEMBERS = f"{GROUPS}/{{groupId}}/members"
LIST_PARAMS = {"limit": 100, "sort": "createdAt_desc"}  # the sort never changes while paging
GROUP_LIMIT = "MAX_CONTACT_GROUPS_REACHED"


class GroupLimit(RemoteError):
    """The plan's group limit is reached: no group can be created (a 403 that is no bad key)."""


class MsgFlashCore(Target):
    name = INFO.name
    title = INFO.title
    capabilities = INFO.capabilities

    DEFAULT_BASE_URL: ClassVar[str] = INFO.default_base_url or ""
    RATE_LIMIT: ClassVar[int] = 10
    """Documented: 10 requests per second per key."""
    RATE_WINDOW_S: ClassVar[float] = 1.0
    RATE_MARGIN_S: ClassVar[float] = 0.025
    rate: ClassVar[Rate] = Rate(RATE_LIMIT, RATE_WINDOW_S)
    PAGE_MAX: ClassVar[int] = 100
    import_page_size: ClassVar[int] = 100
    MEMBERS_MAX: ClassVar[int] = 10_000
    ASYNC_THRESHOLD: ClassVar[int] = 100
    JOB_STALL_S: ClassVar[float] = 600.0
    QUOTA_CODES: ClassVar[frozenset[str]] = frozenset({"MONTHLY_API_REQUEST_QUOTA_EXCEEDED"})

    timeout: httpx.Timeout | float | None = None
    """Client timeout (None: the client's default)."""

    _limiter: ArrivalWindow
    _lock: threading.Lock

    # -- configuration -----------------------------------------------------------------
    @classmethod
    def config_from_env(cls, env: Mapping[str, str], base_url: str | None) -> TargetConfig:
        """``MSGFLASH_API_KEY`` (+ ``MSGFLASH_TEAM_ID`` for a ``msgf_team_`` key) and
        ``MSGFLASH_BASE_URL`` (default ``https://srv.msgflash.com``)."""
        url = config.base_url(base_url, env, INFO.base_url_var, cls.DEFAULT_BASE_URL, cls.title)
        key = config.require(env, "MSGFLASH_API_KEY", cls.title)
        headers = {"x-api-key": key}
        team_id = env.get("MSGFLASH_TEAM_ID", "").strip()
        if key.startswith("msgf_team_"):
            if not team_id:
                raise UsageError(
                    "MsgFlash: MSGFLASH_API_KEY is a team key (msgf_team_...): "
                    "MSGFLASH_TEAM_ID is not set",
                    hint="export MSGFLASH_TEAM_ID=<the team's id> (team keys need X-Team-Id)",
                )
            headers["X-Team-Id"] = team_id
        elif team_id:
            log.warning(
                "MsgFlash: MSGFLASH_TEAM_ID is ignored: MSGFLASH_API_KEY is a personal key "
                "(X-Team-Id goes with team keys only)"
            )
        account = f"team:{headers['X-Team-Id']}" if "X-Team-Id" in headers else ""
        return TargetConfig(base_url=url, headers=headers, secrets=(key,), account=account)

    def _api(self) -> ApiClient:
        if self._client is None:
            self._limiter = ArrivalWindow(
                self.RATE_LIMIT, self.RATE_WINDOW_S, margin=self.RATE_MARGIN_S
            )
            self._client = self.new_client(
                self._limiter,
                terminal_429_codes=self.QUOTA_CODES,
                timeout=self.timeout,
                max_connections=max(1, self.options.concurrency),
            )
        return self._client

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``ApiClient.request`` on this run's client."""
        return self._api().request(method, path, **kwargs)

    def _member_batch(self) -> int:
        return max(1, min(self.options.batch_size, self.MEMBERS_MAX))

    # -- listings ------------------------------------------------------------------------
    def _pages(self, path: str, params: Mapping[str, Any], endpoint: str) -> Iterator[Any]:
        """The ``data`` of each page of a cursor-paged listing."""

        def fetch(cursor: str | None) -> Page:
            query = {**params, "cursor": cursor} if cursor else params
            data = _data(self._request("GET", path, params=query, endpoint=endpoint), endpoint)
            return [], data

        def next_cursor(data: Mapping[str, Any]) -> str | None:
            cursor = data.get("nextCursor")
            return str(cursor) if data.get("hasMore") and cursor else None

        for _, data in cursor_pages(fetch, next_cursor, f"MsgFlash {endpoint}"):
            yield data

    def _search(self, phone: str) -> list[dict[str, Any]]:
        """The contacts whose phone is ``phone`` (normalised on both sides: a search is a
        substring match of the digits)."""
        params = {"search": search_digits(phone), "limit": self.PAGE_MAX}
        out: list[dict[str, Any]] = []
        for data in self._pages(CONTACTS, params, f"GET {CONTACTS}?search"):
            out += [
                dict(item)
                for item in data.get("contacts") or []
                if item.get("id") and norm_phone(item.get("phone")) == phone
            ]
        return out

    def directory(self, label: str) -> Directory:
        """The lookup of delete and group changes (phones may be held by several contacts)."""
        self._api()

        def listing() -> Listing:
            for number, data in enumerate(self._pages(CONTACTS, LIST_PARAMS, f"GET {CONTACTS}")):
                left = None
                if number == 0:
                    total = int(data.get("total") or 0)
                    left = max(0, -(-total // self.PAGE_MAX) - 1) if data.get("hasMore") else 0
                items = data.get("contacts") or []
                yield (
                    [(str(x["id"]), norm_phone(x.get("phone"))) for x in items if x.get("id")],
                    left,
                )

        def search(phone: str) -> list[str]:
            return list(dict.fromkeys(str(x["id"]) for x in self._search(phone)))

        exists = exists_by_get(
            lambda cid: self._request(
                "GET", f"{CONTACTS}/{quote(cid)}", endpoint=f"GET {CONTACTS}/{{id}}"
            )
        )

        return Directory(
            self.title,
            listing,
            search,
            exists,
            workers=self.options.concurrency,
            stop=self._limiter.stop,
            progress=self.progress,
            label=label,
        )

    # -- bulk jobs -----------------------------------------------------------------------
    def _poll_job(self, job_id: str) -> dict[str, Any]:
        """One read of a bulk job's progress."""
        endpoint = f"GET {JOBS}/{{jobId}}/progress"
        resp = self._request("GET", f"{JOBS}/{quote(job_id)}/progress", endpoint=endpoint)
        data = _data(resp, endpoint)
        return data if isinstance(data, dict) else {}

    def follow_jobs(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Follow bulk jobs a deferred import left running (the resumed run, before
        anything else): job id -> final status."""
        out: dict[str, str] = {}
        for job_id, status, _ in follow_jobs(
            list(job_ids),
            self._poll_job,
            interval_s=self.options.poll_interval_s,
            stall_s=self.JOB_STALL_S,
        ):
            out[job_id] = status
        return out

    def _job_details(self, job_id: str) -> dict[str, Any]:
        """A finished job read once more, for its summary and error ({} when refused)."""
        try:
            resp = self._request("GET", f"{JOBS}/{quote(job_id)}", endpoint=f"GET {JOBS}/{{jobId}}")
        except ApiRefused:
            return {}
        data = _data(resp, f"GET {JOBS}/{{jobId}}")
        return data if isinstance(data, dict) else {}

    # -- groups ------------------------------------------------------------------------
    def _groups_raw(self, search: str | None = None) -> list[dict[str, Any]]:
        """Every group as the API lists it (all pages, newest first)."""
        params: dict[str, Any] = {"limit": self.PAGE_MAX}
        if search:
            params["search"] = search
        out: list[dict[str, Any]] = []
        for data in self._pages(GROUPS, params, f"GET {GROUPS}"):
            out.extend(g for g in data.get("groups") or [] if isinstance(g, dict) and g.get("id"))
        return out

    def _list_groups(self, search: str | None = None) -> dict[str, str]:
        """Groups of the workspace: case-folded name -> id."""
        out: dict[str, str] = {}
        for g in self._groups_raw(search):
            out.setdefault(group_key(str(g.get("name") or "")), str(g["id"]))
        return out

    def _group_named(
        self, name: str, groups: list[dict[str, Any]] | None = None
    ) -> dict[str, Any] | None:
        """The group called ``name`` (any case, surrounding blanks ignored), from ``groups``
        or else from the API's group search."""
        if groups is None:
            groups = self._groups_raw(search=name.strip()[:100])
        return named(groups, name)

    def _no_group(self, name: str) -> UsageError:
        return UsageError(
            f"MsgFlash has no group named {name.strip()!r}",
            hint="`contactpipe groups list` shows the groups (names match in any case)",
        )

    def _post_group(self, name: str, *, look_first: bool = False) -> tuple[dict[str, Any], bool]:
        """Create the group; (group, created).  A 409 (created meanwhile) finds it instead;
        the plan's group limit raises :class:`GroupLimit`; another refusal ApiRefused."""

        def post(name: str) -> dict[str, Any]:
            try:
                resp = self._request(
                    "POST", GROUPS, json_body={"name": name}, endpoint=f"POST {GROUPS}"
                )
            except AuthRefused as exc:  # a plan limit is a 403 too: the client cannot tell
                if exc.code == GROUP_LIMIT or GROUP_LIMIT in exc.message:
                    raise GroupLimit(
                        f"MsgFlash: group {name!r} not created: the plan's group limit is "
                        f"reached ({GROUP_LIMIT})",
                        hint="delete unused groups in MsgFlash, or upgrade the plan",
                    ) from exc
                raise
            return dict(_data(resp, f"POST {GROUPS}"))

        return create_once(name, self._group_named, post, look_first=look_first)


def _data(resp: httpx.Response, what: str) -> Any:
    """The ``data`` of a 2xx answer; a RemoteError when the answer has none."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict | list):
        raise RemoteError(
            f"MsgFlash {what}: unexpected answer (HTTP {resp.status_code} without a data object)"
        )
    return body["data"]


def group_rows(contacts: pl.DataFrame) -> dict[str, tuple[str, list[int]]]:
    """Case-folded group name -> (first spelling, rows in it), in order of first appearance."""
    out: dict[str, tuple[str, list[int]]] = {}
    if "groups" not in contacts.columns:
        return out
    for i, names in enumerate(contacts.get_column("groups").to_list()):
        seen: set[str] = set()
        for raw in names or ():
            if raw is None or not raw.strip():
                continue
            key = group_key(raw)
            if key in seen:
                continue
            seen.add(key)
            out.setdefault(key, (raw.strip(), []))[1].append(i)
    return out


def remote(exc: RemoteError | ApiRefused, what: str) -> RemoteError:
    if isinstance(exc, RemoteError):
        return exc
    return RemoteError(f"MsgFlash refused {what} ({exc.status} {exc.code}: {exc.message})")


def quote(value: Any) -> str:
    return urllib.parse.quote(str(value), safe="")


def member_count(group: Mapping[str, Any]) -> int | None:
    count = group.get("contactCount")
    return int(count) if isinstance(count, int | float) else None


def group_out(group: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(group.get("id")),
        "name": group.get("name"),
        "members": member_count(group),
        "description": group.get("description"),
    }


def check_group_name(name: str) -> str:
    clean = (name or "").strip()
    if not 1 <= len(clean) <= 100:
        raise UsageError("MsgFlash: a group name must be 1 to 100 characters")
    return clean
