"""The request journal: one entry per API request the sandbox answered (or dropped).

Entries hold the API name, method, path, query string, status, the number of items of a
bulk call, and whether a fault answered.  They never hold headers or bodies, so no key or
token can leak through them.  Admin requests (``/__sandbox__/...``) are not journaled.

``items`` is the number of elements a bulk call carried: MsgFlash ``contactIds`` (bulk delete,
members add/remove), WAAPI ``contacts`` (bulk) and ``contact_ids`` (group add/remove), Vobiz
CSV data rows (import); None for every other request.

``violations`` lists how the request stepped outside its API's contract, checked strictly
(bulk entries included), when the sandbox runs with ``contract_audit``; empty otherwise.  The
messages name fields and parameters, never a header value.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JournalEntry:
    api: str
    method: str
    path: str
    query: str
    status: int | None
    items: int | None = None
    fault: str | None = None
    duration_ms: float = 0.0
    violations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    """A bounded, thread-safe list of :class:`JournalEntry`."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    def record(self, entry: JournalEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(
        self, api: str | None = None, method: str | None = None, path: str | None = None
    ) -> list[JournalEntry]:
        """Entries, oldest first, optionally filtered by api, method and exact path."""
        with self._lock:
            snapshot = list(self._entries)
        return [
            e
            for e in snapshot
            if (api is None or e.api == api)
            and (method is None or e.method == method.upper())
            and (path is None or e.path == path)
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.entries())

    def __getitem__(self, index: int) -> JournalEntry:
        with self._lock:
            return self._entries[index]
