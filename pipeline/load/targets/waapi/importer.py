"""WAAPI import: ``POST /external/contacts/{encodedPhoneId}/bulk``, an upsert by phone, one
request per batch of ``min(--batch-size, 50,000)`` entries; the answer's counts and
``errors`` settle the rows."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ...base import (
    LOADED,
    LoadResult,
    PlanLine,
    batches,
    build_entries,
    not_carried,
    write_request_files,
)
from ...client import ApiRefused, encode_json
from ...kit.phones import norm_phone
from ...kit.steps import send_batches
from ...kit.timing import Step, timed
from .core import WaapiCore


class WaapiImporter(WaapiCore):
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
        note = f"{self.batch_size:,} entries per request, {self.rate.text()}"
        return timed(self.rate, [Step(f"POST {self.bulk_path}", requests, n, note)])

    def dry_run(self, contacts: pl.DataFrame, directory: Path) -> list[Path]:
        bodies = (body for _, body in self.bodies(contacts))
        return write_request_files(directory, "waapi-bulk-{:04d}.json", bodies)

    def load(self, contacts: pl.DataFrame) -> LoadResult:
        result = self.new_result(contacts.height)
        carried = {*self.fmap["fields"], "custom_fields"}
        result.not_carried = not_carried(contacts, carried)
        t0 = time.perf_counter()
        phones = contacts.get_column("phone").to_list()

        def send(k: int, rows: Sequence[int], body: bytes) -> int:
            return self._send_batch(rows, body, phones, result)

        send_batches(self, self.bodies(contacts), send, result, "waapi bulk")
        result.seconds["bulk"] = round(time.perf_counter() - t0, 3)
        return result

    def _send_batch(
        self, rows: Sequence[int], body: bytes, phones: list[str], result: LoadResult
    ) -> int:
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
        failed = row_errors(rows, data.get("errors") or [], phones)
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


def row_errors(rows: Sequence[int], errors: list[Any], phones: list[str]) -> dict[int, str]:
    """Error entries -> {row position: message}, by index, else by phone (normalised E.164
    on both sides)."""
    by_phone = {norm_phone(phones[i]): i for i in rows}
    out: dict[int, str] = {}
    start = rows[0] if rows else 0
    for err in errors:
        if not isinstance(err, dict):
            continue
        message = str(err.get("error") or err.get("message") or err.get("reason") or err)
        index = err.get("index")
        pos: int | None = None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(rows):
            pos = start + index
        phone = norm_phone(err.get("phone"))
        if phone and (pos is None or norm_phone(phones[pos]) != phone):
            pos = by_phone.get(phone, pos)
        if pos is not None:
            out[pos] = f"WAAPI: {message}"
    return out
