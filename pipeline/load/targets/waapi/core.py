"""WAAPI's configuration, client, listings and groups, shared by import, export and manage."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx

from contactpipe.errors import TerminalRemoteError, UsageError

from ... import config as cfg
from ...base import Target, TargetConfig
from ...client import ApiClient, ApiRefused
from ...kit.groups import create_once, named
from ...kit.lookup import Directory, Listing, exists_by_get
from ...kit.paging import Page, more_pages, numbered_pages
from ...kit.phones import norm_phone, search_digits
from ...kit.timing import Rate
from ...ratelimit import SlidingWindow
from . import INFO

BULK_MAX = 50_000
PAGE_MAX = 100
"""The documented maximum ``limit`` of the contact and group listings."""
GROUP_IDS_MAX = 10_000


def encoded_phone_id(value: str) -> str:
    """The ``encodedPhoneId`` path segment for a raw (digits) or already-encoded phone id."""
    value = value.strip()
    if not value.isdigit():
        try:
            decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if decoded.isdigit():
            return value
    return base64.b64encode(value.encode()).decode()


class WaapiCore(Target):
    name = INFO.name
    title = INFO.title
    capabilities = INFO.capabilities
    rate: ClassVar[Rate] = Rate(100, 900.0)

    @classmethod
    def config_from_env(cls, env: Mapping[str, str], base_url: str | None) -> TargetConfig:
        url = cfg.base_url(base_url, env, INFO.base_url_var, INFO.default_base_url, cls.title)
        token = cfg.require(env, "WAAPI_TOKEN", cls.title)
        phone_id = cfg.require(env, "WAAPI_PHONE_ID", cls.title)
        return TargetConfig(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            secrets=(token,),
            extra={"encoded_phone_id": encoded_phone_id(phone_id)},
            account=f"phone:{encoded_phone_id(phone_id)}",
        )

    @classmethod
    def placeholder_config(cls, base_url: str | None) -> TargetConfig:
        return TargetConfig(
            base_url=base_url or "(base URL not set)",
            headers={},
            extra={"encoded_phone_id": "{encodedPhoneId}"},
        )

    @property
    def batch_size(self) -> int:
        return min(self.options.batch_size, BULK_MAX)

    def client(self) -> ApiClient:
        if self._client is None:
            limiter = SlidingWindow(self.rate.limit, self.rate.window_s, margin=1.0)
            self._client = self.new_client(limiter, max_connections=2)
        return self._client

    # -- paths and listings --------------------------------------------------------------
    @property
    def contacts_path(self) -> str:
        return f"/external/contacts/{self.config.extra['encoded_phone_id']}"

    @property
    def bulk_path(self) -> str:
        return f"{self.contacts_path}/bulk"

    @property
    def groups_path(self) -> str:
        return f"{self.contacts_path}/groups"

    def _get(self, path: str, params: Mapping[str, Any], endpoint: str) -> dict[str, Any]:
        """``data`` of a GET; a refusal (not auth, not rate limit) stops the command."""
        try:
            resp = self.client().request("GET", path, params=params, endpoint=endpoint)
        except ApiRefused as exc:
            hint = None
            if exc.status == 404 and "phone" in exc.message.lower():
                hint = "check WAAPI_PHONE_ID: WAAPI does not know this phone number id"
            raise TerminalRemoteError(
                f"WAAPI refused {endpoint} ({exc.status} {exc.code}: {exc.message})", hint=hint
            ) from exc
        body = resp.json()
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else {}

    def _pages(
        self, path: str, key: str, params: Mapping[str, Any], endpoint: str
    ) -> Iterator[Page]:
        """(items, pagination) per page of a page/limit listing, ``limit`` at its maximum,
        until the last page announced by the latest answer."""

        def fetch(page: int) -> Page:
            data = self._get(path, {**params, "page": page, "limit": PAGE_MAX}, endpoint)
            items = [x for x in data.get(key) or [] if isinstance(x, dict)]
            return items, _dict(data.get("pagination"))

        return numbered_pages(
            fetch,
            lambda page, answer: more_pages(page, PAGE_MAX, len(answer[0]), answer[1]),
            lambda item: str(item.get("_id") or ""),
            f"WAAPI {endpoint}",
        )

    def _count(self, path: str, key: str, params: Mapping[str, Any], endpoint: str) -> int:
        """How many items a listing has, from its smallest first page (one request)."""
        data = self._get(path, {**params, "page": 1, "limit": 1}, endpoint)
        total = _dict(data.get("pagination")).get("total")
        return int(total) if isinstance(total, int) else len(data.get(key) or [])

    # -- finding contacts ----------------------------------------------------------------
    def directory(self, label: str) -> Directory:
        def listing() -> Listing:
            for number, (items, meta) in enumerate(
                self._pages(self.contacts_path, "contacts", {}, "GET contacts"), 1
            ):
                left = None
                if number == 1:
                    pages, total = meta.get("totalPages"), meta.get("total")
                    if isinstance(pages, int):
                        left = pages - 1
                    elif isinstance(total, int):
                        left = -(-total // PAGE_MAX) - 1
                yield (
                    [(str(x["_id"]), norm_phone(x.get("phone"))) for x in items if x.get("_id")],
                    left,
                )

        def search(phone: str) -> list[str]:
            params = {"search": search_digits(phone)}
            out: list[str] = []
            for items, _ in self._pages(
                self.contacts_path, "contacts", params, "GET contacts search"
            ):
                out += [
                    str(x["_id"])
                    for x in items
                    if x.get("_id")
                    and norm_phone(x.get("phone")) == phone
                    and str(x["_id"]) not in out
                ]
            return out

        exists = exists_by_get(
            lambda cid: self.client().request(
                "GET", f"{self.contacts_path}/{cid}", endpoint="GET contact"
            )
        )

        return Directory(
            self.title,
            listing,
            search,
            exists,
            unique_phones=True,
            progress=self.progress,
            label=label,
        )

    # -- groups --------------------------------------------------------------------------
    def _all_groups(self, search: str | None = None) -> list[dict[str, Any]]:
        params = {"search": search} if search else {}
        out: dict[str, dict[str, Any]] = {}
        for items, _ in self._pages(self.groups_path, "groups", params, "GET groups"):
            for g in items:
                out.setdefault(str(g.get("_id")), g)
        return list(out.values())

    def _find_group(self, name: str) -> dict[str, Any] | None:
        """The group named ``name`` (any case, outer spaces ignored), found with the
        listing's ``search`` and checked here (a server ignoring ``search`` still works)."""
        return named(self._all_groups(name.strip()), name)

    def _no_group(self, name: str) -> UsageError:
        return UsageError(
            f"WAAPI has no group named {name!r}",
            hint="`contactpipe groups list --target waapi` shows the groups",
        )

    def _create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        name = name.strip()
        if not name:
            raise UsageError("a group needs a name")

        def recover() -> httpx.Response | None:
            # the answer was lost: if the group exists now, the first attempt created it
            group = self._find_group(name)
            if group is None:
                return None
            return httpx.Response(201, json={"success": True, "data": {"group": group}})

        def post(name: str) -> dict[str, Any]:
            resp = self.client().request(
                "POST",
                self.groups_path,
                json_body={"name": name},
                endpoint="POST groups",
                idempotent=False,
                recover=recover,
            )
            return dict(((resp.json() or {}).get("data") or {}).get("group") or {})

        try:
            return create_once(name, self._find_group, post)
        except ApiRefused as exc:
            raise TerminalRemoteError(
                f"WAAPI refused to create group {name!r} ({exc.status} {exc.code}: {exc.message})"
            ) from exc


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def member_ids(group: Mapping[str, Any]) -> list[str]:
    """A group's member ids (bare ids, or populated contacts)."""
    out = []
    for m in group.get("contacts") or []:
        cid = m.get("_id") if isinstance(m, dict) else m
        if cid:
            out.append(str(cid))
    return out
