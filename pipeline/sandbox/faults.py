"""The fault switch: make the next N matching requests fail, stall or drop the connection.

Usage from Python::

    sandbox.faults.add("msgflash", "POST", "/api/v1/contacts", times=2, status=503)
    sandbox.faults.add("waapi", "*", "/api/external/contacts/*/bulk", delay_s=0.5)
    sandbox.faults.add("vobiz", "GET", "/api/v1/messaging/contacts*", drop=True)

and over HTTP: ``POST /__sandbox__/faults`` with the same fields as JSON.

Choices
-------
- ``path`` is a glob (``fnmatch``; ``*`` also crosses ``/``) matched against the request
  path without its query string; ``method`` and ``api`` accept ``*``.
- Faults are tried in the order they were added; the first active match is consumed.
  ``times=None`` keeps a fault active until cleared.
- A faulted request never reaches the API: it is not authenticated, not rate-limited, and
  changes no state.  ``delay_s`` alone delays, then serves the request normally; with
  ``status`` it delays, then answers the error; with ``drop`` it delays, then drops.
- A ``status`` fault answers in the API's own error envelope, with ``code`` (default: the
  API's usual code for that status) and a ``Retry-After`` header when ``retry_after`` is set.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

APIS = ("msgflash", "waapi", "vobiz")
_ids = itertools.count(1)


@dataclass
class Fault:
    api: str
    method: str
    path: str
    times: int | None = 1
    status: int | None = None
    delay_s: float = 0.0
    drop: bool = False
    code: str | None = None
    retry_after: int | None = None
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        if self.api != "*" and self.api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)} or '*'")
        if self.status is None and not self.drop and self.delay_s <= 0:
            raise ValueError("a fault needs status, delay_s or drop")
        if self.status is not None and self.drop:
            raise ValueError("status and drop are exclusive")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 (or None for 'until cleared')")
        if self.delay_s < 0:
            raise ValueError("delay_s must be >= 0")

    def matches(self, api: str, method: str, path: str) -> bool:
        return (
            self.api in ("*", api)
            and self.method in ("*", method)
            and fnmatch.fnmatchcase(path, self.path)
        )

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.times

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultSwitch:
    """Registered faults; thread-safe because tests add faults while a server thread serves."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        api: str,
        method: str = "*",
        path: str = "*",
        *,
        times: int | None = 1,
        status: int | None = None,
        delay_s: float = 0.0,
        drop: bool = False,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> Fault:
        """Register a fault for the next ``times`` requests matching api, method and path."""
        fault = Fault(api, method, path, times, status, delay_s, drop, code, retry_after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, api: str, method: str, path: str) -> Fault | None:
        """Consume and return the first active fault matching this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.active and fault.matches(api, method, path):
                    fault.hits += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for f in self._faults if f.active)
