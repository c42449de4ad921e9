"""Rows -> contact ids, for delete and group changes, with one cost rule for every target.

A row names a contact by its ``id`` (when the file has an ``id`` column and the cell is not
empty) or else by its phone.  Every key is checked against the API, ids included, in dry runs
and real runs alike: so a dry run lists exactly what the real run will delete, the safety
limit counts contacts that exist, and a contact gone between the lookup and the write is
told apart from an id that never existed.

The cost rule: the first page of the listing says how many pages there are; when the
remaining pages are no more than the keys to look up, the listing is read to the end
(stopping early once every key is found is not possible for phones, which several contacts
may share); otherwise each key is looked up: a phone search (``search=<digits>``, matched
exactly after normalising both sides) or a read of the id.  A single key is looked up
directly.  Lookups run ``workers`` at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Generator
from dataclasses import dataclass, field

import polars as pl

from contactpipe.report.progress import NullProgress, Progress

from ..base import LoadResult
from ..client import ApiRefused
from .phones import norm_phone
from .pool import Ticker, run_pool

Key = tuple[str, str]
"""(``"id"``, id) or (``"phone"``, normalised E.164)."""
Listing = Generator[tuple[list[tuple[str, str | None]], int | None], None, None]
"""Pages of (id, normalised phone); the first page's second item is how many pages are left
(None: the API did not say)."""


@dataclass
class Directory:
    """How a target finds its contacts."""

    title: str
    listing: Callable[[], Listing]
    search: Callable[[str], list[str]]
    """Ids of the contacts whose normalised phone is exactly the one given."""
    exists: Callable[[str], bool]
    unique_phones: bool = False
    """One contact per phone (an upsert by phone): a phone found on the listing's first page
    needs no search."""
    workers: int = 1
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=NullProgress)
    label: str = "lookup"


def exists_by_get(
    get: Callable[[str], object], missing: Container[int] | None = (400, 404)
) -> Callable[[str], bool]:
    """A :attr:`Directory.exists` from ``get(id)``, a GET of one contact: True when it answers,
    False when the API refuses it with a ``missing`` status (None: with any refusal), and any
    other error raised."""

    def exists(cid: str) -> bool:
        try:
            get(cid)
        except ApiRefused as exc:
            if missing is None or exc.status in missing:
                return False
            raise
        return True

    return exists


def row_keys(contacts: pl.DataFrame) -> list[Key | None]:
    """Each row's key: its id when it has one, else its normalised phone, else None."""
    n = contacts.height
    cols = contacts.columns
    phones = contacts.get_column("phone").to_list() if "phone" in cols else [None] * n
    ids = contacts.get_column("id").cast(pl.String).to_list() if "id" in cols else [None] * n
    out: list[Key | None] = []
    for i in range(n):
        cid = (ids[i] or "").strip()
        phone = norm_phone(phones[i])
        out.append(("id", cid) if cid else ("phone", phone) if phone else None)
    return out


def find(keys: set[Key], d: Directory) -> dict[Key, list[str]]:
    """Key -> ids of the existing contacts it names, at the least cost (module docstring)."""
    if not keys:
        return {}
    hits: dict[Key, list[str]] = {}
    if len(keys) > 1:
        pages = d.listing()
        first, left = next(pages)
        if left is not None and left <= len(keys):
            by_phone: dict[str, list[str]] = {}
            ids: set[str] = set()
            with d.progress.counter(d.label, len(keys), "contacts") as bar:
                for items, _ in _chain(first, pages):
                    for cid, phone in items:
                        if cid in ids:
                            continue
                        ids.add(cid)
                        if phone:
                            by_phone.setdefault(phone, []).append(cid)
                bar.advance(len(keys), "listing read")
            return {
                k: list(by_phone.get(k[1], [])) if k[0] == "phone" else [k[1]] * (k[1] in ids)
                for k in keys
            }
        pages.close()
        hits = _hits(first, keys, d.unique_phones)
    ordered = sorted(keys - hits.keys())

    def one(key: Key) -> list[str]:
        kind, value = key
        found = d.search(value) if kind == "phone" else [value] * d.exists(value)
        ticker.add(1)
        return found

    with d.progress.counter(d.label, len(ordered), "lookups") as bar:
        ticker = Ticker(bar, "looked up", every=100)
        found = run_pool(ordered, one, workers=d.workers, stop=d.stop, name="lookup")
        ticker.flush()
    return {**hits, **{k: v or [] for k, v in zip(ordered, found, strict=True)}}


def _hits(page: list[tuple[str, str | None]], keys: set[Key], phones: bool) -> dict[Key, list[str]]:
    """Keys settled by one listing page: ids found, and phones when they are unique."""
    out: dict[Key, list[str]] = {}
    for cid, phone in page:
        if ("id", cid) in keys:
            out[("id", cid)] = [cid]
        if phones and phone and ("phone", phone) in keys:
            out.setdefault(("phone", phone), [cid])
    return out


def _chain(first: list[tuple[str, str | None]], rest: Listing) -> Listing:
    yield first, None
    yield from rest


def resolve(contacts: pl.DataFrame, d: Directory, result: LoadResult) -> list[list[str]]:
    """Row -> ids of the contacts it names; rows naming none fail ``NOT_FOUND``."""
    want = row_keys(contacts)
    answers = find({k for k in want if k is not None}, d)
    row_ids: list[list[str]] = []
    for i, key in enumerate(want):
        ids = answers.get(key, []) if key is not None else []
        if not ids:
            if key is None:
                message = "the row has neither a phone nor an id"
            else:
                message = f"no {d.title} contact with {key[0]} {key[1]}"
            result.fail([i], "NOT_FOUND", message)
        row_ids.append(ids)
    return row_ids


def rows_by_id(row_ids: list[list[str]]) -> dict[str, list[int]]:
    """Contact id -> rows naming it, in order of first appearance (a contact named by
    several rows is written once)."""
    out: dict[str, list[int]] = {}
    for i, ids in enumerate(row_ids):
        for x in ids:
            out.setdefault(x, []).append(i)
    return out


def lookup_requests(keys: int, total: int | None, page_size: int) -> tuple[int, str]:
    """Requests the lookup of ``keys`` keys takes in an account of ``total`` contacts, and
    how (for plans)."""
    if keys == 0:
        return 0, "nothing to look up"
    pages = max(1, -(-(total or 0) // page_size))
    if keys > 1 and total is not None and pages - 1 <= keys:
        return pages, f"the whole listing ({total:,} contacts, {page_size} per page)"
    first = 1 if keys > 1 else 0
    return first + keys, f"one lookup per phone or id ({keys:,}), at least one page each"
