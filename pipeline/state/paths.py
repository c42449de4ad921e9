"""Where the state lives: ``--state PATH|URL`` wins, then ``CONTACTPIPE_STATE``, then the
per-user state file.  A ``postgresql://`` (or ``postgres://``) URL names a PostgreSQL
database shared by runs on several machines; anything else is a SQLite file path.  The
per-user file:

- Linux and other Unix: ``$XDG_STATE_HOME/contactpipe/state.sqlite`` (default
  ``~/.local/state/contactpipe/state.sqlite``);
- macOS: ``~/Library/Application Support/contactpipe/state.sqlite``;
- Windows: ``%LOCALAPPDATA%\\contactpipe\\state.sqlite``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

STATE_ENV = "CONTACTPIPE_STATE"
FILE_NAME = "state.sqlite"
SERVER_SCHEMES = ("postgresql", "postgres")

StateLocation = Path | str
"""A SQLite file (a :class:`~pathlib.Path`) or a PostgreSQL URL (a ``str``)."""


def is_server_url(location: object) -> bool:
    """Whether ``location`` is a ``postgresql://`` / ``postgres://`` URL (a ``str``: a
    :class:`~pathlib.Path` is always a file, ``Path`` folds the ``//`` of a URL anyway)."""
    if not isinstance(location, str):
        return False
    scheme, sep, _ = location.strip().partition("://")
    return bool(sep) and scheme.lower() in SERVER_SCHEMES


def state_location(location: str | os.PathLike[str]) -> StateLocation:
    """A server URL stays the string it is; anything else is a file path."""
    if is_server_url(location):
        return str(location).strip()
    return Path(location).expanduser()


def state_exists(location: StateLocation) -> bool:
    """Whether there may be a state to update there: a file that exists, or any server (its
    tables are created on first use)."""
    return is_server_url(location) or Path(location).exists()


def mask_location(location: str | os.PathLike[str]) -> str:
    """``location`` fit for a report or a message: a URL's password (in its user part or a
    ``password=`` parameter) becomes ``***``; a path is shown as it is."""
    text = os.fspath(location)
    if not is_server_url(text):
        return text
    try:
        parts = urlsplit(text.strip())
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in query):
            masked = [(k, "***" if k.lower() == "password" else v) for k, v in query]
            parts = parts._replace(query=urlencode(masked, safe="*"))
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # not even a URL: show none of it rather than a secret
        return f"{text.partition('://')[0]}://***"


def default_state_path(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user state file (not created here)."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    home = Path(env.get("HOME") or Path.home())
    if platform.startswith("win"):
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_STATE_HOME") or home / ".local" / "state")
    return base / "contactpipe" / FILE_NAME


def resolve_state_path(
    option: str | Path | None, env: Mapping[str, str] | None = None
) -> StateLocation:
    """``--state`` when given, else ``CONTACTPIPE_STATE`` when set, else the default file.
    A PostgreSQL URL is returned as the string it is, a file as a :class:`~pathlib.Path`."""
    env = os.environ if env is None else env
    if option:
        return state_location(option)
    if env.get(STATE_ENV, "").strip():
        return state_location(env[STATE_ENV].strip())
    return default_state_path(env)
