"""The targets: one module per API, each a small class over the shared client.

Adding a target is one module here plus its field map in ``schemas/targets/<name>.json``.
"""

from __future__ import annotations

import importlib

from pipeline.errors import UsageError

from ..base import Target

NAMES = ("msgflash", "waapi", "vobiz")


def get(name: str) -> type[Target]:
    """The target class called ``name`` (imported on first use)."""
    if name not in NAMES:
        raise UsageError(f"unknown target {name!r}", hint=f"choose one of {', '.join(NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    cls: type[Target] = module.TARGET
    return cls
