"""Incremental import: the kit asks the state store which rows the API already confirmed with
the same payload, hands only the others to the target, and records what the API confirmed.

For every target the same way:

- a row whose payload hash equals the one the state confirmed for its phone is ``UNCHANGED``
  without any request (decision ``skipped_by_state``);
- the other rows go through the target's normal path (decision ``sent``), told by
  :attr:`Target.state_known <contactpipe.load.base.Target.state_known>` which phones the
  state says exist (and their remote ids), so that a target never lists the whole account
  to find out;
- an account the state knows nothing of, or ``--full-refresh``, loads every row the way it
  would without state (listing included) and rebuilds the account's state from what the
  API confirmed.

A target's only part is to honour ``state_known`` (skip its listing, update a known id) and
fill ``LoadResult.ids`` when it learns ids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from contactpipe.errors import RemoteError, UsageError
from contactpipe.state import Confirmed, Record, StateStore

from ..base import CREATED, FAILED, LOADED, PENDING, UNCHANGED, UPDATED, LoadResult
from .defer import DEFERRED, WaitTooLong
from .timing import pages

if TYPE_CHECKING:
    from ..base import Target, TargetConfig

NOT_HASHED = ("source_file", "sheet", "row", "id")
"""Columns that say where a row came from, not what is sent: they are not in the hash."""
CONFIRMED = frozenset({CREATED, UPDATED, UNCHANGED, LOADED})

FIRST, INCREMENTAL, FULL_REFRESH, RESUME = "first", "incremental", "full_refresh", "resume"


def new_run_id() -> str:
    return uuid.uuid4().hex


def fingerprint(target: Target) -> tuple[str, str]:
    """(key, label) of the account a target writes to: base URL and the account / workspace /
    phone id its configuration names (``TargetConfig.account``), never a secret.  A
    configuration naming no account (a MsgFlash personal key: the key is the workspace)
    falls back to a one-way digest of its credentials, which cannot be turned back into them."""
    return config_fingerprint(target.name, target.config)


def config_fingerprint(name: str, cfg: TargetConfig) -> tuple[str, str]:
    """:func:`fingerprint` of target ``name`` configured by ``cfg`` (no client needed)."""
    account = cfg.account
    if not account:
        digest = hashlib.sha256("\n".join(cfg.secrets).encode()).hexdigest()[:16]
        account = f"credentials-sha256:{digest}"
    label = f"{cfg.base_url.rstrip('/')} {account}"
    return hashlib.sha256(f"{name}\n{label}".encode()).hexdigest()[:32], label


def row_hashes(target: Target, contacts: pl.DataFrame) -> list[str]:
    """One hash per row of what the row asks the API to hold: every canonical column except
    where it came from, and the target's field map (a new contactpipe mapping fields
    differently sends everything once)."""
    cols = sorted(c for c in contacts.columns if c not in NOT_HASHED)
    key = hashlib.blake2b(json.dumps(target.fmap, sort_keys=True).encode()).digest()
    lines = contacts.select(cols).write_ndjson().encode().splitlines() if contacts.height else []
    return [hashlib.blake2b(line, digest_size=16, key=key).hexdigest() for line in lines]


@dataclass
class Incremental:
    """What the state decided before the load."""

    mode: str
    account: str
    label: str
    run_id: str
    hashes: list[str]
    phones: list[str]
    send: list[int]
    skip: list[int]
    known: dict[str, str] | None
    """Phone -> remote id ('' when unknown) of the contacts the state says exist; None when
    the target must find out itself (first run, full refresh)."""
    in_state: int
    inputs: str = ""
    resumed: int = 0
    """Skipped rows that the interrupted run being resumed had confirmed."""
    unknown_settled: int = 0
    """Batches of unknown outcome (sent, never answered) of the resumed run."""
    forget_others: bool = False
    """A complete run rebuilds the account's state (first run, full refresh)."""
    started: str = ""
    """The store's clock when the rows were decided: a rebuild forgets only records
    confirmed until then (another run into the account at the same time keeps its own)."""
    saved: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, list[int]] = field(default_factory=dict)
    """Bulk jobs a deferred attempt of this run left running (checkpointed in the state):
    job id -> rows waiting on it; the resumed run follows them before sending anything."""
    jobs_followed: dict[str, str] = field(default_factory=dict)
    """Job id -> how it ended, for those followed by this run."""


def prepare(
    store: StateStore,
    target: Target,
    contacts: pl.DataFrame,
    *,
    full_refresh: bool = False,
    resume: bool = False,
    inputs: str = "",
) -> Incremental:
    """Decide, row by row, what must be sent (no request is made).  ``inputs`` is the digest
    of the input files' content; ``resume`` continues the account's last unfinished import
    (same run id), refused when its inputs differ."""
    account, label = fingerprint(target)
    run_id = new_run_id()
    started = store.clock()
    if resume:
        if full_refresh:
            raise UsageError("--resume and --full-refresh contradict each other")
        found = store.unfinished_run(target.name, account)
        if found is None:
            raise UsageError(
                f"--resume: no interrupted import into this {target.title} account to resume",
                hint="run the import without --resume",
            )
        run_id, digest = found
        if digest != inputs:
            raise UsageError(
                f"--resume: the input files differ from those of the interrupted run {run_id}",
                hint="resume with the same files, or run without --resume (the sync state "
                "still skips every contact already confirmed)",
            )
    hashes = row_hashes(target, contacts)
    phones = [p or "" for p in contacts.get_column("phone").to_list()]
    records = {} if full_refresh else store.lookup(target.name, account)
    mode = FULL_REFRESH if full_refresh else INCREMENTAL if records else FIRST
    skip: list[int] = []
    send: list[int] = []
    resumed = 0
    jobs: dict[str, list[int]] = {}
    for i, (phone, h) in enumerate(zip(phones, hashes, strict=True)):
        rec = records.get(phone)
        if rec is not None and rec.payload_hash == h:
            skip.append(i)
            resumed += resume and rec.run_id == run_id
        else:
            send.append(i)
            job = waiting_job(rec, h) if resume and rec is not None else None
            if job is not None and rec is not None and rec.run_id == run_id:
                jobs.setdefault(job, []).append(i)
    known = {p: r.remote_id or "" for p, r in records.items()} if mode == INCREMENTAL else None
    return Incremental(
        mode=RESUME if resume else mode,
        account=account,
        label=label,
        run_id=run_id,
        hashes=hashes,
        phones=phones,
        send=send,
        skip=skip,
        known=known,
        in_state=len(records),
        inputs=inputs,
        resumed=resumed,
        forget_others=mode != INCREMENTAL,
        started=started,
        jobs=jobs,
    )


JOB_PREFIX = "job:"
"""A deferred load's checkpoint of a row waiting on a bulk job: its record's payload hash is
``job:<job id>:<payload hash>`` (never equal to a payload hash, so any other run sends the
row again; a resume of the same run follows the job first).  No extra table or
:class:`~contactpipe.state.StateStore` method: the record also keeps the contact's id."""


def job_hash(job_id: str, payload_hash: str) -> str:
    return f"{JOB_PREFIX}{job_id}:{payload_hash}"


def waiting_job(rec: Record, payload_hash: str) -> str | None:
    """The job a checkpointed row waits on, when its payload is still the same."""
    if not rec.payload_hash.startswith(JOB_PREFIX):
        return None
    job, _, h = rec.payload_hash[len(JOB_PREFIX) :].rpartition(":")
    return job if job and h == payload_hash else None


def savings(target: Target, contacts: pl.DataFrame, inc: Incremental) -> dict[str, Any]:
    """Requests and least time the state avoided, from the plans: the plan of every row
    without state (its listing counted at the account's size as the state knows it) minus
    the plan of the rows sent."""
    previous = target.state_known
    try:
        target.state_known = None
        full = target.plan(contacts)
        target.state_known = inc.known
        sent = target.plan(contacts[inc.send]) if inc.known is not None else full
    finally:
        target.state_known = previous
    full_requests = sum(line.requests for line in full)
    if target.import_page_size:  # the plan counts one listing page, the account has more
        full_requests += pages(inc.in_state, target.import_page_size) - 1
    sent_requests = sum(line.requests for line in sent)
    saved = max(0, full_requests - sent_requests)
    least = None
    if target.rate is not None:
        least = round(
            target.rate.least_seconds(full_requests) - target.rate.least_seconds(sent_requests), 1
        )
    return {
        "requests_without_state": full_requests,
        "requests_planned": sent_requests,
        "requests_avoided": saved,
        "least_seconds_avoided": least,
    }


def merge(full: LoadResult, part: LoadResult, positions: Sequence[int]) -> None:
    """Copy the ledger of a load of ``contacts[positions]`` into ``full``, by position."""
    for j, i in enumerate(positions):
        if part.state[j] != PENDING:
            full.state[i] = part.state[j]
    for j, failure in part.failures.items():
        full.failures[positions[j]] = failure
    for j, cid in part.ids.items():
        full.ids[positions[j]] = cid
    for k, v in part.bulk_counts.items():
        full.bulk_counts[k] += v
    full.not_carried = dict(part.not_carried)
    full.seconds.update(part.seconds)
    full.notes.extend(part.notes)
    full.aborted = part.aborted
    full.jobs = {job: [positions[j] for j in rows] for job, rows in part.jobs.items()}
    full.in_flight = [positions[j] for j in part.in_flight]
    full.in_flight_after = part.in_flight_after


class Recorder:
    """Writes what the API confirms as the load goes: the rows of a settled request before the
    next request goes out, and every quarter of a second (MsgFlash settles row by row), so
    that after ``kill -9`` at most the requests in flight and the last 0.25 s are sent again."""

    FLUSH_EVERY_S = 0.25

    def __init__(self, store: StateStore, target: Target, inc: Incremental) -> None:
        self.store, self.target, self.inc = store, target, inc
        self._pending: list[Confirmed] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self.written = 0
        self.positions: set[int] = set()
        """Rows recorded so far (a row failing a later step, its group, is forgotten)."""
        self.batch = sum(store.batches(inc.run_id).values())  # a resume numbers on
        self._batch_rows: list[int] = []

    def settled(self, result: LoadResult, rows: Sequence[int] | range) -> None:
        inc, state, send = self.inc, result.state, self.inc.send
        done = [send[j] for j in rows if state[j] in CONFIRMED and inc.phones[send[j]]]
        with self._lock:
            self._pending.extend(Confirmed(inc.phones[i], inc.hashes[i]) for i in done)
            self.positions.update(done)
        if time.monotonic() - self._last >= self.FLUSH_EVERY_S:
            # the state's server gone: these rows did load; they stay queued, written by a
            # later flush once it is back, and the load stops before its next request
            with contextlib.suppress(RemoteError):
                self.flush()

    def sending(self, result: LoadResult, rows: Sequence[int]) -> None:
        """A batch goes out: close the previous one in the ledger, write this one ``sent``.
        A state that cannot record the rows answered so far stops the load here, before the
        request (the target settles the rows not sent)."""
        self.flush()
        self.close_batch(result)
        self.batch += 1
        self._batch_rows = list(rows)
        self.store.ledger(self.inc.run_id, self.batch, len(rows), "sent")

    def close_batch(self, result: LoadResult) -> None:
        """The batch sent last: ``confirmed`` when the API answered for its rows, ``failed``
        when it refused them all, still ``sent`` (unknown) when none is settled."""
        if not self._batch_rows:
            return
        states = [result.state[j] for j in self._batch_rows]
        if any(st in CONFIRMED for st in states):
            status = "confirmed"
        elif all(st == FAILED for st in states) and not any(
            result.failures.get(j, ("",))[0] in ("OUTCOME_UNKNOWN", "NOT_SENT", DEFERRED)
            for j in self._batch_rows
        ):
            status = "failed"
        else:
            status = ""
        if status:
            self.store.ledger(self.inc.run_id, self.batch, len(self._batch_rows), status)
        self._batch_rows = []

    def flush(self) -> None:
        with self._lock:
            rows, self._pending = self._pending, []
            self._last = time.monotonic()
            if rows:
                try:
                    self.written += self.store.confirm(
                        self.target.name, self.inc.account, self.inc.run_id, rows
                    )
                except RemoteError:
                    self._pending[:0] = rows  # written by the next flush that gets through
                    raise


def load(target: Target, contacts: pl.DataFrame, inc: Incremental, store: StateStore) -> LoadResult:
    """Load the rows ``inc`` says to send, mark the skipped ones ``UNCHANGED``, and record in
    ``store`` every row the API confirms as it goes, also when the run is interrupted (Ctrl-C,
    SIGTERM, a quota: what was confirmed is kept; ``kill -9``: all but the last request)."""
    full = LoadResult(target.name, contacts.height)
    full.mark(inc.skip, UNCHANGED)
    if inc.mode == RESUME:  # their rows were not confirmed: the normal path sends them again
        inc.unknown_settled = store.settle_unknown(inc.run_id)
    store.begin_run(inc.run_id, target.name, inc.account, inc.inputs)
    store.label(target.name, inc.account, inc.label)
    recorder = Recorder(store, target, inc)
    target.state_known = inc.known
    target.observer = recorder
    target.result = None
    part: LoadResult | None = None
    try:
        if inc.jobs:  # a deferred attempt left bulk jobs running: follow them first
            follow_checkpointed_jobs(target, inc, full, store)
        if not inc.send:
            part = LoadResult(target.name, 0)
        else:
            part = target.load(contacts[inc.send] if inc.skip else contacts)
    finally:
        if part is None:  # interrupted: the target's ledger so far
            part = target.result
        if part is not None and part.n == len(inc.send):
            merge(full, part, inc.send)
        target.result = full
        target.state_known = None
        target.observer = None
        recorder.flush()
        if part is not None and part is not full:
            recorder.close_batch(part)
        waiting = checkpoint_jobs(full, inc)
        later = [
            inc.phones[i]
            for i in recorder.positions
            if full.state[i] not in CONFIRMED and i not in waiting
        ]
        store.forget(target.name, inc.account, later)
        store.confirm(target.name, inc.account, inc.run_id, waiting.values())
        record(store, target, inc, full)
    return full


def follow_checkpointed_jobs(
    target: Target, inc: Incremental, full: LoadResult, store: StateStore
) -> None:
    """The resume of a deferred run: follow the bulk jobs it left running.  The rows of a
    job that ended ``done`` are complete (their contact was confirmed before the job was
    started): recorded with their payload hash and skipped like the rows the attempt
    confirmed; the rows of any other job are sent again.  Jobs still running after
    ``defer_after`` defer this run too (their checkpoint stays)."""
    inc.jobs_followed = target.follow_jobs(list(inc.jobs))
    done = sorted(
        i for job, rows in inc.jobs.items() if inc.jobs_followed.get(job) == "done" for i in rows
    )
    if not done:
        return
    ids = inc.known or {}  # the records' ids, kept (a store need not merge a None id)
    confirmed = [
        Confirmed(inc.phones[i], inc.hashes[i], ids.get(inc.phones[i]) or None) for i in done
    ]
    store.confirm(target.name, inc.account, inc.run_id, confirmed)
    taken = set(done)
    inc.send = [i for i in inc.send if i not in taken]
    inc.skip = sorted([*inc.skip, *done])
    inc.resumed += len(done)
    full.mark(done, UNCHANGED)
    inc.jobs = {job: rows for job, rows in inc.jobs.items() if job not in inc.jobs_followed}


def checkpoint_jobs(full: LoadResult, inc: Incremental) -> dict[int, Confirmed]:
    """A deferral with bulk jobs still running: row -> the record that keeps its job in the
    state (see :data:`JOB_PREFIX`), for the ``DEFERRED`` rows waiting on exactly one job."""
    if not isinstance(full.aborted, WaitTooLong):
        return {}
    jobs = full.jobs or inc.jobs  # the load's own, or those this resume could not finish
    owner: dict[int, str | None] = {}
    for job, rows in jobs.items():
        for i in rows:
            owner[i] = job if i not in owner else None  # in two jobs: simply sent again
    out: dict[int, Confirmed] = {}
    for i, only in owner.items():
        if only is None or not inc.phones[i]:
            continue
        if full.failures.get(i, ("",))[0] == DEFERRED:
            out[i] = Confirmed(inc.phones[i], job_hash(only, inc.hashes[i]), full.ids.get(i))
    return out


def record(store: StateStore, target: Target, inc: Incremental, result: LoadResult) -> int:
    """At the end of a load: keep the remote ids it learnt; close the run (``finished`` when
    every row settled without a stop, else ``interrupted``: ``--resume`` continues it); after
    a complete first run or full refresh, forget the account's contacts the input no longer
    has (the state then holds exactly what this tool loaded there), except those another run
    into the same account confirmed meanwhile (confirmed since this one decided its rows:
    two runs on several machines sharing one state each keep what the other loaded)."""
    rows = [
        Confirmed(inc.phones[i], inc.hashes[i], cid)
        for i, cid in result.ids.items()
        if result.state[i] in CONFIRMED and inc.phones[i]
    ]
    n = store.confirm(target.name, inc.account, inc.run_id, rows)
    done = result.aborted is None and not result.pending()
    store.end_run(inc.run_id, "finished" if done else "interrupted")
    if inc.forget_others and done:
        keep = set(inc.phones)
        records = store.lookup(target.name, inc.account).items()
        stale = [p for p, rec in records if p not in keep and rec.confirmed_at <= inc.started]
        store.forget(target.name, inc.account, stale)
    return n


def forget_contacts(store: StateStore, target: Target, contacts: pl.DataFrame) -> int:
    """After ``delete`` or a group change: forget these phones, so that the next import sends
    them again instead of trusting a state those commands made stale."""
    account, _ = fingerprint(target)
    phones = [p for p in contacts.get_column("phone").to_list() if p]
    return store.forget(target.name, account, phones)


MIRROR_STATE, MIRROR_ALL = "state", "all"


def mirror(
    target: Target,
    store: StateStore,
    keep: set[str],
    mode: str,
    *,
    limit: int | None,
    dry_run: bool = False,
    on_plan: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """``--mirror``: delete from the account the contacts that are not in this input: those
    this tool loaded there earlier (``state``: the state's phones, no listing) or every one
    (``all``: a full listing).  The kit's delete template does the rest: its lookup and its
    safety limit (UsageError before any delete).  The phones deleted (or found gone) are
    forgotten by the state.  ``dry_run``: the candidates from the state (or the listing),
    no delete and no lookup."""
    from ..base import LOADED, ExportFilters

    account, _ = fingerprint(target)
    if mode == MIRROR_ALL:
        found: dict[str, None] = {}
        for page in target.export(ExportFilters(), False):
            for item in page:
                phone = item.get("phone")
                if phone and phone not in keep:
                    found[str(phone)] = None
        phones = list(found)
    else:
        phones = sorted(p for p in store.lookup(target.name, account) if p not in keep)
    doomed = pl.DataFrame({"phone": phones}, schema={"phone": pl.String})
    out: dict[str, Any] = {"mode": mode, "candidates": len(phones)}
    if dry_run:
        return {**out, "dry_run": True, "would_delete": phones}
    if not phones:
        return {**out, "deleted": 0, "not_found": 0, "failed": 0, "plan": []}
    out["plan"] = [dataclasses.asdict(line) for line in target.delete_plan(doomed)]
    if on_plan is not None:  # shown before the first delete, like `contactpipe delete`
        on_plan(out["plan"])
    result = target.delete(doomed, limit=limit)
    codes = [c for c, _ in result.failures.values()]
    gone = [phones[i] for i in range(len(phones)) if result.state[i] == LOADED]
    gone += [phones[i] for i, (c, _) in result.failures.items() if c == "NOT_FOUND"]
    store.forget(target.name, account, gone)
    return {
        **out,
        "deleted": sum(1 for s in result.state if s == LOADED),
        "not_found": codes.count("NOT_FOUND"),
        "failed": len(codes) - codes.count("NOT_FOUND"),
        "aborted": result.aborted.message if result.aborted else None,
        "notes": result.notes,
    }


def summary(inc: Incremental, result: LoadResult, store: StateStore) -> dict[str, Any]:
    """``summary.json``'s ``load.state``: how each row was decided and what the state saved;
    ``unavailable`` says why the state could not record this run when its server went away
    (the rows it confirmed are then sent again by the next import)."""
    confirmed = sum(1 for i in inc.send if result.state[i] in CONFIRMED)
    unavailable = None
    try:
        batches: dict[str, int] | None = store.batches(inc.run_id)
    except RemoteError as exc:
        batches, unavailable = None, exc.message
    return {
        "path": store.path,
        "mode": inc.mode,
        "account": inc.label,
        "run_id": inc.run_id,
        "contacts_in_state_before": inc.in_state,
        "decided": {
            "sent": len(inc.send),
            "skipped_by_state": len(inc.skip) - inc.resumed,
            "resumed": inc.resumed,
        },
        "confirmed_this_run": confirmed,
        "batches": batches,
        "unknown_batches_settled": inc.unknown_settled,
        "jobs_followed": inc.jobs_followed,
        "saved": inc.saved,
        "unavailable": unavailable,
    }
