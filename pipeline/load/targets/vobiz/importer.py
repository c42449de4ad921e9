"""Vobiz import: the account is listed once (unchanged rows are not sent), then one generated
CSV file (``phone_number,name,tags``) per batch goes to ``POST /contacts/import``."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from contactpipe.errors import RemoteError

from ...base import (
    CREATED,
    LOADED,
    UNCHANGED,
    UPDATED,
    LoadResult,
    PlanLine,
    not_carried,
    write_request_files,
)
from ...client import ApiRefused, QuotaExceeded
from ...kit.phones import norm_phone
from ...kit.steps import send_batches
from ...kit.timing import Step, timed
from .core import VobizCore, tag_set

IMPORT_MAX_ROWS = 50_000
IMPORT_MAX_BYTES = 10 * 1024 * 1024
HEADER = ("phone_number", "name", "tags")
CARRIED = frozenset({"phone", "name", "tags"})

Existing = dict[str, tuple[str, str, frozenset[str]]]
"""Normalised phone -> (id, name, tags) of the contacts listed before the load."""


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


class VobizImporter(VobizCore):
    max_file_bytes: int = IMPORT_MAX_BYTES
    """Largest CSV file uploaded (an instance attribute may lower it)."""

    @property
    def batch_size(self) -> int:
        return min(self.options.batch_size, IMPORT_MAX_ROWS)

    @staticmethod
    def _columns(contacts: pl.DataFrame) -> tuple[list[str], list[str | None], list[list[str]]]:
        phones = contacts.get_column("phone").fill_null("").to_list()
        names = contacts.get_column("name").to_list()
        tags = contacts.get_column("tags").list.drop_nulls().fill_null([]).to_list()
        return phones, names, tags

    unrepresentable = staticmethod(unrepresentable)

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
        bad = unrepresentable(names, tags)
        keep = (
            [i for i in range(contacts.height) if i not in bad] if bad else range(contacts.height)
        )
        return self.files(keep, phones, names, tags)[0]

    def plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        work = self.all_files(contacts)
        listing = [Step("GET /contacts", 1, 0, "one page per 100 existing contacts")]
        return timed(
            self.rate,
            [
                *(listing if self.state_known is None else []),
                Step(
                    "POST /contacts/import",
                    len(work),
                    sum(len(rows) for rows, _ in work),
                    f"{self.batch_size:,} rows per CSV file; no documented rate limit",
                ),
            ],
        )

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
        bad = unrepresentable(names, tags)
        t0 = time.perf_counter()
        t_import: float | None = None
        try:
            existing = self.list_existing() if n and self.state_known is None else {}
            if self.state_known is not None:  # the sync state answers: these exist, changed
                existing = {p: (cid, "\0", frozenset()) for p, cid in self.state_known.items()}
        except RemoteError as exc:
            for i, why in bad.items():  # the listing failed: these could not be sent anyway
                result.fail([i], "NOT_REPRESENTABLE", why)
            result.abort(exc)
            existing = None
        result.seconds["list"] = round(time.perf_counter() - t0, 3)
        if existing is not None:
            t_import = time.perf_counter()
            send: list[int] = []
            for i in range(n):
                found = existing.get(norm_phone(phones[i]) or "")
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

            def upload(k: int, rows: Sequence[int], body: bytes) -> int:
                return self._import(k, list(rows), body, phones, known, result)

            send_batches(self, work, upload, result, "vobiz import")
        now = time.perf_counter()
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
        for items, _ in self._pages({}, "the contact list"):
            for item in items:
                phone = norm_phone(item.get("phone_number"))
                if not phone:
                    continue
                existing[phone] = (
                    str(item.get("id") or ""),
                    str(item.get("name") or "").strip(),
                    tag_set(item.get("tags") if isinstance(item.get("tags"), list) else ()),
                )
        return existing

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
            known.update(norm_phone(phones[i]) or "" for i in rows)
            return len(rows)
        failed = row_errors(k, rows, data.get("errors"), phones, result)
        for i, reason in failed.items():
            result.fail([i], "API_REJECTED", f"Vobiz: {reason}")
        created = updated = 0
        for i in rows:
            if i in failed:
                continue
            p = norm_phone(phones[i]) or ""
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


def row_errors(
    k: int, rows: list[int], errors: Any, phones: Sequence[str], result: LoadResult
) -> dict[int, str]:
    """Import ``errors`` -> {position: reason}: by ``row`` (header = row 1) when its phone
    matches (normalised E.164 on both sides), else by phone within the batch."""
    by_phone: dict[str | None, list[int]] = {}
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
