"""Requests over time, in a bounded number of buckets, for the run report's chart.

Every event (a request sent, a 429 received, a retry) goes into the bucket of its time since
the first event.  Buckets start ``start_width_s`` wide; when an event falls past the last of
``max_buckets``, the width doubles and neighbours merge, so a 3-second demo and a 3-hour import
both end with at most ``max_buckets`` buckets (a few hundred bytes in ``summary.json``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

KINDS = ("requests", "rate_limited", "retries")


class Timeline:
    """Counts per kind and per time bucket, thread-safe."""

    def __init__(
        self,
        *,
        max_buckets: int = 120,
        start_width_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_buckets < 2:
            raise ValueError("max_buckets must be at least 2")
        self.max_buckets = max_buckets
        self.width_s = start_width_s
        self._clock = clock
        self._t0: float | None = None
        self._last_s = 0.0
        self._counts: dict[str, list[int]] = {k: [] for k in KINDS}
        self._lock = threading.Lock()

    def record(self, kind: str, n: int = 1) -> None:
        """Count ``n`` events of ``kind`` (one of :data:`KINDS`) now."""
        if kind not in self._counts:
            return
        with self._lock:
            now = self._clock()
            if self._t0 is None:
                self._t0 = now
            elapsed = max(0.0, now - self._t0)
            self._last_s = max(self._last_s, elapsed)
            index = int(elapsed / self.width_s)
            while index >= self.max_buckets:
                self._halve()
                index = int(elapsed / self.width_s)
            series = self._counts[kind]
            if len(series) <= index:
                series.extend([0] * (index + 1 - len(series)))
            series[index] += n

    def _halve(self) -> None:
        self.width_s *= 2
        for kind, series in self._counts.items():
            self._counts[kind] = [sum(series[i : i + 2]) for i in range(0, len(series), 2)]

    def as_dict(self) -> dict[str, Any]:
        """``{"bucket_s", "seconds", "requests", "rate_limited", "retries"}``: equal-length
        lists, one count per bucket; empty lists before the first request."""
        with self._lock:
            length = max((len(s) for s in self._counts.values()), default=0)
            out: dict[str, Any] = {
                "bucket_s": round(self.width_s, 6),
                "seconds": round(self._last_s, 3),
            }
            for kind, series in self._counts.items():
                out[kind] = series + [0] * (length - len(series))
            return out
