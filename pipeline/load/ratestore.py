"""Where a rate limit lives: one account's limit shared by every process that writes to it.

The limiters of :mod:`contactpipe.load.ratelimit` keep their windows in memory, so two runs
into one account each send at the full rate and the API answers the excess with 429.  A
:class:`RateStore` holds the window outside the process instead, keyed by the account
(:func:`rate_key`: the sync state's account fingerprint, never a secret):

- ``local`` (the default): a small JSON file per account in the per-user cache directory,
  read and written under an ``fcntl`` lock, so the runs on one machine share the limit;
- ``redis://...`` / ``rediss://...``: one Redis key per account (with a TTL), changed only by
  one Lua script that reads the time from the Redis server (``TIME``), never from a client,
  so the runs on every machine share it whatever their clocks say;
- ``none``: nothing shared, each process keeps its own window (the behaviour before 0.2).

Both stores run the same algorithm on the same document (docs/load-kit.md, "Shared rate
limits"): a sliding window of request *slots* ``[token, start, stamp, done]`` where an
unfinished request's stamp slides with the clock (it may not have reached the server yet)
and a finished one's is its answer time less the quickest round trip seen (when it probably
reached the server); a server pause (``Retry-After``) any worker saw; the window as widened
by 429s; the quickest round trip.  Times are seconds since the document's ``b`` (an integer
epoch second), which keeps them exact in Lua's JSON encoder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from contactpipe.errors import TransientRemoteError, UsageError

log = logging.getLogger("contactpipe")

STORE_ENV = "CONTACTPIPE_RATE_LIMIT_STORE"
DEFAULT_STORE = "local"
MAX_PAUSE_S = 7 * 86400.0
"""A stored pause further away than this is nonsense (a clock set years ahead): dropped."""


class RateStoreUnreachable(TransientRemoteError):
    """The shared rate limit store cannot be reached (exit 4): nothing is sent without it,
    since sending anyway would break the account's limit for every other worker."""


def store_spec(option: str | None, env: Mapping[str, str] | None = None) -> str:
    """``option`` when given, else ``CONTACTPIPE_RATE_LIMIT_STORE``, else ``local``; checked."""
    env = os.environ if env is None else env
    spec = (option or "").strip() or env.get(STORE_ENV, "").strip() or DEFAULT_STORE
    check_spec(spec)
    return spec


def check_spec(spec: str) -> None:
    """UsageError (exit 2) unless ``spec`` is ``none``, ``local``, ``local:DIR`` or a
    ``redis://`` / ``rediss://`` URL."""
    if spec in ("none", "local") or (spec.startswith("local:") and len(spec) > 6):
        return
    scheme = spec.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        parts = urllib.parse.urlsplit(spec)
        if parts.hostname:
            return
    shown = mask_url(spec)
    if "@" in shown.replace(":***@", "") or ("password" in shown.lower() and "=***" not in shown):
        shown = spec.split(":", 1)[0] + ":***"  # not a URL we can mask: show no part of it
    raise UsageError(
        f"--rate-limit-store {shown!r} is not a rate limit store",
        hint="use `local` (the default: shared by the runs on this machine), `none` (each run "
        "its own limit) or a redis://[:password@]host[:port][/db] or rediss:// URL",
    )


def mask_url(spec: str) -> str:
    """``spec`` with a password (in the URL's user part or a ``password=`` query) as ``***``."""
    try:
        parts = urllib.parse.urlsplit(spec)
    except ValueError:
        return "***"
    if not parts.scheme or parts.scheme.lower() not in ("redis", "rediss"):
        return spec
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name, sep, _ = user.partition(":")
        netloc = f"{name}:***@{host}" if sep else f"***@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets_of(spec: str) -> list[str]:
    try:
        parts = urllib.parse.urlsplit(spec)
    except ValueError:
        return [spec]
    found = [parts.password or ""] if "@" in parts.netloc else []
    if "@" in parts.netloc and not parts.password:  # redis://secret@host: the user is the key
        found.append(parts.username or "")
    found += re.findall(r"(?i)password=([^&]*)", parts.query)
    found = [s for s in found if s]
    return found + [urllib.parse.unquote(s) for s in found]


# -- the algorithm, once in Python (the local store) and once in Lua (Redis) ------------------


def _owner(token: str) -> str:
    """The process a request token comes from (``<process>-<n>``)."""
    return token.rsplit("-", 1)[0]


def _stamp(slot: list[Any], now: float, rtt: float | None, hold: float) -> float:
    """When the server counted (or will have counted) the request of ``slot``, at the latest."""
    if slot[3]:
        return float(slot[2])
    start = float(slot[1])
    return min(max(start, now - (rtt or 0.0)), start + hold)


def apply(doc: dict[str, Any], op: str, now: float, args: list[Any]) -> list[Any]:
    """Run ``op`` on ``doc`` (changed in place) at server time ``now`` (epoch seconds).

    - ``take limit window hold token arrival crowded``: record a request start if the window
      has room and no pause holds; returns ``[1, 0, b, t]``, else ``[0, seconds to wait, b,
      t]`` (``[2, ...]`` when a server pause holds; ``b + t``: the store's time of the
      decision).  While requests of another process are in the window, the window is at
      least ``crowded`` (a wider margin: more jitter between processes), and at least the
      window plus how much the recent round trips (``a``, a moving average) exceed the
      quickest (the jitter of a loaded machine or network);
    - ``finish token``: the request of ``token`` has its answer (arrival counting);
    - ``pause seconds``: hold every worker's requests that long (a server's Retry-After);
    - ``widen window base``: a 429 despite the limit: widen the window by 5% of ``base``, up
      to 1.5 x ``base``;
    - ``peek``: ``[pause left]``.
    """
    if not doc or now >= doc.get("b", 0) + doc.get("x", 0):  # new, or expired (the TTL)
        doc.clear()
        doc.update({"b": int(now), "s": [], "p": 0.0, "w": 0.0, "h": 0.0, "x": 0.0})
    t = now - doc["b"]
    rtt = doc.get("r")
    if doc["p"] > t + MAX_PAUSE_S:
        doc["p"] = 0.0
    out: list[Any]
    if op == "take":
        limit, window, hold, token, arrival, *rest = args
        window = max(float(window), doc["w"])
        doc["h"] = max(doc["h"], float(hold))
        wide = max(window, float(rest[0])) if rest else window
        if rtt is not None and doc.get("a") is not None:  # round trips vary: so do arrivals
            wide = max(wide, window + float(doc["a"]) - float(rtt))
        owner = _owner(str(token))
        if any(
            _owner(str(s[0])) != owner and _stamp(s, t, rtt, doc["h"]) + wide > t for s in doc["s"]
        ):
            window = wide
        slots = [
            s
            for s in doc["s"]
            if _stamp(s, t, rtt, doc["h"]) + window > t and float(s[1]) <= t + window
        ]
        doc["s"] = slots
        if doc["p"] > t:
            out = [2, doc["p"] - t]
        elif len(slots) < int(limit):
            slots.append([token, t, t, 0 if arrival else 1])
            out = [1, 0.0]
        else:
            first = min(_stamp(s, t, rtt, doc["h"]) for s in slots)
            out = [0, max(0.001, first + window - t)]
        out += [doc["b"], t]
        doc["x"] = max(doc["x"], t + window + doc["h"] + 2.0)
    elif op == "finish":
        (token,) = args
        for s in doc["s"]:
            if s[0] == token and not s[3]:
                took = t - float(s[1])
                rtt = took if rtt is None else min(float(rtt), took)
                doc["r"] = rtt
                doc["a"] = took if doc.get("a") is None else 0.8 * float(doc["a"]) + 0.2 * took
                s[2], s[3] = max(float(s[1]), t - rtt), 1
                break
        out = [1]
    elif op == "pause":
        doc["p"] = max(doc["p"], t + max(0.0, float(args[0])))
        doc["x"] = max(doc["x"], doc["p"] + 2.0)
        out = [1]
    elif op == "widen":
        window, base = float(args[0]), float(args[1])
        doc["w"] = min(max(doc["w"], window) + 0.05 * base, 1.5 * base)
        doc["x"] = max(doc["x"], t + doc["w"] + 2.0)
        out = [1]
    elif op == "peek":
        out = [max(0.0, doc["p"] - t)]
    else:
        raise ValueError(f"unknown rate store operation {op!r}")
    return out


LUA = """
local raw = redis.call('GET', KEYS[1])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) + tonumber(tm[2]) / 1000000
local op = ARGV[1]
local doc = nil
if raw then doc = cjson.decode(raw) end
if (not doc) or now >= doc.b + doc.x then
  doc = {b = math.floor(now), s = {}, p = 0, w = 0, h = 0, x = 0}
end
local t = now - doc.b
local rtt = doc.r
if doc.p > t + tonumber(ARGV[2]) then doc.p = 0 end
local function owner(tok)
  return string.match(tok, '^(.+)%-[^%-]*$') or tok
end
local function stamp(s)
  if s[4] == 1 then return s[3] end
  local v = t - (rtt or 0)
  if v < s[2] then v = s[2] end
  if v > s[2] + doc.h then v = s[2] + doc.h end
  return v
end
local out
if op == 'take' then
  local limit = tonumber(ARGV[3])
  local window = math.max(tonumber(ARGV[4]), doc.w)
  doc.h = math.max(doc.h, tonumber(ARGV[5]))
  local wide = math.max(window, tonumber(ARGV[8] or ARGV[4]))
  if rtt ~= nil and doc.a ~= nil then wide = math.max(wide, window + doc.a - rtt) end
  local me = owner(ARGV[6])
  for _, s in ipairs(doc.s) do
    if owner(s[1]) ~= me and stamp(s) + wide > t then window = wide end
  end
  local kept = {}
  local first = nil
  for _, s in ipairs(doc.s) do
    local st = stamp(s)
    if st + window > t and s[2] <= t + window then
      kept[#kept + 1] = s
      if first == nil or st < first then first = st end
    end
  end
  doc.s = kept
  if doc.p > t then
    out = {2, tostring(doc.p - t)}
  elseif #kept < limit then
    local done = 1
    if ARGV[7] == '1' then done = 0 end
    kept[#kept + 1] = {ARGV[6], t, t, done}
    out = {1, '0'}
  else
    out = {0, tostring(math.max(0.001, first + window - t))}
  end
  out[3] = tostring(doc.b)
  out[4] = tostring(t)
  doc.x = math.max(doc.x, t + window + doc.h + 2)
elseif op == 'finish' then
  for _, s in ipairs(doc.s) do
    if s[1] == ARGV[3] and s[4] == 0 then
      local took = t - s[2]
      if rtt == nil or took < rtt then rtt = took end
      doc.r = rtt
      if doc.a == nil then doc.a = took else doc.a = 0.8 * doc.a + 0.2 * took end
      s[3] = math.max(s[2], t - rtt)
      s[4] = 1
      break
    end
  end
  out = {1}
elseif op == 'pause' then
  doc.p = math.max(doc.p, t + math.max(0, tonumber(ARGV[3])))
  doc.x = math.max(doc.x, doc.p + 2)
  out = {1}
elseif op == 'widen' then
  local base = tonumber(ARGV[4])
  doc.w = math.min(math.max(doc.w, tonumber(ARGV[3])) + 0.05 * base, 1.5 * base)
  doc.x = math.max(doc.x, t + doc.w + 2)
  out = {1}
elseif op == 'peek' then
  return {tostring(math.max(0, doc.p - t))}
else
  return redis.error_reply('unknown rate store operation ' .. op)
end
redis.call('SET', KEYS[1], cjson.encode(doc), 'PX', math.max(1, math.ceil((doc.x - t) * 1000)))
return out
"""
"""The Redis side of :func:`apply` (one call = one atomic operation; ``TIME`` is the Redis
server's clock).  ARGV: op, max pause, then the operation's arguments."""


class RateStore:
    """A shared home for rate limit windows (:func:`apply` on one document per key)."""

    kind = "none"

    def __init__(self, label: str) -> None:
        self.label = label
        """What the store is, for reports: a URL with its password masked."""

    def call(self, key: str, op: str, *args: Any) -> list[Any]:
        """Run ``op`` atomically on ``key``'s document (see :func:`apply`)."""
        raise NotImplementedError

    def take(
        self, key: str, *, limit: int, window: float, hold: float, token: str, arrival: bool
    ) -> float:
        """0 once a request start is recorded in ``key``'s window, else the seconds to wait."""
        return self.decide(
            key, limit=limit, window=window, hold=hold, token=token, arrival=arrival
        )[0]

    def decide(
        self,
        key: str,
        *,
        limit: int,
        window: float,
        hold: float,
        token: str,
        arrival: bool,
        crowded: float | None = None,
    ) -> tuple[float, bool]:
        """(0, False) once a request start is recorded in ``key``'s window, else (seconds to
        wait, whether a server pause is the reason).  ``token`` is ``<process>-<n>``; while
        another process's requests are in the window, it is at least ``crowded``."""
        crowd = window if crowded is None else crowded
        granted, wait, _, _ = self.call(key, "take", limit, window, hold, token, arrival, crowd)
        code = int(granted)
        return (0.0, False) if code == 1 else (max(0.001, float(wait)), code == 2)

    def finish(self, key: str, token: str) -> None:
        self.call(key, "finish", token)

    def pause(self, key: str, seconds: float) -> None:
        self.call(key, "pause", seconds)

    def widen(self, key: str, window: float, base: float) -> None:
        self.call(key, "widen", window, base)

    def paused(self, key: str) -> float:
        """Seconds every worker of ``key`` must still wait (a stored server pause)."""
        return float(self.call(key, "peek")[0])

    def check(self) -> None:
        """Raise :class:`RateStoreUnreachable` when the store cannot be used."""

    def close(self) -> None:
        """Release connections and files."""


class LocalStore(RateStore):
    """One JSON file per key in ``directory``, changed under an exclusive ``fcntl`` lock: the
    processes of one machine share each account's window (times from the system clock)."""

    kind = "local"

    def __init__(self, directory: Path) -> None:
        super().__init__(DEFAULT_STORE)
        self.directory = directory
        self._lock = threading.Lock()  # flock does not exclude the threads of one process
        self._files: dict[str, int] = {}

    def check(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = self.directory / ".probe"
            with open(probe, "a"):
                pass
        except OSError as exc:
            raise RateStoreUnreachable(
                f"the local rate limit store {self.directory} cannot be written: "
                f"{exc.strerror or exc}",
                hint="fix its permissions, point --rate-limit-store at local:DIR elsewhere, or "
                "use --rate-limit-store none (each run its own limit)",
            ) from exc

    def _fd(self, key: str) -> int:
        fd = self._files.get(key)
        if fd is None:
            name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".json"
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.directory / name, os.O_RDWR | os.O_CREAT, 0o600)
            self._files[key] = fd
        return fd

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[int]:
        import fcntl

        with self._lock:
            try:
                fd = self._fd(key)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise RateStoreUnreachable(
                    f"the local rate limit store {self.directory}: {exc.strerror or exc}"
                ) from exc
            try:
                yield fd
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def call(self, key: str, op: str, *args: Any) -> list[Any]:
        with self._locked(key) as fd:
            raw = os.pread(fd, 1 << 20, 0)
            try:
                doc = json.loads(raw) if raw.strip() else {}
            except ValueError:  # a torn file (a crash mid-write on a full disk): start afresh
                doc = {}
            if not isinstance(doc, dict):
                doc = {}
            out = apply(doc, op, time.time(), list(args))
            if op != "peek":
                body = json.dumps(doc, separators=(",", ":")).encode()
                os.pwrite(fd, body, 0)
                os.ftruncate(fd, len(body))
            return out

    def close(self) -> None:
        with self._lock:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()


class RedisStore(RateStore):
    """One key per account on a Redis server, changed only by :data:`LUA` (atomic, server
    time).  Needs ``pip install 'contactpipe[redis]'``."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        super().__init__(mask_url(url))
        self._secrets = _secrets_of(url)
        try:
            import redis
        except ImportError as exc:
            raise UsageError(
                "--rate-limit-store redis://... needs the Redis client",
                hint="pip install 'contactpipe[redis]'",
            ) from exc
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=5.0, socket_connect_timeout=5.0, health_check_interval=30
            )
        except ValueError as exc:
            raise UsageError(
                f"--rate-limit-store {self.label}: {self._mask(str(exc))}",
                hint="a redis://[:password@]host[:port][/db] or rediss:// URL",
            ) from exc
        self._script = self._redis.register_script(LUA)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _unreachable(self, exc: BaseException) -> RateStoreUnreachable:
        return RateStoreUnreachable(
            f"rate limit store unreachable: {self.label}: "
            f"{self._mask(str(exc)) or type(exc).__name__}",
            hint="start or reach the Redis server, fix --rate-limit-store / "
            f"{STORE_ENV}, or use --rate-limit-store local (this machine's runs only)",
        )

    def check(self) -> None:
        try:
            self._redis.ping()
        except self._errors as exc:
            raise self._unreachable(exc) from None

    def call(self, key: str, op: str, *args: Any) -> list[Any]:
        argv: list[Any] = [op, repr(MAX_PAUSE_S)]
        for a in args:
            if isinstance(a, bool):
                argv.append("1" if a else "0")
            else:
                argv.append(repr(a) if isinstance(a, float) else str(a))
        try:
            out = self._script(keys=[key], args=argv)
        except self._errors as exc:
            raise self._unreachable(exc) from None
        return [v.decode() if isinstance(v, bytes) else v for v in out]

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._redis.close()


def default_directory(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user cache directory of the local store: ``$XDG_CACHE_HOME/contactpipe/
    ratelimit`` (default ``~/.cache/...``; macOS ``~/Library/Caches/...``)."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    home = Path(env.get("HOME") or Path.home())
    if platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        base = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
    return base / "contactpipe" / "ratelimit"


def open_store(spec: str | None, env: Mapping[str, str] | None = None) -> RateStore | None:
    """The store ``spec`` names (:func:`store_spec`), checked; None for ``none``."""
    spec = store_spec(spec, env)
    if spec == "none":
        return None
    store: RateStore
    if spec.startswith("local"):
        try:
            import fcntl  # noqa: F401  (POSIX only)
        except ImportError:
            log.warning("the local rate limit store needs fcntl (POSIX): each run keeps its own")
            return None
        directory = Path(spec[6:]).expanduser() if spec.startswith("local:") else None
        store = LocalStore(directory or default_directory(env))
    else:
        store = RedisStore(spec)
    try:
        store.check()
    except BaseException:
        store.close()
        raise
    return store


def store_label(spec: str | None, env: Mapping[str, str] | None = None) -> str:
    """The store ``spec`` names, as reports show it (password masked)."""
    try:
        return mask_url(store_spec(spec, env))
    except UsageError:
        return "(invalid)"
