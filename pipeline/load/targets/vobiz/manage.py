"""Vobiz delete: contacts found by the shared lookup, then ``DELETE /contacts/{id}`` one at a
time under the adaptive limiter.  Groups are refused: Vobiz has tags instead."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import polars as pl

from contactpipe.errors import UsageError

from ...base import LoadResult, PlanLine
from ...client import ApiRefused
from ...kit.lookup import lookup_requests, row_keys
from ...kit.steps import DELETED, GONE, delete_each, delete_template
from ...kit.timing import Step, timed
from .core import NO_GROUPS, VobizCore


class VobizManager(VobizCore):
    def delete_plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        keys = len({k for k in row_keys(contacts) if k is not None})
        total = self._count({}, "the contact count") if keys > 1 else 0
        n, how = lookup_requests(keys, total, self.page_size)
        return timed(
            self.rate,
            [
                Step("GET /contacts", n, keys, f"lookup: {how}"),
                Step("DELETE /contacts/{id}", keys, keys, "at most one per contact found"),
            ],
        )

    def delete(
        self, contacts: pl.DataFrame, *, dry_run: bool = False, limit: int | None = None
    ) -> LoadResult:
        def write(by_id: dict[str, list[int]], result: LoadResult) -> None:
            delete_each(self, by_id, self._delete_one, result)

        directory = self.directory("vobiz lookup")
        return delete_template(self, contacts, directory, write, dry_run=dry_run, limit=limit)

    def _delete_one(self, cid: str) -> str:
        """``DELETE /contacts/{id}``: DELETED, or GONE on a 404 (deleted meanwhile, or by an
        attempt whose answer was lost: resent after a 5xx, a timeout, a dropped
        connection)."""
        try:
            self.client().request(
                "DELETE",
                f"/contacts/{quote(cid, safe='')}",
                endpoint="DELETE /contacts/{id}",
                idempotent=False,
                recover=lambda: None,
            )
        except ApiRefused as exc:
            if exc.status == 404:
                return GONE
            raise
        return DELETED

    # -- groups --------------------------------------------------------------------------
    def members_plan(self, group: str, contacts: pl.DataFrame, *, add: bool) -> list[PlanLine]:
        raise UsageError(NO_GROUPS)

    def list_groups(self) -> list[dict[str, Any]]:
        raise UsageError(NO_GROUPS)

    def create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        raise UsageError(NO_GROUPS)

    def change_members(self, group: str, contacts: pl.DataFrame, *, add: bool) -> LoadResult:
        raise UsageError(NO_GROUPS)
