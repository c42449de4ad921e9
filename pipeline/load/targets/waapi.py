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
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from pipeline.errors import RemoteError

from .. import config as cfg
from ..base import (
    LOADED,
    LoadResult,
    PlanLine,
    Target,
    TargetConfig,
    batches,
    build_entries,
    not_carried,
)
from ..client import ApiClient, ApiRefused, Unreachable, encode_json
from ..ratelimit import SlidingWindow

BULK_MAX = 50_000


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


def _error_parser(resp: Any) -> tuple[str, str]:
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP_{resp.status_code}", resp.reason_phrase or "error"
    if not isinstance(body, dict):
        return f"HTTP_{resp.status_code}", resp.reason_phrase or "error"
    code = body.get("error") if isinstance(body.get("error"), str) else f"HTTP_{resp.status_code}"
    return str(code), str(body.get("message") or resp.reason_phrase or "")


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
            self._client = ApiClient(
                self.title,
                self.config.base_url,
                self.config.headers,
                limiter=SlidingWindow(self.rate_limit, self.rate_window_s, margin=1.0),
                policy=self.policy,
                error_parser=_error_parser,
                max_connections=2,
                stats=self.stats,
            )
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
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for k, (_, body) in enumerate(self.bodies(contacts), 1):
            path = directory / f"waapi-bulk-{k:04d}.json"
            path.write_bytes(body)
            files.append(path)
        return files

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
        by_phone = {phones[i].lstrip("+"): i for i in rows}
        out: dict[int, str] = {}
        for err in errors:
            if not isinstance(err, dict):
                continue
            message = str(err.get("error") or err.get("message") or err.get("reason") or err)
            index = err.get("index")
            pos: int | None = None
            if isinstance(index, int) and 0 <= index < len(rows):
                pos = rows.start + index
            phone = str(err.get("phone") or "").lstrip("+")
            if phone and (pos is None or phones[pos].lstrip("+") != phone):
                pos = by_phone.get(phone, pos)
            if pos is not None:
                out[pos] = f"WAAPI: {message}"
        return out


TARGET = Waapi
