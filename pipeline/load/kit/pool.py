"""One bounded worker pool for requests sent side by side under a shared rate limiter."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from contactpipe.report.progress import Counter

from ..ratelimit import Stopped

T = TypeVar("T")
R = TypeVar("R")


def run_pool(
    items: Sequence[T],
    work: Callable[[T], R],
    *,
    workers: int,
    stop: threading.Event,
    name: str = "contactpipe",
) -> list[R | None]:
    """``[work(x) for x in items]``, at most ``workers`` at a time.

    The first exception (or Ctrl-C) sets ``stop``: the limiter then refuses every request
    still waiting for a slot (:class:`~contactpipe.load.ratelimit.Stopped`), requests already in
    flight finish, and the exception is raised once every worker is done.  ``stop`` is
    cleared on the way out, so that the caller can still send (to settle what was in flight).
    Results of items never run are None."""
    results: list[R | None] = [None] * len(items)
    if not items:
        return results
    errors: list[BaseException] = []
    pick = threading.Lock()
    order = iter(range(len(items)))

    def worker() -> None:
        while not stop.is_set():
            with pick:
                k = next(order, None)
            if k is None:
                return
            try:
                results[k] = work(items[k])
            except Stopped:
                return
            except BaseException as exc:
                with pick:
                    errors.append(exc)
                stop.set()
                return

    n = max(1, min(workers, len(items)))
    try:
        with ThreadPoolExecutor(n, thread_name_prefix=name) as pool:
            # each worker in a copy of the caller's context: the load's deferral threshold
            # (contactpipe.load.kit.defer) reaches the limiter from every thread
            futures = [pool.submit(contextvars.copy_context().run, worker) for _ in range(n)]
            try:
                for f in futures:
                    f.result()
            except BaseException:  # Ctrl-C: let the workers finish what is in flight
                stop.set()
                raise
    finally:
        stop.clear()
    if errors:
        raise errors[0]
    return results


class Ticker:
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
