"""Credentials and base URLs from the environment, checked before anything is sent.

Plain ``http://`` is accepted only for loopback hosts (the sandbox, a local proxy): anywhere
else it would send API keys in clear text.  Messages name variables, never their values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from pipeline.errors import UsageError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and 127.0.0.0/8, ::1."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
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
    """The stripped value of ``var``, or UsageError naming it."""
    value = env.get(var, "").strip()
    if not value:
        raise UsageError(
            f"{title}: {var} is not set",
            hint=f"export {var}=... (contactpipe reads credentials from the environment only)",
        )
    return value
