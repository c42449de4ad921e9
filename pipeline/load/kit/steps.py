"""The loops every target runs the same way: batches sent one after the other, deletes and
group changes (look up, safety limit, dry run, write), and what happens when the remote side
stops the run.

The rules, for every target:

- A request still failing after every retry (the API down) or refused for the key aborts the
  run: the rows of the request in flight fail ``LOAD_FAILED`` when the API could not be
  reached (whether it took effect is unknown), the rows not settled yet are ``NOT_SENT``.
- A refusal of one request (4xx) fails its rows and the next request is sent.
- Deletes and group changes look the contacts up first (:mod:`.lookup`); a dry run stops
  there (the rows found are LOADED: "would be"), a real run checks the safety limit
  (distinct contacts found) before the first write.  A contact named by several rows is
  written once.  A contact found by the lookup but gone when written (deleted meanwhile, or
  by an attempt whose answer was lost) counts as deleted, with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import polars as pl

from contactpipe.errors import RemoteError, UsageError

from ..base import LOADED, LoadResult
from ..client import ApiRefused, Unreachable
from .lookup import Directory, resolve, rows_by_id

if TYPE_CHECKING:
    from ..base import Target

DELETED = "deleted"
GONE = "gone"
"""What :func:`delete_each`'s writer answers: deleted now, or found gone (404)."""


def fail_in_flight(result: LoadResult, rows: Sequence[int], exc: RemoteError, what: str) -> None:
    """The remote side stopped the run with ``rows`` in flight: settle them, then abort."""
    if rows and isinstance(exc, Unreachable):
        result.fail(list(rows), "LOAD_FAILED", f"{what} failed after retries: {exc.message}")
    result.abort(exc)


def send_batches(
    target: Target,
    work: Sequence[tuple[Sequence[int], bytes]],
    send: Callable[[int, Sequence[int], bytes], int],
    result: LoadResult,
    label: str,
) -> None:
    """``send(k, rows, body)`` for each batch in order (it settles its rows and returns how
    many loaded); a remote abort settles the batch in flight and the rest."""
    current: Sequence[int] = ()
    total = sum(len(rows) for rows, _ in work)
    try:
        with target.progress.counter(label, total, "contacts") as bar:
            for k, (rows, body) in enumerate(work, 1):
                current = rows
                result.sending(rows, target.stats.requests)
                ok = send(k, rows, body)
                current = ()
                bar.advance(len(rows), f"batch {k}/{len(work)}: {len(rows):,} rows, {ok:,} ok")
    except RemoteError as exc:
        fail_in_flight(result, current, exc, "the request")


def too_many(found: int, limit: int | None) -> None:
    """The safety limit of ``contactpipe delete``: UsageError before any delete."""
    if limit is not None and found > limit:
        raise UsageError(
            f"{found:,} contacts would be deleted, above the safety limit of {limit:,}:"
            " check the file, or re-run with --yes"
        )


def look_up(
    target: Target, contacts: pl.DataFrame, directory: Directory, result: LoadResult
) -> dict[str, list[int]] | None:
    """Contact id -> rows (file order), rows naming no contact failed ``NOT_FOUND``; None
    when the lookup was stopped by the remote side (the result is then aborted)."""
    t0 = time.perf_counter()
    try:
        return rows_by_id(resolve(contacts, directory, result))
    except RemoteError as exc:
        result.abort(exc)
        return None
    except ApiRefused as exc:
        result.abort(
            RemoteError(f"{target.title} refused a lookup ({exc.status} {exc.code}: {exc.message})")
        )
        return None
    except KeyboardInterrupt:
        result.fail(result.pending(), "NOT_SENT", "not sent: interrupted during the lookup")
        raise
    finally:
        result.seconds["lookup"] = round(time.perf_counter() - t0, 3)


def delete_template(
    target: Target,
    contacts: pl.DataFrame,
    directory: Directory,
    write: Callable[[dict[str, list[int]], LoadResult], None],
    *,
    dry_run: bool,
    limit: int | None,
) -> LoadResult:
    """Look up, then (dry run) report what would be deleted, or check the safety limit and
    ``write(by_id, result)``."""
    result = target.new_result(contacts.height)
    result.seconds.update(lookup=0.0, delete=0.0)
    if contacts.height == 0:
        return result
    by_id = look_up(target, contacts, directory, result)
    if by_id is None:
        return result
    if dry_run:
        for rows in by_id.values():
            result.mark(rows, LOADED)
        result.notes.append(f"dry run: {len(by_id):,} contact(s) would be deleted")
        return result
    too_many(len(by_id), limit)
    t0 = time.perf_counter()
    try:
        write(by_id, result)
    finally:
        result.seconds["delete"] = round(time.perf_counter() - t0, 3)
    return result


def delete_each(
    target: Target,
    by_id: dict[str, list[int]],
    delete_one: Callable[[str], str],
    result: LoadResult,
) -> None:
    """Delete contacts one at a time: ``delete_one(id)`` answers :data:`DELETED` or
    :data:`GONE`, raises ApiRefused for a refusal (the rows fail ``API_REJECTED``) or a
    RemoteError that stops the run."""
    current: list[int] = []
    gone = 0
    try:
        with target.progress.counter(f"{target.name} delete", len(by_id), "contacts") as bar:
            for cid, rows in by_id.items():
                current = rows
                try:
                    outcome = delete_one(cid)
                except ApiRefused as exc:
                    result.fail(
                        rows,
                        "API_REJECTED",
                        f"{target.title} refused the delete ({exc.status} {exc.code}): "
                        f"{exc.message}",
                    )
                    bar.advance(1, f"{cid}: API_REJECTED")
                else:
                    result.mark(rows, LOADED)
                    gone += outcome == GONE
                    bar.advance(1)
                current = []
    except RemoteError as exc:
        fail_in_flight(result, current, exc, "the delete")
    finally:
        note_gone(result, gone)


def note_gone(result: LoadResult, gone: int) -> None:
    if gone:
        result.notes.append(
            f"{gone:,} contact(s) were already gone when the delete ran (deleted meanwhile):"
            " their rows count as deleted"
        )
