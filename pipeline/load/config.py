"""Credentials and base URLs from the environment, checked before anything is sent.

Plain ``http://`` is accepted only for loopback hosts (the sandbox, a local proxy): anywhere
else it would send API keys in clear text.  A loopback host is a literal loopback address
(``127.0.0.0/8``, ``::1``) or the name ``localhost`` itself; ``x.localhost`` is a name like any
other (a resolver or a proxy may send it anywhere).  A credential with a character an HTTP
header cannot carry (a line break, a control or non-ASCII character, usually from a copy-paste)
is refused before any request.  Messages name variables, never their values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from contactpipe.errors import UsageError

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` itself and literal 127.0.0.0/8 and ::1 addresses."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, source: str) -> str:
    """Return ``url`` without a trailing slash, or raise UsageError saying what is wrong.
    ``source`` names where the URL came from (``--base-url`` or a variable)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source}: {url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise UsageError(f"{source}: credentials do not belong in the URL; use the variables")
    if parts.query or parts.fragment:
        raise UsageError(f"{source}: the base URL takes no query string or fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"{source}: plain http:// is only allowed for loopback hosts",
            hint="use https:// (credentials would travel in clear text)",
        )
    return url.rstrip("/")


def base_url(
    cli_value: str | None, env: Mapping[str, str], var: str, default: str | None, title: str
) -> str:
    """``--base-url``, else ``$var``, else the documented default."""
    if cli_value:
        return check_base_url(cli_value, "--base-url")
    value = env.get(var, "").strip()
    if value:
        return check_base_url(value, var)
    if default is None:
        raise UsageError(
            f"{title} has no public base URL: set {var} or pass --base-url",
            hint=f"e.g. {var}=https://<your vendor host>/api",
        )
    return default


def require(env: Mapping[str, str], var: str, title: str) -> str:
    """The stripped value of ``var``, or UsageError naming it (unset, or holding a character
    an HTTP header cannot carry)."""
    value = env.get(var, "").strip()
    if not value:
        raise UsageError(
            f"{title}: {var} is not set",
            hint=f"export {var}=... (contactpipe reads credentials from the environment only)",
        )
    check_header_value(value, f"{title}: {var}")
    return value


def header_safe(value: str) -> bool:
    """True when ``value`` is printable ASCII (what an HTTP header value can carry as is)."""
    return value.isascii() and all(" " <= ch <= "~" for ch in value)


def check_header_value(value: str, where: str) -> None:
    """UsageError (exit 2) naming ``where`` when ``value`` cannot go into an HTTP header.
    The value itself is never shown: it is a credential."""
    if header_safe(value):
        return
    bad = next(ch for ch in value if not (ch.isascii() and " " <= ch <= "~"))
    kind = (
        "a line break"
        if bad in "\r\n"
        else "a control character"
        if ord(bad) < 32 or ord(bad) == 127
        else "a non-ASCII character"
    )
    position = value.index(bad) + 1
    raise UsageError(
        f"{where} contains {kind} at position {position}; it cannot be sent in an HTTP "
        "header, so nothing was sent",
        hint="set it again from the provider's console (copy-paste often adds such characters)",
    )
