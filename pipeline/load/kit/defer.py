"""Deferral: stop a load cleanly before a wait longer than ``--defer-after``, so that a
scheduler can free the worker and resume the import later (issue 14).

Long waits happen in two places only, and both ask :func:`check_wait` before waiting:

- a limiter's :meth:`~contactpipe.load.ratelimit.Limiter.acquire` (the documented window is
  used up, e.g. WAAPI's 100 requests / 15 min, or the server asked for a pause with
  ``Retry-After`` / ``RateLimit-Reset``: :class:`~contactpipe.load.client.ApiClient` hands
  that pause to the limiter);
- the job follower :func:`~contactpipe.load.kit.jobs.follow_jobs` (a bulk job still running
  after ``--defer-after`` seconds).

Outside a :func:`watching` block nothing changes.  Inside it, a wait above the threshold
raises :class:`WaitTooLong` instead of sleeping.  It is a
:class:`~contactpipe.errors.TerminalRemoteError`, so every target handles it the way it
handles a stop that sent nothing more (a quota): the worker pool lets the requests in flight
finish and settle their rows, no new request starts, the rows not sent are failed by
``LoadResult.abort`` -- with the code ``DEFERRED`` instead of ``NOT_SENT``.  It is also a
:class:`~contactpipe.errors.Deferred` (exit 75): the run ends "not done yet, resume after
``resume_at``".

The threshold is held in a context variable set by the run around the load; the worker
pool (:func:`~contactpipe.load.kit.pool.run_pool`) runs its workers in a copy of the
caller's context, so the limiter sees it from every worker thread.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from contactpipe.errors import Deferred, TerminalRemoteError

DEFERRED = "DEFERRED"
"""The code of a row the deferred run did not send (re-sent by the resumed run)."""


class WaitTooLong(Deferred, TerminalRemoteError):
    """The load would wait longer than ``--defer-after``: it stops before sending more."""

    def __init__(
        self,
        message: str,
        *,
        resume_at: dt.datetime,
        reason: str,
        wait_s: float,
        jobs: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, resume_at=resume_at, reason=reason, hint=hint)
        self.wait_s = wait_s
        self.jobs: tuple[str, ...] = tuple(jobs)
        """Bulk jobs still running when the load stopped (the resume follows them)."""


class DeferWatch:
    """The threshold of one load, and the deferral it raised (the first one wins: several
    workers may meet the same window at once)."""

    def __init__(self, after_s: float | None, yield_after_s: float | None = None) -> None:
        if after_s is not None and not after_s > 0:
            raise ValueError("defer_after must be a positive number of seconds")
        if yield_after_s is not None and not yield_after_s > 0:
            raise ValueError("yield_after must be a positive number of seconds")
        self.after_s = math.inf if after_s is None else float(after_s)
        """Waits above this defer (infinite: only ``yield_after_s`` defers)."""
        self.yield_after_s = yield_after_s
        """Sending for longer than this defers at the next request, with no wait: the run
        hands its worker back and resumes at once (a scheduler may run other tasks first)."""
        self.started = time.monotonic()
        self.raised: WaitTooLong | None = None
        self._lock = threading.Lock()

    def check(self, wait_s: float, reason: str, *, jobs: Sequence[str] = ()) -> None:
        """Raise :class:`WaitTooLong` when ``wait_s`` is above the threshold (or when a
        deferral was already decided by another thread: no request starts after it)."""
        if self.raised is not None:
            raise self.raised
        if wait_s > self.after_s:
            raise self.defer(wait_s, reason, jobs=jobs)
        self.check_slice(wait_s)

    def check_slice(self, wait_s: float = 0.0) -> None:
        """Raise :class:`WaitTooLong` (resume at once) once the load has been sending for
        longer than ``yield_after_s``."""
        if self.raised is not None:
            raise self.raised
        if self.yield_after_s is None:
            return
        busy = time.monotonic() - self.started
        if busy > self.yield_after_s:
            raise self.defer(
                max(0.0, wait_s),
                f"sending for {busy:.0f} s, above yield_after ({self.yield_after_s:g} s): "
                "the worker is handed back and the import resumes at once",
            )

    def defer(self, wait_s: float, reason: str, *, jobs: Sequence[str] = ()) -> WaitTooLong:
        """The deferral for a wait of ``wait_s`` seconds from now (recorded once)."""
        with self._lock:
            if self.raised is None:
                now = dt.datetime.now(dt.UTC)
                resume_at = (now + dt.timedelta(seconds=max(0.0, wait_s))).replace(microsecond=0)
                resume_at += dt.timedelta(seconds=1)  # rounded up: never too early
                self.raised = WaitTooLong(
                    f"deferred: {reason}; resume after {resume_at.isoformat()}",
                    resume_at=resume_at,
                    reason=reason,
                    wait_s=wait_s,
                    jobs=jobs,
                    hint="run the same import with --resume after that time",
                )
            return self.raised


_current: contextvars.ContextVar[DeferWatch | None] = contextvars.ContextVar(
    "contactpipe_defer", default=None
)


def current() -> DeferWatch | None:
    """The threshold of the load running in this context (None: waits are waited out)."""
    return _current.get()


@contextmanager
def watching(
    after_s: float | None, yield_after_s: float | None = None
) -> Iterator[DeferWatch | None]:
    """Defer waits longer than ``after_s`` seconds inside the block (None: never), and the
    load itself once it has been sending for ``yield_after_s`` seconds (None: never)."""
    both = after_s is None and yield_after_s is None
    watch = None if both else DeferWatch(after_s, yield_after_s)
    token = _current.set(watch)
    try:
        yield watch
    finally:
        _current.reset(token)


def check_wait(wait_s: float, reason: str, *, jobs: Sequence[str] = ()) -> None:
    """Called before a wait of ``wait_s`` seconds: raise :class:`WaitTooLong` when the load
    in this context defers waits that long."""
    watch = _current.get()
    if watch is not None:
        watch.check(wait_s, reason, jobs=jobs)


def check_slice() -> None:
    """Called before each request starts: raise :class:`WaitTooLong` (resume at once) when
    the load in this context has been sending longer than its ``yield_after``."""
    watch = _current.get()
    if watch is not None and watch.yield_after_s is not None:
        watch.check_slice()


class JobWatch:
    """The job follower's side: how long it has been following, and when to stop."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def check(
        self, job_ids: Sequence[str], interval_s: float, estimate_s: float | None, *, polled: bool
    ) -> None:
        """Before the next poll: defer once the jobs have been polled and are still running,
        when the wait for them goes past the threshold: the next poll would come after it,
        or their progress so far (``estimate_s`` left) says they end after it.  The resume
        follows them (see :mod:`contactpipe.load.kit.state`)."""
        watch = _current.get()
        if watch is None:
            return
        if watch.raised is not None:
            raise watch.raised
        if not polled:  # a job that ends at once is never deferred
            return
        followed = time.monotonic() - self.started
        late = followed + interval_s > watch.after_s
        if late or (estimate_s is not None and followed + estimate_s > watch.after_s):
            left = estimate_s if estimate_s is not None else interval_s
            raise watch.defer(
                max(left, interval_s),
                f"{len(job_ids)} bulk job(s) still running after {followed:.0f} s"
                + (f", about {estimate_s:.0f} s left" if estimate_s is not None else ""),
                jobs=job_ids,
            )
