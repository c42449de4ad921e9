"""Client-side rate limiting: stay under each API's limit before the server complains.

Two limiters, both thread-safe and blocking in :meth:`acquire`:

- :class:`SlidingWindow` -- at most ``limit`` request starts in any ``window`` seconds, plus a
  small safety margin so that network jitter cannot squeeze two starts closer at the server
  than they were here (MsgFlash 10/s, WAAPI 100 / 15 min); each 429 seen anyway widens the
  margin.
- :class:`ArrivalWindow` -- the same, counted where the server counts (on arrival): a request
  slower than the quickest seen holds its slot longer (MsgFlash's 10/s with 100 ms latency).
- :class:`Adaptive` -- no stated limit (Vobiz): unlimited until the server answers 429, then
  additive-increase / multiplicative-decrease on the request rate.

Both honour a server-imposed pause (``Retry-After``, ``RateLimit-Reset`` with no requests
remaining) through :meth:`pause_for`.

:meth:`Limiter.share` moves a limiter's window into a :class:`~contactpipe.load.ratestore.
RateStore` (a file shared by this machine's runs, or Redis): the processes writing to one
account then share its limit, its server pauses and its 429 widening.  Every wait, shared or
not, goes through the limiter's ``sleep``.

Every wait is announced to :func:`contactpipe.load.kit.defer.check_wait` before it starts:
inside a load run with ``defer_after``, a wait above it raises
:class:`~contactpipe.load.kit.defer.WaitTooLong` instead (nothing is sent).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .kit.defer import check_slice, check_wait

if TYPE_CHECKING:
    from .ratestore import RateStore

Clock = Callable[[], float]

_TOKENS = itertools.count()
_PROCESS = uuid.uuid4().hex[:12]


def _token() -> str:
    """A name for one request start, unique across processes and machines."""
    return f"{_PROCESS}-{next(_TOKENS)}"


class Limiter:
    """Interface: ``acquire()`` before each request; ``pause_for(s)`` when the server says wait;
    ``on_success()`` / ``on_throttled()`` feed adaptive limiters."""

    def __init__(
        self, clock: Clock = time.monotonic, sleep: Callable[[float], object] | None = None
    ) -> None:
        self.stop = threading.Event()
        """Set when the run is stopping: threads waiting in :meth:`acquire` raise
        :class:`Stopped` at once instead of sending."""
        self._clock = clock
        self._sleep = sleep or self.stop.wait  # a wait that ends as soon as the run stops
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self.store: RateStore | None = None
        """Where the window lives when shared (:meth:`share`); None: in this object."""
        self.key = ""

    def share(self, store: RateStore, key: str) -> None:
        """Keep this limiter's window, pauses and widening in ``store`` under ``key`` (the
        account), shared with every process using the same store and key."""
        self.store, self.key = store, key

    def pause_for(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (the server asked for it); with a
        store, every worker sharing it holds too."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
        if self.store is not None and seconds > 0:
            self.store.pause(self.key, seconds)

    def _pause_left(self) -> float:
        return self._paused_until - self._clock()

    def acquire(self, *, may_defer: bool = True) -> float:
        """Block until a request may start; return the seconds waited.  A wait longer than
        the load's ``defer_after`` raises :class:`~contactpipe.load.kit.defer.WaitTooLong`
        instead (not with ``may_defer=False``: a resend whose first attempt's outcome is
        unknown is waited out, so that no row is left unknown by a deferral)."""
        waited = 0.0
        if may_defer:
            check_slice()  # a load past its yield_after hands its worker back here
        while True:
            if self.stop.is_set():
                raise Stopped
            with self._lock:
                pause, window = self._pause_left(), 0.0
                if self.store is None:
                    window = self._next_delay()
                    if max(pause, window) <= 0:
                        self._record()
                        return waited
            if self.store is not None and pause <= 0:
                wait, paused = self._take_shared(self.store)
                if wait <= 0:
                    return waited
                if paused:  # another worker of the account met a server pause
                    pause = wait
                else:
                    window = wait
            delay = max(pause, window)
            if may_defer:
                check_wait(
                    delay,
                    f"the server asked for a pause of {pause:.0f} s"
                    if pause >= delay
                    else f"the rate limit allows the next request in {delay:.0f} s"
                    + (" (window shared by every run on this account)" if self.store else ""),
                )
            self._sleep(min(delay, 1.0))
            waited += min(delay, 1.0)

    def _take_shared(self, store: RateStore) -> tuple[float, bool]:
        """Record a request start in the store (0.0), or (seconds to wait, whether a server
        pause is the reason).  Without a window of its own, a limiter only shares the
        server's pauses."""
        return store.paused(self.key), True

    def done(self) -> None:
        """The calling thread's request has ended (answered or failed)."""

    def on_success(self) -> None:
        """A request was accepted."""

    def on_throttled(self) -> None:
        """The server answered 429."""

    def _next_delay(self) -> float:
        return 0.0

    def _record(self) -> None:
        return None


HOLD_S = 10.0
"""Shared arrival counting: an unanswered request's slot slides with the clock for at most this
long (a killed process cannot hold the account's slots for ever)."""


SHARED_MARGIN_S = 0.05
"""The least margin of a shared arrival window while other processes' requests are in it:
requests recorded by several processes (a busy machine, several machines) reach the server
with more jitter than one process's threads.  A run alone keeps its own margin."""


class Stopped(Exception):
    """The run is stopping: this request was never sent."""


class _Slot:
    __slots__ = ("end", "stamp", "start")

    def __init__(self, start: float) -> None:
        self.start = self.stamp = start
        self.end: float | None = None


class Unlimited(Limiter):
    """No client-side limit; still honours server pauses."""


class SlidingWindow(Limiter):
    """At most ``limit`` starts per ``window`` seconds (+ ``margin`` seconds of slack)."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        margin: float = 0.02,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        super().__init__(clock, sleep)
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.base_window = window
        self.window = window + margin
        self._starts: deque[float] = deque()

    def on_throttled(self) -> None:
        """A 429 despite the limiter: the server saw our requests closer together than we sent
        them (queueing, jitter).  Widen the window by 5% of the limit's, up to +50% (in the
        store too: every worker of the account widens)."""
        with self._lock:
            window = self.window
            self.window = min(self.window + 0.05 * self.base_window, 1.5 * self.base_window)
        if self.store is not None:
            self.store.widen(self.key, window, self.base_window)

    def _take_shared(self, store: RateStore) -> tuple[float, bool]:
        return store.decide(
            self.key,
            limit=self.limit,
            window=self.window,
            hold=0.0,
            token=_token(),
            arrival=False,
        )

    @property
    def rate(self) -> float:
        """Requests per second this limiter allows at most."""
        return self.limit / self.window

    def _next_delay(self) -> float:
        now = self._clock()
        while self._starts and now - self._starts[0] >= self.window:
            self._starts.popleft()
        if len(self._starts) < self.limit:
            return 0.0
        return self._starts[0] + self.window - now

    def _record(self) -> None:
        self._starts.append(self._clock())


class Adaptive(Limiter):
    """No documented limit: start unthrottled.  On a 429, the requests of the last second are
    the ceiling (a per-second limit); fall to half of it, grow back by ``growth`` (2%) per
    accepted request up to 95% of the ceiling and stay there.  Every ``probe_every`` accepted
    requests the ceiling rises by 5%, so a lifted limit is found again while the server's is
    met once per probe, not every few hundred requests.  (Multiplicative decrease as in TCP;
    the increase is multiplicative because a fixed step is far too slow at 100 requests/s.)"""

    def __init__(
        self,
        *,
        floor: float = 1.0,
        growth: float = 0.02,
        probe_every: int = 1000,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        super().__init__(clock, sleep)
        self.rate: float | None = None  # None: unthrottled
        self.ceiling: float | None = None
        self.probe_every = probe_every
        self._accepted = 0
        self.floor = floor
        self.growth = growth
        self._recent: deque[float] = deque(maxlen=4096)
        self._last = -1e18

    def _next_delay(self) -> float:
        if self.rate is None:
            return 0.0
        return self._last + 1.0 / self.rate - self._clock()

    def _record(self) -> None:
        self._last = now = self._clock()
        self._recent.append(now)

    def _last_second(self) -> float:
        """Requests started in the last second: what a per-second limit saw when it said 429
        (the rate over a burst would overestimate a sliding window's limit several times)."""
        now = self._clock()
        return float(max(1, sum(1 for t in self._recent if now - t <= 1.0)))

    def on_throttled(self) -> None:
        with self._lock:
            seen = self._last_second()
            self.ceiling = seen if self.ceiling is None else min(self.ceiling, seen)
            self.rate = max(self.floor, self.ceiling / 2)

    def on_success(self) -> None:
        with self._lock:
            if self.rate is None or self.ceiling is None:
                return
            self._accepted += 1
            if self._accepted % self.probe_every == 0:
                self.ceiling *= 1.05
            self.rate = min(self.rate * (1.0 + self.growth), 0.95 * self.ceiling)


class ArrivalWindow(SlidingWindow):
    """At most ``limit`` requests per ``window`` (+ ``margin``) seconds,
    counted where the server counts them, and stoppable.

    The server counts a request when it reaches it, not when we start it.  A request that
    took longer than the quickest one seen (a new connection, a stalled thread, a queue on
    the way) probably reached the server late, so its slot is moved later by that much once
    its answer is in (and slides with the clock while it is in flight): the request that
    reuses the slot cannot reach the server less than a window after it.  Requests that take
    the usual time keep their start as stamp, so the steady rate is still ``limit`` per
    window.  Once :attr:`stop` is set no request starts: a worker waiting for its turn after
    a 401 or the quota sends nothing.

    :meth:`done` follows every request (:class:`~contactpipe.load.client.ApiClient` calls it).
    """

    def __init__(
        self, limit: int, window: float, *, margin: float, clock: Clock = time.monotonic
    ) -> None:
        super().__init__(limit, window, margin=margin, clock=clock)
        self.min_rtt: float | None = None
        self._slots: list[_Slot] = []
        self._local = threading.local()

    def acquire(self, *, may_defer: bool = True) -> float:
        """Block until a request may start (waking at once on :attr:`stop`)."""
        self._finish_current()  # a retry: the previous attempt has ended
        return super().acquire(may_defer=may_defer)

    def on_success(self) -> None:
        self._finish_current()

    def on_throttled(self) -> None:
        self._finish_current()

    def done(self) -> None:
        """The calling thread's request returned or raised."""
        self._finish_current()

    def _take_shared(self, store: RateStore) -> tuple[float, bool]:
        token = _token()
        wait, paused = store.decide(
            self.key,
            limit=self.limit,
            window=self.window,
            hold=HOLD_S,
            token=token,
            arrival=True,
            crowded=max(self.window, self.base_window + SHARED_MARGIN_S),
        )
        if wait <= 0:
            self._local.token = token
        return wait, paused

    def _finish_current(self) -> None:
        token: str | None = getattr(self._local, "token", None)
        if token is not None and self.store is not None:
            self._local.token = None
            self.store.finish(self.key, token)
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            return
        self._local.slot = None
        with self._lock:
            now = self._clock()
            rtt = now - slot.start
            if self.min_rtt is None or rtt < self.min_rtt:
                self.min_rtt = rtt
            slot.end = now
            slot.stamp = max(slot.start, now - self.min_rtt)

    def _stamp(self, slot: _Slot, now: float) -> float:
        if slot.end is None:  # in flight: it may not even have reached the server yet
            return max(slot.start, now - (self.min_rtt or 0.0))
        return slot.stamp

    def _next_delay(self) -> float:
        now = self._clock()
        self._slots = [s for s in self._slots if self._stamp(s, now) + self.window > now]
        if len(self._slots) < self.limit:
            return 0.0
        return max(0.001, min(self._stamp(s, now) for s in self._slots) + self.window - now)

    def _record(self) -> None:
        slot = _Slot(self._clock())
        self._slots.append(slot)
        self._local.slot = slot
