"""One follower of asynchronous jobs: poll side by side until each ends or stalls."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..client import ApiRefused

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
    raised: the caller settles the rows and aborts."""
    processed = dict.fromkeys(job_ids, 0)
    moved = dict.fromkeys(job_ids, time.monotonic())
    pending = list(dict.fromkeys(job_ids))
    while pending:
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
