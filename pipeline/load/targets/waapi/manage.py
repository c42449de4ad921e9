"""WAAPI delete and group commands: contacts found by the shared lookup, then ``DELETE
.../{contactId}`` one at a time, or ``POST .../groups/{groupId}/add|remove`` in batches."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
import polars as pl

from contactpipe.errors import RemoteError

from ...base import LOADED, LoadResult, PlanLine, batches
from ...client import ApiRefused
from ...kit.lookup import lookup_requests, row_keys
from ...kit.steps import DELETED, GONE, delete_each, delete_template, fail_in_flight, look_up
from ...kit.timing import Step, timed
from .core import GROUP_IDS_MAX, PAGE_MAX, WaapiCore, member_ids


def group_row(group: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": group.get("_id"),
        "name": group.get("name"),
        "members": len(group.get("contacts") or []),
        "description": group.get("description"),
    }


class WaapiManager(WaapiCore):
    # -- plans -----------------------------------------------------------------------------
    def _lookup_step(self, contacts: pl.DataFrame) -> tuple[int, Step]:
        keys = len({k for k in row_keys(contacts) if k is not None})
        total = self._count(self.contacts_path, "contacts", {}, "GET contacts") if keys > 1 else 0
        n, how = lookup_requests(keys, total, PAGE_MAX)
        return keys, Step(f"GET {self.contacts_path}", n, keys, f"lookup: {how}")

    def delete_plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        keys, lookup = self._lookup_step(contacts)
        delete = Step(
            f"DELETE {self.contacts_path}/{{contactId}}",
            keys,
            keys,
            f"at most one per contact found, {self.rate.text()}",
        )
        return timed(self.rate, [lookup, delete], before=self.stats.requests)

    def members_plan(self, group: str, contacts: pl.DataFrame, *, add: bool) -> list[PlanLine]:
        keys, lookup = self._lookup_step(contacts)
        verb = "add" if add else "remove"
        size = min(self.batch_size, GROUP_IDS_MAX)
        steps = [Step(f"GET {self.groups_path}?search=NAME", 1, 1, f"find group {group!r}")]
        if add:
            steps.append(Step(f"POST {self.groups_path}", 1, 1, "at most: when it is missing"))
        steps += [
            lookup,
            Step(
                f"POST {self.groups_path}/{{groupId}}/{verb}",
                -(-keys // size),
                keys,
                f"at most: {size:,} ids per request",
            ),
        ]
        return timed(self.rate, steps, before=self.stats.requests)

    # -- groups ----------------------------------------------------------------------------
    def list_groups(self) -> list[dict[str, Any]]:
        return [group_row(g) for g in self._all_groups()]

    def create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        row, created = self._create_group(name)
        return group_row(row), created

    def change_members(self, group: str, contacts: pl.DataFrame, *, add: bool) -> LoadResult:
        result = self.new_result(contacts.height)
        verb = "add" if add else "remove"
        t0 = time.perf_counter()
        current: list[int] = []
        try:
            found = self._find_group(group)
            if found is None:
                if not add:
                    raise self._no_group(group)
                found, _ = self._create_group(group)
                result.notes.append(f"group {found.get('name')!r} created")
            gid, gname = str(found.get("_id")), str(found.get("name") or group)
            members = set(member_ids(found))
            by_id = look_up(self, contacts, self.directory("waapi lookup"), result)
            if by_id is None:
                return result
            if add:
                send = [cid for cid in by_id if cid not in members]
                already = len(by_id) - len(send)
                for cid in by_id:
                    if cid in members:
                        result.mark(by_id[cid], LOADED)
                if already:
                    result.notes.append(
                        f"{already:,} contact(s) already in group {gname!r}: left as they were"
                    )
            else:
                send = [cid for cid in by_id if cid in members]
                for cid, rows in by_id.items():
                    if cid not in members:
                        result.fail(rows, "NOT_IN_GROUP", f"not a member of group {gname!r}")
            size = min(self.batch_size, GROUP_IDS_MAX)
            path = f"{self.groups_path}/{gid}/{verb}"
            with self.progress.counter(f"waapi group {verb}", len(send), "contacts") as bar:
                for k, chunk in enumerate(batches(len(send), size), 1):
                    ids = send[chunk.start : chunk.stop]
                    current = [i for cid in ids for i in by_id[cid]]
                    self._send_members(path, verb, ids, by_id, gname, result)
                    current = []
                    bar.advance(len(ids), f"batch {k}")
        except RemoteError as exc:
            fail_in_flight(result, current, exc, "the request")
        result.seconds[f"group_{verb}"] = round(time.perf_counter() - t0, 3)
        return result

    def _send_members(
        self,
        path: str,
        verb: str,
        ids: list[str],
        by_id: dict[str, list[int]],
        gname: str,
        result: LoadResult,
    ) -> None:
        rows = [i for cid in ids for i in by_id[cid]]
        try:
            resp = self.client().request(
                "POST", path, json_body={"contact_ids": ids}, endpoint=f"POST group {verb}"
            )
        except ApiRefused as exc:
            result.fail(rows, "API_REJECTED", f"WAAPI ({exc.status} {exc.code}): {exc.message}")
            return
        data = (resp.json() or {}).get("data") or {}
        if verb == "add":
            missing = {str(x) for x in data.get("not_found") or []}
            for cid in missing & set(ids):
                result.fail(by_id[cid], "NOT_FOUND", "WAAPI: contact not found (deleted?)")
            already = int(data.get("already_in_group") or 0)
            if already:
                result.notes.append(
                    f"{already:,} contact(s) joined group {gname!r} meanwhile (WAAPI counted "
                    "them as already in the group)"
                )
        else:
            absent = int(data.get("not_in_group") or 0)
            if absent:
                result.notes.append(
                    f"{absent:,} contact(s) left group {gname!r} meanwhile (WAAPI counted them "
                    "as not in the group)"
                )
        result.mark(rows, LOADED)

    # -- delete ----------------------------------------------------------------------------
    def delete(
        self, contacts: pl.DataFrame, *, dry_run: bool = False, limit: int | None = None
    ) -> LoadResult:
        def write(by_id: dict[str, list[int]], result: LoadResult) -> None:
            delete_each(self, by_id, self._delete_one, result)

        directory = self.directory("waapi lookup")
        return delete_template(self, contacts, directory, write, dry_run=dry_run, limit=limit)

    def _delete_one(self, cid: str) -> str:
        """``DELETE`` one contact: DELETED, or GONE when WAAPI no longer knows it."""
        path = f"{self.contacts_path}/{cid}"

        def recover() -> httpx.Response | None:
            # the answer was lost: a 404 now means the first attempt deleted it
            try:
                self.client().request("GET", path, endpoint="GET contact")
            except ApiRefused as exc:
                if exc.status == 404:
                    return httpx.Response(200, json={"success": True, "data": None})
            return None

        try:
            self.client().request(
                "DELETE", path, endpoint="DELETE contact", idempotent=False, recover=recover
            )
        except ApiRefused as exc:
            if exc.status == 404:
                return GONE
            raise
        return DELETED
