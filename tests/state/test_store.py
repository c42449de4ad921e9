"""The state stores: records, upserts, forgetting, the schema version and its migration, a
file it cannot use, concurrent writers, and where the file lives.  The tests of the
interface run against both stores: the SQLite file and a real PostgreSQL server
(``location``); tests/state/test_postgres.py has the PostgreSQL-only ones."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from contactpipe.state import (
    SCHEMA_VERSION,
    Confirmed,
    SqliteStore,
    StateError,
    StateLocation,
    default_state_path,
    open_store,
    resolve_state_path,
)


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> StateLocation:
    """A new, empty state: a SQLite file (in a folder not made yet), or a PostgreSQL URL
    (its own schema on the test server)."""
    if request.param == "sqlite":
        return tmp_path / "sub" / "s.sqlite"
    return str(request.getfixturevalue("pg_url"))


def test_confirm_lookup_and_upsert(location: StateLocation) -> None:
    with open_store(location) as store:
        assert store.count("waapi", "acc") == 0
        n = store.confirm("waapi", "acc", "run1", [Confirmed("+33612", "h1", "id-1")])
        assert n == 1
        store.confirm("waapi", "acc", "run2", [Confirmed("+33612", "h2"), Confirmed("+1555", "h3")])
        found = store.lookup("waapi", "acc")
        assert set(found) == {"+33612", "+1555"}
        rec = found["+33612"]
        assert (rec.payload_hash, rec.run_id) == ("h2", "run2")
        assert rec.remote_id == "id-1"  # an answer without id keeps the id known
        assert rec.confirmed_at.endswith("+00:00")
        # keyed by target and account: nothing leaks between them
        assert store.lookup("waapi", "other") == {}
        assert store.lookup("vobiz", "acc") == {}
        assert store.forget("waapi", "acc", ["+1555"]) == 1
        assert store.count("waapi", "acc") == 1
        assert store.forget("waapi", "acc") == 1
        assert store.count("waapi", "acc") == 0


def test_the_schema_version_is_recorded(location: StateLocation) -> None:
    with open_store(location) as store:
        assert store.version == SCHEMA_VERSION  # type: ignore[attr-defined]
    with open_store(location) as store:  # opened again: nothing to migrate
        assert store.version == SCHEMA_VERSION  # type: ignore[attr-defined]


def test_schema_version_is_recorded_and_wal_is_on(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_at_version_zero_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    sqlite3.connect(path).close()  # an empty database: version 0
    with SqliteStore(path) as store:
        assert store.version == SCHEMA_VERSION
        store.confirm("msgflash", "a", "r", [Confirmed("+1", "h")])
        assert store.count("msgflash", "a") == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match="newer than this contactpipe knows"):
        SqliteStore(path)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match=r"state file .*s\.sqlite") as info:
        SqliteStore(path)
    assert info.value.exit_code == 2


def test_two_writers_at_once_both_land(location: StateLocation) -> None:
    open_store(location).close()
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            with open_store(location) as store:  # one connection each, like two processes
                for b in range(20):
                    rows = [Confirmed(f"+1{k}{b:03d}{i:04d}", "h") for i in range(200)]
                    store.confirm("waapi", "acc", f"run{k}", rows)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with open_store(location) as store:
        assert store.count("waapi", "acc") == 2 * 20 * 200


def test_where_the_file_lives() -> None:
    env = {"HOME": "/home/ana"}
    assert default_state_path(env, "linux") == Path(
        "/home/ana/.local/state/contactpipe/state.sqlite"
    )
    xdg = {**env, "XDG_STATE_HOME": "/var/x"}
    assert default_state_path(xdg, "linux") == Path("/var/x/contactpipe/state.sqlite")
    assert default_state_path(env, "darwin") == Path(
        "/home/ana/Library/Application Support/contactpipe/state.sqlite"
    )
    win = {"HOME": "C:/Users/ana", "LOCALAPPDATA": "C:/Users/ana/AppData/Local"}
    assert default_state_path(win, "win32") == Path(
        "C:/Users/ana/AppData/Local/contactpipe/state.sqlite"
    )
    # --state wins over CONTACTPIPE_STATE, which wins over the default
    both = {**env, "CONTACTPIPE_STATE": "/tmp/env.sqlite"}
    assert resolve_state_path("/tmp/opt.sqlite", both) == Path("/tmp/opt.sqlite")
    assert resolve_state_path(None, both) == Path("/tmp/env.sqlite")
    assert resolve_state_path(None, env) == default_state_path(env)


def test_a_version_1_file_keeps_its_contacts_when_migrated(tmp_path: Path) -> None:
    from contactpipe.state.store import MIGRATIONS

    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[1])
        db.execute(
            "INSERT INTO contacts VALUES ('waapi', 'acc', '+1', 'id', 'h', '2026-01-01', 'r')"
        )
        db.execute("PRAGMA user_version = 1")
    with SqliteStore(path) as store:
        assert store.version == SCHEMA_VERSION == 3
        assert store.lookup("waapi", "acc")["+1"].remote_id == "id"
        store.begin_run("r2", "waapi", "acc", "digest")
        assert store.unfinished_run("waapi", "acc") == ("r2", "digest")


def test_runs_unfinished_until_finished(location: StateLocation) -> None:
    with open_store(location) as store:
        assert store.unfinished_run("vobiz", "a") is None
        store.begin_run("r1", "vobiz", "a", "d1")
        assert store.unfinished_run("vobiz", "a") == ("r1", "d1")  # running: killed, maybe
        store.end_run("r1", "interrupted")
        assert store.unfinished_run("vobiz", "a") == ("r1", "d1")
        assert store.unfinished_run("vobiz", "b") is None
        store.begin_run("r1", "vobiz", "a", "d1")  # resumed: the same run
        store.end_run("r1", "finished")
        assert store.unfinished_run("vobiz", "a") is None


def test_content_digest_follows_content_not_names(tmp_path: Path) -> None:
    from contactpipe.state import content_digest

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x\n1\n")
    b.write_text("x\n1\n")
    assert content_digest([a]) == content_digest([b])
    b.write_text("x\n2\n")
    assert content_digest([a]) != content_digest([b])
    assert content_digest([a, b]) != content_digest([b, a])


def test_the_batch_ledger(location: StateLocation) -> None:
    with open_store(location) as store:
        store.ledger("r1", 1, 10, "sent")
        store.ledger("r1", 1, 10, "confirmed")
        store.ledger("r1", 2, 10, "sent")  # the run died with it in flight
        store.ledger("r2", 1, 5, "sent")
        assert store.batches("r1") == {"confirmed": 1, "sent": 1}
        assert store.settle_unknown("r1") == 1
        assert store.batches("r1") == {"confirmed": 1, "settled": 1}
        assert store.batches("r2") == {"sent": 1}


def test_a_transaction_left_open_by_a_signal_does_not_block_the_next_write(
    tmp_path: Path,
) -> None:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store._db.execute("BEGIN IMMEDIATE")  # SIGTERM landed right after BEGIN
        store._db.execute(
            "INSERT INTO contacts VALUES ('waapi', 'a', '+9', NULL, 'h', 'now', 'half-done')"
        )
        assert store.confirm("waapi", "a", "r", [Confirmed("+1", "h")]) == 1
        assert set(store.lookup("waapi", "a")) == {"+1"}  # the half-done write rolled back


def test_sqlite_errors_become_state_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with SqliteStore(path) as store, sqlite3.connect(path, timeout=0.1) as other:
        other.execute("BEGIN IMMEDIATE")  # another run holds the write lock...
        store._db.execute("PRAGMA busy_timeout = 50")  # ...longer than we wait
        with pytest.raises(StateError, match="database is locked"):
            store.confirm("waapi", "a", "r", [Confirmed("+1", "h")])
        other.rollback()


def test_many_runs_opening_a_new_state_at_once_all_get_it(location: StateLocation) -> None:
    """Switching a new file to WAL takes a lock SQLite does not always wait for, and two
    PostgreSQL sessions creating the same tables collide without the schema lock: every
    opener must still get the store (it failed one run in the concurrent end-to-end test)."""
    import threading

    barrier = threading.Barrier(12)
    errors: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            open_store(location).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_a_run_resumed_later_is_still_the_latest(location: StateLocation) -> None:
    with open_store(location) as store:
        store.begin_run("old", "waapi", "a", "d0")
        store.end_run("old", "interrupted")
        store.begin_run("new", "waapi", "a", "d1")
        store.end_run("new", "finished")
        assert store.unfinished_run("waapi", "a") is None  # the latest one finished
        store.begin_run("newer", "waapi", "a", "d2")
        assert store.unfinished_run("waapi", "a") == ("newer", "d2")


def test_a_batch_naming_a_phone_twice_keeps_the_last_payload_and_the_id(
    location: StateLocation,
) -> None:
    with open_store(location) as store:
        rows = [Confirmed("+1", "h1", "id-1"), Confirmed("+2", "x"), Confirmed("+1", "h2")]
        assert store.confirm("waapi", "a", "r", rows) == 3
        found = store.lookup("waapi", "a")
        assert (found["+1"].payload_hash, found["+1"].remote_id) == ("h2", "id-1")
        assert store.forget("waapi", "a", ["+1", "+1", "+404"]) == 1
        assert store.forget("waapi", "a", []) == 0
        assert set(store.lookup("waapi", "a")) == {"+2"}


def test_a_big_account_round_trips(location: StateLocation) -> None:
    """More rows than one statement carries (the PostgreSQL store sends 50,000 a time)."""
    n = 120_000
    rows = [Confirmed(f"+336{i:08d}", f"h{i % 7}", None if i % 3 else f"id{i}") for i in range(n)]
    with open_store(location) as store:
        assert store.confirm("vobiz", "big", "r1", rows) == n
        found = store.lookup("vobiz", "big")
        assert len(found) == n == store.count("vobiz", "big")
        assert found["+33600000003"].remote_id == "id3"
        assert found["+33600119999"].payload_hash == f"h{119_999 % 7}"
        assert store.forget("vobiz", "big", [r.phone for r in rows[:60_000]]) == 60_000
        assert store.count("vobiz", "big") == n - 60_000
