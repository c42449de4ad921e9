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

Choices made where the docs are silent
--------------------------------------
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
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from pipeline.errors import RemoteError, TerminalRemoteError

from .. import config as cfg
from ..base import (
    CREATED,
    LOADED,
    UNCHANGED,
    UPDATED,
    LoadResult,
    PlanLine,
    Target,
    TargetConfig,
    not_carried,
)
from ..client import ApiClient, ApiRefused, QuotaExceeded, Unreachable
from ..ratelimit import Adaptive

DEFAULT_BASE_URL = "https://api.vobiz.ai/api/v1/messaging"
IMPORT_MAX_ROWS = 50_000
IMPORT_MAX_BYTES = 10 * 1024 * 1024
PAGE_LIMIT = 100
HEADER = ("phone_number", "name", "tags")
CARRIED = frozenset({"phone", "name", "tags"})

Existing = dict[str, tuple[str, str, frozenset[str]]]
"""Normalised phone -> (id, name, tags) of the contacts listed before the load."""


def norm_phone(value: object) -> str:
    """A phone as ``+digits`` for comparison (the API's own spelling may drop the ``+``)."""
    text = str(value or "").strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    return f"+{digits}" if digits else text


def tag_set(tags: Iterable[str] | None) -> frozenset[str]:
    """Tags as Vobiz stores them from a CSV cell: trimmed, blanks dropped."""
    return frozenset(t.strip() for t in (tags or ()) if t and t.strip())


def _error_parser(resp: httpx.Response) -> tuple[str, str]:
    """``{"status": "error", "error": {"code", "message", "details"}, ...}`` -> (code, message);
    422 ``details`` (``[{"field", "message"}]``) are appended to the message."""
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP_{resp.status_code}", resp.reason_phrase or "error"
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return f"HTTP_{resp.status_code}", resp.reason_phrase or "error"
    code = str(err.get("code") or f"HTTP_{resp.status_code}")
    message = str(err.get("message") or resp.reason_phrase or "error")
    details = err.get("details")
    if isinstance(details, list):
        parts = [
            f"{d.get('field')}: {d.get('message')}" if d.get("field") else str(d.get("message"))
            for d in details
            if isinstance(d, dict) and d.get("message")
        ]
        if parts:
            message = f"{message} ({'; '.join(parts)})"
    return code, message


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
            self._client = ApiClient(
                self.title,
                self.config.base_url,
                self.config.headers,
                limiter=Adaptive(),
                policy=self.policy,
                error_parser=_error_parser,
                max_connections=self.options.concurrency,
                stats=self.stats,
            )
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
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, (_, body) in enumerate(self.all_files(contacts), 1):
            path = directory / f"vobiz-import-{k:04d}.csv"
            path.write_bytes(body)
            paths.append(path)
        return paths

    # -- the load ----------------------------------------------------------------------
    def load(self, contacts: pl.DataFrame) -> LoadResult:
        n = contacts.height
        result = self.new_result(n)
        result.not_carried = self.fields_not_carried(contacts)
        phones, names, tags = self._columns(contacts)
        for i, why in self.unrepresentable(names, tags).items():
            result.fail([i], "NOT_REPRESENTABLE", why)
        current: list[int] | None = None
        t0 = time.perf_counter()
        t_import: float | None = None
        try:
            existing = self.list_existing() if result.pending() else {}
            result.seconds["list"] = round(time.perf_counter() - t0, 3)
            t_import = time.perf_counter()
            send: list[int] = []
            for i in result.pending():
                found = existing.get(norm_phone(phones[i]))
                if (
                    found is not None
                    and found[1] == (names[i] or "").strip()
                    and found[2] == tag_set(tags[i])
                ):
                    result.mark([i], UNCHANGED)
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
                    ok = self._import(k, rows, body, phones, known, result)
                    current = None
                    bar.advance(len(rows), f"batch {k}/{len(work)}: {len(rows):,} rows, {ok:,} ok")
        except RemoteError as exc:
            if current is not None and isinstance(exc, Unreachable):
                result.fail(current, "LOAD_FAILED", f"import failed after retries: {exc.message}")
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
        """Every contact of the account, one ``GET /contacts`` page of 100 at a time."""
        existing: Existing = {}
        page = 1
        while True:
            try:
                resp = self.client().request(
                    "GET",
                    "/contacts",
                    params={"page": page, "limit": PAGE_LIMIT},
                    endpoint="GET /contacts",
                )
            except ApiRefused as exc:
                raise TerminalRemoteError(
                    f"Vobiz refused the contact list ({exc.status} {exc.code}: {exc.message})",
                    hint="check VOBIZ_BASE_URL (it ends with /api/v1/messaging) and the account",
                ) from exc
            body = resp.json()
            items = body.get("items") if isinstance(body, dict) else None
            for item in items or ():
                if not isinstance(item, dict) or not item.get("phone_number"):
                    continue
                existing[norm_phone(item["phone_number"])] = (
                    str(item.get("id") or ""),
                    str(item.get("name") or "").strip(),
                    tag_set(item.get("tags") if isinstance(item.get("tags"), list) else ()),
                )
            if not items or not body.get("has_more"):
                return existing
            page += 1

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
