"""Where the state file lives: ``--state PATH`` wins, then ``CONTACTPIPE_STATE``, then the
per-user state directory:

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

STATE_ENV = "CONTACTPIPE_STATE"
FILE_NAME = "state.sqlite"


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


def resolve_state_path(option: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """``--state`` when given, else ``CONTACTPIPE_STATE`` when set, else the default."""
    env = os.environ if env is None else env
    if option:
        return Path(option).expanduser()
    if env.get(STATE_ENV, "").strip():
        return Path(env[STATE_ENV].strip()).expanduser()
    return default_state_path(env)
