"""What a run's HTTP client is told and what it counts, without the client itself: the retry
policy (part of :class:`~contactpipe.load.base.LoadOptions`) and the request statistics.

Kept apart from :mod:`contactpipe.load.client` so that the options of a load can be built and
the validate path can run without importing httpx (start-up time).  Both names are re-exported
by :mod:`contactpipe.load.client`, where they have always been imported from.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .timeline import Timeline


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.  ``attempts`` counts every send of one request (first included)."""

    attempts: int = 6
    backoff_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_throttle_wait_s: float = 1800.0
    throttle_backoff_s: float = 1.0


@dataclass
class ClientStats:
    """What the client did, for ``summary.json``'s ``load`` object."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    bytes_sent: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, endpoint: str, sent: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_sent += sent
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        self.timeline.record("requests")

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)
        self.timeline.record(name, n)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "bytes_sent": self.bytes_sent,
            "requests_by_endpoint": dict(sorted(self.by_endpoint.items())),
            "timeline": self.timeline.as_dict(),
        }
