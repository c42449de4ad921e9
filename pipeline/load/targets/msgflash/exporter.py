"""MsgFlash export: the contact listing (cursor pages of 100, newest first, ``search`` for
``--search``), or the members of one group; ``--with-groups`` reads every group's members.
``--tag`` and ``--opt-out`` are refused before any request: the API has no such filter."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from contactpipe.errors import UsageError

from ...base import ExportFilters, PlanLine
from ...client import ApiRefused
from ...kit.export import check_filters, fresh
from ...kit.phones import norm_phone
from ...kit.timing import Step, pages, timed
from . import INFO
from .core import CONTACTS, GROUPS, MEMBERS, MsgFlashCore, _data, member_count, quote, remote


class MsgFlashExporter(MsgFlashCore):
    def _export_search(self, filters: ExportFilters) -> str | None:
        """The ``--search`` value, after refusing what the API cannot filter (no request)."""
        check_filters(filters, False, INFO)
        search = (filters.search or "").strip()
        if len(search) > 100:
            raise UsageError("MsgFlash: --search must be at most 100 characters (the API's limit)")
        if filters.group is not None and not filters.group.strip():
            raise UsageError("MsgFlash: --group needs a group name")
        return search or None

    def export_plan(self, filters: ExportFilters, with_groups: bool) -> list[PlanLine]:
        """One request to learn the total (the first page of the listing at ``limit=1``);
        ``--group`` and ``--with-groups`` read the group list instead or as well (one request
        per 100 groups) for the member counts."""
        search = self._export_search(filters)
        steps: list[Step] = []
        groups: list[dict[str, Any]] = []
        target: dict[str, Any] | None = None
        if with_groups:
            groups = self._groups_raw()
            n = pages(len(groups), self.PAGE_MAX)
            steps.append(
                Step(f"GET {GROUPS}", n, len(groups), "--with-groups: every group, 100 per page")
            )
        if filters.group:
            target = self._group_named(filters.group, groups if with_groups else None)
            if target is None:
                raise self._no_group(filters.group)
            if not with_groups:
                steps.append(Step(f"GET {GROUPS}", 1, 1, f"--group: find {filters.group!r}"))
        if target is not None:
            count = member_count(target)
            if not with_groups or search:
                steps.append(
                    Step(
                        f"GET {MEMBERS}",
                        pages(count, self.PAGE_MAX),
                        count or 0,
                        f"--group {target.get('name')!r}: its {count or 0:,} members, 100 per page"
                        + (" (--search keeps some of them)" if search else ""),
                    )
                )
        else:
            total = self._contacts_total(search)
            steps.append(
                Step(
                    f"GET {CONTACTS}",
                    pages(total, self.PAGE_MAX),
                    total,
                    f"{total:,} contacts, 100 per page, newest first (sort fixed while paging)",
                )
            )
        if with_groups:
            counts = [member_count(g) for g in groups]
            requests = sum(pages(c, self.PAGE_MAX) for c in counts if c != 0)
            members = sum(c or 0 for c in counts)
            note = (
                f"--with-groups: the members of each of the {len(groups)} groups, 100 per page "
                "(sum of ceil(members / 100); empty groups skipped)"
            )
            if target is not None and not search:
                note += f"; the {target.get('name')!r} members exported come from these pages"
            steps.append(Step(f"GET {MEMBERS}", requests, members, note))
        return timed(self.rate, steps, before=self.stats.requests)

    def _contacts_total(self, search: str | None) -> int:
        params: dict[str, Any] = {"limit": 1, "sort": "createdAt_desc"}
        if search:
            params["search"] = search
        try:
            resp = self._request("GET", CONTACTS, params=params, endpoint=f"GET {CONTACTS}")
        except ApiRefused as exc:
            raise remote(exc, "the contact listing") from exc
        return int(_data(resp, f"GET {CONTACTS}").get("total") or 0)

    def export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        """See the module docstring; filters are checked here, before any request."""
        search = self._export_search(filters)
        self.export_total = None
        group = filters.group.strip() if filters.group else None
        return self._export_pages(search, group, with_groups)

    def _export_pages(
        self, search: str | None, group: str | None, with_groups: bool
    ) -> Iterator[list[dict[str, Any]]]:
        try:
            yield from self._export_inner(search, group, with_groups)
        except ApiRefused as exc:
            raise remote(exc, "a listing the export needs") from exc

    def _export_inner(
        self, search: str | None, group: str | None, with_groups: bool
    ) -> Iterator[list[dict[str, Any]]]:
        groups = self._groups_raw() if with_groups else []
        target: dict[str, Any] | None = None
        if group:
            target = self._group_named(group, groups if with_groups else None)
            if target is None:
                raise self._no_group(group)
        membership: dict[str, list[str]] | None = None
        kept: list[dict[str, Any]] | None = None
        if with_groups:
            keep = str(target["id"]) if target is not None and not search else None
            membership, kept = self._memberships(groups, keep)
        key = "members"
        total: int | None
        raw: Iterator[Any]
        if target is None:
            key = "contacts"
            params: dict[str, Any] = {"limit": self.PAGE_MAX, "sort": "createdAt_desc"}
            if search:
                params["search"] = search
            raw = self._pages(CONTACTS, params, f"GET {CONTACTS}")
        elif kept is not None:
            chunks = [kept[k : k + self.PAGE_MAX] for k in range(0, len(kept), self.PAGE_MAX)]
            raw = iter([{"members": c} for c in chunks] or [{"members": []}])
        else:
            mparams: dict[str, Any] = {"limit": self.PAGE_MAX}
            if search:
                mparams["search"] = search
            raw = self._pages(f"{GROUPS}/{quote(target['id'])}/members", mparams, f"GET {MEMBERS}")
        first = next(raw)
        if target is None:
            total = int(first.get("total") or 0)
        elif kept is not None:
            total = len(kept)
        else:
            total = None if search else member_count(target)
        self.export_total = total
        bar_total = total if total is not None else (member_count(target or {}) or 0)
        seen: set[str] = set()
        with self.progress.counter("msgflash export", bar_total, "contacts") as counter:
            for data in itertools.chain([first], raw):
                items = [x for x in data.get(key) or [] if isinstance(x, dict) and x.get("id")]
                page = [
                    export_item(str(item["id"]), item, membership)
                    for item in fresh(items, lambda x: str(x["id"]), seen)
                ]
                if page:
                    counter.advance(len(page), "exported")
                    yield page

    def _memberships(
        self, groups: list[dict[str, Any]], keep: str | None
    ) -> tuple[dict[str, list[str]], list[dict[str, Any]] | None]:
        """Contact id -> names of its groups (every group's members, 100 per page; groups
        listed with no member are skipped), and the member items of group ``keep``."""
        names: dict[str, set[str]] = {}
        kept: list[dict[str, Any]] | None = [] if keep else None
        kept_ids: set[str] = set()
        wanted = [g for g in groups if member_count(g) != 0]
        total = sum(member_count(g) or 0 for g in wanted)
        with self.progress.counter("msgflash groups", total, "memberships") as counter:
            for g in wanted:
                gid = str(g["id"])
                name = str(g.get("name") or gid)
                path = f"{GROUPS}/{quote(gid)}/members"
                for data in self._pages(path, {"limit": self.PAGE_MAX}, f"GET {MEMBERS}"):
                    members = [m for m in data.get("members") or [] if isinstance(m, dict)]
                    for m in members:
                        cid = str(m.get("id") or "")
                        if not cid:
                            continue
                        names.setdefault(cid, set()).add(name)
                        if kept is not None and gid == keep and cid not in kept_ids:
                            kept_ids.add(cid)
                            kept.append(m)
                    counter.advance(len(members), name)
        return {cid: sorted(v, key=str.casefold) for cid, v in names.items()}, kept


def export_item(
    cid: str, item: Mapping[str, Any], membership: dict[str, list[str]] | None
) -> dict[str, Any]:
    """A list item (or member item) as an export row: canonical fields, then meta, then
    MsgFlash's ``temperature``."""
    out: dict[str, Any] = {}
    phone = norm_phone(item.get("phone"))
    if phone:
        out["phone"] = phone
    if item.get("name") is not None:
        out["name"] = item["name"]
    out["tags"] = [str(t) for t in item.get("tags") or []]
    if membership is not None:
        out["groups"] = list(membership.get(cid, ()))
    out["id"] = cid
    if "createdAt" in item:
        out["created_at"] = item["createdAt"]
    if "updatedAt" in item:
        out["updated_at"] = item["updatedAt"]
    if "temperature" in item:
        out["temperature"] = item["temperature"]
    return out
