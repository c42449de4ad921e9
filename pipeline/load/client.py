"""The one HTTP client of a run: keep-alive, timeouts, auth headers, client-side rate limit,
retries with exponential backoff and full jitter, and statistics.

What each answer means (the caller only sees the first three):

- 2xx: returned.
- 400/404/409/422... (a refusal of *this* request): :class:`ApiRefused` with the API's code and
  message, for the target to map onto rows.
- 401/403: :class:`AuthRefused` -- the run cannot go on (exit 4).
- 429: waited out (``Retry-After``, else ``RateLimit-Reset``, else backoff) and resent; it never
  uses up the retry budget, only the ``max_throttle_wait_s`` budget.  A 429 whose code says no
  wait will cure it (MsgFlash ``MONTHLY_API_REQUEST_QUOTA_EXCEEDED``): :class:`QuotaExceeded`.
- 5xx, timeouts, dropped connections: resent after backoff up to ``attempts`` times, then
  :class:`Unreachable`.  A request that is not idempotent is only resent after its
  ``recover`` callback found that the first attempt did not take effect.

Messages name the API, the method and the path; never a header, so never a credential.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from contactpipe import __version__
from contactpipe.errors import TerminalRemoteError, TransientRemoteError

from .policy import ClientStats, RetryPolicy
from .ratelimit import Limiter, Unlimited

log = logging.getLogger("contactpipe")

RETRY_STATUSES = frozenset({500, 502, 503, 504})


class ApiRefused(Exception):
    """The API refused this one request (4xx other than auth and rate limit)."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class AuthRefused(TerminalRemoteError):
    """Credentials or permission refused (401/403): nothing more can be sent.  ``code`` is the
    API's (a 403 may be a plan limit such as MsgFlash's ``MAX_CONTACT_GROUPS_REACHED``)."""

    status: int = 0
    code: str = ""


class QuotaExceeded(TerminalRemoteError):
    """A quota that no wait within this run will restore."""


class Unreachable(TransientRemoteError):
    """The API kept failing (5xx, timeouts, dropped connections) after every retry."""


ErrorParser = Callable[[httpx.Response], tuple[str, str]]
"""(response) -> (code, message) from the API's error envelope."""


def parse_error(resp: httpx.Response) -> tuple[str, str]:
    """(code, message) from the error envelopes of the three APIs:

    - ``{"error": {"code", "message", "details"}}`` (MsgFlash; Vobiz adds ``status``,
      ``timestamp``, ``requestId``): ``details`` (``[{"field", "message"}]`` or anything JSON)
      are appended to the message, at most 300 characters of them;
    - ``{"success": false, "message", "error": "CODE"}`` (WAAPI).

    A body that is not JSON gives ``HTTP_<status>`` and the reason phrase."""
    reason = resp.reason_phrase or "error"
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP_{resp.status_code}", reason
    if not isinstance(body, dict):
        return f"HTTP_{resp.status_code}", reason
    err = body.get("error")
    if isinstance(err, dict):
        code = str(err.get("code") or f"HTTP_{resp.status_code}")
        message = str(err.get("message") or reason)
        details = _details(err.get("details"))
        return code, f"{message} ({details})" if details else message
    code = err if isinstance(err, str) and err else f"HTTP_{resp.status_code}"
    return code, str(body.get("message") or reason)


def _details(details: Any) -> str:
    if not details:
        return ""
    if isinstance(details, list):
        parts = []
        for d in details:
            if isinstance(d, dict) and "message" in d:
                field = d.get("field")
                parts.append(f"{field}: {d['message']}" if field else str(d["message"]))
            else:
                parts.append(encode_json(d).decode())
        text = "; ".join(parts)
    else:
        text = encode_json(details).decode()
    return text if len(text) <= 300 else text[:297] + "..."


def retry_after_s(resp: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After`` (seconds or HTTP date), else
    ``RateLimit-Reset`` when ``RateLimit-Remaining`` is 0 (IETF draft headers)."""
    value = resp.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                return max(0.0, when.timestamp() - now())
            except (TypeError, ValueError):
                pass
    remaining = resp.headers.get("ratelimit-remaining")
    reset = resp.headers.get("ratelimit-reset")
    if remaining is not None and reset is not None:
        try:
            if int(remaining) <= 0:
                return max(0.0, float(reset))
        except ValueError:
            return None
    return None


def encode_json(doc: Any) -> bytes:
    """The exact bytes sent for a JSON body (also what ``--dry-run`` writes)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ApiClient:
    """One API's view of the run's HTTP client."""

    def __init__(
        self,
        api: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        limiter: Limiter | None = None,
        policy: RetryPolicy | None = None,
        error_parser: ErrorParser = parse_error,
        terminal_429_codes: frozenset[str] = frozenset(),
        timeout: httpx.Timeout | float | None = None,
        max_connections: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        stats: ClientStats | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api = api
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or Unlimited()
        self.policy = policy or RetryPolicy()
        self.error_parser = error_parser
        self.terminal_429_codes = terminal_429_codes
        self.stats = stats or ClientStats()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": f"contactpipe/{__version__}", **headers},
            timeout=timeout or httpx.Timeout(30.0, read=180.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,
            transport=transport,  # None: httpx's own (the network)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _backoff(self, attempt: int) -> float:
        cap = min(self.policy.backoff_cap_s, self.policy.backoff_s * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)  # "equal jitter": never retries instantly

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        files: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        idempotent: bool = True,
        recover: Callable[[], httpx.Response | None] | None = None,
    ) -> httpx.Response:
        """Send one request with rate limiting and retries; return the 2xx response.

        ``endpoint`` names the request in statistics (default: method + path).  When the
        request is not ``idempotent`` and an attempt ended without a clear answer (timeout,
        dropped connection, 5xx), ``recover`` is called before resending: it returns a
        response standing for the first attempt's effect, or None to resend.

        ``content`` (bytes already encoded) needs its ``content_type``: a server's body parser
        ignores a body it is not told the type of (Express leaves it empty)."""
        headers: dict[str, str] = {}
        if json_body is not None:
            content = encode_json(json_body)
            content_type = "application/json"
        if content is not None and not content_type:
            raise ValueError(f"{self.api} {method} {path}: a raw body needs its content type")
        if content_type and content is not None:
            headers["Content-Type"] = content_type
        name = endpoint or f"{method} {path}"
        label = f"{self.api} {method} {path}"
        attempt = 0
        throttled_s = 0.0
        unclear = False  # an attempt ended without an answer: it may have taken effect
        while True:
            request = self._http.build_request(
                method, path, content=content, files=files, params=params, headers=headers
            )
            body = request.read()
            self.limiter.acquire(may_defer=idempotent or not unclear)
            self.stats.count(name, len(body))
            failure: str
            try:
                resp = self._http.send(request)
            except httpx.TimeoutException:
                failure = "timed out"
            except httpx.TransportError as exc:
                failure = f"connection failed ({type(exc).__name__})"
            else:
                self.limiter.done()
                status = resp.status_code
                if 200 <= status < 300:
                    self.limiter.on_success()
                    wait = retry_after_s(resp)
                    if wait:
                        self.limiter.pause_for(wait)
                    return resp
                code, message = self.error_parser(resp)
                if status == 429:
                    if code in self.terminal_429_codes:
                        raise QuotaExceeded(
                            f"{self.api}: {code}: {message}",
                            hint="the API's quota is used up; re-run once it is restored, "
                            "the import resumes safely",
                        )
                    self.stats.add("rate_limited")
                    self.limiter.on_throttled()
                    wait = retry_after_s(resp)
                    if wait is None:
                        wait = self.policy.throttle_backoff_s * random.uniform(1.0, 1.5)
                    throttled_s += wait
                    if throttled_s > self.policy.max_throttle_wait_s:
                        raise Unreachable(
                            f"{label}: still rate limited after waiting "
                            f"{throttled_s:.0f} s (429 {code})"
                        )
                    log.info("%s: 429 %s, waiting %.1f s", label, code, wait)
                    self.limiter.pause_for(wait)
                    self.stats.add("retries")
                    continue
                if status in (401, 403):
                    refused = AuthRefused(
                        f"{self.api} refused the request ({status} {code}: {message})",
                        hint="check the credentials in the environment (see "
                        "`contactpipe import --help`) and their permissions",
                    )
                    refused.status, refused.code = status, code
                    raise refused
                if status not in RETRY_STATUSES:
                    try:
                        parsed = resp.json()
                    except ValueError:
                        parsed = None
                    raise ApiRefused(status, code, message, parsed)
                failure = f"{status} {code}"
            unclear = True
            self.limiter.done()
            attempt += 1
            if attempt >= self.policy.attempts:
                raise Unreachable(
                    f"{label}: {failure}, {attempt} attempts",
                    hint="the API is down or unreachable; the report lists what was not sent, "
                    "and re-running the import is safe",
                )
            delay = self._backoff(attempt)
            log.warning(
                "%s: %s; retry %d/%d in %.1f s",
                label,
                failure,
                attempt,
                self.policy.attempts - 1,
                delay,
            )
            self._sleep(delay)
            self.stats.add("retries")
            if not idempotent and recover is not None:
                recovered = recover()
                if recovered is not None:
                    return recovered
