"""The targets: one package per API, found by :mod:`contactpipe.load.registry`.

Adding a target is one package here (``INFO`` in its ``__init__``, the class in
``INFO.module``), its field map in ``schemas/targets/<name>.json``, its contract in
``docs/targets/`` and its sandbox module.
"""

from __future__ import annotations

from ..registry import get, names

__all__ = ["get", "names"]
