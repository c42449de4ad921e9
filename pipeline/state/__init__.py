"""Sync state: what contactpipe confirmed in each account, so that a re-import sends only
what changed.

- :mod:`.store`: the :class:`~.store.StateStore` interface (what the load asks) and
  :class:`~.store.SqliteStore`, the embedded implementation (one SQLite file, WAL,
  transactions, versioned schema);
- :mod:`.paths`: where the file lives (``--state PATH``, ``CONTACTPIPE_STATE``, else a
  per-user path).

A record is keyed by target, account fingerprint (base URL and account / workspace / phone
id, never a secret) and the contact's E.164 phone; it holds the remote id when known, the hash
of the payload the API last confirmed, when, and by which run.  Nothing here imports the load
layer: the load kit (:mod:`contactpipe.load.kit.state`) asks the store.
"""

from __future__ import annotations

from .paths import STATE_ENV, default_state_path, resolve_state_path
from .store import (
    SCHEMA_VERSION,
    Confirmed,
    Record,
    SqliteStore,
    StateError,
    StateStore,
    content_digest,
    open_store,
)

__all__ = [
    "SCHEMA_VERSION",
    "STATE_ENV",
    "Confirmed",
    "Record",
    "SqliteStore",
    "StateError",
    "StateStore",
    "content_digest",
    "default_state_path",
    "open_store",
    "resolve_state_path",
]
