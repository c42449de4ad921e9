"""The state store: a small interface the load asks, and its embedded SQLite implementation.

The interface (:class:`StateStore`) is also what the shared PostgreSQL store
(:mod:`.postgres`) implements for teams whose runs happen on several machines;
:func:`open_store` picks one from the location.

The SQLite file runs in WAL mode (readers never wait for a writer), every write is one
``BEGIN IMMEDIATE`` transaction and waits up to ``busy_timeout`` for another run's, so two
runs on one file (two cron jobs overlapping) both finish: each confirmation is an upsert
keyed by (target, account, phone), the later one wins.  The schema version is SQLite's
``user_version``; :data:`MIGRATIONS` bring an older file up to date in one transaction, and a
file written by a newer contactpipe is refused rather than guessed at.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from contactpipe.errors import InputError, TerminalRemoteError, TransientRemoteError


class StateError(InputError):
    """The state file cannot be used (unreadable, not a state file, newer schema): exit 2."""


class StateUnavailable(TransientRemoteError):
    """The state server cannot be reached (down, network, a lock held too long): exit 4,
    worth retrying later."""


class StateRefused(TerminalRemoteError):
    """The state server refused these credentials or this role's access: exit 4, retrying
    cannot help."""


@dataclass(frozen=True)
class Record:
    """What the state knows of one contact in one account."""

    phone: str
    remote_id: str | None
    payload_hash: str
    confirmed_at: str
    run_id: str


@dataclass(frozen=True)
class Confirmed:
    """A contact the API has just confirmed with this payload (remote id when known)."""

    phone: str
    payload_hash: str
    remote_id: str | None = None


class StateStore(ABC):
    """What the load asks of a state store.  ``target`` is a registry name, ``account`` an
    account fingerprint (:func:`contactpipe.load.kit.state.fingerprint`), phones are E.164."""

    path: str
    """Where it lives, for reports (a file path, or a server's address without password)."""

    @abstractmethod
    def lookup(self, target: str, account: str) -> dict[str, Record]:
        """Every record of the account: phone -> record."""

    @abstractmethod
    def count(self, target: str, account: str) -> int:
        """How many contacts the state holds for the account (0: no state, load as new)."""

    @abstractmethod
    def confirm(self, target: str, account: str, run_id: str, rows: Iterable[Confirmed]) -> int:
        """Record that the API confirmed ``rows`` (one transaction); return how many."""

    @abstractmethod
    def label(self, target: str, account: str, label: str) -> None:
        """Keep a readable name for the account (base URL and account id: no secret)."""

    @abstractmethod
    def forget(self, target: str, account: str, phones: Iterable[str] | None = None) -> int:
        """Drop the records of ``phones`` (all of the account when None); return how many."""

    @abstractmethod
    def begin_run(self, run_id: str, target: str, account: str, inputs: str) -> None:
        """Record an import starting (``inputs``: a digest of its input files' content), or
        starting again (a resume keeps its run id)."""

    @abstractmethod
    def end_run(self, run_id: str, status: str) -> None:
        """``finished``, or ``interrupted`` (a resume may finish it)."""

    @abstractmethod
    def unfinished_run(self, target: str, account: str) -> tuple[str, str] | None:
        """(run id, inputs digest) of the account's latest import that did not finish
        (stopped, or killed: still ``running``), or None."""

    @abstractmethod
    def ledger(self, run_id: str, batch: int, rows: int, status: str) -> None:
        """The batch ledger of a run: request ``batch`` carrying ``rows`` contacts is
        ``sent`` (written before it goes out), then ``confirmed`` (the API answered for
        its rows) or ``failed`` (refused); one still ``sent`` when the run ended is of unknown
        outcome, and ``settled`` once a resume sent its rows again."""

    @abstractmethod
    def batches(self, run_id: str) -> dict[str, int]:
        """Status -> how many batches of the run."""

    @abstractmethod
    def settle_unknown(self, run_id: str) -> int:
        """Mark the run's batches of unknown outcome ``settled``; return how many there were."""

    def clock(self) -> str:
        """The store's current time, in the format of :attr:`Record.confirmed_at` (ISO-8601,
        UTC, microseconds): the clock confirmations are stamped with, which a server store takes
        from the server so that runs on machines whose clocks differ compare alike."""
        return _now()

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SCHEMA_VERSION = 3
MIGRATIONS: dict[int, str] = {
    # version -> the SQL that brings a file at version-1 to it
    1: """
    CREATE TABLE contacts (
        target        TEXT NOT NULL,
        account       TEXT NOT NULL,
        phone         TEXT NOT NULL,
        remote_id     TEXT,
        payload_hash  TEXT NOT NULL,
        confirmed_at  TEXT NOT NULL,
        run_id        TEXT NOT NULL,
        PRIMARY KEY (target, account, phone)
    ) WITHOUT ROWID;
    CREATE TABLE accounts (
        target   TEXT NOT NULL,
        account  TEXT NOT NULL,
        label    TEXT NOT NULL,
        PRIMARY KEY (target, account)
    ) WITHOUT ROWID;
    """,
    2: """
    CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY,
        target       TEXT NOT NULL,
        account      TEXT NOT NULL,
        inputs       TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        status       TEXT NOT NULL
    );
    CREATE INDEX runs_by_account ON runs (target, account, started_at);
    """,
    3: """
    CREATE TABLE batches (
        run_id  TEXT NOT NULL,
        batch   INTEGER NOT NULL,
        rows    INTEGER NOT NULL,
        status  TEXT NOT NULL,
        at      TEXT NOT NULL,
        PRIMARY KEY (run_id, batch)
    ) WITHOUT ROWID;
    """,
}

_UPSERT = """
INSERT INTO contacts (target, account, phone, remote_id, payload_hash, confirmed_at, run_id)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (target, account, phone) DO UPDATE SET
    remote_id = COALESCE(excluded.remote_id, contacts.remote_id),
    payload_hash = excluded.payload_hash,
    confirmed_at = excluded.confirmed_at,
    run_id = excluded.run_id
"""


def _now() -> str:
    """ISO-8601 UTC to the microsecond (older files hold seconds: ``12:00:00+00:00`` still
    sorts before ``12:00:00.5+00:00`` as text, as it should)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class SqliteStore(StateStore):
    """The embedded store: one SQLite file (created with its directory on first use)."""

    BUSY_TIMEOUT_S = 60.0

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path,
                timeout=self.BUSY_TIMEOUT_S,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # the lock serialises the load's threads
            )
            self._settle_in()
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"state file {self.path}: {exc}",
                hint="choose another file with --state, or move this one away to start over",
            ) from exc
        except OSError as exc:
            raise StateError(f"state file {self.path}: {exc.strerror or exc}") from exc

    def _settle_in(self) -> None:
        """WAL mode and the schema.  Switching a new file to WAL takes an exclusive lock for
        which SQLite does not always call its busy handler: a second run opening the file at
        the same moment gets "database is locked" at once, so the setup is retried until the
        busy timeout."""
        deadline = time.monotonic() + self.BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints
                self._migrate()
                return
            except (sqlite3.OperationalError, StateError) as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.  A signal
        (Ctrl-C, SIGTERM) may land between two statements: a transaction it left open is
        rolled back before the next one starts.  SQLite's own errors (disk full, a lock held
        past the busy timeout) become :class:`StateError`."""
        db = self._db
        try:
            with self._lock:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                try:
                    db.execute("BEGIN IMMEDIATE")
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StateError(f"state file {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        if self.version == SCHEMA_VERSION:
            return
        with self._transaction() as db:
            current = self.version  # another run may have migrated meanwhile
            if current > SCHEMA_VERSION:
                raise StateError(
                    f"state file {self.path} has schema version {current}, newer than this "
                    f"contactpipe knows ({SCHEMA_VERSION})",
                    hint="upgrade contactpipe, or use another file with --state",
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")

    def _write(self, statements: Iterator[tuple[str, tuple[object, ...]]]) -> int:
        changed = 0
        with self._transaction() as db:
            for sql, params in statements:
                changed += db.execute(sql, params).rowcount
        return changed

    def lookup(self, target: str, account: str) -> dict[str, Record]:
        with self._lock:
            cur = self._db.execute(
                "SELECT phone, remote_id, payload_hash, confirmed_at, run_id FROM contacts "
                "WHERE target = ? AND account = ?",
                (target, account),
            )
            return {row[0]: Record(*row) for row in cur}

    def count(self, target: str, account: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM contacts WHERE target = ? AND account = ?",
                (target, account),
            ).fetchone()
        return int(row[0])

    def confirm(self, target: str, account: str, run_id: str, rows: Iterable[Confirmed]) -> int:
        now = _now()
        data = [(target, account, r.phone, r.remote_id, r.payload_hash, now, run_id) for r in rows]
        if not data:
            return 0
        with self._transaction() as db:
            db.executemany(_UPSERT, data)
        return len(data)

    def label(self, target: str, account: str, label: str) -> None:
        sql = "INSERT OR REPLACE INTO accounts (target, account, label) VALUES (?, ?, ?)"
        self._write(iter([(sql, (target, account, label))]))

    def forget(self, target: str, account: str, phones: Iterable[str] | None = None) -> int:
        if phones is None:
            sql = "DELETE FROM contacts WHERE target = ? AND account = ?"
            return self._write(iter([(sql, (target, account))]))
        sql = "DELETE FROM contacts WHERE target = ? AND account = ? AND phone = ?"
        return self._write((sql, (target, account, p)) for p in phones)

    def begin_run(self, run_id: str, target: str, account: str, inputs: str) -> None:
        sql = (
            "INSERT INTO runs (run_id, target, account, inputs, started_at, status) "
            "VALUES (?, ?, ?, ?, ?, 'running') ON CONFLICT (run_id) DO UPDATE SET "
            "status = 'running', finished_at = NULL"
        )
        self._write(iter([(sql, (run_id, target, account, inputs, _now()))]))

    def end_run(self, run_id: str, status: str) -> None:
        sql = "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?"
        self._write(iter([(sql, (status, _now(), run_id))]))

    def unfinished_run(self, target: str, account: str) -> tuple[str, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT run_id, inputs, status FROM runs WHERE target = ? AND account = ? "
                "ORDER BY started_at DESC, rowid DESC LIMIT 1",
                (target, account),
            ).fetchone()
        return None if row is None or row[2] == "finished" else (row[0], row[1])

    def ledger(self, run_id: str, batch: int, rows: int, status: str) -> None:
        sql = (
            "INSERT INTO batches (run_id, batch, rows, status, at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, batch) DO UPDATE SET status = excluded.status, at = excluded.at"
        )
        self._write(iter([(sql, (run_id, batch, rows, status, _now()))]))

    def batches(self, run_id: str) -> dict[str, int]:
        with self._lock:
            cur = self._db.execute(
                "SELECT status, count(*) FROM batches WHERE run_id = ? GROUP BY status", (run_id,)
            )
            return {str(k): int(v) for k, v in cur}

    def settle_unknown(self, run_id: str) -> int:
        sql = "UPDATE batches SET status = 'settled' WHERE run_id = ? AND status = 'sent'"
        return self._write(iter([(sql, (run_id,))]))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def content_digest(paths: Iterable[str | Path]) -> str:
    """One SHA-256 over the content of ``paths`` in order (names left out: a file moved or
    renamed with the same content is the same input)."""
    total = hashlib.sha256()
    for path in paths:
        if not Path(path).is_file():  # standard input cannot be read twice: its name only
            total.update(str(path).encode())
            continue
        with open(path, "rb") as fh:
            total.update(hashlib.file_digest(fh, "sha256").digest())
    return total.hexdigest()


def open_store(location: str | os.PathLike[str]) -> StateStore:
    """The store at ``location``: a ``postgresql://`` / ``postgres://`` URL opens the shared
    PostgreSQL store (:mod:`.postgres`, the ``[postgres]`` extra), anything else the SQLite
    file at that path."""
    from .paths import is_server_url

    if is_server_url(location):
        from .postgres import PostgresStore

        return PostgresStore(str(location).strip())
    return SqliteStore(Path(location))
