"""Vobiz export: ``GET /contacts?page=N&limit=100`` (newest first) with the listing's own
filters ``search`` and ``tag``; ``--group``, ``--with-groups`` and ``--opt-out`` are refused
before any request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Any

from contactpipe.report.progress import Counter

from ...base import ExportFilters, PlanLine
from ...kit.export import check_filters, fresh
from ...kit.phones import norm_phone
from ...kit.timing import Step, timed
from . import INFO
from .core import VobizCore

EXPORT_EXTRAS = ("account_id", "last_active_at")
"""Vobiz fields an export adds after the canonical and meta columns."""


def export_contact(item: Mapping[str, Any]) -> dict[str, Any]:
    """A listed contact as the canonical dict of an export: ``id``, ``phone`` (``+digits``),
    ``name``, ``tags``, ``custom_fields`` (from ``custom_attributes``), ``account_id``,
    ``last_active_at``, ``created_at``, ``updated_at``; a field the item lacks is absent."""
    out: dict[str, Any] = {}
    if item.get("id") is not None:
        out["id"] = str(item["id"])
    phone = norm_phone(item.get("phone_number"))
    if phone:
        out["phone"] = phone
    if isinstance(item.get("name"), str):
        out["name"] = item["name"]
    tags = item.get("tags")
    if isinstance(tags, list):
        out["tags"] = [str(t) for t in tags if t is not None]
    attrs = item.get("custom_attributes")
    if isinstance(attrs, dict):
        out["custom_fields"] = dict(attrs)
    for key in ("created_at", "updated_at", *EXPORT_EXTRAS):
        if item.get(key) is not None:
            out[key] = item[key]
    return out


class VobizExporter(VobizCore):
    @staticmethod
    def export_params(filters: ExportFilters, with_groups: bool) -> dict[str, str]:
        """The listing's query for ``filters``; UsageError for what Vobiz does not offer."""
        check_filters(filters, with_groups, INFO)
        params: dict[str, str] = {}
        if filters.search is not None and filters.search.strip():
            params["search"] = filters.search.strip()
        if filters.tag is not None and filters.tag.strip():
            params["tag"] = filters.tag.strip()
        return params

    def export_plan(self, filters: ExportFilters, with_groups: bool) -> list[PlanLine]:
        params = self.export_params(filters, with_groups)
        total = self._count(params, "the contact count")
        if total is None:
            step = Step(
                "GET /contacts",
                1,
                0,
                f"Vobiz did not say how many contacts match: one page per {self.page_size}",
            )
        else:
            step = Step(
                "GET /contacts",
                self.pages_for(total),
                total,
                f"{self.page_size} contacts per page; no documented rate limit (paced only "
                "if Vobiz answers 429)",
            )
        return timed(self.rate, [step])

    def export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        params = self.export_params(filters, with_groups)  # before any request
        self.export_total = None
        return self._export(params)

    def _export(self, params: dict[str, str]) -> Iterator[list[dict[str, Any]]]:
        seen: set[str] = set()

        def key(item: Mapping[str, Any]) -> str:
            return str(item.get("id") or "") or str(norm_phone(item.get("phone_number")) or "")

        with ExitStack() as stack:
            bar: Counter | None = None
            for k, (items, body) in enumerate(self._pages(params, "the contact list"), 1):
                if bar is None:
                    total = body.get("total")
                    if isinstance(total, int) and not isinstance(total, bool):
                        self.export_total = total
                    bar = stack.enter_context(
                        self.progress.counter("vobiz export", self.export_total or 0, "contacts")
                    )
                out = [export_contact(item) for item in fresh(items, key, seen)]
                repeated = len(items) - len(out)
                bar.advance(
                    len(out), f"page {k}" + (f", {repeated} already exported" if repeated else "")
                )
                yield out
            if self.export_total is None:
                self.export_total = len(seen)
