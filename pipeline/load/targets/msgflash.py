"""MsgFlash: contacts one by one through ``/api/v1/contacts``, then groups through the members
endpoint; export, bulk delete and group membership through the same client (10 req/s).

A load (import) goes:

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

Export
------
``GET /api/v1/contacts?limit=100&sort=createdAt_desc`` following ``nextCursor`` (the sort never
changes while paging), with ``search`` for ``--search``.  ``--group NAME`` exports the members
of that group instead (``GET /api/v1/contacts/groups/{id}/members``, cursor pages of 100,
``search`` too); the group is found by name (any case) with the group search.  ``--tag`` and
``--opt-out`` are refused (:class:`~pipeline.errors.UsageError`, before any request): the API
has no such filter.  Each row: ``phone`` (E.164 with ``+``), ``name``, ``tags``, ``id``,
``created_at``, ``updated_at`` and MsgFlash's ``temperature``; with ``--with-groups`` also
``groups`` (names, sorted), built first by listing every group and then each group's members
(requests: one per 100 groups + the sum of ceil(members / 100), as the plan says).

Delete
------
The rows' contacts are looked up (their ``id`` when the file has one, else every contact with
the row's phone), rows naming none fail ``NOT_FOUND``, then ``POST /api/v1/contacts/bulk-delete``
in batches of ``min(--batch-size, 10000)`` ids: under 100 ids the answer is synchronous, from
100 on it is a bulk job polled on ``.../bulk-jobs/{jobId}/progress`` every ``--poll-interval``
until ``done``, ``failed`` or ``cancelled``.  Ctrl-C while a job runs: ``POST
.../bulk-jobs/{jobId}/cancel``, then each row of that batch is settled from what exists now
(deleted: loaded; still there: ``NOT_SENT``), later batches are ``NOT_SENT``, and the
KeyboardInterrupt goes on (``self.result`` holds the ledger).

Groups
------
``list_groups`` reads every page of ``GET /api/v1/contacts/groups`` (``contactCount`` as
members).  ``create_group`` returns the group of the same name (any case) when there is one.
``change_members`` looks the contacts up as delete does, finds the group by name (created on
add when missing and at least one contact was found; a UsageError on remove), then
``POST`` (add) or ``DELETE`` (remove) ``.../groups/{groupId}/members`` with ``{"contactIds"}``
in batches of ``min(--batch-size, 10000)``, jobs followed to the end as for delete.

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

Export, delete and groups: choices made where the docs are silent
-----------------------------------------------------------------
- An export has no ``meta``: list items carry none (email, notes, language, opt-outs and
  custom fields stay in MsgFlash; reading them would cost one ``GET /contacts/{id}`` per
  contact).  Exporting and importing the result back therefore compares name and tags only,
  and reports every row unchanged.  The ``groups`` column comes back through the members
  endpoint as idempotent adds (answered ``alreadyInGroup``): nothing changes.
- Each contact id is exported once even if pages overlapped (a seen set); contacts created
  during the export are newer than the cursor and do not appear, contacts deleted during it
  leave no gap (a cursor, not an offset).  A phone without ``+`` gets one.
- ``export_total`` is the listing's ``total``; for ``--group`` it is the group's
  ``contactCount`` (unknown with ``--search``: members pages carry no total).
- The export plan makes one request (``limit=1``) for the total; ``--group`` and
  ``--with-groups`` read the group list instead (one request per 100 groups) for the member
  counts.  Groups listed with ``contactCount`` 0 are not paged.  With ``--group`` and
  ``--with-groups`` (no ``--search``), the group's rows come from the membership pages: its
  members are not read twice.
- Lookups (delete, members): the first listing page says how many contacts exist; the rest of
  the listing is read when that is no more requests than one lookup per distinct phone or id,
  otherwise each is looked up, ``--concurrency`` at a time: ``search=<digits>`` (the digits
  match a stored phone with or without ``+``) with an exact match after normalising both
  sides, and ``GET /contacts/{id}`` for an id (404 or 400: not found).  A phone held by
  several contacts names all of them: the row is settled from all of its ids.
- The ``--yes`` safety limit counts distinct contacts (ids) found; a dry run lists them and
  never refuses.
- One bulk request (and job) at a time, so that Ctrl-C has exactly one job to cancel; the
  cancelled job's rows are checked afterwards (the ids' order of processing is not
  documented): by listing (or looking up) the contacts for a delete, by listing the group's
  members for add / remove.  A failed job, a job without progress for ``JOB_STALL_S`` (left
  running) or one whose progress cannot be read is settled the same way: ids done are
  loaded, the others fail (``LOAD_FAILED``, ``GROUP_NOT_ADDED`` for adds).  Interrupted while
  a request was in flight (no job id yet): the batch is checked the same way and a note
  says a job may still be running.
- An id found by the lookup but ``notFound`` at delete time is gone either way: its row is
  loaded and a note counts them.  The members answers give counts only (``alreadyInGroup``,
  ``notInGroup``, ``notFound``): they become notes, the rows stay loaded.
- A refused bulk request (4xx) fails its batch's rows ``API_REJECTED`` and the next batch is
  sent; a 401/403, the quota or an API down aborts: the batch in flight is ``LOAD_FAILED``
  (outcome unknown), the rest ``NOT_SENT``.  A plan's group limit
  (``MAX_CONTACT_GROUPS_REACHED``) on group create is reported as such, not as a bad key.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
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
    LOADED,
    PENDING,
    UNCHANGED,
    UPDATED,
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
from ..client import ApiClient, ApiRefused, AuthRefused, encode_json
from ..ratelimit import ArrivalWindow, Stopped

log = logging.getLogger("contactpipe")

CONTACTS = "/api/v1/contacts"
GROUPS = "/api/v1/contacts/groups"
JOBS = "/api/v1/contacts/bulk-jobs"
BULK_DELETE = f"{CONTACTS}/bulk-delete"
MEMBERS = f"{GROUPS}/{{groupId}}/members"
LOADED_STATES = (CREATED, UPDATED, UNCHANGED)
FINAL_JOB_STATES = frozenset({"done", "failed", "cancelled"})


class _Known(NamedTuple):
    """A contact already in the workspace."""

    id: str
    name: str
    tags: list[str]


class _Ticker:
    """Feeds a progress counter from several threads in chunks (every ``every`` units or
    ``seconds``), so that a logged counter writes a line per chunk, not per request."""

    def __init__(self, counter: Counter, note: str, every: int = 500, seconds: float = 5.0) -> None:
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


class _Op(NamedTuple):
    """One kind of bulk write: bulk delete, or group members add / remove."""

    kind: str
    """``delete``, ``add`` or ``remove``."""
    method: str
    path: str
    endpoint: str
    group_id: str | None
    group_name: str | None
    fail_code: str
    """The code of rows a failed bulk job did not reach."""

    @property
    def done(self) -> str:
        return {"delete": "deleted", "add": "added to the group"}.get(
            self.kind, "removed from the group"
        )


_UNSET = object()


class _Ledger:
    """Per-id outcomes of a bulk write, settled onto the rows holding those ids (a row may
    hold several ids: one phone held by several contacts)."""

    def __init__(self, result: LoadResult, row_ids: list[list[str]]) -> None:
        self.result = result
        self.row_ids = row_ids
        self.outcome: dict[str, tuple[str, str] | None] = {}

    def ok(self, ids: Iterable[str]) -> None:
        for x in ids:
            self.outcome[x] = None

    def failed(self, ids: Iterable[str], code: str, message: str) -> None:
        for x in ids:
            self.outcome[x] = (code, message)

    def settle(self, *, final: bool = False, message: str = "") -> None:
        """Rows whose ids are all decided: LOADED, or failed with their first failure.  With
        ``final``, rows with an id never sent fail ``NOT_SENT`` with ``message``."""
        result = self.result
        state = result.state
        for i, ids in enumerate(self.row_ids):
            if state[i] != PENDING or not ids:
                continue
            outs = [self.outcome.get(x, _UNSET) for x in ids]
            failure = next((o for o in outs if isinstance(o, tuple)), None)
            if failure is not None:
                result.fail([i], *failure)
            elif all(o is None for o in outs):
                result.mark([i], LOADED)
            elif final:
                result.fail([i], "NOT_SENT", message or "not sent: the run stopped before it")


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
            self._client = self.new_client(
                self._limiter,
                terminal_429_codes=self.QUOTA_CODES,
                timeout=self.timeout,
                max_connections=max(1, self.options.concurrency),
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
        entries = build_entries(contacts, self.fmap)
        bodies = (
            b"".join(encode_json(entries[i]) + b"\n" for i in rows)
            for rows in batches(len(entries), self.options.batch_size)
        )
        files = write_request_files(directory, "msgflash-contacts-{:04d}.ndjson", bodies)
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
            to_create = [i for i in range(n) if known.get(_norm_phone(phones[i]) or "") is None]
            self._pool(to_create, "create", lambda i: self._create(i, phones[i]))
            seconds["create"] = time.perf_counter() - started

            phase, started = "update", time.perf_counter()
            to_update: list[tuple[int, _Known]] = []
            for i in range(n):
                k = known.get(_norm_phone(phones[i]) or "")
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
            for step in seconds:
                seconds[step] = round(seconds[step], 3)
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
    def _pages(self, path: str, params: dict[str, Any], endpoint: str) -> Generator[Any]:
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
                    phone = _norm_phone(item.get("phone"))
                    if phone and phone not in known:
                        name = str(item.get("name") or "")
                        known[phone] = _Known(str(item["id"]), name, item.get("tags") or [])
                ticker.add(len(page))
            ticker.flush()
        return known

    def _find(self, phone: str) -> dict[str, Any] | None:
        """The contact whose phone is ``phone`` (a search is a substring match; the digits
        match the API's spelling with or without ``+``)."""
        params = {"search": phone.lstrip("+"), "limit": self.PAGE_MAX}
        for data in self._pages(CONTACTS, params, f"GET {CONTACTS}?search"):
            for item in data.get("contacts") or []:
                if _norm_phone(item.get("phone")) == _norm_phone(phone):
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
        for g in self._groups_raw(search):
            out.setdefault(_group_key(str(g.get("name") or "")), str(g["id"]))
        return out

    def _groups_raw(self, search: str | None = None) -> list[dict[str, Any]]:
        """Every group as the API lists it (all pages, newest first)."""
        params: dict[str, Any] = {"limit": self.PAGE_MAX}
        if search:
            params["search"] = search
        out: list[dict[str, Any]] = []
        for data in self._pages(GROUPS, params, f"GET {GROUPS}"):
            out.extend(g for g in data.get("groups") or [] if isinstance(g, dict) and g.get("id"))
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

    # -- export --------------------------------------------------------------------------
    def _export_search(self, filters: ExportFilters) -> str | None:
        """The ``--search`` value, after refusing what the API cannot filter (no request)."""
        missing = [
            opt
            for opt, given in (
                ("--tag", bool(filters.tag)),
                ("--opt-out", filters.opt_out is not None),
            )
            if given
        ]
        if missing:
            raise UsageError(
                f"MsgFlash cannot filter an export by {' or '.join(missing)}: its contact "
                "listing offers --search (name or phone) and --group only",
                hint="drop the option and filter the exported file instead",
            )
        search = (filters.search or "").strip()
        if len(search) > 100:
            raise UsageError("MsgFlash: --search must be at most 100 characters (the API's limit)")
        if filters.group is not None and not filters.group.strip():
            raise UsageError("MsgFlash: --group needs a group name")
        return search or None

    def _group_named(
        self, name: str, groups: list[dict[str, Any]] | None = None
    ) -> dict[str, Any] | None:
        """The group called ``name`` (any case, surrounding blanks ignored), from ``groups``
        or else from the API's group search."""
        key = _group_key(name)
        if groups is None:
            groups = self._groups_raw(search=name.strip()[:100])
        return next((g for g in groups if _group_key(str(g.get("name") or "")) == key), None)

    def _no_group(self, name: str) -> UsageError:
        return UsageError(
            f"MsgFlash has no group named {name.strip()!r}",
            hint="`contactpipe groups list` shows the groups (names match in any case)",
        )

    def export_plan(self, filters: ExportFilters, with_groups: bool) -> list[PlanLine]:
        """One request to learn the total (the first page of the listing at ``limit=1``);
        ``--group`` and ``--with-groups`` read the group list instead or as well (one request
        per 100 groups) for the member counts."""
        search = self._export_search(filters)
        rate = self.RATE_LIMIT / self.RATE_WINDOW_S
        lines: list[PlanLine] = []
        groups: list[dict[str, Any]] = []
        target: dict[str, Any] | None = None
        if with_groups:
            groups = self._groups_raw()
            pages = max(1, math.ceil(len(groups) / self.PAGE_MAX))
            lines.append(
                PlanLine(
                    f"GET {GROUPS}",
                    pages,
                    len(groups),
                    pages / rate,
                    "--with-groups: every group, 100 per page",
                )
            )
        if filters.group:
            target = self._group_named(filters.group, groups if with_groups else None)
            if target is None:
                raise self._no_group(filters.group)
            if not with_groups:
                lines.append(
                    PlanLine(f"GET {GROUPS}", 1, 1, 1 / rate, f"--group: find {filters.group!r}")
                )
        if target is not None:
            count = _member_count(target)
            if not with_groups or search:
                pages = _pages_for(count, self.PAGE_MAX)
                lines.append(
                    PlanLine(
                        f"GET {MEMBERS}",
                        pages,
                        count or 0,
                        pages / rate,
                        f"--group {target.get('name')!r}: its {count or 0:,} members, 100 per page"
                        + (" (--search keeps some of them)" if search else ""),
                    )
                )
        else:
            total = self._contacts_total(search)
            pages = _pages_for(total, self.PAGE_MAX)
            lines.append(
                PlanLine(
                    f"GET {CONTACTS}",
                    pages,
                    total,
                    pages / rate,
                    f"{total:,} contacts, 100 per page, newest first (sort fixed while paging)",
                )
            )
        if with_groups:
            counts = [_member_count(g) for g in groups]
            requests = sum(_pages_for(c, self.PAGE_MAX) for c in counts if c != 0)
            members = sum(c or 0 for c in counts)
            note = (
                f"--with-groups: the members of each of the {len(groups)} groups, 100 per page "
                "(sum of ceil(members / 100); empty groups skipped)"
            )
            if target is not None and not search:
                note += f"; the {target.get('name')!r} members exported come from these pages"
            lines.append(PlanLine(f"GET {MEMBERS}", requests, members, requests / rate, note))
        return lines

    def _contacts_total(self, search: str | None) -> int:
        params: dict[str, Any] = {"limit": 1, "sort": "createdAt_desc"}
        if search:
            params["search"] = search
        try:
            resp = self._request("GET", CONTACTS, params=params, endpoint=f"GET {CONTACTS}")
        except ApiRefused as exc:
            raise _remote(exc, "the contact listing") from exc
        return int(_data(resp, f"GET {CONTACTS}").get("total") or 0)

    def export(self, filters: ExportFilters, with_groups: bool) -> Iterator[list[dict[str, Any]]]:
        """See the module docstring; filters are checked here, before any request."""
        search = self._export_search(filters)
        self.export_total = None
        group = filters.group.strip() if filters.group else None
        return self._export_pages(search, group, with_groups)

    def _export_pages(
        self, search: str | None, group: str | None, with_groups: bool
    ) -> Iterator[list[dict[str, Any]]]:
        try:
            yield from self._export_inner(search, group, with_groups)
        except ApiRefused as exc:
            raise _remote(exc, "a listing the export needs") from exc

    def _export_inner(
        self, search: str | None, group: str | None, with_groups: bool
    ) -> Iterator[list[dict[str, Any]]]:
        groups = self._groups_raw() if with_groups else []
        target: dict[str, Any] | None = None
        if group:
            target = self._group_named(group, groups if with_groups else None)
            if target is None:
                raise self._no_group(group)
        membership: dict[str, list[str]] | None = None
        kept: list[dict[str, Any]] | None = None
        if with_groups:
            keep = str(target["id"]) if target is not None and not search else None
            membership, kept = self._memberships(groups, keep)
        key = "members"
        total: int | None
        raw: Iterator[Any]
        if target is None:
            key = "contacts"
            params: dict[str, Any] = {"limit": self.PAGE_MAX, "sort": "createdAt_desc"}
            if search:
                params["search"] = search
            raw = self._pages(CONTACTS, params, f"GET {CONTACTS}")
        elif kept is not None:
            chunks = [kept[k : k + self.PAGE_MAX] for k in range(0, len(kept), self.PAGE_MAX)]
            raw = iter([{"members": c} for c in chunks] or [{"members": []}])
        else:
            mparams: dict[str, Any] = {"limit": self.PAGE_MAX}
            if search:
                mparams["search"] = search
            raw = self._pages(f"{GROUPS}/{_quote(target['id'])}/members", mparams, f"GET {MEMBERS}")
        first = next(raw)
        if target is None:
            total = int(first.get("total") or 0)
        elif kept is not None:
            total = len(kept)
        else:
            total = None if search else _member_count(target)
        self.export_total = total
        bar_total = total if total is not None else (_member_count(target or {}) or 0)
        seen: set[str] = set()
        with self.progress.counter("msgflash export", bar_total, "contacts") as counter:
            for data in itertools.chain([first], raw):
                page: list[dict[str, Any]] = []
                for item in data.get(key) or []:
                    cid = str(item.get("id") or "") if isinstance(item, dict) else ""
                    if not cid or cid in seen:
                        continue
                    seen.add(cid)
                    page.append(_export_item(cid, item, membership))
                if page:
                    counter.advance(len(page), "exported")
                    yield page

    def _memberships(
        self, groups: list[dict[str, Any]], keep: str | None
    ) -> tuple[dict[str, list[str]], list[dict[str, Any]] | None]:
        """Contact id -> names of its groups (every group's members, 100 per page; groups
        listed with no member are skipped), and the member items of group ``keep``."""
        names: dict[str, set[str]] = {}
        kept: list[dict[str, Any]] | None = [] if keep else None
        kept_ids: set[str] = set()
        wanted = [g for g in groups if _member_count(g) != 0]
        total = sum(_member_count(g) or 0 for g in wanted)
        with self.progress.counter("msgflash groups", total, "memberships") as counter:
            for g in wanted:
                gid = str(g["id"])
                name = str(g.get("name") or gid)
                path = f"{GROUPS}/{_quote(gid)}/members"
                for data in self._pages(path, {"limit": self.PAGE_MAX}, f"GET {MEMBERS}"):
                    members = [m for m in data.get("members") or [] if isinstance(m, dict)]
                    for m in members:
                        cid = str(m.get("id") or "")
                        if not cid:
                            continue
                        names.setdefault(cid, set()).add(name)
                        if kept is not None and gid == keep and cid not in kept_ids:
                            kept_ids.add(cid)
                            kept.append(m)
                    counter.advance(len(members), name)
        return {cid: sorted(v, key=str.casefold) for cid, v in names.items()}, kept

    # -- lookups (delete, group members) ------------------------------------------------
    def _resolve(self, contacts: pl.DataFrame, result: LoadResult) -> list[list[str]]:
        """Row -> ids of the contacts it names (its ``id``, else every contact with its
        phone); rows naming none are failed ``NOT_FOUND``."""
        n = contacts.height
        cols = contacts.columns
        phones = contacts.get_column("phone").to_list() if "phone" in cols else [None] * n
        given = contacts.get_column("id").cast(pl.String).to_list() if "id" in cols else [None] * n
        want: list[tuple[str, str] | None] = []
        for i in range(n):
            cid = (given[i] or "").strip()
            norm = _norm_phone(phones[i])
            want.append(("id", cid) if cid else ("phone", norm) if norm else None)
        keys = {w for w in want if w is not None}
        answers = self._lookup(keys) if keys else {}
        row_ids: list[list[str]] = []
        for i, w in enumerate(want):
            ids = answers.get(w, []) if w is not None else []
            if not ids:
                if w is None:
                    message = "the row has neither a phone nor an id"
                elif w[0] == "id":
                    message = f"no contact with id {w[1]} in MsgFlash"
                else:
                    message = f"no contact with phone {w[1]} in MsgFlash"
                result.fail([i], "NOT_FOUND", message)
            row_ids.append(ids)
        return row_ids

    def _lookup(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        """(``"phone"``, E.164) or (``"id"``, id) -> ids of the existing contacts.  The first
        listing page says how many contacts there are: the rest of the listing is read when
        that takes no more requests than one lookup per key, else each key is looked up
        (``search=<digits>`` or ``GET /contacts/{id}``), ``--concurrency`` at a time."""
        params = {"limit": self.PAGE_MAX, "sort": "createdAt_desc"}
        pages = self._pages(CONTACTS, params, f"GET {CONTACTS}")
        first = next(pages)
        total = int(first.get("total") or 0)
        left = max(0, math.ceil(total / self.PAGE_MAX) - 1) if first.get("hasMore") else 0
        if left <= len(keys):
            by_phone: dict[str, list[str]] = {}
            ids: set[str] = set()
            with self.progress.counter("msgflash lookup", total, "contacts") as counter:
                ticker = _Ticker(counter, "listed", every=5000)
                for data in itertools.chain([first], pages):
                    page = data.get("contacts") or []
                    for item in page:
                        cid = str(item.get("id") or "")
                        if not cid or cid in ids:
                            continue
                        ids.add(cid)
                        norm = _norm_phone(item.get("phone"))
                        if norm:
                            by_phone.setdefault(norm, []).append(cid)
                    ticker.add(len(page))
                ticker.flush()
            return {
                k: list(by_phone.get(k[1], [])) if k[0] == "phone" else [k[1]] * (k[1] in ids)
                for k in keys
            }
        pages.close()
        ordered = sorted(keys)
        with self.progress.counter("msgflash lookup", len(ordered), "lookups") as counter:
            ticker = _Ticker(counter, "looked up", every=100)
            found = self._parallel(ordered, self._lookup_one, ticker)
            ticker.flush()
        return dict(zip(ordered, found, strict=True))

    def _lookup_one(self, key: tuple[str, str]) -> list[str]:
        kind, value = key
        if kind == "id":
            try:
                self._request(
                    "GET", f"{CONTACTS}/{_quote(value)}", endpoint=f"GET {CONTACTS}/{{id}}"
                )
            except ApiRefused as exc:
                if exc.status in (400, 404):
                    return []
                raise
            return [value]
        params = {"search": value.lstrip("+"), "limit": self.PAGE_MAX}
        out: list[str] = []
        for data in self._pages(CONTACTS, params, f"GET {CONTACTS}?search"):
            for item in data.get("contacts") or []:
                cid = str(item.get("id") or "")
                if cid and cid not in out and _norm_phone(item.get("phone")) == value:
                    out.append(cid)
        return out

    def _parallel(
        self, items: list[Any], work: Callable[[Any], Any], ticker: _Ticker | None = None
    ) -> list[Any]:
        """``[work(x) for x in items]``, ``--concurrency`` at a time under the shared
        limiter; the first error (or Ctrl-C) stops the others before they send."""

        def one(x: Any) -> Any:
            out = work(x)
            if ticker is not None:
                ticker.add(1)
            return out

        n_workers = max(1, min(self.options.concurrency, len(items)))
        if n_workers == 1:
            return [one(x) for x in items]
        stop = self._limiter.stop
        pool = ThreadPoolExecutor(n_workers, thread_name_prefix="msgflash-lookup")
        try:
            futures = [pool.submit(one, x) for x in items]
            return [f.result() for f in futures]
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            stop.clear()

    # -- delete ----------------------------------------------------------------------------
    def delete(
        self, contacts: pl.DataFrame, *, dry_run: bool = False, limit: int | None = None
    ) -> LoadResult:
        """See the module docstring: look up, check the safety limit, bulk-delete."""
        n = contacts.height
        result = self.new_result(n)
        seconds = {"lookup": 0.0, "delete": 0.0}
        result.seconds = seconds
        if n == 0:
            return result
        self._api()
        self._limiter.stop.clear()
        started = time.perf_counter()
        try:
            row_ids = self._resolve(contacts, result)
        except (RemoteError, ApiRefused) as exc:
            result.abort(_remote(exc, "a lookup"))
            return result
        except KeyboardInterrupt:
            result.fail(result.pending(), "NOT_SENT", "not deleted: interrupted during the lookup")
            raise
        finally:
            seconds["lookup"] = round(time.perf_counter() - started, 3)
        by_id = _rows_by_id(row_ids)
        if dry_run:
            result.mark([i for i, ids in enumerate(row_ids) if ids], LOADED)
            return result
        if limit is not None and len(by_id) > limit:
            raise UsageError(
                f"{len(by_id):,} contacts would be deleted, above the safety limit of "
                f"{limit:,}: check the file, or re-run with --yes"
            )
        op = _Op("delete", "POST", BULK_DELETE, f"POST {BULK_DELETE}", None, None, "LOAD_FAILED")
        started = time.perf_counter()
        try:
            self._run_bulk(op, list(by_id), row_ids, result)
        finally:
            seconds["delete"] = round(time.perf_counter() - started, 3)
        return result

    # -- groups: list, create, members -------------------------------------------------------
    def list_groups(self) -> list[dict[str, Any]]:
        self._api()
        try:
            return [_group_out(g) for g in self._groups_raw()]
        except ApiRefused as exc:
            raise _remote(exc, "the group listing") from exc

    def create_group(self, name: str) -> tuple[dict[str, Any], bool]:
        name = _check_group_name(name)
        self._api()
        try:
            found = self._group_named(name)
            if found is not None:
                return _group_out(found), False
            return self._post_group(name)
        except ApiRefused as exc:
            raise _remote(exc, f"creating group {name!r}") from exc

    def _post_group(self, name: str) -> tuple[dict[str, Any], bool]:
        """POST the group; a 409 (created meanwhile) finds it instead."""
        try:
            resp = self._request(
                "POST", GROUPS, json_body={"name": name}, endpoint=f"POST {GROUPS}"
            )
        except ApiRefused as exc:
            if exc.status == 409:
                found = self._group_named(name)
                if found is not None:
                    return _group_out(found), False
            raise
        except AuthRefused as exc:
            if exc.code == "MAX_CONTACT_GROUPS_REACHED" or "MAX_CONTACT_GROUPS_REACHED" in (
                exc.message
            ):
                raise RemoteError(
                    f"MsgFlash: group {name!r} not created: the plan's group limit is reached",
                    hint="delete unused groups in MsgFlash, or upgrade the plan",
                ) from exc
            raise
        return _group_out(_data(resp, f"POST {GROUPS}")), True

    def change_members(self, group: str, contacts: pl.DataFrame, *, add: bool) -> LoadResult:
        """See the module docstring: find the group, look up the contacts, then members
        POST (add) or DELETE (remove) in batches, bulk jobs followed to the end."""
        name = _check_group_name(group)
        n = contacts.height
        result = self.new_result(n)
        seconds = {"lookup": 0.0, "members": 0.0}
        result.seconds = seconds
        self._api()
        self._limiter.stop.clear()
        started = time.perf_counter()
        try:
            found = self._group_named(name)
            if found is None and not add:
                raise self._no_group(name)
            if n == 0:
                return result
            row_ids = self._resolve(contacts, result)
            seconds["lookup"] = round(time.perf_counter() - started, 3)
            by_id = _rows_by_id(row_ids)
            if not by_id:
                return result
            if found is None:
                out, created = self._post_group(name)
                if created:
                    result.notes.append(f"group {out['name']!r} created")
                gid, gname = str(out["id"]), str(out["name"])
            else:
                gid, gname = str(found["id"]), str(found.get("name") or name)
        except (RemoteError, ApiRefused) as exc:
            result.abort(_remote(exc, "a lookup"))
            return result
        except KeyboardInterrupt:
            result.fail(result.pending(), "NOT_SENT", "not sent: interrupted during the lookup")
            raise
        path = f"{GROUPS}/{_quote(gid)}/members"
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
            self._run_bulk(op, list(by_id), row_ids, result)
        finally:
            seconds["members"] = round(time.perf_counter() - started, 3)
        return result

    # -- bulk writes and their jobs ------------------------------------------------------------
    def _run_bulk(
        self, op: _Op, ids: list[str], row_ids: list[list[str]], result: LoadResult
    ) -> None:
        """Send ``ids`` in batches of ``min(--batch-size, 10000)``, one at a time: a sync
        answer settles its batch, a bulk job is polled to its end.  Ctrl-C cancels the job
        running, settles each row from what exists now, and is raised again."""
        ledger = _Ledger(result, row_ids)
        counts: dict[str, int] = {}
        size = self._member_batch()
        inflight: list[str] = []
        job_id: str | None = None
        label = "delete" if op.kind == "delete" else f"group {op.kind}"
        try:
            with self.progress.counter(f"msgflash {label}", len(ids), "contacts") as counter:
                for chunk in batches(len(ids), size):
                    batch = ids[chunk.start : chunk.stop]
                    inflight, job_id = batch, None
                    try:
                        resp = self._request(
                            op.method,
                            op.path,
                            json_body={"contactIds": batch},
                            endpoint=op.endpoint,
                        )
                    except ApiRefused as exc:
                        ledger.failed(batch, "API_REJECTED", f"{exc.code}: {exc.message}")
                        inflight = []
                        ledger.settle()
                        continue
                    data = _data(resp, op.endpoint)
                    if resp.status_code == 202 or data.get("mode") == "async":
                        job_id = str(data["jobId"])
                        status, job = self._follow_job(job_id, len(batch), counter)
                        if status == "done":
                            ledger.ok(batch)
                            _add_counts(counts, job.get("summary"))
                        else:
                            self._settle_stopped(op, job_id, status, job, batch, ledger)
                    else:
                        ledger.ok(batch)
                        _add_counts(counts, data)
                        counter.advance(len(batch), op.done)
                    inflight, job_id = [], None
                    ledger.settle()
        except KeyboardInterrupt:
            try:
                ledger.failed(
                    inflight,
                    "LOAD_FAILED",
                    "interrupted while its request was in flight: whether it was "
                    f"{op.done} is unknown; re-run the command to be sure",
                )
                if inflight:
                    self._interrupted(op, job_id, inflight, ledger)
            finally:
                ledger.settle(final=True, message="not sent: the run was interrupted (Ctrl-C)")
                self._bulk_notes(op, counts, result)
            raise
        except (RemoteError, ApiRefused) as exc:
            error = _remote(exc, f"a {op.kind} request")
            ledger.failed(
                inflight,
                "LOAD_FAILED",
                f"whether it was {op.done} is unknown ({error.message}); re-run the command",
            )
            ledger.settle()
            self._bulk_notes(op, counts, result)
            result.abort(error)
            return
        ledger.settle(final=True)
        self._bulk_notes(op, counts, result)

    def _poll_job(self, job_id: str) -> dict[str, Any]:
        """One read of a bulk job's progress."""
        endpoint = f"GET {JOBS}/{{jobId}}/progress"
        resp = self._request("GET", f"{JOBS}/{_quote(job_id)}/progress", endpoint=endpoint)
        data = _data(resp, endpoint)
        return data if isinstance(data, dict) else {}

    def _follow_job(
        self, job_id: str, requested: int, counter: Counter
    ) -> tuple[str, dict[str, Any]]:
        """Poll every ``--poll-interval`` until ``done``, ``failed`` or ``cancelled`` (then
        read the job for its summary); ``stalled`` when ``processedCount`` has not moved for
        ``JOB_STALL_S``, ``unreadable`` when the progress read is refused."""
        processed = 0
        moved = time.monotonic()
        while True:
            time.sleep(self.options.poll_interval_s)
            try:
                data = self._poll_job(job_id)
            except ApiRefused as exc:
                return "unreadable", {"error": f"{exc.code}: {exc.message}"}
            status = str(data.get("status") or "")
            count = int(data.get("processedCount") or 0)
            if count > processed:
                counter.advance(count - processed, f"job {status}")
                processed = count
                moved = time.monotonic()
            if status in FINAL_JOB_STATES:
                job = {**data, **self._job_details(job_id)}
                if status == "done" and requested > processed:
                    counter.advance(requested - processed, "job done")
                return status, job
            if time.monotonic() - moved > self.JOB_STALL_S:
                return "stalled", data

    def _settle_stopped(
        self,
        op: _Op,
        job_id: str,
        status: str,
        job: dict[str, Any],
        batch: list[str],
        ledger: _Ledger,
    ) -> None:
        """A job that did not finish: settle each id from what exists now."""
        done = self._done_ids(op, batch)
        ledger.ok(x for x in batch if x in done)
        error = job.get("error")
        count = job.get("processedCount")
        after = f" after {int(count):,} of {len(batch):,} contacts" if count is not None else ""
        tail = "; left running" if status == "stalled" else ""
        ledger.failed(
            (x for x in batch if x not in done),
            op.fail_code,
            f"not {op.done}: bulk job {job_id} {status}{after}"
            + (f" ({error})" if error else "")
            + f"{tail}; re-run the command for the rest",
        )

    def _interrupted(self, op: _Op, job_id: str | None, batch: list[str], ledger: _Ledger) -> None:
        """Ctrl-C with ``batch`` sent: cancel its job, then settle each id from what exists."""
        if job_id is not None:
            try:
                self._request(
                    "POST",
                    f"{JOBS}/{_quote(job_id)}/cancel",
                    endpoint=f"POST {JOBS}/{{jobId}}/cancel",
                )
                log.info("MsgFlash: bulk job %s cancelled", job_id)
            except ApiRefused as exc:  # 409: it had finished already
                log.info("MsgFlash: bulk job %s not cancelled (%s)", job_id, exc.code)
        elif self.result is not None:
            self.result.notes.append(
                "interrupted while a request was in flight: if MsgFlash had started a bulk job "
                "for it, that job may still be running"
            )
        done = self._done_ids(op, batch)
        ledger.ok(x for x in batch if x in done)
        ledger.failed(
            (x for x in batch if x not in done),
            "NOT_SENT",
            f"not {op.done}: the run was interrupted (Ctrl-C)"
            + (f" and bulk job {job_id} cancelled before this contact" if job_id else ""),
        )

    def _done_ids(self, op: _Op, ids: list[str]) -> set[str]:
        """Which of ``ids`` are in the wanted state now: deleted (no longer listed or found),
        in the group (add), out of it (remove)."""
        if op.kind == "delete":
            exists = self._lookup({("id", x) for x in ids})
            return {x for x in ids if not exists.get(("id", x))}
        members = self._member_ids(str(op.group_id))
        return {x for x in ids if (x in members) == (op.kind == "add")}

    def _member_ids(self, group_id: str) -> set[str]:
        path = f"{GROUPS}/{_quote(group_id)}/members"
        out: set[str] = set()
        for data in self._pages(path, {"limit": self.PAGE_MAX}, f"GET {MEMBERS}"):
            out.update(str(m["id"]) for m in data.get("members") or [] if m.get("id"))
        return out

    @staticmethod
    def _bulk_notes(op: _Op, counts: dict[str, int], result: LoadResult) -> None:
        group = f"group {op.group_name!r}"
        notes = {
            "delete": [
                (
                    "notFound",
                    "contact(s) were already gone when the delete ran (deleted "
                    "meanwhile): their rows count as deleted",
                ),
            ],
            "add": [
                ("alreadyInGroup", f"contact(s) were already in {group}"),
                (
                    "notFound",
                    f"contact(s) were not found when added to {group} (deleted since the lookup?)",
                ),
            ],
            "remove": [("notInGroup", f"contact(s) were not in {group}")],
        }[op.kind]
        for key, text in notes:
            if counts.get(key):
                result.notes.append(f"{counts[key]:,} {text}")


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


def _remote(exc: RemoteError | ApiRefused, what: str) -> RemoteError:
    if isinstance(exc, RemoteError):
        return exc
    return RemoteError(f"MsgFlash refused {what} ({exc.status} {exc.code}: {exc.message})")


def _quote(value: Any) -> str:
    return urllib.parse.quote(str(value), safe="")


_norm_phone = phone_key


def _pages_for(count: int | None, page: int) -> int:
    """Requests to list ``count`` items (at least one; one when the count is unknown)."""
    return max(1, math.ceil((count or 0) / page))


def _member_count(group: Mapping[str, Any]) -> int | None:
    count = group.get("contactCount")
    return int(count) if isinstance(count, int | float) else None


def _group_out(group: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(group.get("id")),
        "name": group.get("name"),
        "members": _member_count(group),
        "description": group.get("description"),
    }


def _check_group_name(name: str) -> str:
    clean = (name or "").strip()
    if not 1 <= len(clean) <= 100:
        raise UsageError("MsgFlash: a group name must be 1 to 100 characters")
    return clean


def _rows_by_id(row_ids: list[list[str]]) -> dict[str, list[int]]:
    """Contact id -> rows naming it, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, ids in enumerate(row_ids):
        for x in ids:
            out.setdefault(x, []).append(i)
    return out


_COUNT_KEYS = ("deleted", "notFound", "added", "alreadyInGroup", "removed", "notInGroup")


def _add_counts(counts: dict[str, int], data: Any) -> None:
    """Sum the counters of a members / bulk-delete answer or a job summary (``notFound`` is
    a list of ids in a sync bulk-delete answer, a count elsewhere)."""
    if not isinstance(data, dict):
        return
    for key in _COUNT_KEYS:
        value = data.get(key)
        if isinstance(value, list):
            value = len(value)
        if isinstance(value, int):
            counts[key] = counts.get(key, 0) + value


def _export_item(
    cid: str, item: Mapping[str, Any], membership: dict[str, list[str]] | None
) -> dict[str, Any]:
    """A list item (or member item) as an export row: canonical fields, then meta, then
    MsgFlash's ``temperature``."""
    out: dict[str, Any] = {}
    phone = _norm_phone(item.get("phone"))
    if phone:
        out["phone"] = phone
    if item.get("name") is not None:
        out["name"] = item["name"]
    out["tags"] = [str(t) for t in item.get("tags") or []]
    if membership is not None:
        out["groups"] = list(membership.get(cid, ()))
    out["id"] = cid
    if "createdAt" in item:
        out["created_at"] = item["createdAt"]
    if "updatedAt" in item:
        out["updated_at"] = item["updatedAt"]
    if "temperature" in item:
        out["temperature"] = item["temperature"]
    return out


TARGET = MsgFlash
