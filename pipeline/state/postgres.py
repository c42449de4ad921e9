"""The PostgreSQL state store: one database shared by runs on several machines.

``--state postgresql://user@host/db`` (or ``CONTACTPIPE_STATE``) picks it; it implements
:class:`~.store.StateStore` the way :class:`~.store.SqliteStore` does, with these choices
(docs/state-postgresql.md tells why):

- **Tables** ``contactpipe_contacts``, ``contactpipe_accounts``, ``contactpipe_runs``,
  ``contactpipe_batches`` in the connection's schema (its ``search_path``: a URL may say
  ``?options=-csearch_path%3Dmyschema``), prefixed so that they can share a database.
- **Versions**: ``contactpipe_schema`` holds one row per migration applied; opening a store
  reads the highest (no DDL, no lock when up to date), else takes the *schema* advisory lock,
  then in a new transaction reads it again and applies the missing :data:`MIGRATIONS`.  A database
  written by a newer contactpipe is refused.
- **Writes**: SQLite's ``BEGIN IMMEDIATE`` serialises every write to a file.  Here every
  write to an account's contacts, label or runs is one transaction that first takes the
  account's transaction-level advisory lock (``pg_advisory_xact_lock`` on a 64-bit key of
  target and account fingerprint): writes into one account from any number of machines are
  serialised (no deadlock between two upserts of the same phones in another order, a
  ``forget`` never interleaves with a ``confirm``), writes into other accounts do not wait,
  and readers never wait (MVCC).  The lock is released at commit or rollback, also when the
  client dies (the server ends its session).  A lock not granted within ``lock_timeout``
  (60 s, SQLite's busy timeout) is an error.  The batch ledger and a run's status belong to
  one run (one process): their upserts need no account lock.
- **Batches**: a confirmation of any size is one ``INSERT ... SELECT FROM unnest(arrays)``
  per 50,000 rows, inside one transaction; ``lookup`` is one query.
- **Connection**: one per store, autocommit with explicit transactions; a connection the
  server or the network dropped is opened again once and the (idempotent) operation redone.
- **Errors** never carry the password: server unreachable (exit 4, retryable), password or
  permission refused (exit 4), a malformed URL or a newer schema (exit 2).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from contactpipe.errors import PipelineError

from .paths import mask_location
from .store import (
    SCHEMA_VERSION,
    Confirmed,
    Record,
    StateError,
    StateRefused,
    StateStore,
    StateUnavailable,
)

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

CHUNK = 50_000
"""Rows per ``unnest`` statement (arrays of this size stay a few MB; sent in binary, which
the server reads faster than array literals)."""

MIGRATIONS: dict[int, str] = {
    # version -> the SQL that brings a database at version-1 to it (the SQLite versions)
    1: """
    CREATE TABLE contactpipe_contacts (
        target        text NOT NULL,
        account       text NOT NULL,
        phone         text NOT NULL,
        remote_id     text,
        payload_hash  text NOT NULL,
        confirmed_at  timestamptz NOT NULL,
        run_id        text NOT NULL,
        PRIMARY KEY (target, account, phone)
    );
    CREATE TABLE contactpipe_accounts (
        target   text NOT NULL,
        account  text NOT NULL,
        label    text NOT NULL,
        PRIMARY KEY (target, account)
    );
    """,
    2: """
    CREATE TABLE contactpipe_runs (
        run_id       text PRIMARY KEY,
        seq          bigint GENERATED ALWAYS AS IDENTITY,
        target       text NOT NULL,
        account      text NOT NULL,
        inputs       text NOT NULL,
        started_at   timestamptz NOT NULL,
        finished_at  timestamptz,
        status       text NOT NULL
    );
    CREATE INDEX contactpipe_runs_by_account ON contactpipe_runs (target, account, started_at)
    """,
    3: """
    CREATE TABLE contactpipe_batches (
        run_id  text NOT NULL,
        batch   integer NOT NULL,
        rows    integer NOT NULL,
        status  text NOT NULL,
        at      timestamptz NOT NULL,
        PRIMARY KEY (run_id, batch)
    )
    """,
}
assert max(MIGRATIONS) == SCHEMA_VERSION

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS contactpipe_schema (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""

_ISO = """to_char(confirmed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
"""``confirmed_at`` as the SQLite store writes it (Python's ``isoformat``, microseconds)."""

_UPSERT = """
INSERT INTO contactpipe_contacts AS c
    (target, account, phone, remote_id, payload_hash, confirmed_at, run_id)
SELECT %(target)s, %(account)s, t.phone, t.remote_id, t.payload_hash, now(), %(run_id)s
FROM unnest(%(phones)b::text[], %(ids)b::text[], %(hashes)b::text[])
    AS t (phone, remote_id, payload_hash)
ON CONFLICT (target, account, phone) DO UPDATE SET
    remote_id = COALESCE(excluded.remote_id, c.remote_id),
    payload_hash = excluded.payload_hash,
    confirmed_at = excluded.confirmed_at,
    run_id = excluded.run_id
"""


def lock_key(*parts: str) -> int:
    """The signed 64-bit advisory-lock key of ``parts`` (stable across machines and Pythons,
    unlike ``hash()``)."""
    digest = hashlib.blake2b("\n".join(("contactpipe", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


SCHEMA_LOCK = lock_key("schema")


_AUTH = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "pg_hba.conf",
    "permission denied",
    "role ",
    "does not exist",
)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StateError(
            "a PostgreSQL state needs the psycopg package",
            hint="pip install 'contactpipe[postgres]'",
        ) from None
    return psycopg


class PostgresStore(StateStore):
    """The shared store: tables in a PostgreSQL database (created on first use)."""

    LOCK_TIMEOUT_S = 60.0
    CONNECT_TIMEOUT_S = 10

    def __init__(self, url: str) -> None:
        self.path = mask_location(url)
        self._pg = _psycopg()
        try:
            params = self._pg.conninfo.conninfo_to_dict(url)
        except self._pg.Error as exc:  # libpq quotes the URL: none of it is shown
            text = " ".join(str(exc).replace(url, self.path).split())
            found = re.search(r"://[^:/@]*:([^@]+)@", url)
            text = self._scrub(text, found.group(1) if found else None)
            raise StateError(
                f"state database {self.path}: not a usable PostgreSQL URL ({text})",
                hint="postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            ) from None
        self._secret = str(params.get("password") or "")
        params.setdefault("connect_timeout", self.CONNECT_TIMEOUT_S)
        params.setdefault("application_name", "contactpipe")
        # a server that vanishes mid-run (no FIN: power, network) is noticed in about a
        # minute instead of the system's two hours
        params.setdefault("keepalives_idle", 30)
        params.setdefault("keepalives_interval", 10)
        params.setdefault("keepalives_count", 3)
        self._params = params
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self._run("open", lambda conn: None)
        self._migrate()

    # -- connection and errors -------------------------------------------------------------

    def _scrub(self, text: str, secret: str | None = "") -> str:
        secret = self._secret if secret == "" else secret
        return text.replace(secret, "***") if secret else text

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._pg.connect(autocommit=True, **self._params)
        conn.execute(f"SET lock_timeout = '{int(self.LOCK_TIMEOUT_S * 1000)}ms'")
        return conn

    def _ready(self) -> psycopg.Connection[Any]:
        """The connection, opened again when it is gone, with no transaction left open (a
        signal may have landed between two statements)."""
        if self._closed:
            raise StateError(f"state database {self.path}: the store is closed")
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            conn.close()
            conn = self._conn = None
        if conn is None:
            conn = self._conn = self._connect()
            return conn
        status = conn.info.transaction_status
        idle = self._pg.pq.TransactionStatus.IDLE
        if status in (
            self._pg.pq.TransactionStatus.INTRANS,
            self._pg.pq.TransactionStatus.INERROR,
        ):
            conn.rollback()
        elif status != idle:  # a statement cut short: its answer may still be on the wire
            conn.close()
            self._conn = None  # (an error while connecting again is a connection error)
            conn = self._conn = self._connect()
        return conn

    def _run(self, doing: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` on the connection, under the store's thread lock; a connection the server
        or the network dropped is opened again and ``work`` (idempotent) done once more."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    return work(self._ready())
                except PipelineError:
                    raise
                except self._pg.Error as exc:
                    conn = self._conn
                    dropped = conn is not None and (conn.closed or conn.broken)
                    if attempt == 1 and dropped and isinstance(exc, self._pg.OperationalError):
                        continue
                    raise self._error(exc, doing) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, exc: Exception, doing: str) -> PipelineError:
        """``exc`` as contactpipe's error, with no password in it."""
        pg, errors = self._pg, self._pg.errors
        text = self._scrub(" ".join(str(exc).split()))
        where = f"state database {self.path}"
        if isinstance(exc, errors.InsufficientPrivilege):
            return StateRefused(
                f"{where}: no permission to {doing}: {text}",
                hint="grant this role CREATE on the schema (PostgreSQL 15 no longer grants it "
                "on public) and read/write on the contactpipe_* tables, or let the database "
                "owner run contactpipe once to create them",
            )
        if isinstance(exc, errors.LockNotAvailable):
            return StateUnavailable(
                f"{where}: another run held this account's state for more than "
                f"{self.LOCK_TIMEOUT_S:.0f} s ({doing})",
                hint="run again when the other import is done",
            )
        if isinstance(exc, pg.OperationalError) and self._conn is None:  # connecting
            lowered = text.lower()
            if ("invalid" in lowered and "value" in lowered) or "invalid connection" in lowered:
                return StateError(f"{where}: {text}")
            if any(marker in lowered for marker in _AUTH):
                return StateRefused(
                    f"{where}: the server refused the connection: {text}",
                    hint="check the user, password (also PGPASSWORD, ~/.pgpass) and database "
                    "of the URL",
                )
            return StateUnavailable(
                f"{where}: cannot reach the server: {text}",
                hint="check the host and port, and that PostgreSQL is running there",
            )
        if isinstance(exc, pg.OperationalError):
            return StateUnavailable(f"{where}: the connection failed while {doing}: {text}")
        return StateError(f"{where}: {doing}: {text}")

    # -- schema ----------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._run("read the schema version", self._version)

    @staticmethod
    def _version(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT to_regclass('contactpipe_schema') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM contactpipe_schema").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        if self.version == SCHEMA_VERSION:  # the usual case: no DDL, no lock
            return

        def migrate(conn: psycopg.Connection[Any]) -> None:
            # The lock is taken before the transaction, not in it: a session that waited for
            # another run's migration must start a new transaction to see its tables (it
            # reads the catalog's changes at transaction start; inside the same transaction
            # its cache could still say "no such table" and CREATE would collide).
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                with conn.transaction():
                    current = self._version(conn)  # another run may have migrated meanwhile
                    if current > SCHEMA_VERSION:
                        return
                    conn.execute(VERSION_TABLE)
                    for version in range(current + 1, SCHEMA_VERSION + 1):
                        for statement in MIGRATIONS[version].split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute(
                            "INSERT INTO contactpipe_schema (version) VALUES (%s)", (version,)
                        )
            finally:
                if not (conn.closed or conn.broken):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))

        self._run("create or migrate the contactpipe tables", migrate)
        current = self.version
        if current > SCHEMA_VERSION:
            raise StateError(
                f"state database {self.path} has schema version {current}, newer than this "
                f"contactpipe knows ({SCHEMA_VERSION})",
                hint="upgrade contactpipe, or use another database with --state",
            )

    # -- the interface ---------------------------------------------------------------------

    def _write(
        self,
        doing: str,
        statements: Callable[[psycopg.Connection[Any]], int],
        account: tuple[str, str] | None = None,
    ) -> int:
        """One transaction: the account's advisory lock first (when it writes an account's
        data), then ``statements``; rolled back on any exception."""

        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                if account is not None:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(*account),))
                return statements(conn)

        return self._run(doing, work)

    def lookup(self, target: str, account: str) -> dict[str, Record]:
        def read(conn: psycopg.Connection[Any]) -> dict[str, Record]:
            cur = conn.execute(
                f"SELECT phone, remote_id, payload_hash, {_ISO}, run_id "
                "FROM contactpipe_contacts WHERE target = %s AND account = %s",
                (target, account),
            )
            return {row[0]: Record(*row) for row in cur}

        return self._run("read the state", read)

    def count(self, target: str, account: str) -> int:
        def read(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(
                "SELECT count(*) FROM contactpipe_contacts WHERE target = %s AND account = %s",
                (target, account),
            ).fetchone()
            return int(row[0]) if row else 0

        return self._run("read the state", read)

    def confirm(self, target: str, account: str, run_id: str, rows: Iterable[Confirmed]) -> int:
        # One row per phone (an upsert cannot touch a row twice): the last payload wins and
        # a remote id once given is kept, as SQLite's row-by-row upserts do.
        merged: dict[str, tuple[str | None, str]] = {}
        n = 0
        for r in rows:
            n += 1
            known = merged.get(r.phone)
            rid = r.remote_id if r.remote_id is not None or known is None else known[0]
            merged[r.phone] = (rid, r.payload_hash)
        if not n:
            return 0
        phones = list(merged)
        values = list(merged.values())

        def upsert(conn: psycopg.Connection[Any]) -> int:
            for start in range(0, len(phones), CHUNK):
                part = values[start : start + CHUNK]
                conn.execute(
                    _UPSERT,
                    {
                        "target": target,
                        "account": account,
                        "run_id": run_id,
                        "phones": phones[start : start + CHUNK],
                        "ids": [v[0] for v in part],
                        "hashes": [v[1] for v in part],
                    },
                )
            return n

        return self._write("record confirmed contacts", upsert, (target, account))

    def label(self, target: str, account: str, label: str) -> None:
        def upsert(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(
                "INSERT INTO contactpipe_accounts (target, account, label) VALUES (%s, %s, %s) "
                "ON CONFLICT (target, account) DO UPDATE SET label = excluded.label",
                (target, account, label),
            ).rowcount

        self._write("record the account", upsert, (target, account))

    def forget(self, target: str, account: str, phones: Iterable[str] | None = None) -> int:
        where = "DELETE FROM contactpipe_contacts WHERE target = %s AND account = %s"
        wanted = None if phones is None else list(dict.fromkeys(phones))

        def delete(conn: psycopg.Connection[Any]) -> int:
            if wanted is None:
                return conn.execute(where, (target, account)).rowcount
            gone = 0
            for start in range(0, len(wanted), CHUNK):
                gone += conn.execute(
                    f"{where} AND phone = ANY(%b)",
                    (target, account, wanted[start : start + CHUNK]),
                ).rowcount
            return gone

        if wanted == []:
            return 0
        return self._write("forget contacts", delete, (target, account))

    def begin_run(self, run_id: str, target: str, account: str, inputs: str) -> None:
        def upsert(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(
                "INSERT INTO contactpipe_runs "
                "(run_id, target, account, inputs, started_at, status) "
                "VALUES (%s, %s, %s, %s, clock_timestamp(), 'running') "
                "ON CONFLICT (run_id) DO UPDATE SET status = 'running', finished_at = NULL",
                (run_id, target, account, inputs),
            ).rowcount

        self._write("record the run", upsert, (target, account))

    def end_run(self, run_id: str, status: str) -> None:
        def update(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(
                "UPDATE contactpipe_runs SET status = %s, finished_at = clock_timestamp() "
                "WHERE run_id = %s",
                (status, run_id),
            ).rowcount

        self._write("record the end of the run", update)

    def unfinished_run(self, target: str, account: str) -> tuple[str, str] | None:
        def read(conn: psycopg.Connection[Any]) -> Any:
            return conn.execute(
                "SELECT run_id, inputs, status FROM contactpipe_runs "
                "WHERE target = %s AND account = %s ORDER BY started_at DESC, seq DESC LIMIT 1",
                (target, account),
            ).fetchone()

        row = self._run("read the runs", read)
        return None if row is None or row[2] == "finished" else (row[0], row[1])

    def ledger(self, run_id: str, batch: int, rows: int, status: str) -> None:
        def upsert(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(
                "INSERT INTO contactpipe_batches (run_id, batch, rows, status, at) "
                "VALUES (%s, %s, %s, %s, clock_timestamp()) ON CONFLICT (run_id, batch) "
                "DO UPDATE SET status = excluded.status, at = excluded.at",
                (run_id, batch, rows, status),
            ).rowcount

        self._write("record a batch", upsert)

    def batches(self, run_id: str) -> dict[str, int]:
        def read(conn: psycopg.Connection[Any]) -> dict[str, int]:
            cur = conn.execute(
                "SELECT status, count(*) FROM contactpipe_batches WHERE run_id = %s "
                "GROUP BY status",
                (run_id,),
            )
            return {str(k): int(v) for k, v in cur}

        return self._run("read the batch ledger", read)

    def settle_unknown(self, run_id: str) -> int:
        def update(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(
                "UPDATE contactpipe_batches SET status = 'settled' "
                "WHERE run_id = %s AND status = 'sent'",
                (run_id,),
            ).rowcount

        return self._write("settle the batches of unknown outcome", update)

    def clock(self) -> str:
        def read(conn: psycopg.Connection[Any]) -> str:
            row = conn.execute(f"SELECT {_ISO.replace('confirmed_at', 'now()')}").fetchone()
            return str(row[0]) if row else ""

        return self._run("read the server's clock", read)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
