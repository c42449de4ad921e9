"""Sync state: what contactpipe confirmed in each account, so that a re-import sends only
what changed.

- :mod:`.store`: the :class:`~.store.StateStore` interface (what the load asks) and
  :class:`~.store.SqliteStore`, the embedded implementation (one SQLite file, WAL,
  transactions, versioned schema);
- :mod:`.postgres`: :class:`~.postgres.PostgresStore`, the same interface on a PostgreSQL
  database shared by runs on several machines (``--state postgresql://...``);
- :mod:`.paths`: where the state lives (``--state PATH|URL``, ``CONTACTPIPE_STATE``, else a
  per-user file), and the location with its password masked for reports.

A record is keyed by target, account fingerprint (base URL and account / workspace / phone
id, never a secret) and the contact's E.164 phone; it holds the remote id when known, the hash
of the payload the API last confirmed, when, and by which run.  Nothing here imports the load
layer: the load kit (:mod:`contactpipe.load.kit.state`) asks the store.
"""

from __future__ import annotations

from .paths import (
    STATE_ENV,
    StateLocation,
    default_state_path,
    is_server_url,
    mask_location,
    resolve_state_path,
    state_exists,
    state_location,
)
from .store import (
    SCHEMA_VERSION,
    Confirmed,
    Record,
    SqliteStore,
    StateError,
    StateRefused,
    StateStore,
    StateUnavailable,
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
    "StateLocation",
    "StateRefused",
    "StateStore",
    "StateUnavailable",
    "content_digest",
    "default_state_path",
    "is_server_url",
    "mask_location",
    "open_store",
    "resolve_state_path",
    "state_exists",
    "state_location",
]
