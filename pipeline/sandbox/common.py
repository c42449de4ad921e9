"""Building blocks shared by the three fake APIs: clock, rate limiters, ordered index, errors.

Choices made where the docs are silent
--------------------------------------
- Phone validation is syntactic only, the strict E.164 pattern ``^\\+[1-9]\\d{6,14}$``: no
  numbering-plan check (the real APIs are not documented to run one), so an old 8-digit
  Benin number passes here as it would there.
- Two rate-limiter shapes: a sliding window that counts accepted requests only (MsgFlash,
  Vobiz: "N per second") and an express-rate-limit fixed window that counts every hit,
  rejected ones included (WAAPI, a Node.js backend).
- Time comes from a :class:`Clock`; :class:`ManualClock` lets tests move time by hand.
  Wall-clock timestamps are derived from the same clock so a jump shows in ``updatedAt``.
"""

from __future__ import annotations

import gc
import math
import re
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard, TypeVar

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")


def is_e164(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and E164_RE.match(value) is not None


class Clock:
    """Monotonic seconds plus a wall clock derived from them."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = self.monotonic()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self, mono: float | None = None) -> datetime:
        at = self.monotonic() if mono is None else mono
        return datetime.fromtimestamp(self._wall0 + (at - self._mono0), UTC)


class ManualClock(Clock):
    """A clock that only moves when told to: ``clock.advance(2.5)``."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        super().__init__()

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds


def iso_ms(at: datetime) -> str:
    """``2024-01-15T10:30:00.000Z`` (MsgFlash, WAAPI)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def iso_s(at: datetime) -> str:
    """``2026-03-01T10:00:00Z`` (Vobiz, RFC 3339 UTC)."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An API-level error; each API renders it in its own envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


T = TypeVar("T")


def found(table: Mapping[str, T], key: str, message: str) -> T:
    """``table[key]``, or a 404 ``NOT_FOUND`` with ``message`` (each API words its own)."""
    item = table.get(key)
    if item is None:
        raise ApiError(404, "NOT_FOUND", message)
    return item


@dataclass
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: int


class SlidingWindowLimiter:
    """At most ``limit`` accepted requests in any ``window_s`` seconds, per key."""

    def __init__(self, limit: int | None, window_s: float, clock: Clock) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> RateDecision:
        if self.limit is None:
            return RateDecision(True, 0, 0, 0.0, 0)
        now = self.clock.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            wait = hits[0] + self.window_s - now
            return RateDecision(False, self.limit, 0, wait, max(1, math.ceil(wait)))
        hits.append(now)
        reset = hits[0] + self.window_s - now
        return RateDecision(True, self.limit, self.limit - len(hits), reset, 0)


class FixedWindowLimiter:
    """express-rate-limit's memory store: a window starts at a key's first hit; every hit
    (rejected or not) counts."""

    def __init__(self, limit: int | None, window_s: float, clock: Clock) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> RateDecision:
        if self.limit is None:
            return RateDecision(True, 0, 0, 0.0, 0)
        now = self.clock.monotonic()
        start, count = self._windows.get(key, (now, 0))
        if now >= start + self.window_s:
            start, count = now, 0
        count += 1
        self._windows[key] = (start, count)
        reset = start + self.window_s - now
        allowed = count <= self.limit
        retry = 0 if allowed else max(1, math.ceil(reset))
        return RateDecision(allowed, self.limit, max(0, self.limit - count), reset, retry)


@dataclass
class SeqIndex:
    """Keys in creation order (strictly increasing ``seq``) for keyset pagination.

    Removal is lazy: stale slots are skipped while iterating and compacted away when they
    outnumber live ones, so paging 100,000 items costs O(log n + page) per page.
    """

    _seqs: list[int] = field(default_factory=list)
    _keys: list[str] = field(default_factory=list)
    _live: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, seq: int) -> None:
        if self._seqs and seq <= self._seqs[-1]:
            raise ValueError("seq must increase")
        self._live[key] = seq
        self._seqs.append(seq)
        self._keys.append(key)

    def discard(self, key: str) -> None:
        if self._live.pop(key, None) is not None and len(self._seqs) > 2 * len(self._live) + 64:
            pairs = [
                (s, k)
                for s, k in zip(self._seqs, self._keys, strict=True)
                if self._live.get(k) == s
            ]
            self._seqs = [s for s, _ in pairs]
            self._keys = [k for _, k in pairs]

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def __len__(self) -> int:
        return len(self._live)

    def seq_of(self, key: str) -> int | None:
        return self._live.get(key)

    def iter_desc(self, before: int | None = None) -> Iterator[tuple[int, str]]:
        """Live (seq, key) pairs, newest first, strictly older than ``before``."""
        i = len(self._seqs) if before is None else bisect_left(self._seqs, before)
        seqs, keys, live = self._seqs, self._keys, self._live
        for j in range(i - 1, -1, -1):
            if live.get(keys[j]) == seqs[j]:
                yield seqs[j], keys[j]

    def iter_asc(self, after: int | None = None) -> Iterator[tuple[int, str]]:
        """Live (seq, key) pairs, oldest first, strictly newer than ``after``."""
        i = 0 if after is None else bisect_right(self._seqs, after)
        seqs, keys, live = self._seqs, self._keys, self._live
        for j in range(i, len(seqs)):
            if live.get(keys[j]) == seqs[j]:
                yield seqs[j], keys[j]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector around a large synchronous bulk operation: the
    tens of thousands of objects a 50,000-contact call allocates would otherwise trigger
    repeated full collections (a several-fold slowdown).  Nothing here creates cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_int(raw: str | None, default: int) -> int | None:
    """An integer query parameter, ``default`` when absent, None when not an integer."""
    if raw is None or raw == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        return None


def str_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
