"""The PostgreSQL state store against a real server (``postgres`` fixture, tests/pgserver.py):
what only a server has (its schema table, roles and permissions, the account lock, a dropped
connection) and its errors, which never show the password.  The interface itself is tested
on both stores by tests/state/test_store.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pgserver import ADMIN_PASSWORD, free_port

from contactpipe.errors import InputError, TerminalRemoteError, TransientRemoteError
from contactpipe.state import (
    SCHEMA_VERSION,
    Confirmed,
    SqliteStore,
    StateError,
    mask_location,
    open_store,
    resolve_state_path,
    state_location,
)
from contactpipe.state.postgres import (
    MIGRATIONS,
    VERSION_TABLE,
    PostgresStore,
    StateRefused,
    StateUnavailable,
    lock_key,
)


def schema_of(url: str) -> str:
    return url.rsplit("%3D", 1)[1]


# --- choosing the store and showing where it is -------------------------------------------


def test_the_location_picks_the_store(pg_url: str, tmp_path: Path) -> None:
    with open_store(pg_url) as store:
        assert isinstance(store, PostgresStore)
        assert ADMIN_PASSWORD not in store.path and ":***@" in store.path
    other_scheme = "postgres://" + pg_url.split("://", 1)[1]
    with open_store(f"  {other_scheme} ") as store:
        assert isinstance(store, PostgresStore)
    with open_store(tmp_path / "s.sqlite") as store:
        assert isinstance(store, SqliteStore)
    with open_store(str(tmp_path / "t.sqlite")) as store:
        assert isinstance(store, SqliteStore)
    # --state wins over CONTACTPIPE_STATE; a URL stays the string it is (Path would fold //)
    env = {"HOME": "/home/ana", "CONTACTPIPE_STATE": pg_url}
    assert resolve_state_path(None, env) == pg_url
    assert resolve_state_path("/tmp/x.sqlite", env) == Path("/tmp/x.sqlite")
    assert resolve_state_path("POSTGRESQL://h/db", {}) == "POSTGRESQL://h/db"
    assert state_location("~/s.sqlite") == Path("~/s.sqlite").expanduser()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ana:s3cr%40t@db.example:5432/cp", "postgresql://ana:***@db.example:5432/cp"),
        ("postgres://ana@db/cp?sslmode=require", "postgres://ana@db/cp?sslmode=require"),
        ("postgresql://db/cp?user=ana&password=s3cret", "postgresql://db/cp?user=ana&password=***"),
        ("postgresql://:s3cret@db/cp", "postgresql://:***@db/cp"),
        ("postgresql://ana:s3cret@[::1/cp", "postgresql://***"),
        ("/var/lib/contactpipe/state.sqlite", "/var/lib/contactpipe/state.sqlite"),
    ],
)
def test_the_password_is_masked(url: str, shown: str) -> None:
    assert mask_location(url) == shown


# --- the schema -------------------------------------------------------------------------


def test_tables_and_the_version_table(postgres: Any, pg_url: str) -> None:
    with open_store(pg_url) as store:
        assert store.version == SCHEMA_VERSION  # type: ignore[attr-defined]
    with postgres.admin() as conn:
        conn.execute(f"SET search_path = {schema_of(pg_url)}")
        versions = [r[0] for r in conn.execute("SELECT version FROM contactpipe_schema")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema_of(pg_url),),
            )
        }
    assert sorted(versions) == list(range(1, SCHEMA_VERSION + 1))
    assert tables == {
        "contactpipe_schema",
        "contactpipe_contacts",
        "contactpipe_accounts",
        "contactpipe_runs",
        "contactpipe_batches",
    }


def test_a_version_1_database_keeps_its_contacts_when_migrated(postgres: Any, pg_url: str) -> None:
    with postgres.admin() as conn:
        conn.execute(f"SET search_path = {schema_of(pg_url)}")
        conn.execute(VERSION_TABLE)
        for statement in MIGRATIONS[1].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO contactpipe_schema (version) VALUES (1)")
        conn.execute(
            "INSERT INTO contactpipe_contacts VALUES "
            "('waapi', 'acc', '+1', 'id', 'h', '2026-01-01T10:00:00Z', 'r')"
        )
    with open_store(pg_url) as store:
        assert store.version == SCHEMA_VERSION == 3  # type: ignore[attr-defined]
        rec = store.lookup("waapi", "acc")["+1"]
        assert (rec.remote_id, rec.confirmed_at) == ("id", "2026-01-01T10:00:00.000000+00:00")
        store.begin_run("r2", "waapi", "acc", "digest")
        assert store.unfinished_run("waapi", "acc") == ("r2", "digest")


def test_a_newer_schema_is_refused(postgres: Any, pg_url: str) -> None:
    open_store(pg_url).close()
    with postgres.admin() as conn:
        conn.execute(f"SET search_path = {schema_of(pg_url)}")
        conn.execute("INSERT INTO contactpipe_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StateError, match="newer than this contactpipe knows") as info:
        open_store(pg_url)
    assert info.value.exit_code == 2


def test_a_run_that_waited_for_another_runs_migration_sees_its_tables(
    postgres: Any, pg_url: str
) -> None:
    """Found by two CLI processes opening a new database at once: the second, having looked
    for the tables before the first created them, waited for the schema lock and then, in
    the same transaction, still did not see them ("relation already exists")."""
    from contactpipe.state.postgres import SCHEMA_LOCK

    with postgres.admin() as other:
        other.execute(f"SET search_path = {schema_of(pg_url)}")
        other.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))  # another run migrates
        opened: list[object] = []
        opener = threading.Thread(target=lambda: opened.append(_open_or_error(pg_url)))
        opener.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the opener looked, found nothing, now waits
            waiting = other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting and waiting[0]:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the opener never waited for the schema lock")
        with other.transaction():
            other.execute(VERSION_TABLE)
            for version, sql in sorted(MIGRATIONS.items()):
                for statement in sql.split(";"):
                    if statement.strip():
                        other.execute(statement)
                other.execute("INSERT INTO contactpipe_schema (version) VALUES (%s)", (version,))
        other.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        opener.join(20)
    assert len(opened) == 1 and isinstance(opened[0], PostgresStore), opened
    opened[0].close()


def _open_or_error(url: str) -> object:
    try:
        return open_store(url)
    except Exception as exc:
        return exc


# --- transactions and locks ---------------------------------------------------------------


def test_a_transaction_left_open_by_a_signal_does_not_block_the_next_write(pg_url: str) -> None:
    with open_store(pg_url) as store:
        assert isinstance(store, PostgresStore)
        conn = store._ready()
        conn.execute("BEGIN")  # SIGTERM landed right after BEGIN
        conn.execute(
            "INSERT INTO contactpipe_contacts VALUES "
            "('waapi', 'a', '+9', NULL, 'h', now(), 'half-done')"
        )
        assert store.confirm("waapi", "a", "r", [Confirmed("+1", "h")]) == 1
        assert set(store.lookup("waapi", "a")) == {"+1"}  # the half-done write rolled back


def test_writes_into_one_account_wait_for_each_other_not_for_other_accounts(
    postgres: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another machine's run is inside a write into ``acc`` (it holds the account's lock):
    a write into ``acc`` waits for it, a write into another account does not, and a wait
    longer than the lock timeout is a retryable error, not a hang."""
    with open_store(pg_url) as store, postgres.admin() as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("waapi", "acc"),))
        t = time.monotonic()
        store.confirm("waapi", "elsewhere", "r", [Confirmed("+2", "h")])  # not blocked
        assert time.monotonic() - t < 2

        done: list[float] = []
        writer = threading.Thread(
            target=lambda: done.append(
                store.confirm("waapi", "acc", "r", [Confirmed("+1", "h")]) + time.monotonic()
            )
        )
        writer.start()
        time.sleep(0.6)
        assert not done  # waiting for the other run's transaction
        released = time.monotonic()
        other.execute("COMMIT")
        writer.join(10)
        assert done and done[0] - 1 >= released
        assert store.count("waapi", "acc") == 1

    monkeypatch.setattr(PostgresStore, "LOCK_TIMEOUT_S", 0.3)
    with open_store(pg_url) as store, postgres.admin() as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("waapi", "acc"),))
        with pytest.raises(StateUnavailable, match="another run held this account") as info:
            store.forget("waapi", "acc")
        assert isinstance(info.value, TransientRemoteError) and info.value.exit_code == 4
        other.execute("ROLLBACK")
        assert store.forget("waapi", "acc") == 1  # the store goes on after the error


def test_a_connection_the_server_dropped_is_opened_again(postgres: Any, pg_url: str) -> None:
    with open_store(pg_url) as store:
        assert isinstance(store, PostgresStore)
        store.confirm("waapi", "a", "r", [Confirmed("+1", "h")])
        pid = store._ready().info.backend_pid
        with postgres.admin() as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        time.sleep(0.2)
        assert store.confirm("waapi", "a", "r", [Confirmed("+2", "h")]) == 1
        assert set(store.lookup("waapi", "a")) == {"+1", "+2"}
        assert store._ready().info.backend_pid != pid


# --- errors: exit 2 or 4, never a password -------------------------------------------------


def refused(url: str) -> BaseException:
    with pytest.raises((InputError, TerminalRemoteError, TransientRemoteError)) as info:
        open_store(url)
    err = info.value
    assert "s3cret-pw" not in str(err) and ADMIN_PASSWORD not in str(err)
    assert err.__cause__ is None  # nothing chained that could carry the URL
    return err


def test_server_unreachable_is_a_retryable_exit_4(postgres: Any) -> None:
    url = f"postgresql://ana:s3cret-pw@127.0.0.1:{free_port()}/db?connect_timeout=3"
    err = refused(url)
    assert isinstance(err, StateUnavailable) and isinstance(err, TransientRemoteError)
    assert err.exit_code == 4
    assert "cannot reach the server" in str(err)
    assert "postgresql://ana:***@127.0.0.1:" in str(err)


def test_wrong_password_unknown_role_or_database_is_exit_4(postgres: Any) -> None:
    for url in (
        postgres.url(password="s3cret-pw"),
        postgres.url(user="nobody_here", password="s3cret-pw"),
        postgres.url(password=ADMIN_PASSWORD, database="no_such_db"),
        postgres.url(password=None),
    ):
        err = refused(url)
        assert isinstance(err, StateRefused) and isinstance(err, TerminalRemoteError), err
        assert err.exit_code == 4
        assert "refused the connection" in str(err)


def test_a_malformed_url_is_exit_2() -> None:
    for url in (
        "postgresql://ana:s3cret-pw@127.0.0.1:notaport/db",
        "postgresql://ana:s3cret-pw@[::1/db",
        "postgresql://ana:s3cret-pw@127.0.0.1/db?nonsense=1",
    ):
        err = refused(url)
        assert isinstance(err, StateError) and err.exit_code == 2, err


def test_a_role_without_permission_gets_a_clear_exit_4(postgres: Any, pg_url: str) -> None:
    """PostgreSQL 15 no longer lets every role create tables in ``public``; a role allowed to
    read the tables but not write them gets the same kind of error at its first write."""
    schema = schema_of(pg_url)
    open_store(pg_url).close()  # the owner creates the tables
    with postgres.admin() as conn:
        conn.execute("DROP ROLE IF EXISTS cp_reader")
        conn.execute("CREATE ROLE cp_reader LOGIN PASSWORD 's3cret-pw'")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO cp_reader")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO cp_reader")
    reader = postgres.url(user="cp_reader", password="s3cret-pw")

    err = refused(reader)  # its own search_path: public, where it may not create tables
    assert isinstance(err, StateRefused) and err.exit_code == 4
    assert "no permission to create or migrate the contactpipe tables" in str(err)
    assert "CREATE on the schema" in str(err)

    with open_store(f"{reader}?options=-csearch_path%3D{schema}") as store:
        assert store.lookup("waapi", "acc") == {}  # reading is allowed
        with pytest.raises(StateRefused, match="no permission to record") as info:
            store.confirm("waapi", "acc", "r", [Confirmed("+1", "h")])
        assert "s3cret-pw" not in str(info.value)
