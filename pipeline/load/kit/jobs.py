"""One follower of asynchronous jobs: poll side by side until each ends or stalls."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..client import ApiRefused
from .defer import JobWatch

FINAL = frozenset({"done", "failed", "cancelled"})
STALLED = "stalled"
UNREADABLE = "unreadable"


def follow_jobs(
    job_ids: Sequence[str],
    poll: Callable[[str], Mapping[str, Any]],
    *,
    interval_s: float,
    stall_s: float,
    on_progress: Callable[[str, int], None] = lambda job, n: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Poll every job every ``interval_s`` and yield ``(job id, status, last answer)`` as
    each ends: ``done``, ``failed`` or ``cancelled``; ``stalled`` when ``processedCount``
    has not moved for ``stall_s`` (the job is left running); ``unreadable`` when the API
    refuses the poll (the answer is then ``{"error": ...}``).  ``on_progress(job, n)``
    hears of ``n`` more items processed.  A remote error (API down, key refused) is
    raised: the caller settles the rows and aborts.

    In a load run with ``defer_after`` (:mod:`.defer`), jobs still running after that many
    seconds raise :class:`~contactpipe.load.kit.defer.WaitTooLong` (naming them, with the
    time left estimated from their progress) instead of the next wait."""
    processed = dict.fromkeys(job_ids, 0)
    requested: dict[str, int] = {}
    moved = dict.fromkeys(job_ids, time.monotonic())
    pending = list(dict.fromkeys(job_ids))
    watch = JobWatch()
    while pending:
        watch.check(pending, interval_s, _time_left(pending, processed, requested, watch))
        sleep(interval_s)
        for job in list(pending):
            try:
                data = dict(poll(job))
            except ApiRefused as exc:
                pending.remove(job)
                yield job, UNREADABLE, {"error": f"{exc.code}: {exc.message}"}
                continue
            status = str(data.get("status") or "")
            count = int(data.get("processedCount") or 0)
            if isinstance(data.get("requestedCount"), int):
                requested[job] = int(data["requestedCount"])
            if count > processed[job]:
                on_progress(job, count - processed[job])
                processed[job] = count
                moved[job] = time.monotonic()
            if status in FINAL:
                pending.remove(job)
                yield job, status, data
            elif time.monotonic() - moved[job] > stall_s:
                pending.remove(job)
                yield job, STALLED, data


def _time_left(
    pending: Sequence[str],
    processed: Mapping[str, int],
    requested: Mapping[str, int],
    watch: JobWatch,
) -> float | None:
    """Seconds the pending jobs still need at the rate they went so far (None: unknown)."""
    done = sum(processed.values())
    elapsed = time.monotonic() - watch.started
    if done <= 0 or elapsed <= 0 or any(job not in requested for job in pending):
        return None
    left = sum(max(0, requested[job] - processed[job]) for job in pending)
    return left / (done / elapsed)
