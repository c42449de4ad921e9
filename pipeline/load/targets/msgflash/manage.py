"""MsgFlash delete and group commands: contacts found by the shared lookup, then bulk writes
(:mod:`.bulk`): ``POST .../bulk-delete``, ``POST`` / ``DELETE .../groups/{groupId}/members``."""

from __future__ import annotations

import time
from typing import Any

import polars as pl

from contactpipe.errors import RemoteError

from ...base import LoadResult, PlanLine
from ...client import ApiRefused
from ...kit.lookup import lookup_requests, row_keys
from ...kit.steps import delete_template, look_up
from ...kit.timing import Step, timed
from .bulk import MsgFlashBulk, _Op
from .core import (
    BULK_DELETE,
    CONTACTS,
    GROUPS,
    JOBS,
    MEMBERS,
    _data,
    check_group_name,
    group_out,
    quote,
    remote,
)


class MsgFlashManager(MsgFlashBulk):
    # -- plans -----------------------------------------------------------------------------
    def _contacts_count(self) -> int:
        try:
            resp = self._request("GET", CONTACTS, params={"limit": 1}, endpoint=f"GET {CONTACTS}")
        except ApiRefused as exc:
            raise remote(exc, "the contact listing") from exc
        return int(_data(resp, f"GET {CONTACTS}").get("total") or 0)

    def _write_steps(self, keys: int, endpoint: str) -> list[Step]:
        size = self._member_batch()
        requests = -(-keys // size)
        jobs = keys // size + (keys % size >= self.ASYNC_THRESHOLD) if size >= 100 else 0
        steps = [Step(endpoint, requests, keys, f"at most: batches of {size:,} ids")]
        if jobs:
            steps.append(
                Step(
                    f"GET {JOBS}/{{jobId}}/progress",
                    jobs,
                    jobs,
                    f"at least 1 per bulk job (100 ids or more), then one every "
                    f"{self.options.poll_interval_s:g} s until it ends",
                )
            )
        return steps

    def _lookup_step(self, contacts: pl.DataFrame) -> tuple[int, Step]:
        self._api()
        keys = len({k for k in row_keys(contacts) if k is not None})
        total = self._contacts_count() if keys > 1 else 0
        n, how = lookup_requests(keys, total, self.PAGE_MAX)
        return keys, Step(f"GET {CONTACTS}", n, keys, f"lookup: {how}")

    def delete_plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        keys, lookup = self._lookup_step(contacts)
        steps = [lookup, *self._write_steps(keys, f"POST {BULK_DELETE}")]
        return timed(self.rate, steps, before=self.stats.requests)

    def members_plan(self, group: str, contacts: pl.DataFrame, *, add: bool) -> list[PlanLine]:
        keys, lookup = self._lookup_step(contacts)
        steps = [Step(f"GET {GROUPS}", 1, 1, f"find group {group!r}")]
        if add:
            steps.append(Step(f"POST {GROUPS}", 1, 1, "at most: when it is missing"))
        method = "POST" if add else "DELETE"
        steps += [lookup, *self._write_steps(keys, f"{method} {MEMBERS}")]
        return timed(self.rate, steps, before=self.stats.requests)

    # -- delete ----------------------------------------------------------------------------
    def delete(
        self, contacts: pl.DataFrame, *, dry_run: bool = False, limit: int | None = None
    ) -> LoadResult:
        """Look up, check the safety limit, bulk-delete (see :mod:`.bulk`)."""
        self._api()
        self._limiter.stop.clear()
        op = _Op("delete", "POST", BULK_DELETE, f"POST {BULK_DELETE}", None, None, "LOAD_FAILED")

        def write(by_id: dict[str, list[int]], result: LoadResult) -> None:
            self._run_bulk(op, by_id, result)

        directory = self.directory("msgflash lookup")
        return delete_template(self, contacts, directory, write, dry_run=dry_run, limit=limit)

    # -- groups: list, create, members -------------------------------------------------------
    def list_groups(self) -> list[dict[str, Any]]:
        self._api()
        try:
            return [group_out(g) for g in self._groups_raw()]
        except ApiRefused as exc:
            raise remote(exc, "the group listing") from exc

    def create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        name = check_group_name(name)
        self._api()
        try:
            group, created = self._post_group(name, look_first=True)
            return group_out(group), created
        except ApiRefused as exc:
            raise remote(exc, f"creating group {name!r}") from exc

    def change_members(self, group: str, contacts: pl.DataFrame, *, add: bool) -> LoadResult:
        """Find the group, look up the contacts, then members POST (add) or DELETE (remove)
        in batches, bulk jobs followed to the end."""
        name = check_group_name(group)
        n = contacts.height
        result = self.new_result(n)
        seconds = {"lookup": 0.0, "members": 0.0}
        result.seconds = seconds
        self._api()
        self._limiter.stop.clear()
        try:
            found = self._group_named(name)
            if found is None and not add:
                raise self._no_group(name)
            if n == 0:
                return result
        except (RemoteError, ApiRefused) as exc:
            result.abort(remote(exc, "a lookup"))
            return result
        by_id = look_up(self, contacts, self.directory("msgflash lookup"), result)
        if not by_id:
            return result
        try:
            if found is None:
                out, created = self._post_group(name)
                if created:
                    result.notes.append(f"group {out['name']!r} created")
                gid, gname = str(out["id"]), str(out["name"])
            else:
                gid, gname = str(found["id"]), str(found.get("name") or name)
        except (RemoteError, ApiRefused) as exc:
            result.abort(remote(exc, "a lookup"))
            return result
        path = f"{GROUPS}/{quote(gid)}/members"
        op = _Op(
            "add" if add else "remove",
            "POST" if add else "DELETE",
            path,
            f"{'POST' if add else 'DELETE'} {MEMBERS}",
            gid,
            gname,
            "GROUP_NOT_ADDED" if add else "LOAD_FAILED",
        )
        started = time.perf_counter()
        try:
            self._run_bulk(op, by_id, result)
        finally:
            seconds["members"] = round(time.perf_counter() - started, 3)
        return result
