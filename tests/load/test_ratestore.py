"""The shared rate limit stores (:mod:`contactpipe.load.ratestore`): the algorithm on its own,
then the local file store and a real Redis server (the ``redis_url`` fixture) under many
threads and processes at once, Redis' clock against skewed client clocks, the limiters on top
of a store, and the errors a user sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from load_helpers import make_target, sandbox_env
from redis_helpers import REDIS_PASSWORD

from contactpipe.errors import UsageError
from contactpipe.load.base import LoadOptions
from contactpipe.load.ratelimit import ArrivalWindow, SlidingWindow
from contactpipe.load.ratestore import (
    LocalStore,
    RateStore,
    RateStoreUnreachable,
    RedisStore,
    apply,
    check_spec,
    mask_url,
    open_store,
    store_label,
    store_spec,
)
from contactpipe.sandbox import SandboxServer

# -- the algorithm -----------------------------------------------------------------------------


def take(doc: dict[str, Any], now: float, limit: int = 2, window: float = 1.0, **kw: Any) -> Any:
    hold = kw.get("hold", 10.0)
    token = kw.get("token", "p-0")  # one process unless told otherwise
    return apply(doc, "take", now, [limit, window, hold, token, kw.get("arrival")])


def test_sliding_window_grants_limit_then_waits_for_the_oldest_start() -> None:
    doc: dict[str, Any] = {}
    assert take(doc, 1000.0)[:2] == [1, 0.0]
    assert take(doc, 1000.25)[:2] == [1, 0.0]
    granted, wait, b, t = take(doc, 1000.5)
    assert granted == 0 and wait == pytest.approx(0.5)  # the first start leaves at 1001.0
    assert b + t == pytest.approx(1000.5)
    assert take(doc, 1001.0)[0] == 1
    assert take(doc, 1001.1)[0] == 0  # 1000.25 and 1001.0 are still in the window


def test_arrival_counting_slides_an_unanswered_request_and_stamps_it_at_arrival() -> None:
    doc: dict[str, Any] = {}
    take(doc, 100.0, limit=1, token="p-a", arrival=True)
    apply(doc, "finish", 100.1, ["p-a"])  # the quickest round trip: 0.1 s
    assert doc["r"] == pytest.approx(0.1)
    take(doc, 101.2, limit=1, token="p-b", arrival=True)
    # in flight for 3 s: it may reach the server as late as now - 0.1 s, so its slot slides
    assert take(doc, 104.2, limit=1, arrival=True)[1] == pytest.approx(104.1 + 1.0 - 104.2)
    apply(doc, "finish", 104.3, ["p-b"])  # answered: it arrived at 104.2 at the latest
    assert take(doc, 104.5, limit=1, arrival=True)[1] == pytest.approx(0.7)
    assert take(doc, 105.2, limit=1, arrival=True)[0] == 1


def test_a_request_never_answered_frees_its_slot_after_the_hold() -> None:
    doc: dict[str, Any] = {}
    take(doc, 10.0, limit=1, token="p-dead", arrival=True, hold=5.0)  # its process was killed
    assert take(doc, 14.0, limit=1, arrival=True, hold=5.0)[0] == 0
    assert take(doc, 16.01, limit=1, arrival=True, hold=5.0)[0] == 1  # 10 + 5 + 1 s window


def test_pause_holds_every_take_and_widen_stops_at_one_and_a_half_windows() -> None:
    doc: dict[str, Any] = {}
    apply(doc, "pause", 50.0, [3.0])
    assert take(doc, 51.0)[:2] == [2, pytest.approx(2.0)]  # 2: a pause, not the window
    assert apply(doc, "peek", 52.5, [])[0] == pytest.approx(0.5)
    assert take(doc, 53.0)[0] == 1
    for _ in range(20):
        apply(doc, "widen", 53.0, [1.02, 1.0])
    assert doc["w"] == pytest.approx(1.5)
    take(doc, 53.0)
    assert take(doc, 54.2)[0] == 0  # two starts at 53.0 still count: the window is 1.5 s


def test_an_idle_document_expires() -> None:
    doc: dict[str, Any] = {}
    take(doc, 10.0, limit=1)
    apply(doc, "widen", 10.0, [1.0, 1.0])
    assert take(doc, 10.5, limit=1)[0] == 0
    take(doc, 30.0, limit=1)  # past window + hold + 2 s
    assert doc["w"] == 0.0  # forgotten: nobody used the account for longer than its window


# -- specs, URLs, passwords --------------------------------------------------------------------


def test_specs_and_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    for good in ("none", "local", "local:/tmp/x", "redis://h", "rediss://:pw@h:6380/2"):
        check_spec(good)
    for bad in ("", "redis", "memcached://h", "local:", "redis:///nohost", "http://h"):
        with pytest.raises(UsageError):
            check_spec(bad)
    with pytest.raises(UsageError) as caught:
        check_spec("redis:/:hunter2@")
    assert "hunter2" not in str(caught.value)
    assert mask_url("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("rediss://bob:hunter2@h/1") == "rediss://bob:***@h/1"
    assert mask_url("redis://h/0?password=hunter2&db=1") == "redis://h/0?password=***&db=1"
    monkeypatch.delenv("CONTACTPIPE_RATE_LIMIT_STORE")
    assert store_spec(None) == "local"
    monkeypatch.setenv("CONTACTPIPE_RATE_LIMIT_STORE", "redis://:hunter2@h")
    assert store_spec(None) == "redis://:hunter2@h"
    assert store_spec("none") == "none"
    assert store_label(None) == "redis://:***@h"
    assert open_store("none") is None


# -- both stores under load --------------------------------------------------------------------


@pytest.fixture(params=["local", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return f"local:{tmp_path / 'rl'}"
    return str(request.getfixturevalue("redis_url"))


WORKER = r"""
import json, sys, threading, time
real = time.time
spec, key, seconds, skew = sys.argv[1:5]
seconds, skew = float(seconds), float(skew)
if skew:  # this process's clock is wrong by `skew` seconds
    time.time = lambda: real() + skew
    mono = time.monotonic
    time.monotonic = lambda: mono() + skew
from contactpipe.load.ratestore import open_store
store = open_store(spec)
print("ready", flush=True)
start = float(sys.stdin.readline())  # the common start, on the real clock
grants = []
lock = threading.Lock()
def work(n):
    k = 0
    while real() < start:
        time.sleep(0.005)
    while real() < start + seconds:
        k += 1
        ok, wait, b, t = store.call(key, "take", 5, 0.25, 0.0, f"{n}-{k}", False)
        if int(ok) == 1:
            with lock:
                grants.append(float(b) + float(t))
        else:
            time.sleep(min(float(wait), 0.02))
threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(grants))
"""


def hammer(spec: str, key: str, processes: int, seconds: float, skews: list[float]) -> list[float]:
    """``processes`` processes of 4 threads each taking from ``key`` (5 per 0.25 s) for
    ``seconds`` from a common start once all are ready; every grant's store time."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, spec, key, str(seconds), str(skews[i])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for p in procs:  # started and connected, however long a busy machine took
        assert p.stdout is not None and p.stdout.readline() == "ready\n", p.communicate()
    start = time.time() + 0.3
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{start!r}\n")
        p.stdin.flush()
    grants: list[float] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        grants += json.loads(out)
    return sorted(grants)


def assert_window(grants: list[float], limit: int, window: float, seconds: float) -> None:
    tight = min(grants[i + limit] - grants[i] for i in range(len(grants) - limit))
    assert tight >= window - 1e-4, f"{limit + 1} starts within {tight:.4f} s"
    most = limit * (seconds / window + 1)
    assert 0.7 * most <= len(grants) <= most, len(grants)  # the limit, and no starving


def test_the_window_holds_under_many_threads_and_processes(spec: str) -> None:
    """4 processes x 4 threads race for 5 starts per 0.25 s: never a sixth in any window (the
    store's own times of the grants), and the rate is used."""
    grants = hammer(spec, "acct-race", 4, 2.0, [0.0] * 4)
    assert_window(grants, 5, 0.25, 2.0)


def test_redis_uses_its_own_clock_not_the_clients(redis_url: str) -> None:
    """Two processes whose clocks are an hour apart share the window exactly (a client clock
    would let both send a full window each), and the stored times are Redis' own."""
    grants = hammer(redis_url, "acct-skew", 2, 1.5, [3600.0, -3600.0])
    assert_window(grants, 5, 0.25, 1.5)
    assert abs(grants[-1] - time.time()) < 30  # Redis' clock, not one an hour off


def test_a_pause_or_a_429_seen_by_one_worker_holds_the_others(spec: str) -> None:
    one, other = open_store(spec), open_store(spec)
    assert one is not None and other is not None
    try:
        one.pause("acct-pause", 1.5)
        assert other.paused("acct-pause") == pytest.approx(1.5, abs=0.2)
        wait = other.take("acct-pause", limit=5, window=1.0, hold=0.0, token="x", arrival=False)
        assert wait == pytest.approx(1.5, abs=0.2)
        one.widen("acct-widen", 1.0, 1.0)  # a 429 seen by one worker
        t0 = time.monotonic()
        other.take("acct-widen", limit=1, window=1.0, hold=0.0, token="y", arrival=False)
        wait = other.take("acct-widen", limit=1, window=1.0, hold=0.0, token="z", arrival=False)
        assert wait + (time.monotonic() - t0) > 1.04  # the other's window is 1.05 s, not 1 s
    finally:
        one.close()
        other.close()


def test_redis_keeps_one_key_per_account_with_a_ttl(redis_url: str) -> None:
    import redis

    store = open_store(redis_url)
    assert isinstance(store, RedisStore)
    client = redis.Redis.from_url(redis_url)
    try:
        store.take("contactpipe:ratelimit:t:abc", limit=1, window=2.0, hold=0.0, token="a",
                   arrival=False)  # fmt: skip
        ttl = client.pttl("contactpipe:ratelimit:t:abc")
        assert 2000 < ttl <= 4000
        doc = json.loads(client.get("contactpipe:ratelimit:t:abc") or b"{}")
        server_now = float(client.time()[0])
        assert abs(doc["b"] - server_now) < 5
    finally:
        store.close()
        client.close()


# -- the limiters over a store -----------------------------------------------------------------


def limiters(spec: str, n: int, arrival: bool) -> tuple[list[SlidingWindow], list[float]]:
    """``n`` limiters of 10 per 0.5 s (as ``n`` processes would have) sharing ``spec``; their
    sleeps are recorded."""
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    out: list[SlidingWindow] = []
    for _ in range(n):
        store = open_store(spec)
        assert store is not None
        lim: SlidingWindow
        if arrival:
            lim = ArrivalWindow(10, 0.5, margin=0.0)
            lim._sleep = sleep
        else:
            lim = SlidingWindow(10, 0.5, margin=0.0, sleep=sleep)
        lim.share(store, "acct-limiters")
        out.append(lim)
    return out, slept


@pytest.mark.parametrize("arrival", [False, True], ids=["sliding", "arrival"])
def test_limiters_sharing_a_store_share_the_rate_and_wait_through_their_sleep(
    spec: str, arrival: bool
) -> None:
    lims, slept = limiters(spec, 3, arrival)
    starts: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + 1.5

    def work(lim: SlidingWindow) -> None:
        while time.monotonic() < end:
            lim.acquire()
            with lock:
                starts.append(time.monotonic())
            time.sleep(0.01)  # the request
            lim.done()

    threads = [threading.Thread(target=work, args=(lim,)) for lim in lims for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lim in lims:
        assert lim.store is not None
        lim.store.close()
    # 10 per 0.5 s between the three of them, not 10 each: at most 40 starts in ~1.5 s
    assert 20 <= len(starts) <= 10 * (1.5 / 0.5 + 1), len(starts)
    assert slept and max(slept) <= 1.0  # every wait went through the injected sleep


def test_a_server_pause_through_one_limiter_stops_the_others(spec: str) -> None:
    (first, second), slept = limiters(spec, 2, True)
    first.pause_for(0.6)
    t0 = time.monotonic()
    second.acquire()
    assert time.monotonic() - t0 >= 0.5
    assert sum(slept) >= 0.5
    for lim in (first, second):
        assert lim.store is not None
        lim.store.close()


# -- errors ------------------------------------------------------------------------------------


def test_an_unreachable_redis_is_a_clear_exit_4_error_without_the_password() -> None:
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:9/0"  # port 9 (discard): nothing listens
    with pytest.raises(RateStoreUnreachable) as caught:
        open_store(url)
    err = caught.value
    assert err.exit_code == 4
    assert "rate limit store unreachable" in err.message
    assert REDIS_PASSWORD not in f"{err.message} {err.hint} {err!r}"
    assert "redis://:***@127.0.0.1:9/0" in err.message


def test_a_wrong_redis_password_is_refused_without_showing_it(redis_url: str) -> None:
    wrong = redis_url.replace(REDIS_PASSWORD, "not-the-password-42")
    with pytest.raises(RateStoreUnreachable) as caught:
        open_store(wrong)
    assert "not-the-password-42" not in f"{caught.value.message} {caught.value.hint}"


def test_a_local_store_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RateStoreUnreachable) as caught:
        open_store(f"local:{blocker / 'sub'}")
    assert str(blocker) in caught.value.message


def test_the_local_store_survives_a_torn_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "rl")
    store.take("k", limit=1, window=1.0, hold=0.0, token="a", arrival=False)
    (name,) = [p for p in (tmp_path / "rl").iterdir() if p.suffix == ".json"]
    name.write_text('{"b": 17')  # a crash mid-write
    assert store.take("k", limit=1, window=1.0, hold=0.0, token="b", arrival=False) == 0.0
    assert os.stat(name).st_mode & 0o777 == 0o600
    store.close()


def test_the_base_store_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        RateStore("x").call("k", "peek")


# -- the target's side -------------------------------------------------------------------------


def test_the_key_is_the_account_never_a_secret(server: SandboxServer) -> None:
    target = make_target("msgflash", server)
    key = target.rate_key()
    assert key.startswith("contactpipe:ratelimit:msgflash:")
    assert not any(secret in key for secret in target.config.secrets)
    other_key = "msgf_live_" + "0" * 64
    other = make_target(
        "msgflash", server, env={**sandbox_env(server), "MSGFLASH_API_KEY": other_key}
    )
    assert other.rate_key() != key  # another key, another workspace: another window
    assert make_target("msgflash", server).rate_key() == key


def test_load_options_check_the_store_and_the_target_shares_its_limiter(
    server: SandboxServer, tmp_path: Path
) -> None:
    with pytest.raises(UsageError):
        LoadOptions(rate_limit_store="redis:nohost")
    target = make_target("waapi", server, rate_limit_store=f"local:{tmp_path / 'rl'}")
    client = target.client()  # type: ignore[attr-defined]
    assert isinstance(client.limiter.store, LocalStore)
    assert client.limiter.key == target.rate_key()
    assert target.rate_limit_store == f"local:{tmp_path / 'rl'}"
    target.close()
    alone = make_target("waapi", server, rate_limit_store="none")
    assert alone.client().limiter.store is None  # type: ignore[attr-defined]
    alone.close()


def test_a_window_shared_with_another_process_keeps_the_wider_margin() -> None:
    doc: dict[str, Any] = {}
    apply(doc, "take", 100.0, [1, 1.0, 0.0, "p1-1", True, 1.05])
    apply(doc, "finish", 100.0, ["p1-1"])
    # another process: p1's start is in its crowded 1.05 s window
    granted, wait, _, _ = apply(doc, "take", 101.01, [1, 1.0, 0.0, "p2-1", True, 1.05])
    assert granted == 0 and wait == pytest.approx(0.04)
    # p1 alone in the window keeps its own 1.0 s
    assert apply(doc, "take", 101.01, [1, 1.0, 0.0, "p1-2", True, 1.05])[0] == 1


def test_jittery_round_trips_widen_a_shared_window() -> None:
    """Round trips 100 ms slower than the quickest on average (a loaded machine): while
    another process shares the window, it grows by that much."""
    doc: dict[str, Any] = {}
    apply(doc, "take", 10.0, [5, 1.0, 10.0, "p1-1", True, 1.05])
    apply(doc, "finish", 10.01, ["p1-1"])  # quickest: 10 ms
    for k in range(2, 6):
        apply(doc, "take", 10.0 + k, [5, 1.0, 10.0, f"p1-{k}", True, 1.05])
        apply(doc, "finish", 10.0 + k + 0.2, [f"p1-{k}"])  # then 200 ms each
    assert 0.1 < doc["a"] - doc["r"] < 0.2
    for k in range(5):  # five starts at 16.5, answered 200 ms later: stamped at 16.69
        assert apply(doc, "take", 16.5, [5, 1.0, 10.0, f"p1-x{k}", True, 1.05])[0] == 1
    for k in range(5):
        apply(doc, "finish", 16.7, [f"p1-x{k}"])
    spread = doc["a"] - doc["r"]
    assert spread > 0.1
    granted, wait, _, _ = apply(doc, "take", 17.7, [5, 1.0, 10.0, "p2-1", True, 1.05])
    # another process waits a window plus the spread after them, not 1.05 s
    assert granted == 0 and wait == pytest.approx(16.69 + 1.0 + spread - 17.7)
