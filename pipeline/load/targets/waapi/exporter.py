"""WAAPI export: the contact listing page by page (100, the documented maximum), or one group
with its contacts populated; ``--with-groups`` maps member ids to group names."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from contactpipe.errors import UsageError

from ...base import EXPORT_FIELDS, ExportFilters, PlanLine
from ...kit.export import check_filters, fresh
from ...kit.phones import norm_phone
from ...kit.timing import Step, pages, timed
from . import INFO
from .core import PAGE_MAX, WaapiCore, _dict, member_ids


class WaapiExporter(WaapiCore):
    @staticmethod
    def _list_params(filters: ExportFilters) -> dict[str, str]:
        params: dict[str, str] = {}
        if filters.search:
            params["search"] = filters.search
        if filters.tag:
            params["tag"] = filters.tag
        if filters.opt_out is not None:
            params["opt_out"] = "true" if filters.opt_out else "false"
        return params

    @staticmethod
    def _check_filters(filters: ExportFilters) -> None:
        """Every filter is offered (``--group`` by the group endpoint): only an empty group
        name is refused, before any request."""
        check_filters(filters, False, INFO)
        if filters.group is not None and not filters.group.strip():
            raise UsageError("--group needs a group name")

    def export_plan(self, filters: ExportFilters, with_groups: bool) -> list[PlanLine]:
        self._check_filters(filters)
        steps: list[Step] = []
        if with_groups:
            n = self._count(self.groups_path, "groups", {}, "GET groups")
            steps.append(
                Step(
                    f"GET {self.groups_path}",
                    pages(n, PAGE_MAX),
                    n,
                    f"every group with its member ids, {PAGE_MAX} per page, for the groups column",
                )
            )
        if filters.group:
            found = self._find_group(filters.group)
            if found is None:
                raise self._no_group(filters.group)
            members = len(found.get("contacts") or [])
            steps.append(
                Step(
                    f"GET {self.groups_path}?search=NAME",
                    1,
                    1,
                    "the group, found by name (one page of matching names, usually)",
                )
            )
            applied = (
                "; --search/--tag/--opt-out applied here" if self._list_params(filters) else ""
            )
            steps.append(
                Step(
                    f"GET {self.groups_path}/{{groupId}}",
                    1,
                    members,
                    f"group {found.get('name')!r} with its contacts in one answer, every field"
                    + applied,
                )
            )
        else:
            params = self._list_params(filters)
            total = self._count(self.contacts_path, "contacts", params, "GET contacts")
            steps.append(
                Step(
                    f"GET {self.contacts_path}",
                    pages(total, PAGE_MAX),
                    total,
                    f"{PAGE_MAX} per page, {self.rate.text()}; list items carry no notes, "
                    "custom fields, language, opt_out_marketing or reply_bot_enabled",
                )
            )
        # the counting requests just made share the same 15-minute window
        return timed(self.rate, steps, before=self.stats.requests)

    def export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        self._check_filters(filters)
        self.export_total = None
        return self._export(filters, with_groups)

    def _export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        groups_of: dict[str, list[str]] | None = None
        if with_groups:
            groups_of = {}
            for group in self._all_groups():
                for cid in member_ids(group):
                    groups_of.setdefault(cid, []).append(str(group.get("name") or ""))
            for names in groups_of.values():
                names.sort(key=str.casefold)
        if filters.group:
            yield from self._export_group(filters, groups_of)
            return
        seen: set[str] = set()
        listing = self._pages(
            self.contacts_path, "contacts", self._list_params(filters), "GET contacts"
        )
        first = next(listing)  # a listing yields at least one page
        total = first[1].get("total")
        self.export_total = int(total) if isinstance(total, int) else None
        with self.progress.counter("waapi export", self.export_total or 0, "contacts") as bar:
            for number, (items, meta) in enumerate(itertools.chain([first], listing), 1):
                unique = fresh(items, lambda x: str(x.get("_id") or ""), seen)
                out = [canonical(item, groups_of) for item in unique]
                bar.advance(len(out), f"page {number}/{meta.get('totalPages', '?')}")
                yield out

    def _export_group(
        self, filters: ExportFilters, groups_of: dict[str, list[str]] | None
    ) -> Iterator[list[dict[str, Any]]]:
        name = str(filters.group)
        found = self._find_group(name)
        if found is None:
            raise self._no_group(name)
        data = self._get(f"{self.groups_path}/{found['_id']}", {}, "GET group")
        group = _dict(data.get("group"))
        members = group.get("contacts") or []
        items = [m for m in members if isinstance(m, dict)]
        bare = {m for m in members if isinstance(m, str)}
        if bare:  # not populated: read the listing and keep the members
            for page, _ in self._pages(self.contacts_path, "contacts", {}, "GET contacts"):
                items += [c for c in page if c.get("_id") in bare]
                bare -= {str(c.get("_id")) for c in page}
                if not bare:
                    break
        seen: set[str] = set()
        out = []
        for item in items:
            cid = str(item.get("_id") or "")
            if cid not in seen and matches(item, filters):
                seen.add(cid)
                out.append(canonical(item, groups_of))
        self.export_total = len(out)
        with self.progress.counter("waapi export", len(out), "contacts") as bar:
            bar.advance(len(out), f"group {group.get('name') or name!r}")
        yield out


def matches(item: Mapping[str, Any], filters: ExportFilters) -> bool:
    """The listing's filters, applied to a group's members (the group endpoint has none)."""
    if filters.tag and filters.tag not in (item.get("tags") or []):
        return False
    if filters.opt_out is not None and bool(item.get("opt_out")) is not filters.opt_out:
        return False
    if filters.search:
        q = filters.search.strip().casefold()
        digits = q.lstrip("+")
        name = str(item.get("name") or "").casefold()
        if q not in name and not (digits and digits in str(item.get("phone") or "")):
            return False
    return True


CANONICAL = (*(f for f in EXPORT_FIELDS if f != "phone"), "custom_fields")
"""The export fields read as they are from a WAAPI contact (the phone gets its ``+``)."""


def canonical(item: Mapping[str, Any], groups_of: Mapping[str, list[str]] | None) -> dict[str, Any]:
    """One WAAPI contact as a canonical export dict (keys the item lacks stay absent)."""
    cid = str(item.get("_id") or "")
    out: dict[str, Any] = {"phone": norm_phone(item.get("phone")) or ""}
    for key in CANONICAL:
        if key not in item:
            continue
        value = item[key]
        if key == "tags":
            value = [str(t) for t in value or []]
        elif key == "custom_fields":
            value = dict(value) if isinstance(value, dict) else {}
        elif key == "name" and value == "":
            value = None
        out[key] = value
    if groups_of is not None:
        out["groups"] = list(groups_of.get(cid, []))
    out["id"] = cid
    if "createdAt" in item:
        out["created_at"] = item["createdAt"]
    if "updatedAt" in item:
        out["updated_at"] = item["updatedAt"]
    return out
