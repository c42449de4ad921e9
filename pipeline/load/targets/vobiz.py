"""Vobiz: contacts go through the CSV bulk import, ``POST /contacts/import``, one generated CSV
file (columns ``phone_number,name,tags``) per batch of ``--batch-size`` (10,000) rows.

The load lists the account's contacts once (``GET /contacts``, 100 per page) to know which
phones exist: a row whose contact already has the same name and the same set of tags is
UNCHANGED and not sent, so a re-run reports everything unchanged and uploads nothing.  The other
rows are uploaded; the import answers with counts and ``errors`` (``{row, phone_number,
reason}``): the rows it names fail with its reason (``API_REJECTED``), the others are CREATED
when their phone was not listed, else UPDATED.

The CSV import carries ``phone_number``, ``name`` and ``tags`` only.  Custom attributes, the
extension and every other field (``groups`` too: Vobiz has no groups) are reported in
``not_carried``, not sent.  A follow-up ``PUT /contacts/{id}`` per row with
``custom_attributes`` was considered and rejected: it would cost one request per contact, where
the import costs one per 10,000.

Export pages through ``GET /contacts?page=N&limit=100`` (newest first), with the listing's own
filters ``search`` (name or phone) and ``tag``, and yields each page as canonical dicts: ``id``,
``phone`` (``+digits``), ``name``, ``tags``, ``custom_fields`` (the ``custom_attributes``),
``created_at``, ``updated_at`` and the extras ``account_id`` and ``last_active_at`` (absent when
the API omits it).  ``--group``, ``--with-groups`` and ``--opt-out`` are refused before any
request: Vobiz has no groups and no opt-out field.  Re-importing an export reports every row
unchanged and sends nothing (custom attributes are listed in ``not_carried``, as on any import).

Delete finds the contacts' ids by phone (or takes the file's ``id`` column), then sends
``DELETE /contacts/{id}`` (204) one at a time under the adaptive limiter; 404 -> ``NOT_FOUND``.
Groups (list, create, add, remove) raise a UsageError: Vobiz has tags instead of groups.

Choices made where the docs are silent
--------------------------------------
- Page size: ``limit=100`` (:attr:`Vobiz.page_size`; the docs give the default, 25, but no
  maximum).  A server answering a smaller ``limit`` than asked clamps: the following pages
  are asked with its size, and plans count its pages.  ``has_more`` ends the listing (when
  absent: ``page * limit < total``, else a short page); an empty page ends it too.
- Page/limit listings shift while contacts are created: newest first, each new contact
  pushes the listed ones one place on, so an item can come again on the next page.  The
  export keeps the ids it has yielded and skips repeats; contacts created during the export
  are not exported (they sort before the pages already read).  A contact *deleted* during an
  export can make another one slide onto a page already read (missed): page/limit listings
  cannot avoid that.  ``export_total`` is the ``total`` of the first page.
- The export plan asks one page of ``limit=1`` for the total; requests =
  ``ceil(total / 100)``; no documented rate limit, so no minimum duration.
- Delete lookups: page 1 of the listing gives the total; when the remaining pages are no
  more than the lookups needed, the whole account is listed (page 1 is reused), else one
  ``search=<digits>`` per phone (digits without ``+``: a substring of the stored number
  however it is written), matched exactly after normalising both sides.  A single phone is
  searched directly.  A row's ``id`` (when present and not null) wins over its phone and is
  not looked up before a real delete (the ``DELETE`` answers 404 for an unknown id); with
  ``dry_run`` ids are checked too (listing, or ``GET /contacts/{id}``).
- A phone repeated in the file is deleted once; all its rows are LOADED.
- ``DELETE`` is resent after a 5xx, a timeout or a dropped connection; a 404 on a resend
  means the lost attempt deleted it: LOADED, with a note.  Another refusal fails the row
  (``API_REJECTED``); 401/403 or an API still down after every retry aborts the run (the
  contact in flight ``LOAD_FAILED``, the rest ``NOT_SENT``).
- The safety limit counts distinct contacts found and is checked before the first
  ``DELETE``; a dry run sends no write and is never stopped by it (it is how to see the list).
- A row identical (same name, same tag set) to the stored contact is UNCHANGED on import
  even when no CSV row could carry it (a tag with a comma set through the JSON API), so the
  round trip of such a contact sends nothing.
- ``row`` in an import error counts the header as row 1, so the first data row is row 2 (the
  doc's example reports its second data row as ``row: 3``).  The phone of an error must match
  the row it points at; otherwise the error is matched by phone within the batch.
- The import matches existing contacts by phone (the ``created``/``updated`` counts suggest
  it), so resending a batch after a timeout, a dropped connection or a 5xx cannot duplicate
  anything.  Whether a row was created or updated is decided from the listing made before the
  load; when the API's counts disagree (a resent batch whose first attempt took effect counts
  as updated), a note says so.
- Tags are replaced, not merged: the import sets the contact's tags to the file's cell, and an
  empty cell clears them.  Tags are compared as sets (order does not make a row changed).
- A tag containing a comma cannot be written in the comma-joined ``tags`` cell, and Vobiz
  requires a name: such rows fail with ``NOT_REPRESENTABLE`` before anything is sent (use
  ``--default-name`` to give nameless rows a name).
- Limits: at most 50,000 rows and 10 MiB per file (the sandbox's limits; the docs state none).
  A batch whose file would be larger is split further.
- No documented rate limit: the client starts unthrottled and backs off adaptively on 429,
  honouring ``Retry-After``.  Batches are sent one after the other.
- The CSV is UTF-8 without a BOM, RFC 4180 (``\\r\\n`` line ends, quotes only where needed).
- A 422 (or another refusal) of a whole import fails that batch's rows (``LOAD_FAILED``) and
  the load goes on; 401/403 abort the run, and so does 402 (insufficient balance: no later
  batch would fare better).  A refused contact list aborts too: without it, created, updated
  and unchanged cannot be told apart.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from pipeline.errors import RemoteError, TerminalRemoteError, UsageError
from pipeline.report.progress import Counter

from .. import config as cfg
from ..base import (
    CREATED,
    LOADED,
    PENDING,
    UNCHANGED,
    UPDATED,
    ExportFilters,
    LoadResult,
    PlanLine,
    Target,
    TargetConfig,
    not_carried,
    phone_key,
    write_request_files,
)
from ..client import ApiClient, ApiRefused, QuotaExceeded, Unreachable
from ..ratelimit import Adaptive

DEFAULT_BASE_URL = "https://api.vobiz.ai/api/v1/messaging"
IMPORT_MAX_ROWS = 50_000
IMPORT_MAX_BYTES = 10 * 1024 * 1024
PAGE_LIMIT = 100
HEADER = ("phone_number", "name", "tags")
CARRIED = frozenset({"phone", "name", "tags"})
NO_GROUPS = (
    "Vobiz has no contact groups: its API offers tags instead (import with a tags column, "
    "export --tag NAME)"
)
EXPORT_EXTRAS = ("account_id", "last_active_at")
"""Vobiz fields an export adds after the canonical and meta columns."""

Existing = dict[str, tuple[str, str, frozenset[str]]]
"""Normalised phone -> (id, name, tags) of the contacts listed before the load."""


def norm_phone(value: object) -> str:
    """A phone as the one comparison rule spells it (:func:`~pipeline.load.base.phone_key`:
    ``+digits``; the API's own spelling may drop the ``+``); the text when it has no digit."""
    return phone_key(value) or str(value or "").strip()


def tag_set(tags: Iterable[str] | None) -> frozenset[str]:
    """Tags as Vobiz stores them from a CSV cell: trimmed, blanks dropped."""
    return frozenset(t.strip() for t in (tags or ()) if t and t.strip())


def _column(contacts: pl.DataFrame, name: str) -> list[Any]:
    """A column's values, or nulls when the frame has no such column."""
    if name in contacts.columns:
        return contacts.get_column(name).to_list()
    return [None] * contacts.height


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


class CsvWriter:
    """Rows of the import CSV as bytes: one writer, so every file is encoded the same way."""

    def __init__(self) -> None:
        self._buf = io.StringIO()
        self._writer = csv.writer(self._buf, lineterminator="\r\n")
        self.header = self.line(HEADER)

    def line(self, cells: Sequence[str]) -> bytes:
        self._buf.seek(0)
        self._buf.truncate()
        self._writer.writerow(cells)
        return self._buf.getvalue().encode("utf-8")


class Vobiz(Target):
    name = "vobiz"
    title = "Vobiz"
    capabilities = frozenset({"csv_import"})
    max_file_bytes: int = IMPORT_MAX_BYTES
    """Largest CSV file uploaded (an instance attribute may lower it)."""
    page_size: int = PAGE_LIMIT
    """``limit`` asked of ``GET /contacts``; lowered on the instance when Vobiz answers a
    smaller ``limit`` (it clamps)."""

    @classmethod
    def config_from_env(cls, env: Mapping[str, str], base_url: str | None) -> TargetConfig:
        url = cfg.base_url(base_url, env, "VOBIZ_BASE_URL", DEFAULT_BASE_URL, cls.title)
        auth_id = cfg.require(env, "VOBIZ_AUTH_ID", cls.title)
        token = cfg.require(env, "VOBIZ_AUTH_TOKEN", cls.title)
        return TargetConfig(
            base_url=url,
            headers={"X-Auth-ID": auth_id, "X-Auth-Token": token},
            secrets=(token,),
        )

    @property
    def batch_size(self) -> int:
        return min(self.options.batch_size, IMPORT_MAX_ROWS)

    def client(self) -> ApiClient:
        if self._client is None:
            self._client = self.new_client(Adaptive(), max_connections=self.options.concurrency)
        return self._client

    # -- the files ---------------------------------------------------------------------
    @staticmethod
    def _columns(contacts: pl.DataFrame) -> tuple[list[str], list[str | None], list[list[str]]]:
        phones = contacts.get_column("phone").fill_null("").to_list()
        names = contacts.get_column("name").to_list()
        tags = contacts.get_column("tags").list.drop_nulls().fill_null([]).to_list()
        return phones, names, tags

    @staticmethod
    def unrepresentable(names: Sequence[str | None], tags: Sequence[list[str]]) -> dict[int, str]:
        """Positions that no import row can hold -> why."""
        out: dict[int, str] = {}
        for i, (name, row_tags) in enumerate(zip(names, tags, strict=True)):
            commas = [t for t in row_tags if "," in t]
            if commas:
                out[i] = (
                    f"tag {commas[0]!r} contains a comma, which Vobiz's comma-separated tags "
                    "cell cannot hold"
                )
            elif not (name or "").strip():
                out[i] = "Vobiz requires a name and this row has none (see --default-name)"
        return out

    def files(
        self,
        positions: Sequence[int],
        phones: Sequence[str],
        names: Sequence[str | None],
        tags: Sequence[list[str]],
    ) -> tuple[list[tuple[list[int], bytes]], dict[int, str]]:
        """(positions, exact CSV bytes) per file, in order, each of at most ``batch_size`` rows
        and ``max_file_bytes`` bytes; and the positions too large for any file -> why."""
        writer = CsvWriter()
        header, cap, per_file = writer.header, self.max_file_bytes, self.batch_size
        out: list[tuple[list[int], bytes]] = []
        too_big: dict[int, str] = {}
        rows: list[int] = []
        lines: list[bytes] = [header]
        size = len(header)

        def flush() -> None:
            nonlocal rows, lines, size
            if rows:
                out.append((rows, b"".join(lines)))
            rows, lines, size = [], [header], len(header)

        line_of = writer.line
        for i in positions:
            line = line_of((phones[i], (names[i] or "").strip(), ",".join(tags[i])))
            n = len(line)
            if size + n > cap or len(rows) >= per_file:
                if len(header) + n > cap:
                    too_big[i] = f"row takes {n:,} bytes, more than a whole import file"
                    continue
                flush()
            rows.append(i)
            lines.append(line)
            size += n
        flush()
        return out, too_big

    def all_files(self, contacts: pl.DataFrame) -> list[tuple[list[int], bytes]]:
        """The files of a load into an empty account: every row a file can hold."""
        phones, names, tags = self._columns(contacts)
        bad = self.unrepresentable(names, tags)
        keep = (
            [i for i in range(contacts.height) if i not in bad] if bad else range(contacts.height)
        )
        return self.files(keep, phones, names, tags)[0]

    def plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        work = self.all_files(contacts)
        return [
            PlanLine("GET /contacts", 1, 0, None, "one page per 100 existing contacts"),
            PlanLine(
                "POST /contacts/import",
                len(work),
                sum(len(rows) for rows, _ in work),
                None,
                f"{self.batch_size:,} rows per CSV file; no documented rate limit",
            ),
        ]

    def dry_run(self, contacts: pl.DataFrame, directory: Path) -> list[Path]:
        """The import files as if no contact existed yet (a real load leaves out the rows it
        finds unchanged, so its files may hold fewer rows)."""
        bodies = (body for _, body in self.all_files(contacts))
        return write_request_files(directory, "vobiz-import-{:04d}.csv", bodies)

    # -- the load ----------------------------------------------------------------------
    def load(self, contacts: pl.DataFrame) -> LoadResult:
        n = contacts.height
        result = self.new_result(n)
        result.not_carried = self.fields_not_carried(contacts)
        phones, names, tags = self._columns(contacts)
        bad = self.unrepresentable(names, tags)
        current: list[int] | None = None
        t0 = time.perf_counter()
        t_import: float | None = None
        try:
            existing = self.list_existing() if n else {}
            result.seconds["list"] = round(time.perf_counter() - t0, 3)
            t_import = time.perf_counter()
            send: list[int] = []
            for i in range(n):
                found = existing.get(norm_phone(phones[i]))
                if (
                    found is not None
                    and found[1] == (names[i] or "").strip()
                    and found[2] == tag_set(tags[i])
                ):
                    # already so: nothing to send, even when no CSV row could carry it (a tag
                    # with a comma set through the JSON API comes back unchanged on a re-import)
                    result.mark([i], UNCHANGED)
                elif i in bad:
                    result.fail([i], "NOT_REPRESENTABLE", bad[i])
                else:
                    send.append(i)
            work, too_big = self.files(send, phones, names, tags)
            for i, why in too_big.items():
                result.fail([i], "NOT_REPRESENTABLE", why)
            known = set(existing)
            total = sum(len(rows) for rows, _ in work)
            with self.progress.counter("vobiz import", total, "contacts") as bar:
                for k, (rows, body) in enumerate(work, 1):
                    current = rows
                    result.sending(rows, self.stats.requests)
                    ok = self._import(k, rows, body, phones, known, result)
                    current = None
                    bar.advance(len(rows), f"batch {k}/{len(work)}: {len(rows):,} rows, {ok:,} ok")
        except RemoteError as exc:
            if current is not None and isinstance(exc, Unreachable):
                result.fail(current, "LOAD_FAILED", f"import failed after retries: {exc.message}")
            for i, why in bad.items():  # the listing failed: these could not be sent anyway
                if result.state[i] == PENDING:
                    result.fail([i], "NOT_REPRESENTABLE", why)
            result.abort(exc)
        now = time.perf_counter()
        result.seconds.setdefault("list", round(now - t0, 3))
        result.seconds["import"] = round(now - t_import, 3) if t_import is not None else 0.0
        return result

    @staticmethod
    def fields_not_carried(contacts: pl.DataFrame) -> dict[str, int]:
        """Fields with values the import has no column for; ``custom_fields`` counts rows with
        at least one non-null attribute."""
        return not_carried(contacts, set(CARRIED))

    def list_existing(self) -> Existing:
        """Every contact of the account, one ``GET /contacts`` page of :attr:`page_size` at a
        time."""
        existing: Existing = {}
        for _, items in self._pages({}, "the contact list"):
            for item in items:
                if not item.get("phone_number"):
                    continue
                existing[norm_phone(item["phone_number"])] = (
                    str(item.get("id") or ""),
                    str(item.get("name") or "").strip(),
                    tag_set(item.get("tags") if isinstance(item.get("tags"), list) else ()),
                )
        return existing

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

    def _pages(
        self, params: Mapping[str, Any], what: str
    ) -> Generator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """(body, items) of each page of ``GET /contacts?page=N&limit=...`` with ``params``,
        page 1 first, until ``has_more`` is false or a page is empty.

        A server that answers a smaller ``limit`` than asked clamps the page size: later
        pages are asked with its size (page numbers count its pages either way), and
        :attr:`page_size` is lowered on this instance so that plans count its pages."""
        size = self.page_size
        page = 1
        while True:
            body = self._get_page({**params, "page": page, "limit": size}, what)
            raw = body.get("items")
            items = [it for it in raw if isinstance(it, dict)] if isinstance(raw, list) else []
            answered = body.get("limit")
            if isinstance(answered, int) and not isinstance(answered, bool) and 0 < answered < size:
                size = self.page_size = answered
            yield body, items
            more = body.get("has_more")
            if not isinstance(more, bool):  # not said: count, else guess from a full page
                total = body.get("total")
                more = page * size < total if isinstance(total, int) else len(raw or ()) >= size
            if not raw or not more:
                return
            page += 1

    def pages_for(self, total: int) -> int:
        """Requests a listing of ``total`` contacts takes (an empty one still takes one)."""
        return max(1, math.ceil(total / self.page_size))

    # -- export --------------------------------------------------------------------------
    @staticmethod
    def export_params(filters: ExportFilters, with_groups: bool) -> dict[str, str]:
        """The listing's query for ``filters``; UsageError for what Vobiz does not offer."""
        if filters.group is not None:
            raise UsageError(f"--group: {NO_GROUPS}")
        if with_groups:
            raise UsageError(f"--with-groups: {NO_GROUPS}")
        if filters.opt_out is not None:
            raise UsageError(
                "--opt-out: Vobiz contacts have no opt-out field to filter on; its listing "
                "filters by --search (name or phone) and --tag"
            )
        params: dict[str, str] = {}
        if filters.search is not None and filters.search.strip():
            params["search"] = filters.search.strip()
        if filters.tag is not None and filters.tag.strip():
            params["tag"] = filters.tag.strip()
        return params

    def export_plan(self, filters: ExportFilters, with_groups: bool) -> list[PlanLine]:
        params = self.export_params(filters, with_groups)
        body = self._get_page({**params, "page": 1, "limit": 1}, "the contact count")
        total = body.get("total")
        if not isinstance(total, int) or isinstance(total, bool):
            return [
                PlanLine(
                    "GET /contacts",
                    1,
                    0,
                    None,
                    f"Vobiz did not say how many contacts match: one page per {self.page_size}",
                )
            ]
        return [
            PlanLine(
                "GET /contacts",
                self.pages_for(total),
                total,
                None,
                f"{self.page_size} contacts per page; no documented rate limit (paced only "
                "if Vobiz answers 429)",
            )
        ]

    def export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        params = self.export_params(filters, with_groups)  # before any request
        self.export_total = None
        return self._export(params)

    def _export(self, params: dict[str, str]) -> Iterator[list[dict[str, Any]]]:
        seen: set[str] = set()
        with ExitStack() as stack:
            bar: Counter | None = None
            for k, (body, items) in enumerate(self._pages(params, "the contact list"), 1):
                if bar is None:
                    total = body.get("total")
                    if isinstance(total, int) and not isinstance(total, bool):
                        self.export_total = total
                    bar = stack.enter_context(
                        self.progress.counter("vobiz export", self.export_total or 0, "contacts")
                    )
                out: list[dict[str, Any]] = []
                for item in items:
                    key = str(item.get("id") or "") or norm_phone(item.get("phone_number"))
                    if key in seen:  # a contact inserted meanwhile pushed it onto this page
                        continue
                    seen.add(key)
                    out.append(export_contact(item))
                repeated = len(items) - len(out)
                bar.advance(
                    len(out), f"page {k}" + (f", {repeated} already exported" if repeated else "")
                )
                yield out
            if self.export_total is None:
                self.export_total = len(seen)

    # -- delete --------------------------------------------------------------------------
    def delete(
        self, contacts: pl.DataFrame, *, dry_run: bool = False, limit: int | None = None
    ) -> LoadResult:
        n = contacts.height
        result = self.new_result(n)
        phones = [norm_phone(p) if p else "" for p in _column(contacts, "phone")]
        given = [str(v).strip() if v is not None else "" for v in _column(contacts, "id")]
        current: list[int] | None = None
        t0 = time.perf_counter()
        t_delete: float | None = None
        try:
            need = {phones[i] for i in range(n) if not given[i] and phones[i]}
            check = {c for c in given if c} if dry_run else set()
            by_phone, existing_ids = self._resolve(need, check)
            result.seconds["lookup"] = round(time.perf_counter() - t0, 3)
            todo: dict[str, list[int]] = {}
            for i in range(n):
                cid: str | None = given[i]
                if cid:
                    if dry_run and cid not in existing_ids:
                        result.fail([i], "NOT_FOUND", f"no Vobiz contact has the id {cid}")
                        continue
                elif not phones[i]:
                    result.fail([i], "NOT_FOUND", "the row has neither a phone nor an id")
                    continue
                else:
                    cid = by_phone.get(norm_phone(phones[i]))
                    if cid is None:
                        result.fail([i], "NOT_FOUND", f"no Vobiz contact has the phone {phones[i]}")
                        continue
                todo.setdefault(cid, []).append(i)
            if dry_run:
                for rows in todo.values():
                    result.mark(rows, LOADED)
                return result
            if limit is not None and len(todo) > limit:
                raise UsageError(
                    f"{len(todo):,} contacts would be deleted, above the safety limit of "
                    f"{limit:,}: check the file, or re-run with --yes"
                )
            t_delete = time.perf_counter()
            with self.progress.counter("vobiz delete", len(todo), "contacts") as bar:
                for cid, rows in todo.items():
                    current = rows
                    ok = self._delete_one(cid, rows, result)
                    current = None
                    bar.advance(1, "" if ok else f"{cid}: {result.failures[rows[0]][0]}")
        except RemoteError as exc:
            if current is not None and isinstance(exc, Unreachable):
                result.fail(current, "LOAD_FAILED", f"delete failed after retries: {exc.message}")
            result.abort(exc)
        finally:
            now = time.perf_counter()
            result.seconds.setdefault("lookup", round(now - t0, 3))
            result.seconds["delete"] = round(now - t_delete, 3) if t_delete is not None else 0.0
        return result

    def _delete_one(self, cid: str, rows: list[int], result: LoadResult) -> bool:
        """``DELETE /contacts/{id}``: settle ``rows``; True when the contact is gone."""
        retried = False

        def recover() -> None:  # an attempt ended without an answer: note it, then resend
            nonlocal retried
            retried = True

        try:
            self.client().request(
                "DELETE",
                f"/contacts/{quote(cid, safe='')}",
                endpoint="DELETE /contacts/{id}",
                idempotent=False,
                recover=recover,
            )
        except ApiRefused as exc:
            if exc.status == 404 and retried:
                result.mark(rows, LOADED)
                result.notes.append(
                    f"contact {cid}: deleted by an attempt whose answer was lost (the retry "
                    "found it gone)"
                )
                return True
            if exc.status == 404:
                result.fail(rows, "NOT_FOUND", f"no Vobiz contact has the id {cid} (any more)")
            else:
                result.fail(
                    rows,
                    "API_REJECTED",
                    f"Vobiz refused the delete ({exc.status} {exc.code}): {exc.message}",
                )
            return False
        result.mark(rows, LOADED)
        return True

    def _resolve(self, phones: set[str], ids: set[str]) -> tuple[dict[str, str], set[str]]:
        """Phone -> id of the ``phones`` that exist, and which of ``ids`` exist: from one
        listing of the account when that takes fewer requests than one lookup each
        (``search=<digits>`` per phone, ``GET /contacts/{id}`` per id), else by lookups.
        Page 1 of the listing tells the total; it is not wasted either way."""
        found: dict[str, str] = {}
        exists: set[str] = set()

        def take(items: list[dict[str, Any]]) -> None:
            for item in items:
                cid = str(item.get("id") or "")
                if not cid:
                    continue
                p = norm_phone(item.get("phone_number"))
                if p in phones:
                    found.setdefault(p, cid)
                if cid in ids:
                    exists.add(cid)

        wanted = len(phones) + len(ids)
        if wanted == 0:
            return found, exists
        if wanted > 1:
            pages = self._pages({}, "the contact list")
            body, items = next(pages)
            take(items)
            total = body.get("total")
            if isinstance(total, int) and self.pages_for(total) - 1 <= wanted:
                for _, items in pages:
                    take(items)
                return found, exists
            pages.close()
        left_phones = sorted(phones - found.keys())
        left_ids = sorted(ids - exists)
        with self.progress.counter(
            "vobiz lookup", len(left_phones) + len(left_ids), "contacts"
        ) as bar:
            for p in left_phones:
                for _, items in self._pages({"search": p.lstrip("+")}, "a phone search"):
                    take(items)
                    if p in found:
                        break
                bar.advance(1)
            for cid in left_ids:
                if self._exists(cid):
                    exists.add(cid)
                bar.advance(1)
        return found, exists

    def _exists(self, cid: str) -> bool:
        try:
            self.client().request(
                "GET", f"/contacts/{quote(cid, safe='')}", endpoint="GET /contacts/{id}"
            )
        except ApiRefused:  # 404 (400/422 for an id of the wrong shape): no such contact
            return False
        return True

    # -- groups --------------------------------------------------------------------------
    def list_groups(self) -> list[dict[str, Any]]:
        raise UsageError(NO_GROUPS)

    def create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        raise UsageError(NO_GROUPS)

    def change_members(self, group: str, contacts: pl.DataFrame, *, add: bool) -> LoadResult:
        raise UsageError(NO_GROUPS)

    # -- the import ----------------------------------------------------------------------
    def _import(
        self,
        k: int,
        rows: list[int],
        body: bytes,
        phones: Sequence[str],
        known: set[str],
        result: LoadResult,
    ) -> int:
        """Upload one file; settle its rows; return how many loaded."""
        try:
            resp = self.client().request(
                "POST",
                "/contacts/import",
                files={"file": (f"contacts-{k:04d}.csv", body, "text/csv")},
                endpoint="POST /contacts/import",
            )
        except ApiRefused as exc:
            if exc.status == 402:
                raise QuotaExceeded(
                    f"Vobiz refused the import ({exc.status} {exc.code}: {exc.message})",
                    hint="top up the Vobiz balance, then re-run: the import resumes safely",
                ) from exc
            result.fail(
                rows, "LOAD_FAILED", f"import refused ({exc.status} {exc.code}): {exc.message}"
            )
            return 0
        try:
            data: Any = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            result.mark(rows, LOADED)
            result.notes.append(f"batch {k}: the import answered without a summary")
            known.update(norm_phone(phones[i]) for i in rows)
            return len(rows)
        failed = self._row_errors(k, rows, data.get("errors"), phones, result)
        for i, reason in failed.items():
            result.fail([i], "API_REJECTED", f"Vobiz: {reason}")
        created = updated = 0
        for i in rows:
            if i in failed:
                continue
            p = norm_phone(phones[i])
            if p in known:
                result.mark([i], UPDATED)
                updated += 1
            else:
                result.mark([i], CREATED)
                created += 1
                known.add(p)
        api = (data.get("created"), data.get("updated"), data.get("failed"))
        if api != (created, updated, len(failed)):
            result.notes.append(
                f"batch {k}: Vobiz counted {api[0]} created, {api[1]} updated, {api[2]} failed; "
                f"contactpipe expected {created}, {updated}, {len(failed)} (a batch resent after "
                "a lost answer counts its new contacts as updated)"
            )
        return created + updated

    @staticmethod
    def _row_errors(
        k: int, rows: list[int], errors: Any, phones: Sequence[str], result: LoadResult
    ) -> dict[int, str]:
        """Import ``errors`` -> {position: reason}: by ``row`` (header = row 1) when its phone
        matches, else by phone within the batch."""
        by_phone: dict[str, list[int]] = {}
        for i in rows:
            by_phone.setdefault(norm_phone(phones[i]), []).append(i)
        out: dict[int, str] = {}
        for err in errors if isinstance(errors, list) else ():
            if not isinstance(err, dict):
                continue
            reason = str(err.get("reason") or err.get("message") or err.get("error") or err)
            phone = norm_phone(err.get("phone_number"))
            number = err.get("row")
            pos: int | None = None
            if isinstance(number, int) and 0 <= number - 2 < len(rows):
                pos = rows[number - 2]
                if err.get("phone_number") is not None and norm_phone(phones[pos]) != phone:
                    pos = None
            if pos is None:
                pos = next((i for i in by_phone.get(phone, ()) if i not in out), None)
            if pos is None:
                result.notes.append(f"batch {k}: an import error matches no row sent: {err}")
                continue
            out.setdefault(pos, reason)
        return out


TARGET = Vobiz
