"""Vobiz's configuration, client and contact listing, shared by import, export and delete."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import polars as pl

from contactpipe.errors import TerminalRemoteError

from ... import config as cfg
from ...base import Target, TargetConfig
from ...client import ApiClient, ApiRefused
from ...kit.lookup import Directory, Listing, exists_by_get
from ...kit.paging import Page, more_pages, numbered_pages
from ...kit.phones import norm_phone, search_digits
from ...kit.timing import pages
from ...ratelimit import Adaptive
from . import INFO

PAGE_LIMIT = 100
NO_GROUPS = (
    "Vobiz has no contact groups: its API offers tags instead (import with a tags column, "
    "export --tag NAME)"
)


def tag_set(tags: Iterable[str] | None) -> frozenset[str]:
    """Tags as Vobiz stores them from a CSV cell: trimmed, blanks dropped."""
    return frozenset(t.strip() for t in (tags or ()) if t and t.strip())


def column(contacts: pl.DataFrame, name: str) -> list[Any]:
    """A column's values, or nulls when the frame has no such column."""
    if name in contacts.columns:
        return contacts.get_column(name).to_list()
    return [None] * contacts.height


class VobizCore(Target):
    name = INFO.name
    title = INFO.title
    capabilities = INFO.capabilities
    rate = None
    """No documented rate limit: plans give no least time."""
    import_page_size = PAGE_LIMIT
    page_size: int = PAGE_LIMIT
    """``limit`` asked of ``GET /contacts``; lowered on the instance when Vobiz answers a
    smaller ``limit`` (it clamps)."""

    @classmethod
    def config_from_env(cls, env: Mapping[str, str], base_url: str | None) -> TargetConfig:
        url = cfg.base_url(base_url, env, INFO.base_url_var, INFO.default_base_url, cls.title)
        auth_id = cfg.require(env, "VOBIZ_AUTH_ID", cls.title)
        token = cfg.require(env, "VOBIZ_AUTH_TOKEN", cls.title)
        return TargetConfig(
            base_url=url,
            headers={"X-Auth-ID": auth_id, "X-Auth-Token": token},
            secrets=(token,),
            account=f"auth-id:{auth_id}",
        )

    def client(self) -> ApiClient:
        if self._client is None:
            self._client = self.new_client(Adaptive(), max_connections=self.options.concurrency)
        return self._client

    # -- the listing ---------------------------------------------------------------------
    def _get_page(self, params: Mapping[str, Any], what: str) -> dict[str, Any]:
        """One ``GET /contacts`` answer; a refusal or a body that is no list is terminal."""
        hint = "check VOBIZ_BASE_URL (it ends with /api/v1/messaging) and the account"
        try:
            resp = self.client().request(
                "GET", "/contacts", params=params, endpoint="GET /contacts"
            )
        except ApiRefused as exc:
            raise TerminalRemoteError(
                f"Vobiz refused {what} ({exc.status} {exc.code}: {exc.message})", hint=hint
            ) from exc
        try:
            body: Any = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TerminalRemoteError(
                f"Vobiz answered {what} with something that is not a contact list", hint=hint
            )
        return body

    def _pages(self, params: Mapping[str, Any], what: str) -> Iterator[Page]:
        """(items, body) of each page of ``GET /contacts?page=N&limit=...`` with ``params``,
        page 1 first, until ``has_more`` is false or a page is empty.

        A server that answers a smaller ``limit`` than asked clamps the page size: later
        pages are asked with its size (page numbers count its pages either way), and
        :attr:`page_size` is lowered on this instance so that plans count its pages."""
        size = self.page_size

        def fetch(page: int) -> Page:
            nonlocal size
            body = self._get_page({**params, "page": page, "limit": size}, what)
            raw = body.get("items")
            items = [it for it in raw if isinstance(it, dict)] if isinstance(raw, list) else []
            answered = body.get("limit")
            if isinstance(answered, int) and not isinstance(answered, bool) and 0 < answered < size:
                size = self.page_size = answered
            return items, body

        def more(page: int, answer: Page) -> bool:
            raw = answer[1].get("items")
            return more_pages(page, size, len(raw) if isinstance(raw, list) else 0, answer[1])

        def key(item: dict[str, Any]) -> str:
            return str(item.get("id") or "") or str(norm_phone(item.get("phone_number")))

        return numbered_pages(fetch, more, key, f"Vobiz {what}")

    def pages_for(self, total: int) -> int:
        """Requests a listing of ``total`` contacts takes (an empty one still takes one)."""
        return pages(total, self.page_size)

    def _count(self, params: Mapping[str, Any], what: str) -> int | None:
        body = self._get_page({**params, "page": 1, "limit": 1}, what)
        total = body.get("total")
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    # -- finding contacts ------------------------------------------------------------------
    def directory(self, label: str) -> Directory:
        def listing() -> Listing:
            for number, (items, body) in enumerate(self._pages({}, "the contact list"), 1):
                left = None
                total = body.get("total")
                if number == 1 and isinstance(total, int) and not isinstance(total, bool):
                    left = self.pages_for(total) - 1
                yield (
                    [
                        (str(x["id"]), norm_phone(x.get("phone_number")))
                        for x in items
                        if x.get("id")
                    ],
                    left,
                )

        def search(phone: str) -> list[str]:
            out: list[str] = []
            for items, _ in self._pages({"search": search_digits(phone)}, "a phone search"):
                for x in items:
                    cid = str(x.get("id") or "")
                    if cid and cid not in out and norm_phone(x.get("phone_number")) == phone:
                        out.append(cid)
            return out

        exists = exists_by_get(  # 404 (400/422 for an id of the wrong shape): no such contact
            lambda cid: self.client().request(
                "GET", f"/contacts/{quote(cid, safe='')}", endpoint="GET /contacts/{id}"
            ),
            missing=None,
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
