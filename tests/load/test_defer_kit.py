"""The deferral hook of the load kit (:mod:`contactpipe.load.kit.defer`) on the limiters, the
job follower and the worker pool, with a clock the test moves (no server involved: the
end-to-end behaviour is in test_defer_e2e.py)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from contactpipe.errors import Deferred, TerminalRemoteError
from contactpipe.load.kit import defer
from contactpipe.load.kit.jobs import follow_jobs
from contactpipe.load.kit.pool import run_pool
from contactpipe.load.ratelimit import SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def window(clock: Clock) -> SlidingWindow:
    return SlidingWindow(2, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)


def test_a_window_wait_above_the_threshold_defers_instead_of_sleeping() -> None:
    clock = Clock()
    limiter = window(clock)
    with defer.watching(5.0) as watch:
        limiter.acquire()
        limiter.acquire()
        before = dt.datetime.now(dt.UTC)
        with pytest.raises(defer.WaitTooLong) as caught:
            limiter.acquire()
    exc = caught.value
    assert isinstance(exc, Deferred) and isinstance(exc, TerminalRemoteError)
    assert exc.exit_code == 75 and watch is not None and watch.raised is exc
    assert clock.slept == []  # nothing was waited
    assert "rate limit" in exc.reason and exc.wait_s == pytest.approx(60.0)
    assert dt.timedelta(seconds=59) < exc.resume_at - before <= dt.timedelta(seconds=62)
    assert exc.resume_at.tzinfo is dt.UTC


def test_short_waits_and_waits_outside_a_deferring_load_are_waited_out() -> None:
    clock = Clock()
    limiter = window(clock)
    for _ in range(3):
        limiter.acquire()  # no threshold: the third waits the window out
    assert sum(clock.slept) == pytest.approx(60.0)
    clock2 = Clock()
    limiter2 = window(clock2)
    with defer.watching(120.0):
        for _ in range(3):
            limiter2.acquire()
    assert sum(clock2.slept) == pytest.approx(60.0)


def test_a_server_pause_defers_but_not_a_resend_of_unknown_outcome() -> None:
    clock = Clock()
    limiter = window(clock)
    limiter.pause_for(900.0)
    with defer.watching(10.0):
        limiter.acquire(may_defer=False)  # the first attempt may have taken effect: wait
        assert sum(clock.slept) == pytest.approx(900.0)
        limiter.pause_for(300.0)
        with pytest.raises(defer.WaitTooLong, match="pause of 300 s"):
            limiter.acquire()


def test_jobs_still_running_after_the_threshold_defer_with_their_ids() -> None:
    polls: list[str] = []

    def poll(job: str) -> dict[str, Any]:
        polls.append(job)
        return {"status": "processing", "processedCount": 10 * len(polls), "requestedCount": 1000}

    with defer.watching(0.05), pytest.raises(defer.WaitTooLong) as caught:
        list(follow_jobs(["j1"], poll, interval_s=0.02, stall_s=60.0))
    assert caught.value.jobs == ("j1",)
    assert "bulk job" in caught.value.reason
    assert polls  # followed for the threshold first
    # the time left is estimated from the progress: far more than the poll interval
    assert caught.value.wait_s > 0.5


def test_the_worker_pool_threads_see_the_threshold_and_stop_the_others() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        if i == 3:
            defer.check_wait(100.0, "a long wait")
        defer.check_wait(1.0, "a short wait")  # after a deferral: raises it again
        return i

    with defer.watching(10.0), pytest.raises(defer.WaitTooLong, match="a long wait"):
        run_pool(list(range(50)), work, workers=2, stop=threading.Event())
    assert len(started) < 50


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError), defer.watching(0):
        pass
