"""WAAPI: contacts go through ``POST /external/contacts/{encodedPhoneId}/bulk``, an upsert by
phone, in batches of ``--batch-size`` (10,000) entries, never more than the documented 50,000.

One request per batch is the whole load: groups travel by name in each entry's ``groups``
(WAAPI creates missing ones), custom fields in ``custom_fields``.  The bulk answer gives counts
(``created``, ``updated``, ``skipped``) and ``errors``; rows named in ``errors`` fail with the
API's message, the others are loaded.

Choices made where the docs are silent
--------------------------------------
- Rate limit: 100 requests per 15 minutes, enforced here before the server complains (a
  sliding window, which is never looser than the server's fixed window); ``RateLimit-*`` and
  ``Retry-After`` headers, when sent, pause the client until the window resets.
- ``skipped`` minus the entries listed in ``errors`` is counted as unchanged: the only other
  reasons to skip are an invalid entry or a phone repeated in the request, and contactpipe
  sends neither (phones are validated and deduplicated before the load).
- Error entries: ``{"index", "phone", "error"}`` is expected; ``message``/``reason`` are read
  too, and an entry without a usable ``index`` is matched by phone (with or without ``+``).
- The bulk upsert matches by phone, so resending a batch after a timeout or a dropped
  connection cannot create duplicates; it may only shift counts from created to unchanged.
- A 400/413/422 for a whole batch fails that batch's rows (``LOAD_FAILED``) and the load goes
  on with the next batch; 401/403 abort the run.
- ``WAAPI_PHONE_ID`` is the raw id (digits), base64-encoded here; a value that is not digits
  but decodes from base64 to digits is taken as already encoded.
- The extension (``phone_ext``), ``first_name``/``last_name`` (already joined into ``name``)
  have no place in WAAPI and are reported in ``not_carried``.

Export
------
``GET /external/contacts/{encodedPhoneId}?page=N&limit=100`` (100 is the documented maximum),
page after page until the last page the latest answer announces (``pagination.totalPages``),
with ``search``, ``tag`` and ``opt_out`` (``true``/``false``) passed to the API.  ``--group``
exports the members of one group: the group is found by name (``GET .../groups?search=NAME``,
exact match in any case), then ``GET .../groups/{groupId}`` returns it with its contacts
populated, all in one answer.  ``--with-groups`` first lists every group (pages of 100), each
with its member ids, and maps ids to names: ``ceil(groups / 100)`` extra requests, whatever
the number of contacts.

- List items carry only the doc example's subset: ``_id, name, phone, email, tags, opt_out,
  createdAt``.  ``notes``, ``custom_fields``, ``language_code``, ``opt_out_marketing``,
  ``reply_bot_enabled`` and ``updatedAt`` are therefore not in a listing export (absent keys,
  empty columns).  Getting them would take one ``GET .../{contactId}`` per contact, at 100
  requests per 15 minutes (100,000 contacts: 11.5 days): not offered.  A ``--group`` export
  carries every field, since the group's populated contacts are full objects.
- Round trip: a bulk upsert leaves a field it is not sent unchanged, and an entry that changes
  nothing is counted as skipped; so importing an export (subset of fields included) into the
  same WAAPI number reports every row unchanged.  ``name`` ``""`` (WAAPI's "no name") is
  exported as no value.
- Phones come back without ``+``; the export adds it.  ``id`` is ``_id``, ``created_at`` and
  ``updated_at`` are ``createdAt`` and ``updatedAt`` as the API wrote them.
- Contacts are listed newest first, so contacts created during the export shift older ones to
  later pages: they are seen twice, and kept once (a set of ids seen).  A contact deleted during
  the export can shift one that was not yet listed to a page already read: page/limit listings
  cannot avoid that gap, and nothing in the API offers a stable cursor.
- ``--group`` combined with ``--search``, ``--tag`` or ``--opt-out``: the group endpoint has no
  filters, so they are applied here to its members: ``tag`` exact, ``opt_out`` equal,
  ``search`` a case-insensitive substring of the name or of the phone's digits (the doc says
  "Search by name or phone").  If a group answers with bare ids instead of populated contacts,
  the contact listing is read in full and filtered by those ids.
- The plan makes one request to learn the total (``limit=1`` on the contact listing, or the
  group lookup with ``--group``), plus one ``limit=1`` on the groups listing with
  ``--with-groups``; times are those of a sliding window of 100 requests per 15 minutes,
  counted across the lines in the order the export sends them: 1,000 pages take at least
  2 h 15 min.
- A refusal of a listing (e.g. 404 "Phone number not found." for a wrong ``WAAPI_PHONE_ID``)
  stops the export with a :class:`~pipeline.errors.TerminalRemoteError`.

Delete
------
Ids are taken from an ``id`` column when the row has one, else looked up by phone, choosing the
cheaper way: the first listing page (100 contacts) says how many contacts there are; when the
remaining pages are no more than the phones still unknown, the whole listing is read (stopping
as soon as every phone is found), else one ``GET ...?search=<digits>`` per phone.  Phones match
on their digits (WAAPI stores them without ``+``).  Then ``DELETE .../{contactId}`` one by one
at the rate limit (100 deletions per 15 minutes).  Rows sharing a phone share one deletion.

- A 404 at delete (deleted meanwhile, or an ``id`` from the file that does not exist) is
  ``NOT_FOUND``.  A delete whose answer was lost (drop, timeout, 5xx) is checked with a
  ``GET`` before it is resent, so a contact the first attempt deleted is reported deleted.
- Ids given in the file are trusted by ``--dry-run`` and by the safety limit (checking each
  would cost one request).

Groups
------
``groups list`` reads every page of ``GET .../groups`` (members: the length of each group's
``contacts``).  ``groups create`` looks the name up first (``search``, exact match in any case)
and answers the existing group without a duplicate; a 409 on create means the same.
``groups add|remove`` find the group by name (created on add when missing; a missing group on
remove is a usage error), look up the contacts' ids as delete does, then send ``POST
.../groups/{groupId}/add|remove`` with ``contact_ids`` in batches of ``min(--batch-size,
10,000)``.  The group's member ids (in the lookup's answer) tell, row by row, which contacts
are already members (add: loaded, not resent, counted in a note) and which are not members
(remove: ``NOT_IN_GROUP``, not sent).  Ids the add answers as ``not_found`` are ``NOT_FOUND``;
the remove answers only counts, so a contact that left the group meanwhile is only noted.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import time
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
import polars as pl

from pipeline.errors import RemoteError, TerminalRemoteError, UsageError

from .. import config as cfg
from ..base import (
    EXPORT_FIELDS,
    LOADED,
    ExportFilters,
    LoadResult,
    PlanLine,
    Target,
    TargetConfig,
    batches,
    build_entries,
    not_carried,
    phone_key,
    write_request_files,
)
from ..client import ApiClient, ApiRefused, Unreachable, encode_json
from ..ratelimit import SlidingWindow

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


class Waapi(Target):
    name = "waapi"
    title = "WAAPI"
    capabilities = frozenset({"bulk_upsert", "groups", "custom_fields"})
    rate_limit: ClassVar[int] = 100
    rate_window_s: ClassVar[float] = 900.0

    @classmethod
    def config_from_env(cls, env: Mapping[str, str], base_url: str | None) -> TargetConfig:
        url = cfg.base_url(base_url, env, "WAAPI_BASE_URL", None, cls.title)
        token = cfg.require(env, "WAAPI_TOKEN", cls.title)
        phone_id = cfg.require(env, "WAAPI_PHONE_ID", cls.title)
        return TargetConfig(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            secrets=(token,),
            extra={"encoded_phone_id": encoded_phone_id(phone_id)},
        )

    @property
    def bulk_path(self) -> str:
        return f"/external/contacts/{self.config.extra['encoded_phone_id']}/bulk"

    @property
    def batch_size(self) -> int:
        return min(self.options.batch_size, BULK_MAX)

    def client(self) -> ApiClient:
        if self._client is None:
            limiter = SlidingWindow(self.rate_limit, self.rate_window_s, margin=1.0)
            self._client = self.new_client(limiter, max_connections=2)
        return self._client

    def bodies(self, contacts: pl.DataFrame) -> list[tuple[range, bytes]]:
        """(rows, exact request body) per batch."""
        entries = build_entries(contacts, self.fmap)
        return [
            (rows, encode_json({"contacts": entries[rows.start : rows.stop]}))
            for rows in batches(contacts.height, self.batch_size)
        ]

    def plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        n = contacts.height
        requests = math.ceil(n / self.batch_size)
        windows = max(0, math.ceil(requests / self.rate_limit) - 1)
        return [
            PlanLine(
                f"POST {self.bulk_path}",
                requests,
                n,
                windows * self.rate_window_s,
                f"{self.batch_size:,} entries per request, 100 requests per 15 min",
            )
        ]

    def dry_run(self, contacts: pl.DataFrame, directory: Path) -> list[Path]:
        bodies = (body for _, body in self.bodies(contacts))
        return write_request_files(directory, "waapi-bulk-{:04d}.json", bodies)

    def load(self, contacts: pl.DataFrame) -> LoadResult:
        result = self.new_result(contacts.height)
        carried = {*self.fmap["fields"], "custom_fields"}
        result.not_carried = not_carried(contacts, carried)
        t0 = time.perf_counter()
        phones = contacts.get_column("phone").to_list()
        work = self.bodies(contacts)
        current: range | None = None
        try:
            with self.progress.counter("waapi bulk", contacts.height, "contacts") as bar:
                for k, (rows, body) in enumerate(work, 1):
                    current = rows
                    result.sending(rows, self.stats.requests)
                    ok = self._send_batch(rows, body, phones, result)
                    bar.advance(len(rows), f"batch {k}/{len(work)}: {ok:,} ok")
                current = None
        except RemoteError as exc:
            if current is not None and isinstance(exc, Unreachable):
                result.fail(current, "LOAD_FAILED", f"request failed after retries: {exc.message}")
            result.abort(exc)
        result.seconds["bulk"] = round(time.perf_counter() - t0, 3)
        return result

    def _send_batch(self, rows: range, body: bytes, phones: list[str], result: LoadResult) -> int:
        try:
            resp = self.client().request(
                "POST",
                self.bulk_path,
                content=body,
                content_type="application/json",
                endpoint="POST bulk",
            )
        except ApiRefused as exc:
            result.fail(
                rows, "LOAD_FAILED", f"batch refused ({exc.status} {exc.code}): {exc.message}"
            )
            return 0
        data = (resp.json() or {}).get("data") or {}
        failed = self._row_errors(rows, data.get("errors") or [], phones)
        for i, message in failed.items():
            result.fail([i], "API_REJECTED", message)
        loaded = [i for i in rows if i not in failed]
        result.mark(loaded, LOADED)
        skipped = int(data.get("skipped") or 0)
        result.add_bulk_counts(
            int(data.get("created") or 0),
            int(data.get("updated") or 0),
            max(0, skipped - len(failed)),
        )
        return len(loaded)

    @staticmethod
    def _row_errors(rows: range, errors: list[Any], phones: list[str]) -> dict[int, str]:
        """Error entries -> {row position: message}, by index, else by phone."""
        by_phone = {phone_key(phones[i]): i for i in rows}
        out: dict[int, str] = {}
        for err in errors:
            if not isinstance(err, dict):
                continue
            message = str(err.get("error") or err.get("message") or err.get("reason") or err)
            index = err.get("index")
            pos: int | None = None
            if isinstance(index, int) and 0 <= index < len(rows):
                pos = rows.start + index
            phone = phone_key(err.get("phone"))
            if phone and (pos is None or phone_key(phones[pos]) != phone):
                pos = by_phone.get(phone, pos)
            if pos is not None:
                out[pos] = f"WAAPI: {message}"
        return out

    # -- paths and listings --------------------------------------------------------------
    @property
    def contacts_path(self) -> str:
        return f"/external/contacts/{self.config.extra['encoded_phone_id']}"

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
    ) -> Generator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """(items, pagination) per page of a page/limit listing, ``limit`` at its maximum,
        until the last page announced by the latest answer."""
        page = 1
        while True:
            data = self._get(path, {**params, "page": page, "limit": PAGE_MAX}, endpoint)
            items = [x for x in data.get(key) or [] if isinstance(x, dict)]
            meta: dict[str, Any] = (
                data["pagination"] if isinstance(data.get("pagination"), dict) else {}
            )
            yield items, meta
            pages = meta.get("totalPages")
            more = page < int(pages) if isinstance(pages, int) else len(items) >= PAGE_MAX
            if not items or not more:
                return
            page += 1

    def _count(self, path: str, key: str, params: Mapping[str, Any], endpoint: str) -> int:
        """How many items a listing has, from its smallest first page (one request)."""
        data = self._get(path, {**params, "page": 1, "limit": 1}, endpoint)
        meta: dict[str, Any] = (
            data["pagination"] if isinstance(data.get("pagination"), dict) else {}
        )
        total = meta.get("total")
        return int(total) if isinstance(total, int) else len(data.get(key) or [])

    # -- export --------------------------------------------------------------------------
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

    def _window_seconds(self, before: int, requests: int) -> float:
        """Least extra time ``requests`` more requests take after ``before`` ones, under a
        sliding window of ``rate_limit`` per ``rate_window_s`` (the first window is free)."""

        def least(n: int) -> float:
            return max(0, math.ceil(n / self.rate_limit) - 1) * self.rate_window_s

        return least(before + requests) - least(before)

    @staticmethod
    def _check_filters(filters: ExportFilters) -> None:
        """Every filter is offered (``--group`` by the group endpoint): only an empty group
        name is refused, before any request."""
        if filters.group is not None and not filters.group.strip():
            raise UsageError("--group needs a group name")

    def export_plan(self, filters: ExportFilters, with_groups: bool) -> list[PlanLine]:
        self._check_filters(filters)
        lines: list[tuple[str, int, int, str]] = []
        if with_groups:
            n = self._count(self.groups_path, "groups", {}, "GET groups")
            lines.append(
                (
                    f"GET {self.groups_path}",
                    max(1, math.ceil(n / PAGE_MAX)),
                    n,
                    f"every group with its member ids, {PAGE_MAX} per page, for the groups column",
                )
            )
        if filters.group:
            found = self._find_group(filters.group)
            if found is None:
                raise self._no_group(filters.group)
            members = len(found.get("contacts") or [])
            lines.append(
                (
                    f"GET {self.groups_path}?search=NAME",
                    1,
                    1,
                    "the group, found by name (one page of matching names, usually)",
                )
            )
            lines.append(
                (
                    f"GET {self.groups_path}/{{groupId}}",
                    1,
                    members,
                    f"group {found.get('name')!r} with its contacts in one answer, every field"
                    + (
                        "; --search/--tag/--opt-out applied here"
                        if self._list_params(filters)
                        else ""
                    ),
                )
            )
        else:
            total = self._count(
                self.contacts_path, "contacts", self._list_params(filters), "GET contacts"
            )
            lines.append(
                (
                    f"GET {self.contacts_path}",
                    max(1, math.ceil(total / PAGE_MAX)),
                    total,
                    f"{PAGE_MAX} per page, 100 requests per 15 min; list items carry no notes, "
                    "custom fields, language, opt_out_marketing or reply_bot_enabled",
                )
            )
        # the counting requests just made share the same 15-minute window
        out, before = [], self.stats.requests
        for endpoint, requests, items, note in lines:
            out.append(
                PlanLine(endpoint, requests, items, self._window_seconds(before, requests), note)
            )
            before += requests
        return out

    def export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        self._check_filters(filters)
        self.export_total = None
        return self._export(filters, with_groups)

    def _export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        groups_of: dict[str, list[str]] | None = None
        if with_groups:
            groups_of = {}
            for group in self._all_groups():
                for cid in _member_ids(group):
                    groups_of.setdefault(cid, []).append(str(group.get("name") or ""))
            for names in groups_of.values():
                names.sort(key=str.casefold)
        if filters.group:
            yield from self._export_group(filters, groups_of)
            return
        seen: set[str] = set()
        pages = self._pages(
            self.contacts_path, "contacts", self._list_params(filters), "GET contacts"
        )
        first = next(pages)  # a listing yields at least one page
        total = first[1].get("total")
        self.export_total = int(total) if isinstance(total, int) else None
        with self.progress.counter("waapi export", self.export_total or 0, "contacts") as bar:
            for number, (items, meta) in enumerate(itertools.chain([first], pages), 1):
                out = []
                for item in items:
                    cid = str(item.get("_id") or "")
                    if cid not in seen:
                        seen.add(cid)
                        out.append(_canonical(item, groups_of))
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
        group: dict[str, Any] = data["group"] if isinstance(data.get("group"), dict) else {}
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
            if cid not in seen and _matches(item, filters):
                seen.add(cid)
                out.append(_canonical(item, groups_of))
        self.export_total = len(out)
        with self.progress.counter("waapi export", len(out), "contacts") as bar:
            bar.advance(len(out), f"group {group.get('name') or name!r}")
        yield out

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
        key = name.strip().casefold()
        for group in self._all_groups(name.strip()):
            if str(group.get("name") or "").strip().casefold() == key:
                return group
        return None

    def _no_group(self, name: str) -> UsageError:
        return UsageError(
            f"WAAPI has no group named {name!r}",
            hint="`contactpipe groups list --target waapi` shows the groups",
        )

    @staticmethod
    def _group_row(group: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": group.get("_id"),
            "name": group.get("name"),
            "members": len(group.get("contacts") or []),
            "description": group.get("description"),
        }

    def list_groups(self) -> list[dict[str, Any]]:
        return [self._group_row(g) for g in self._all_groups()]

    def create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        row, created = self._create_group(name)
        return self._group_row(row), created

    def _create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        name = name.strip()
        if not name:
            raise UsageError("a group needs a name")
        existing = self._find_group(name)
        if existing is not None:
            return existing, False

        def recover() -> httpx.Response | None:
            # the answer was lost: if the group exists now, the first attempt created it
            group = self._find_group(name)
            if group is None:
                return None
            return httpx.Response(201, json={"success": True, "data": {"group": group}})

        try:
            resp = self.client().request(
                "POST",
                self.groups_path,
                json_body={"name": name},
                endpoint="POST groups",
                idempotent=False,
                recover=recover,
            )
        except ApiRefused as exc:
            if exc.status == 409:
                existing = self._find_group(name)
                if existing is not None:
                    return existing, False
            raise TerminalRemoteError(
                f"WAAPI refused to create group {name!r} ({exc.status} {exc.code}: {exc.message})"
            ) from exc
        group = ((resp.json() or {}).get("data") or {}).get("group") or {}
        return group, True

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
            members = set(_member_ids(found))
            by_id = self._lookup(contacts, result)
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
            if current and isinstance(exc, Unreachable):
                result.fail(current, "LOAD_FAILED", f"request failed after retries: {exc.message}")
            result.abort(exc)
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

    # -- lookup by phone, delete -----------------------------------------------------------
    def _lookup(self, contacts: pl.DataFrame, result: LoadResult) -> dict[str, list[int]]:
        """Contact id -> rows (file order); rows with no contact are failed ``NOT_FOUND``."""
        n = contacts.height
        phones = contacts.get_column("phone").to_list() if "phone" in contacts.columns else []
        given = contacts.get_column("id").to_list() if "id" in contacts.columns else [None] * n
        ids: list[str | None] = [None] * n
        need: dict[str, list[int]] = {}
        for i in range(n):
            if given[i] is not None and str(given[i]).strip():
                ids[i] = str(given[i]).strip()
            else:
                key = phone_key(phones[i]) if i < len(phones) else None
                if key:
                    need.setdefault(key, []).append(i)
        if need:
            for wanted, found in self._ids_by_phone(set(need)).items():
                for i in need[wanted]:
                    ids[i] = found
        by_id: dict[str, list[int]] = {}
        for i, cid in enumerate(ids):
            if cid is None:
                what = f"phone {phones[i]}" if i < len(phones) and phones[i] else "no phone"
                result.fail([i], "NOT_FOUND", f"no WAAPI contact with {what}")
            else:
                by_id.setdefault(cid, []).append(i)
        return by_id

    def _ids_by_phone(self, wanted: set[str]) -> dict[str, str]:
        """E.164 (:func:`phone_key`) -> contact id for the phones found, with as few
        requests as possible."""
        found: dict[str, str] = {}
        pages = self._pages(self.contacts_path, "contacts", {}, "GET contacts")
        with self.progress.counter("waapi lookup", len(wanted), "phones") as bar:
            for number, (items, meta) in enumerate(pages, 1):
                hits = _match(items, wanted - found.keys())
                found.update(hits)
                bar.advance(len(hits), f"listing page {number}")
                left = wanted - found.keys()
                if not left:
                    break
                if number == 1:
                    total = meta.get("total")
                    total_pages = meta.get("totalPages")
                    if isinstance(total_pages, int):
                        pages_left = total_pages - 1
                    elif isinstance(total, int):
                        pages_left = math.ceil(total / PAGE_MAX) - 1
                    else:
                        pages_left = len(left) + 1
                    if pages_left > len(left):  # one search per phone is cheaper
                        pages.close()
                        for key in sorted(left):
                            hit = self._search_phone(key)
                            if hit is not None:
                                found[key] = hit
                            bar.advance(1 if hit else 0, "search")
                        break
        return found

    def _search_phone(self, key: str) -> str | None:
        params = {"search": key.lstrip("+")}  # WAAPI stores and searches the digits
        for items, _ in self._pages(self.contacts_path, "contacts", params, "GET contacts search"):
            hit = _match(items, {key})
            if hit:
                return hit[key]
        return None

    def delete(
        self, contacts: pl.DataFrame, *, dry_run: bool = False, limit: int | None = None
    ) -> LoadResult:
        result = self.new_result(contacts.height)
        t0 = time.perf_counter()
        try:
            by_id = self._lookup(contacts, result)
        except RemoteError as exc:
            result.abort(exc)
            return result
        if limit is not None and len(by_id) > limit:
            raise UsageError(
                f"{len(by_id):,} contacts would be deleted, above the safety limit of {limit:,}:"
                " check the file, or re-run with --yes"
            )
        if dry_run:
            for rows in by_id.values():
                result.mark(rows, LOADED)
            result.notes.append(f"dry run: {len(by_id):,} contact(s) would be deleted")
            return result
        current: list[int] = []
        try:
            with self.progress.counter("waapi delete", len(by_id), "contacts") as bar:
                for cid, rows in by_id.items():
                    current = rows
                    try:
                        deleted = self._delete_one(cid)
                    except ApiRefused as exc:
                        result.fail(
                            rows, "API_REJECTED", f"WAAPI ({exc.status} {exc.code}): {exc.message}"
                        )
                    else:
                        if deleted:
                            result.mark(rows, LOADED)
                        else:
                            result.fail(rows, "NOT_FOUND", f"WAAPI: no contact with id {cid}")
                    current = []
                    bar.advance(1)
        except RemoteError as exc:
            if current and isinstance(exc, Unreachable):
                result.fail(current, "LOAD_FAILED", f"request failed after retries: {exc.message}")
            result.abort(exc)
        result.seconds["delete"] = round(time.perf_counter() - t0, 3)
        return result

    def _delete_one(self, cid: str) -> bool:
        """``DELETE`` one contact: True when deleted, False when WAAPI does not know it."""
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
                return False
            raise
        return True


def _match(items: list[dict[str, Any]], wanted: set[str]) -> dict[str, str]:
    """E.164 -> id for the listed contacts whose phone (without ``+`` as WAAPI returns it, or
    with) is one of ``wanted`` (E.164, :func:`phone_key`)."""
    out: dict[str, str] = {}
    for item in items:
        key = phone_key(item.get("phone"))
        if key in wanted and item.get("_id"):
            out.setdefault(key, str(item["_id"]))
    return out


def _member_ids(group: Mapping[str, Any]) -> list[str]:
    """A group's member ids (bare ids, or populated contacts)."""
    out = []
    for m in group.get("contacts") or []:
        cid = m.get("_id") if isinstance(m, dict) else m
        if cid:
            out.append(str(cid))
    return out


def _matches(item: Mapping[str, Any], filters: ExportFilters) -> bool:
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


def _canonical(
    item: Mapping[str, Any], groups_of: Mapping[str, list[str]] | None
) -> dict[str, Any]:
    """One WAAPI contact as a canonical export dict (keys the item lacks stay absent)."""
    cid = str(item.get("_id") or "")
    out: dict[str, Any] = {"phone": phone_key(item.get("phone")) or ""}
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


TARGET = Waapi
