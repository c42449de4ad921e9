"""Incremental import: the kit asks the state store which rows the API already confirmed with
the same payload, hands only the others to the target, and records what the API confirmed.

For every target the same way:

- a row whose payload hash equals the one the state confirmed for its phone is ``UNCHANGED``
  without any request (decision ``skipped_by_state``);
- the other rows go through the target's normal path (decision ``sent``), told by
  :attr:`Target.state_known <pipeline.load.base.Target.state_known>` which phones the
  state says exist (and their remote ids), so that a target never lists the whole account
  to find out;
- an account the state knows nothing of, or ``--full-refresh``, loads every row the way it
  would without state (listing included) and rebuilds the account's state from what the
  API confirmed.

A target's only part is to honour ``state_known`` (skip its listing, update a known id) and
fill ``LoadResult.ids`` when it learns ids.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from pipeline.state import Confirmed, StateStore

from ..base import CREATED, LOADED, PENDING, UNCHANGED, UPDATED, LoadResult
from .timing import pages

if TYPE_CHECKING:
    from ..base import Target

NOT_HASHED = ("source_file", "sheet", "row", "id")
"""Columns that say where a row came from, not what is sent: they are not in the hash."""
CONFIRMED = frozenset({CREATED, UPDATED, UNCHANGED, LOADED})

FIRST, INCREMENTAL, FULL_REFRESH = "first", "incremental", "full_refresh"


def new_run_id() -> str:
    return uuid.uuid4().hex


def fingerprint(target: Target) -> tuple[str, str]:
    """(key, label) of the account a target writes to: base URL and the account / workspace /
    phone id its configuration names (``TargetConfig.account``), never a secret.  A
    configuration naming no account (a MsgFlash personal key: the key is the workspace)
    falls back to a one-way digest of its credentials, which cannot be turned back into them."""
    cfg = target.config
    account = cfg.account
    if not account:
        digest = hashlib.sha256("\n".join(cfg.secrets).encode()).hexdigest()[:16]
        account = f"credentials-sha256:{digest}"
    label = f"{cfg.base_url.rstrip('/')} {account}"
    return hashlib.sha256(f"{target.name}\n{label}".encode()).hexdigest()[:32], label


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
    saved: dict[str, Any] = field(default_factory=dict)


def prepare(
    store: StateStore,
    target: Target,
    contacts: pl.DataFrame,
    *,
    full_refresh: bool = False,
    run_id: str | None = None,
) -> Incremental:
    """Decide, row by row, what must be sent (no request is made)."""
    account, label = fingerprint(target)
    hashes = row_hashes(target, contacts)
    phones = [p or "" for p in contacts.get_column("phone").to_list()]
    records = {} if full_refresh else store.lookup(target.name, account)
    mode = FULL_REFRESH if full_refresh else INCREMENTAL if records else FIRST
    skip: list[int] = []
    send: list[int] = []
    for i, (phone, h) in enumerate(zip(phones, hashes, strict=True)):
        rec = records.get(phone)
        (skip if rec is not None and rec.payload_hash == h else send).append(i)
    known = {p: r.remote_id or "" for p, r in records.items()} if mode == INCREMENTAL else None
    return Incremental(
        mode=mode,
        account=account,
        label=label,
        run_id=run_id or new_run_id(),
        hashes=hashes,
        phones=phones,
        send=send,
        skip=skip,
        known=known,
        in_state=len(records),
    )


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
    full.in_flight = [positions[j] for j in part.in_flight]
    full.in_flight_after = part.in_flight_after


def load(target: Target, contacts: pl.DataFrame, inc: Incremental, store: StateStore) -> LoadResult:
    """Load the rows ``inc`` says to send, mark the skipped ones ``UNCHANGED``, and record in
    ``store`` every row the API confirmed, also when the run is interrupted (Ctrl-C, SIGTERM:
    what was confirmed before is kept)."""
    full = LoadResult(target.name, contacts.height)
    full.mark(inc.skip, UNCHANGED)
    target.state_known = inc.known
    part: LoadResult | None = None
    try:
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
        record(store, target, inc, full)
    return full


def record(store: StateStore, target: Target, inc: Incremental, result: LoadResult) -> int:
    """Write the rows the API confirmed in this run; after a complete first run or full
    refresh, forget the account's contacts the input no longer has (the state then holds
    exactly what this tool loaded there)."""
    rows = [
        Confirmed(inc.phones[i], inc.hashes[i], result.ids.get(i))
        for i in inc.send
        if result.state[i] in CONFIRMED and inc.phones[i]
    ]
    n = store.confirm(target.name, inc.account, inc.run_id, rows)
    store.label(target.name, inc.account, inc.label)
    if inc.mode != INCREMENTAL and result.aborted is None and not result.pending():
        keep = set(inc.phones)
        stale = [p for p in store.lookup(target.name, inc.account) if p not in keep]
        store.forget(target.name, inc.account, stale)
    return n


def forget_contacts(store: StateStore, target: Target, contacts: pl.DataFrame) -> int:
    """After ``delete`` or a group change: forget these phones, so that the next import sends
    them again instead of trusting a state those commands made stale."""
    account, _ = fingerprint(target)
    phones = [p for p in contacts.get_column("phone").to_list() if p]
    return store.forget(target.name, account, phones)


def summary(inc: Incremental, result: LoadResult, store: StateStore) -> dict[str, Any]:
    """``summary.json``'s ``load.state``: how each row was decided and what the state saved."""
    confirmed = sum(1 for i in inc.send if result.state[i] in CONFIRMED)
    return {
        "path": store.path,
        "mode": inc.mode,
        "account": inc.label,
        "run_id": inc.run_id,
        "contacts_in_state_before": inc.in_state,
        "decided": {"sent": len(inc.send), "skipped_by_state": len(inc.skip)},
        "confirmed_this_run": confirmed,
        "saved": inc.saved,
    }
