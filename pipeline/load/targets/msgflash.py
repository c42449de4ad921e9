"""MsgFlash: contacts one by one through ``/api/v1/contacts``, then groups through the members
endpoint.

A load goes:

1. **list** the workspace's contacts once (``GET /api/v1/contacts?limit=100&sort=createdAt_desc``,
   following ``nextCursor``): phone -> id, name, tags;
2. **create** the rows whose phone is not there (``POST /api/v1/contacts``, one per contact,
   several in flight under the shared 10 req/s limiter);
3. **update** the rows whose phone is there and whose name or tags differ
   (``PUT /api/v1/contacts/{id}`` with the full body); the others are unchanged, no request;
4. **groups**: list the groups, create the missing ones, add the loaded contacts' ids in
   batches of at most 10,000 (``POST /api/v1/contacts/groups/{id}/members``); 100 ids or more
   answer 202 with a bulk job, polled on ``GET /api/v1/contacts/bulk-jobs/{jobId}/progress``
   until ``done``, ``failed`` or ``cancelled``.

Request bodies are built from ``schemas/targets/msgflash.json``: ``name``, ``phone``, ``tags``
and a ``meta`` object holding every other canonical field (email, language, notes, opt-outs,
extension) with the row's custom fields merged in.  A 401/403, the monthly quota or an API
that stays down stops the run: every row not settled yet is ``NOT_SENT`` and re-running the
import is safe (existing contacts are found by phone, member adds are idempotent).

Choices made where the docs are silent
--------------------------------------
- Existing contacts are matched by exact E.164 phone.  When the workspace already holds two
  contacts with one phone, the newest (first listed) is the one compared and updated.
- Duplicate phones are not documented; the sandbox (and we assume production) answers 409
  ``CONFLICT``.  A 409 on create means someone created the contact after our listing: it is
  looked up by ``search=<phone>`` and compared / updated like a listed one.
- The create is not idempotent: after a timeout, a dropped connection or a 5xx, the contact is
  first searched by phone (``recover``) and only re-sent when it is not there, so a retry never
  creates a duplicate.  A contact found this way with our name and tags counts as created
  (our first attempt took effect); otherwise it is updated.
- Only ``name`` and ``tags`` can be compared: list items carry no ``meta``.  A change that is
  only in meta (email, notes, custom fields...) is not seen and the row stays ``UNCHANGED``;
  a row whose name or tags changed is sent whole, meta included.  Tags compare as sets.
- An empty cell means "no opinion": a row without tags neither clears the contact's tags nor
  counts as a difference, and a body without ``meta`` keeps the stored meta.  A row *with*
  tags replaces the stored tags (``PUT`` replaces them, as documented), and a row with meta
  replaces the stored meta.
- ``PUT`` answering 404 (deleted since the listing) creates the contact instead.
- Creates and updates run ``--concurrency`` requests at a time (8 by default): at ~100 ms a
  request one connection cannot reach 10 req/s.  The client-side limiter allows 10 requests
  per 1.025 s, shared by every thread.  The server counts a request when it arrives, so a
  request slower than the quickest one seen (new connection, stalled thread) keeps its slot
  longer by the difference: late arrivals in one window cannot push the next window's
  requests over the limit, and the steady rate stays 10 per window.  The API sends no
  rate-limit headers, so a 429 ``API_RATE_LIMIT_EXCEEDED`` is waited out with backoff.
- A request still failing after every retry (5xx, timeouts, dropped connections) aborts the
  run like a 401 or the quota: its row is ``LOAD_FAILED``, the rows not settled are
  ``NOT_SENT`` (an API down for one request is down for the next).  On an abort the pool
  stops at once: requests waiting for the limiter are never sent, requests already in
  flight finish and are recorded.
- A listing refused with a 4xx (nothing documents one) aborts the run too; a bulk job whose
  progress cannot be read fails its batch's rows with ``GROUP_NOT_ADDED``.
- The key's format is not checked here: a wrong key is answered 401 on the first request,
  the listing, before anything is written.
- Group names match case-insensitively, ignoring surrounding blanks (the API's uniqueness
  rule); a missing group is created with the first spelling met.  A 409 on group create
  lists the groups again.  ``MAX_CONTACT_GROUPS_REACHED`` (a 403) fails that group's rows
  with ``GROUP_NOT_ADDED`` instead of aborting the run.  A group is not created when none of
  its rows was loaded.
- Member batches hold at most ``min(--batch-size, 10000)`` distinct contact ids.  All batches
  are sent first, then the bulk jobs are polled side by side every ``--poll-interval``
  (default 2 s, as documented); a finished job is read once more
  (``GET /api/v1/contacts/bulk-jobs/{jobId}``) for its summary and error.  A failed or
  cancelled job fails every row of its batch with ``GROUP_NOT_ADDED`` (some of them may be in
  the group already; a re-run adds the rest, ``alreadyInGroup`` for the others).  A job whose
  ``processedCount`` does not move for ``JOB_STALL_S`` (10 min) is given up the same way.
- ``notFound`` in a members answer is a count, not a list: contacts deleted between their
  creation and the group add cannot be told apart, so they are reported in ``notes`` and
  their rows stay loaded.
- A run aborted (or interrupted) before a loaded row's groups were confirmed fails that row
  with ``GROUP_NOT_ADDED``: the contact exists, its membership is unknown.
- ``X-Team-Id`` is sent only with a team key (``msgf_team_...``); with a personal key it is
  never sent, even when ``MSGFLASH_TEAM_ID`` is set (the API would answer 403
  ``TEAM_KEY_REQUIRED``).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import httpx
import polars as pl

from pipeline.errors import RemoteError, TerminalRemoteError, UsageError
from pipeline.report.progress import Counter

from .. import config
from ..base import (
    CREATED,
    UNCHANGED,
    UPDATED,
    LoadResult,
    PlanLine,
    Target,
    TargetConfig,
    batches,
    build_entries,
    not_carried,
)
from ..client import ApiClient, ApiRefused, AuthRefused, encode_json
from ..ratelimit import ArrivalWindow, Stopped

log = logging.getLogger("contactpipe")

CONTACTS = "/api/v1/contacts"
GROUPS = "/api/v1/contacts/groups"
JOBS = "/api/v1/contacts/bulk-jobs"
LOADED_STATES = (CREATED, UPDATED, UNCHANGED)
FINAL_JOB_STATES = frozenset({"done", "failed", "cancelled"})


def parse_error(resp: httpx.Response) -> tuple[str, str]:
    """(code, message) from ``{"error": {"code", "message", "details"}}``; the details
    (``[{"field", "message"}]``) are appended to the message."""
    reason = resp.reason_phrase or "error"
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP_{resp.status_code}", reason
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return f"HTTP_{resp.status_code}", reason
    code = str(err.get("code") or f"HTTP_{resp.status_code}")
    message = str(err.get("message") or reason)
    details = _details(err.get("details"))
    return code, f"{message} ({details})" if details else message


def _details(details: Any) -> str:
    if not details:
        return ""
    if isinstance(details, list):
        parts = []
        for d in details:
            if isinstance(d, dict) and "message" in d:
                field = d.get("field")
                parts.append(f"{field}: {d['message']}" if field else str(d["message"]))
            else:
                parts.append(encode_json(d).decode())
        text = "; ".join(parts)
    else:
        text = encode_json(details).decode()
    return text if len(text) <= 300 else text[:297] + "..."


class _Known(NamedTuple):
    """A contact already in the workspace."""

    id: str
    name: str
    tags: list[str]


class _Ticker:
    """Feeds a progress counter from several threads in chunks (every ``every`` units or
    ``seconds``), so that a logged counter writes a line per chunk, not per request."""

    def __init__(self, counter: Counter, note: str, every: int = 500, seconds: float = 5.0):
        self.counter, self.note, self.every, self.seconds = counter, note, every, seconds
        self._pending = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._pending += n
            if self._pending >= self.every or time.monotonic() - self._last >= self.seconds:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.counter.advance(self._pending, self.note)
            self._pending = 0
        self._last = time.monotonic()


class _Job(NamedTuple):
    id: str
    group: str
    rows: list[int]
    requested: int


class MsgFlash(Target):
    """MsgFlash contacts and contact groups (see the module docstring)."""

    name = "msgflash"
    title = "MsgFlash"
    capabilities = frozenset({"groups", "custom_fields", "async_jobs"})

    DEFAULT_BASE_URL: ClassVar[str] = "https://srv.msgflash.com"
    RATE_LIMIT: ClassVar[int] = 10
    """Documented: 10 requests per second per key."""
    RATE_WINDOW_S: ClassVar[float] = 1.0
    RATE_MARGIN_S: ClassVar[float] = 0.025
    PAGE_MAX: ClassVar[int] = 100
    MEMBERS_MAX: ClassVar[int] = 10_000
    ASYNC_THRESHOLD: ClassVar[int] = 100
    JOB_STALL_S: ClassVar[float] = 600.0
    QUOTA_CODES: ClassVar[frozenset[str]] = frozenset({"MONTHLY_API_REQUEST_QUOTA_EXCEEDED"})

    timeout: httpx.Timeout | float | None = None
    """Client timeout (None: the client's default)."""

    _limiter: ArrivalWindow
    _lock: threading.Lock
    _ids: list[str | None]
    """Row -> contact id, once known."""
    _entries: list[dict[str, Any]]
    """Row -> request body."""
    _groups_left: dict[int, int]
    """Row -> groups whose add is not confirmed yet."""

    # -- configuration -----------------------------------------------------------------
    @classmethod
    def config_from_env(cls, env: Mapping[str, str], base_url: str | None) -> TargetConfig:
        """``MSGFLASH_API_KEY`` (+ ``MSGFLASH_TEAM_ID`` for a ``msgf_team_`` key) and
        ``MSGFLASH_BASE_URL`` (default ``https://srv.msgflash.com``)."""
        url = config.base_url(base_url, env, "MSGFLASH_BASE_URL", cls.DEFAULT_BASE_URL, cls.title)
        key = config.require(env, "MSGFLASH_API_KEY", cls.title)
        headers = {"x-api-key": key}
        team_id = env.get("MSGFLASH_TEAM_ID", "").strip()
        if key.startswith("msgf_team_"):
            if not team_id:
                raise UsageError(
                    "MsgFlash: MSGFLASH_API_KEY is a team key (msgf_team_...): "
                    "MSGFLASH_TEAM_ID is not set",
                    hint="export MSGFLASH_TEAM_ID=<the team's id> (team keys need X-Team-Id)",
                )
            headers["X-Team-Id"] = team_id
        elif team_id:
            log.warning(
                "MsgFlash: MSGFLASH_TEAM_ID is ignored: MSGFLASH_API_KEY is a personal key "
                "(X-Team-Id goes with team keys only)"
            )
        return TargetConfig(base_url=url, headers=headers, secrets=(key,))

    def _api(self) -> ApiClient:
        if self._client is None:
            self._limiter = ArrivalWindow(
                self.RATE_LIMIT, self.RATE_WINDOW_S, margin=self.RATE_MARGIN_S
            )
            self._client = ApiClient(
                "MsgFlash",
                self.config.base_url,
                self.config.headers,
                limiter=self._limiter,
                policy=self.policy,
                error_parser=parse_error,
                terminal_429_codes=self.QUOTA_CODES,
                timeout=self.timeout,
                max_connections=max(1, self.options.concurrency),
                stats=self.stats,
            )
        return self._client

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``ApiClient.request`` on this run's client."""
        return self._api().request(method, path, **kwargs)

    # -- plan and dry run --------------------------------------------------------------
    def _member_batch(self) -> int:
        return max(1, min(self.options.batch_size, self.MEMBERS_MAX))

    def plan(self, contacts: pl.DataFrame) -> list[PlanLine]:
        """Upper bounds, assuming no contact and no group exists yet; one listing request
        at least (one per 100 contacts already in the workspace)."""
        n = contacts.height
        rate = self.RATE_LIMIT / self.RATE_WINDOW_S
        lines = [
            PlanLine(
                f"GET {CONTACTS}",
                1,
                0,
                1 / rate,
                "at least 1: one request per 100 contacts already in the workspace",
            ),
            PlanLine(
                f"POST {CONTACTS}",
                n,
                n,
                n / rate,
                "upper bound: existing contacts are updated or skipped instead",
            ),
        ]
        groups = _group_rows(contacts)
        if groups:
            size = self._member_batch()
            members = sum(len(rows) for _, rows in groups.values())
            member_requests = sum(math.ceil(len(rows) / size) for _, rows in groups.values())
            jobs = sum(
                len(rows) // size + (len(rows) % size >= self.ASYNC_THRESHOLD)
                if size >= self.ASYNC_THRESHOLD
                else 0
                for _, rows in groups.values()
            )
            lines += [
                PlanLine(f"GET {GROUPS}", 1, 0, 1 / rate, "at least 1: one per 100 groups"),
                PlanLine(
                    f"POST {GROUPS}",
                    len(groups),
                    len(groups),
                    len(groups) / rate,
                    "upper bound: existing groups (same name, any case) are reused",
                ),
                PlanLine(
                    f"POST {GROUPS}/{{groupId}}/members",
                    member_requests,
                    members,
                    member_requests / rate,
                    f"batches of at most {size:,} ids; 100 or more run as a bulk job",
                ),
            ]
            if jobs:
                lines.append(
                    PlanLine(
                        f"GET {JOBS}/{{jobId}}/progress",
                        jobs,
                        jobs,
                        jobs / rate,
                        f"at least 1 per bulk job, then one every "
                        f"{self.options.poll_interval_s:g} s until it ends",
                    )
                )
        return lines

    def dry_run(self, contacts: pl.DataFrame, directory: Path) -> list[Path]:
        """Write ``msgflash-contacts-0001.ndjson``...: one ``POST /api/v1/contacts`` body per
        line, exactly the bytes sent (``--batch-size`` lines per file); an existing contact
        gets the same body through ``PUT /api/v1/contacts/{id}``.  With groups, also
        ``msgflash-groups.json``: group name -> member phones.  The member request bodies
        themselves (``{"contactIds": [...]}``) cannot be written: the ids only exist once
        the contacts are created."""
        if contacts.height == 0:
            return []
        directory.mkdir(parents=True, exist_ok=True)
        entries = build_entries(contacts, self.fmap)
        files: list[Path] = []
        for k, rows in enumerate(batches(len(entries), self.options.batch_size), start=1):
            path = directory / f"msgflash-contacts-{k:04d}.ndjson"
            path.write_bytes(b"".join(encode_json(entries[i]) + b"\n" for i in rows))
            files.append(path)
        groups = _group_rows(contacts)
        if groups:
            phones = contacts.get_column("phone").to_list()
            doc = {
                name: list(dict.fromkeys(p for i in rows if (p := phones[i])))
                for name, rows in groups.values()
            }
            path = directory / "msgflash-groups.json"
            path.write_bytes(encode_json(doc) + b"\n")
            files.append(path)
        return files

    # -- load --------------------------------------------------------------------------
    def load(self, contacts: pl.DataFrame) -> LoadResult:
        n = contacts.height
        result = self.new_result(n)
        result.not_carried = not_carried(
            contacts, {*self.fmap["fields"], *self.fmap.get("extras", ()), "groups"}
        )
        seconds = dict.fromkeys(("list", "create", "update", "groups"), 0.0)
        result.seconds = seconds
        if n == 0:
            return result
        self._api()
        self._limiter.stop.clear()
        self._lock = threading.Lock()
        self._ids = [None] * n
        self._entries = build_entries(contacts, self.fmap)
        groups = _group_rows(contacts)
        self._groups_left = {}
        for _, rows in groups.values():
            for i in rows:
                self._groups_left[i] = self._groups_left.get(i, 0) + 1
        phase = "list"
        started = time.perf_counter()
        try:
            known = self._list_contacts()
            seconds["list"] = time.perf_counter() - started

            phase, started = "create", time.perf_counter()
            phones = contacts.get_column("phone").to_list()
            to_create = [i for i in range(n) if known.get(phones[i]) is None]
            self._pool(to_create, "create", lambda i: self._create(i, phones[i]))
            seconds["create"] = time.perf_counter() - started

            phase, started = "update", time.perf_counter()
            to_update: list[tuple[int, _Known]] = []
            for i in range(n):
                k = known.get(phones[i])
                if k is None:
                    continue
                self._ids[i] = k.id
                if _same(self._entries[i], k.name, k.tags):
                    result.mark([i], UNCHANGED)
                else:
                    to_update.append((i, k))
            by_row = dict(to_update)
            self._pool(
                list(by_row),
                "update",
                lambda i: self._update(i, by_row[i].id, phones[i], create_if_missing=True),
            )
            seconds["update"] = time.perf_counter() - started

            phase, started = "groups", time.perf_counter()
            self._load_groups(groups, result)
            seconds["groups"] = time.perf_counter() - started
        except (RemoteError, ApiRefused) as exc:  # a refused listing or poll: no row to blame
            seconds[phase] = time.perf_counter() - started
            error = (
                exc
                if isinstance(exc, RemoteError)
                else RemoteError(f"MsgFlash refused a request the load needs ({exc})")
            )
            self._fail_unconfirmed_groups(result, error.message)
            result.abort(error)
        except KeyboardInterrupt:
            self._fail_unconfirmed_groups(result, "the run was interrupted")
            raise
        finally:
            for k in seconds:
                seconds[k] = round(seconds[k], 3)
        return result

    # -- the worker pool ---------------------------------------------------------------
    def _pool(self, rows: list[int], what: str, work: Callable[[int], None]) -> None:
        """Run ``work(i)`` for every row, ``--concurrency`` at a time; stop everything at
        the first error (raised here once the workers are done)."""
        if not rows:
            return
        stop = self._limiter.stop
        errors: list[BaseException] = []
        pick = threading.Lock()
        it = iter(rows)
        result = self.result
        assert result is not None

        with self.progress.counter(f"msgflash {what}", len(rows), "contacts") as counter:
            ticker = _Ticker(counter, f"{what}d" if what.endswith("e") else what)

            def worker() -> None:
                while not stop.is_set():
                    with pick:
                        i = next(it, None)
                    if i is None:
                        return
                    try:
                        work(i)
                    except Stopped:
                        return
                    except ApiRefused as exc:  # a search made for this row was refused
                        self._reject(i, "API_REJECTED", f"{exc.code}: {exc.message}")
                    except BaseException as exc:
                        if isinstance(exc, RemoteError) and not isinstance(
                            exc, TerminalRemoteError
                        ):
                            with self._lock:
                                result.fail([i], "LOAD_FAILED", exc.message)
                        with pick:
                            errors.append(exc)
                        stop.set()
                        return
                    ticker.add(1)

            n_workers = max(1, min(self.options.concurrency, len(rows)))
            with ThreadPoolExecutor(n_workers, thread_name_prefix=f"msgflash-{what}") as pool:
                futures = [pool.submit(worker) for _ in range(n_workers)]
                try:
                    for f in futures:
                        f.result()
                except BaseException:  # Ctrl-C: let the workers finish what is in flight
                    stop.set()
                    raise
            ticker.flush()
        if errors:
            raise errors[0]

    # -- contacts ----------------------------------------------------------------------
    def _pages(self, path: str, params: dict[str, Any], endpoint: str) -> Iterator[Any]:
        """The ``data`` of each page of a cursor-paged listing."""
        cursor: str | None = None
        while True:
            query = {**params, "cursor": cursor} if cursor else params
            data = _data(self._request("GET", path, params=query, endpoint=endpoint), endpoint)
            yield data
            cursor = data.get("nextCursor")
            if not data.get("hasMore") or not cursor:
                return

    def _list_contacts(self) -> dict[str, _Known]:
        """Every contact of the workspace: phone -> (id, name, tags); the newest wins."""
        known: dict[str, _Known] = {}
        params = {"limit": self.PAGE_MAX, "sort": "createdAt_desc"}  # fixed while paging
        pages = self._pages(CONTACTS, params, f"GET {CONTACTS}")
        first = next(pages)
        total = int(first.get("total") or 0)
        with self.progress.counter("msgflash list", total, "contacts") as counter:
            ticker = _Ticker(counter, "listed", every=5000)
            for data in itertools.chain([first], pages):
                page = data.get("contacts") or []
                for item in page:
                    phone = item.get("phone")
                    if phone and phone not in known:
                        name = str(item.get("name") or "")
                        known[phone] = _Known(str(item["id"]), name, item.get("tags") or [])
                ticker.add(len(page))
            ticker.flush()
        return known

    def _find(self, phone: str) -> dict[str, Any] | None:
        """The contact whose phone is exactly ``phone`` (a search is a substring match)."""
        params = {"search": phone, "limit": self.PAGE_MAX}
        for data in self._pages(CONTACTS, params, f"GET {CONTACTS}?search"):
            for item in data.get("contacts") or []:
                if item.get("phone") == phone:
                    return dict(item)
        return None

    def _recover(self, phone: str) -> httpx.Response | None:
        """After a create ended without an answer: the contact if it was created after all
        (a 200 standing for the lost 201), else None to send it again."""
        found = self._find(phone)
        if found is None:
            return None
        log.info("MsgFlash: a create without answer took effect; not sending it again")
        return httpx.Response(200, json={"data": found})

    def _settle(self, rows: Iterable[int], state: int) -> None:
        assert self.result is not None
        with self._lock:
            self.result.mark(list(rows), state)

    def _reject(self, i: int, code: str, message: str) -> None:
        assert self.result is not None
        with self._lock:
            self.result.fail([i], code, message)

    def _create(self, i: int, phone: str | None) -> None:
        """POST one contact; 409 -> look it up and compare / update."""
        body = self._entries[i]
        recover = (lambda: self._recover(phone)) if phone else None
        try:
            resp = self._request(
                "POST",
                CONTACTS,
                json_body=body,
                endpoint=f"POST {CONTACTS}",
                idempotent=False,
                recover=recover,
            )
        except ApiRefused as exc:
            if exc.status != 409 or not phone:
                self._reject(i, "API_REJECTED", f"{exc.code}: {exc.message}")
                return
            found = self._find(phone)
            if found is None:
                self._reject(
                    i,
                    "API_REJECTED",
                    f"{exc.code}: {exc.message} (and no contact with this phone was found)",
                )
                return
            self._existing(i, found, phone, created=False)
            return
        data = _data(resp, f"POST {CONTACTS}")
        if resp.status_code == 201:
            self._ids[i] = str(data["id"])
            self._settle([i], CREATED)
        else:  # recovered: the first attempt took effect (or someone else was faster)
            self._existing(i, data, phone, created=True)

    def _existing(
        self, i: int, found: Mapping[str, Any], phone: str | None, *, created: bool
    ) -> None:
        cid = str(found["id"])
        self._ids[i] = cid
        if _same(self._entries[i], str(found.get("name") or ""), found.get("tags") or []):
            self._settle([i], CREATED if created else UNCHANGED)
        else:
            self._update(i, cid, phone, create_if_missing=False)

    def _update(self, i: int, cid: str, phone: str | None, *, create_if_missing: bool) -> None:
        """PUT the full body; 404 -> create (once)."""
        try:
            resp = self._request(
                "PUT",
                f"{CONTACTS}/{cid}",
                json_body=self._entries[i],
                endpoint=f"PUT {CONTACTS}/{{id}}",
            )
        except ApiRefused as exc:
            if exc.status == 404 and create_if_missing:
                self._ids[i] = None
                self._create(i, phone)
                return
            self._reject(i, "API_REJECTED", f"{exc.code}: {exc.message}")
            return
        data = _data(resp, f"PUT {CONTACTS}/{{id}}")
        self._ids[i] = str(data.get("id") or cid)
        self._settle([i], UPDATED)

    # -- groups ------------------------------------------------------------------------
    def _load_groups(self, groups: dict[str, tuple[str, list[int]]], result: LoadResult) -> None:
        """Create the missing groups and add the loaded rows' contacts to them."""
        state = result.state
        wanted: list[tuple[str, dict[str, list[int]]]] = []
        for key, (_name, rows) in groups.items():
            by_id: dict[str, list[int]] = {}
            for i in rows:
                cid = self._ids[i]
                if state[i] in LOADED_STATES and cid:
                    by_id.setdefault(cid, []).append(i)
            if by_id:
                wanted.append((key, by_id))
        if not wanted:
            return
        existing = self._list_groups()
        size = self._member_batch()
        total = sum(len(by_id) for _, by_id in wanted)
        jobs: list[_Job] = []
        with self.progress.counter("msgflash groups", total, "members") as counter:
            ticker = _Ticker(counter, "added to groups")
            for key, by_id in wanted:
                name = groups[key][0]
                gid = existing.get(key) or self._create_group(name, key, by_id, existing, result)
                if gid is None:
                    continue
                ids = list(by_id)
                for chunk in batches(len(ids), size):
                    batch_ids = [ids[j] for j in chunk]
                    rows = [i for cid in batch_ids for i in by_id[cid]]
                    try:
                        resp = self._request(
                            "POST",
                            f"{GROUPS}/{gid}/members",
                            json_body={"contactIds": batch_ids},
                            endpoint=f"POST {GROUPS}/{{groupId}}/members",
                        )
                    except ApiRefused as exc:
                        result.fail(
                            rows, "GROUP_NOT_ADDED", f"group {name!r}: {exc.code}: {exc.message}"
                        )
                        continue
                    data = _data(resp, f"POST {GROUPS}/{{groupId}}/members")
                    if resp.status_code == 202 or data.get("mode") == "async":
                        jobs.append(_Job(str(data["jobId"]), name, rows, len(batch_ids)))
                        continue
                    self._note_not_found(name, data.get("notFound"), result)
                    self._confirm(rows)
                    ticker.add(len(batch_ids))
            self._follow_jobs(jobs, result, ticker)
            ticker.flush()

    def _list_groups(self, search: str | None = None) -> dict[str, str]:
        """Groups of the workspace: case-folded name -> id."""
        out: dict[str, str] = {}
        params: dict[str, Any] = {"limit": self.PAGE_MAX}
        if search:
            params["search"] = search
        for data in self._pages(GROUPS, params, f"GET {GROUPS}"):
            for g in data.get("groups") or []:
                out.setdefault(_group_key(str(g.get("name") or "")), str(g["id"]))
        return out

    def _create_group(
        self,
        name: str,
        key: str,
        by_id: dict[str, list[int]],
        existing: dict[str, str],
        result: LoadResult,
    ) -> str | None:
        """The new group's id; None (rows failed) when it cannot be created."""
        rows = [i for r in by_id.values() for i in r]
        try:
            resp = self._request(
                "POST", GROUPS, json_body={"name": name}, endpoint=f"POST {GROUPS}"
            )
        except ApiRefused as exc:
            if exc.status == 409:  # created meanwhile: list again
                gid = self._list_groups(search=name[:100]).get(key)
                if gid is not None:
                    existing[key] = gid
                    return gid
            result.fail(rows, "GROUP_NOT_ADDED", f"group {name!r}: {exc.code}: {exc.message}")
            return None
        except AuthRefused as exc:
            # A plan limit is a 403 too; the client cannot tell it from a refused key.
            if "MAX_CONTACT_GROUPS_REACHED" not in exc.message:
                raise
            result.fail(rows, "GROUP_NOT_ADDED", f"group {name!r} not created: {exc.message}")
            return None
        gid = str(_data(resp, f"POST {GROUPS}")["id"])
        existing[key] = gid
        return gid

    def _follow_jobs(self, jobs: list[_Job], result: LoadResult, ticker: _Ticker) -> None:
        """Poll the bulk jobs side by side until each is done, failed or cancelled."""
        processed = {job.id: 0 for job in jobs}
        moved = {job.id: time.monotonic() for job in jobs}
        pending = list(jobs)
        while pending:
            time.sleep(self.options.poll_interval_s)
            for job in list(pending):
                try:
                    resp = self._request(
                        "GET",
                        f"{JOBS}/{job.id}/progress",
                        endpoint=f"GET {JOBS}/{{jobId}}/progress",
                    )
                except ApiRefused as exc:
                    pending.remove(job)
                    result.fail(
                        job.rows,
                        "GROUP_NOT_ADDED",
                        f"group {job.group!r}: bulk job {job.id} cannot be followed "
                        f"({exc.code}: {exc.message})",
                    )
                    continue
                data = _data(resp, f"GET {JOBS}/{{jobId}}/progress")
                status = str(data.get("status") or "")
                count = int(data.get("processedCount") or 0)
                if count > processed[job.id]:
                    ticker.add(count - processed[job.id])
                    processed[job.id] = count
                    moved[job.id] = time.monotonic()
                if status in FINAL_JOB_STATES:
                    pending.remove(job)
                    details = self._job_details(job.id)
                    if status == "done":
                        ticker.add(job.requested - processed[job.id])
                        summary = details.get("summary") or {}
                        self._note_not_found(job.group, summary.get("notFound"), result)
                        self._confirm(job.rows)
                    else:
                        error = details.get("error")
                        result.fail(
                            job.rows,
                            "GROUP_NOT_ADDED",
                            f"group {job.group!r}: bulk job {job.id} {status} after "
                            f"{count:,} of {job.requested:,} contacts"
                            + (f" ({error})" if error else "")
                            + "; re-running the import adds the rest",
                        )
                elif time.monotonic() - moved[job.id] > self.JOB_STALL_S:
                    pending.remove(job)
                    result.fail(
                        job.rows,
                        "GROUP_NOT_ADDED",
                        f"group {job.group!r}: bulk job {job.id} still {status or 'unknown'} "
                        f"after {self.JOB_STALL_S:.0f} s without progress ({count:,} of "
                        f"{job.requested:,} contacts); left running",
                    )

    def _job_details(self, job_id: str) -> dict[str, Any]:
        try:
            resp = self._request("GET", f"{JOBS}/{job_id}", endpoint=f"GET {JOBS}/{{jobId}}")
        except ApiRefused:
            return {}
        data = _data(resp, f"GET {JOBS}/{{jobId}}")
        return data if isinstance(data, dict) else {}

    def _confirm(self, rows: Iterable[int]) -> None:
        for i in rows:
            self._groups_left[i] -= 1

    @staticmethod
    def _note_not_found(group: str, not_found: Any, result: LoadResult) -> None:
        if isinstance(not_found, list):
            not_found = len(not_found)
        if isinstance(not_found, int) and not_found > 0:
            result.notes.append(
                f"group {group!r}: {not_found} contact(s) not found when added "
                "(deleted since they were loaded?)"
            )

    def _fail_unconfirmed_groups(self, result: LoadResult, reason: str) -> None:
        """Loaded rows whose group adds were not confirmed before the run stopped."""
        rows = [
            i
            for i, left in getattr(self, "_groups_left", {}).items()
            if left > 0 and result.state[i] in LOADED_STATES
        ]
        if rows:
            result.fail(
                rows,
                "GROUP_NOT_ADDED",
                f"the contact is loaded, but not (or not surely) in its groups: {reason}",
            )


def _data(resp: httpx.Response, what: str) -> Any:
    """The ``data`` of a 2xx answer; a RemoteError when the answer has none."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict | list):
        raise RemoteError(
            f"MsgFlash {what}: unexpected answer (HTTP {resp.status_code} without a data object)"
        )
    return body["data"]


def _same(entry: Mapping[str, Any], name: str, tags: list[str]) -> bool:
    """Whether a stored contact already has the row's name and (when the row has any) tags."""
    if (entry.get("name") or "").strip() != name.strip():
        return False
    want = entry.get("tags")
    return want is None or set(want) == set(tags)


def _group_key(name: str) -> str:
    return name.strip().casefold()


def _group_rows(contacts: pl.DataFrame) -> dict[str, tuple[str, list[int]]]:
    """Case-folded group name -> (first spelling, rows in it), in order of first appearance."""
    out: dict[str, tuple[str, list[int]]] = {}
    if "groups" not in contacts.columns:
        return out
    for i, names in enumerate(contacts.get_column("groups").to_list()):
        seen: set[str] = set()
        for raw in names or ():
            if raw is None or not raw.strip():
                continue
            key = _group_key(raw)
            if key in seen:
                continue
            seen.add(key)
            out.setdefault(key, (raw.strip(), []))[1].append(i)
    return out


TARGET = MsgFlash
