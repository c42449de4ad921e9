"""Data files of contactpipe: the canonical contact schema, header aliases, export presets and
per-target field maps.  Loaded with :func:`load`; nothing here imports the pipeline."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS_DIR = Path(__file__).resolve().parent


@cache
def load(name: str) -> Any:
    """Return the parsed JSON document ``schemas/<name>.json`` (cached)."""
    path = SCHEMAS_DIR / f"{name}.json"
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def contact_fields() -> tuple[str, ...]:
    """The canonical contact's fields, in the order of ``contact.schema.json``."""
    return tuple(load("contact.schema")["properties"])
