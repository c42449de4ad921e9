"""The Vobiz target against the sandbox over real HTTP: CSV import batches, unchanged rows on a
re-run, per-row errors, faults, aborts, dry run and plan."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from load_helpers import contacts_df, make_target, phone, sandbox_env, simple_contacts

from contactpipe.errors import UsageError
from contactpipe.load.base import CREATED, FAILED, UNCHANGED, UPDATED, LoadResult
from contactpipe.load.client import AuthRefused, QuotaExceeded, Unreachable
from contactpipe.load.targets.vobiz import Vobiz
from contactpipe.load.targets.vobiz.importer import row_errors
from contactpipe.report.progress import Counter
from contactpipe.sandbox import SandboxServer

IMPORT = "/api/v1/messaging/contacts/import"
LIST = "/api/v1/messaging/contacts"


def store(server: SandboxServer) -> dict[str, dict[str, Any]]:
    """phone -> {name, tags} of every contact the sandbox holds."""
    return {
        c.phone_number: {"name": c.name, "tags": list(c.tags)}
        for c in server.app.state.vobiz.contacts.values()
    }


def imports(server: SandboxServer) -> list[Any]:
    return server.app.journal.entries(api="vobiz", method="POST", path=IMPORT)


def lists(server: SandboxServer) -> list[Any]:
    return server.app.journal.entries(api="vobiz", method="GET", path=LIST)


def load(server: SandboxServer, contacts: Any, **options: Any) -> tuple[LoadResult, Vobiz]:
    target = make_target("vobiz", server, **options)
    assert isinstance(target, Vobiz)
    try:
        return target.load(contacts), target
    finally:
        target.close()


def settled(result: LoadResult) -> None:
    assert result.pending() == []


def messages(result: LoadResult) -> str:
    return "\n".join([m for _, m in result.failures.values()] + result.notes)


# -- happy path ------------------------------------------------------------------------


def test_creates_contacts_with_name_and_tags(server: SandboxServer) -> None:
    df = contacts_df(
        [
            {"phone": phone(1), "name": "Rahul Sharma", "tags": ["vip", "enterprise"]},
            {"phone": phone(2), "name": "Priya Nair", "tags": ["new"]},
            {"phone": phone(3), "name": 'Zoé "Z" Ünal'},
        ]
    )
    result, target = load(server, df)
    settled(result)
    assert list(result.state) == [CREATED] * 3
    assert result.counts()["created"] == 3 and result.aborted is None
    assert store(server) == {
        phone(1): {"name": "Rahul Sharma", "tags": ["vip", "enterprise"]},
        phone(2): {"name": "Priya Nair", "tags": ["new"]},
        phone(3): {"name": 'Zoé "Z" Ünal', "tags": []},
    }
    assert [e.items for e in imports(server)] == [3]
    assert target.stats.by_endpoint == {"GET /contacts": 1, "POST /contacts/import": 1}
    assert set(result.seconds) == {"list", "import"}
    assert result.notes == []


def test_batches_then_rerun_is_unchanged_and_sends_nothing(server: SandboxServer) -> None:
    df = simple_contacts(2_500, tags=["b", "a"])
    result, _ = load(server, df, batch_size=1_000)
    settled(result)
    assert result.counts()["created"] == 2_500
    assert [e.items for e in imports(server)] == [1_000, 1_000, 500]
    assert all(e.status == 200 for e in imports(server))
    assert len(store(server)) == 2_500
    assert store(server)[phone(1234)] == {"name": "Contact 1234", "tags": ["b", "a"]}

    server.app.journal.clear()
    # same tags in another order: still unchanged
    again, target = load(server, simple_contacts(2_500, tags=["a", "b"]), batch_size=1_000)
    settled(again)
    assert set(again.state) == {UNCHANGED}
    assert again.counts() == {
        "created": 0,
        "updated": 0,
        "unchanged": 2_500,
        "failed": 0,
        "loaded": 2_500,
    }
    assert imports(server) == []
    assert len(lists(server)) == 25  # 100 per page
    assert target.stats.by_endpoint == {"GET /contacts": 25}


def test_changed_name_or_tags_are_updated(server: SandboxServer) -> None:
    load(server, simple_contacts(5, tags=["x"]))
    server.app.journal.clear()
    rows: list[dict[str, Any]] = [
        {"phone": phone(i), "name": f"Contact {i}", "tags": ["x"]} for i in range(5)
    ]
    rows[1]["name"] = "Renamed"
    rows[3]["tags"] = ["x", "y"]
    rows[4]["tags"] = []  # clears the tag: changed
    rows.append({"phone": phone(9), "name": "New one"})
    result, _ = load(server, contacts_df(rows))
    settled(result)
    assert list(result.state) == [UNCHANGED, UPDATED, UNCHANGED, UPDATED, UPDATED, CREATED]
    assert [e.items for e in imports(server)] == [4]
    s = store(server)
    assert s[phone(1)]["name"] == "Renamed"
    assert s[phone(3)]["tags"] == ["x", "y"]
    assert s[phone(4)]["tags"] == []
    assert len(s) == 6
    assert result.notes == []


def test_phone_repeated_in_one_run_is_created_then_updated(server: SandboxServer) -> None:
    df = contacts_df([{"phone": phone(1), "name": "First"}, {"phone": phone(1), "name": "Last"}])
    result, _ = load(server, df)
    assert list(result.state) == [CREATED, UPDATED]
    assert store(server) == {phone(1): {"name": "Last", "tags": []}}
    assert result.notes == []


def test_progress_notes_per_batch(server: SandboxServer) -> None:
    notes: list[tuple[str, int, str]] = []

    class Recorder(Counter):
        def advance(self, n: int, note: str = "") -> None:
            super().advance(n, note)
            notes.append((self.name, n, note))

    class Progress:
        def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
            assert (name, total, unit) == ("vobiz import", 5, "contacts")
            return Recorder(name, total, unit)

        def stage(self, name: str, detail: str = "") -> Any:
            raise AssertionError("not used")

    target = make_target("vobiz", server, batch_size=2)
    target.progress = Progress()  # type: ignore[assignment]
    df = contacts_df([{"phone": phone(i), "name": f"C{i}"} for i in range(4)] + [{"phone": "+12"}])
    df = df.with_columns(df["name"].fill_null("Bad phone"))
    try:
        target.load(df)
    finally:
        target.close()
    assert notes == [
        ("vobiz import", 2, "batch 1/3: 2 rows, 2 ok"),
        ("vobiz import", 2, "batch 2/3: 2 rows, 2 ok"),
        ("vobiz import", 1, "batch 3/3: 1 rows, 0 ok"),
    ]


# -- rows the API or the format refuses ----------------------------------------------


def test_row_errors_map_to_their_positions(server: SandboxServer) -> None:
    rows = [{"phone": phone(i), "name": f"Contact {i}"} for i in range(7)]
    rows[3]["phone"] = "+12"  # first row of the 2nd batch
    rows[5]["phone"] = "12345"  # last row of the 2nd batch
    result, _ = load(server, contacts_df(rows), batch_size=3)
    settled(result)
    assert [i for i, s in enumerate(result.state) if s == FAILED] == [3, 5]
    assert result.failures[3] == (
        "API_REJECTED",
        "Vobiz: invalid phone_number: must be E.164 format",
    )
    assert result.failures[5][0] == "API_REJECTED"
    assert [result.state[i] for i in (0, 1, 2, 4, 6)] == [CREATED] * 5
    assert set(store(server)) == {phone(i) for i in (0, 1, 2, 4, 6)}
    assert result.notes == []  # the API's counts agree


def test_error_with_a_wrong_row_number_is_matched_by_phone() -> None:
    result = LoadResult("vobiz", 6)
    phones = [phone(i) for i in range(6)]
    errors = [
        {"row": 2, "phone_number": phone(4), "reason": "bad"},  # row 2 is phone(3): by phone
        {"row": 4, "phone_number": phone(5), "reason": "worse"},  # row 4 matches
        {"row": 99, "phone_number": "+999", "reason": "lost"},
        "not an object",
    ]
    got = row_errors(1, [3, 4, 5], errors, phones, result)
    assert got == {4: "bad", 5: "worse"}
    assert len(result.notes) == 1 and "+999" in result.notes[0]
    # no phone given: the row number is trusted
    assert row_errors(1, [3, 4, 5], [{"row": 3, "reason": "r"}], phones, result) == {4: "r"}


def test_comma_in_a_tag_or_no_name_is_not_representable(server: SandboxServer) -> None:
    df = contacts_df(
        [
            {"phone": phone(1), "name": "Ok", "tags": ["a"]},
            {"phone": phone(2), "name": "Comma", "tags": ["ok", "a,b"]},
            {"phone": phone(3), "name": None},
            {"phone": phone(4), "name": "Ok too"},
        ]
    )
    result, _ = load(server, df)
    settled(result)
    assert list(result.state) == [CREATED, FAILED, FAILED, CREATED]
    assert result.failures[1][0] == "NOT_REPRESENTABLE" and "'a,b'" in result.failures[1][1]
    assert result.failures[2][0] == "NOT_REPRESENTABLE" and "name" in result.failures[2][1]
    assert [e.items for e in imports(server)] == [2]
    assert set(store(server)) == {phone(1), phone(4)}


def test_whole_batch_refused_fails_that_batch_only(server: SandboxServer) -> None:
    server.settings.vobiz_import_max_rows = 2
    server.app.reset()
    result, _ = load(server, simple_contacts(5), batch_size=3)
    settled(result)
    assert list(result.state) == [FAILED] * 3 + [CREATED] * 2
    code, message = result.failures[0]
    assert code == "LOAD_FAILED"
    assert "422 VALIDATION_ERROR" in message and "at most 2 rows per import" in message
    assert result.aborted is None
    assert set(store(server)) == {phone(3), phone(4)}
    assert [e.status for e in imports(server)] == [422, 200]


def test_file_over_the_byte_limit_is_split(server: SandboxServer, tmp_path: Path) -> None:
    target = make_target("vobiz", server)
    assert isinstance(target, Vobiz)
    target.max_file_bytes = 120  # header 24 bytes + 25 per row: 3 rows per file
    try:
        result = target.load(simple_contacts(10))
    finally:
        target.close()
    assert set(result.state) == {CREATED}
    assert [e.items for e in imports(server)] == [3, 3, 3, 1]
    dry = target.dry_run(simple_contacts(10), tmp_path)
    assert len(dry) == 4 and all(len(p.read_bytes()) <= 120 for p in dry)

    server.app.reset()
    huge = contacts_df([{"phone": phone(1), "name": "N" * 100}, {"phone": phone(2), "name": "ok"}])
    result = target.load(huge)
    target.close()
    assert result.failures[0][0] == "NOT_REPRESENTABLE" and "bytes" in result.failures[0][1]
    assert result.state[1] == CREATED
    assert [e.items for e in imports(server)] == [1]


def test_not_carried_counts(server: SandboxServer) -> None:
    df = contacts_df(
        [
            {
                "phone": phone(1),
                "name": "A",
                "groups": ["g"],
                "email": "a@example.com",
                "custom_fields": {"plan": "gold"},
            },
            {"phone": phone(2), "name": "B", "custom_fields": {"plan": None}, "phone_ext": "12"},
            {"phone": phone(3), "name": "C", "tags": ["t"], "groups": ["g", "h"]},
        ]
    )
    result, _ = load(server, df)
    assert result.not_carried == {"groups": 2, "email": 1, "custom_fields": 1, "phone_ext": 1}
    assert all(not c.custom_attributes for c in server.app.state.vobiz.contacts.values())


# -- faults and aborts -----------------------------------------------------------------


def test_server_errors_and_dropped_connections_are_retried(server: SandboxServer) -> None:
    server.app.faults.add("vobiz", "POST", IMPORT, times=2, status=500)
    server.app.faults.add("vobiz", "POST", IMPORT, times=1, drop=True)
    server.app.faults.add("vobiz", "GET", LIST, times=1, status=503)
    result, target = load(server, simple_contacts(30), batch_size=10)
    settled(result)
    assert set(result.state) == {CREATED}
    assert target.stats.retries == 4
    assert len(server.app.state.vobiz.contacts) == 30  # nothing duplicated
    assert len(server.app.state.vobiz.by_phone) == 30
    faulted = [e for e in imports(server) if e.fault]
    assert len(faulted) == 3
    assert [e.items for e in imports(server) if not e.fault] == [10, 10, 10]


def test_rate_limited_import_waits_retry_after(server: SandboxServer) -> None:
    server.app.faults.add("vobiz", "POST", IMPORT, times=1, status=429, retry_after=1)
    t0 = time.monotonic()
    result, target = load(server, simple_contacts(3))
    assert time.monotonic() - t0 >= 0.9
    assert set(result.state) == {CREATED}
    assert target.stats.rate_limited == 1
    assert len(store(server)) == 3


def test_wrong_token_aborts_with_every_row_not_sent(server: SandboxServer) -> None:
    bad = "vobiz_wrong_token_0123456789abcdef"
    env = sandbox_env(server) | {"VOBIZ_AUTH_TOKEN": bad}
    target = make_target("vobiz", server, env=env)
    try:
        result = target.load(simple_contacts(4))
    finally:
        target.close()
    assert isinstance(result.aborted, AuthRefused)
    settled(result)
    assert {code for code, _ in result.failures.values()} == {"NOT_SENT"}
    assert len(result.failures) == 4
    text = messages(result) + str(result.aborted)
    assert "401" in text
    assert bad not in text and server.settings.vobiz_auth_token not in text
    assert imports(server) == []


def test_persistent_server_error_aborts_unreachable(server: SandboxServer) -> None:
    server.app.faults.add("vobiz", "POST", IMPORT, times=None, status=500)
    df = contacts_df(
        [{"phone": phone(i), "name": f"C{i}"} for i in range(5)]
        + [{"phone": phone(9), "name": "x", "tags": ["a,b"]}]
    )
    result, _ = load(server, df, batch_size=2)
    settled(result)
    assert isinstance(result.aborted, Unreachable)
    codes = [result.failures[i][0] for i in range(6)]
    assert codes == ["LOAD_FAILED"] * 2 + ["NOT_SENT"] * 3 + ["NOT_REPRESENTABLE"]
    assert len(imports(server)) == 4  # FAST_POLICY: 4 attempts, then no further batch
    assert store(server) == {}


def test_insufficient_balance_aborts(server: SandboxServer) -> None:
    server.app.faults.add("vobiz", "POST", IMPORT, times=1, status=402)
    result, _ = load(server, simple_contacts(4), batch_size=2)
    settled(result)
    assert isinstance(result.aborted, QuotaExceeded)
    assert "INSUFFICIENT_BALANCE" in result.aborted.message
    assert {c for c, _ in result.failures.values()} == {"NOT_SENT"}
    assert len(imports(server)) == 1  # the second batch is not tried


def test_list_failure_aborts_before_any_import(server: SandboxServer) -> None:
    server.app.faults.add("vobiz", "GET", LIST, times=None, drop=True)
    result, _ = load(server, simple_contacts(3))
    settled(result)
    assert isinstance(result.aborted, Unreachable)
    assert {c for c, _ in result.failures.values()} == {"NOT_SENT"}
    assert imports(server) == []
    assert set(result.seconds) == {"list", "import"}


def test_list_refused_aborts(server: SandboxServer) -> None:
    server.app.faults.add("vobiz", "GET", LIST, times=1, status=404)
    result, _ = load(server, simple_contacts(3))
    settled(result)
    assert result.aborted is not None and "404" in result.aborted.message
    assert {c for c, _ in result.failures.values()} == {"NOT_SENT"}


def test_counts_that_disagree_are_noted(server: SandboxServer, monkeypatch: Any) -> None:
    load(server, simple_contacts(2))
    target = make_target("vobiz", server)
    monkeypatch.setattr(target, "list_existing", dict)  # as if the listing had missed them
    try:
        result = target.load(simple_contacts(2, name="Renamed"))
    finally:
        target.close()
    assert set(result.state) == {CREATED}
    assert len(result.notes) == 1
    assert "0 created, 2 updated" in result.notes[0]


# -- configuration, dry run, plan ----------------------------------------------------------


def test_config_from_env() -> None:
    env = {"VOBIZ_AUTH_ID": "MA_TEST", "VOBIZ_AUTH_TOKEN": "s3cret-token"}
    config = Vobiz.config_from_env(env, None)
    assert config.base_url == "https://api.vobiz.ai/api/v1/messaging"
    assert config.headers == {"X-Auth-ID": "MA_TEST", "X-Auth-Token": "s3cret-token"}
    assert config.secrets == ("s3cret-token",)
    custom = Vobiz.config_from_env(env | {"VOBIZ_BASE_URL": "https://x.test/v1/"}, None)
    assert custom.base_url == "https://x.test/v1"
    assert Vobiz.config_from_env(env, "http://127.0.0.1:9/m").base_url == "http://127.0.0.1:9/m"
    for var in ("VOBIZ_AUTH_ID", "VOBIZ_AUTH_TOKEN"):
        with pytest.raises(UsageError, match=var) as info:
            Vobiz.config_from_env({k: v for k, v in env.items() if k != var}, None)
        assert "s3cret-token" not in str(info.value)
    with pytest.raises(UsageError, match="loopback"):
        Vobiz.config_from_env(env | {"VOBIZ_BASE_URL": "http://api.vobiz.ai/api"}, None)
    with pytest.raises(UsageError, match="--base-url"):
        Vobiz.config_from_env(env, "ftp://api.vobiz.ai")


def test_dry_run_writes_the_uploaded_bytes(server: SandboxServer, tmp_path: Path) -> None:
    df = contacts_df(
        [
            {"phone": phone(1), "name": "Rahul Sharma", "tags": ["vip", "enterprise"]},
            {"phone": phone(2), "name": "Priya Nair", "tags": ["new"]},
            {"phone": phone(3), "name": "Line\nbreak, comma", "tags": []},
            {"phone": phone(4), "name": "Comma tag", "tags": ["a,b"]},
            {"phone": phone(5), "name": "Ünïcødé"},
        ]
    )
    target = make_target("vobiz", server, batch_size=2)
    paths = target.dry_run(df, tmp_path / "out")
    assert [p.name for p in paths] == ["vobiz-import-0001.csv", "vobiz-import-0002.csv"]
    assert server.app.journal.entries(api="vobiz") == []  # no network
    files = [p.read_bytes() for p in paths]
    assert files[0].startswith(b"phone_number,name,tags\r\n")
    assert f'{phone(1)},Rahul Sharma,"vip,enterprise"\r\n'.encode() in files[0]
    parsed = [
        row
        for body in files
        for row in list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))[1:]
    ]
    assert parsed == [
        [phone(1), "Rahul Sharma", "vip,enterprise"],
        [phone(2), "Priya Nair", "new"],
        [phone(3), "Line\nbreak, comma", ""],
        [phone(5), "Ünïcødé", ""],
    ]

    uploaded: list[bytes] = []
    client = target.client()  # type: ignore[attr-defined]
    client._http.event_hooks["request"] = [lambda r: uploaded.append(r.read())]
    try:
        result = target.load(df)
    finally:
        target.close()
    assert len(uploaded) == 3  # one list, two imports
    for body, sent in zip(files, uploaded[1:], strict=True):
        assert body in sent
        assert b'filename="contacts-000' in sent and b"Content-Type: text/csv" in sent
    assert result.counts()["created"] == 4
    assert store(server)[phone(3)]["name"] == "Line\nbreak, comma"


def test_plan(server: SandboxServer) -> None:
    target = make_target("vobiz", server, batch_size=1_000)
    lines = target.plan(simple_contacts(2_500))
    assert [(pl.endpoint, pl.requests, pl.items, pl.min_seconds) for pl in lines] == [
        ("GET /contacts", 1, 0, None),
        ("POST /contacts/import", 3, 2_500, None),
    ]
    assert "no documented rate limit" in lines[1].note
    big = make_target("vobiz", server, batch_size=200_000)
    assert isinstance(big, Vobiz) and big.batch_size == 50_000
    assert big.plan(simple_contacts(3))[1].requests == 1
    assert server.app.journal.entries(api="vobiz") == []


def test_empty_frame_sends_nothing(server: SandboxServer) -> None:
    result, _ = load(server, simple_contacts(0))
    assert result.n == 0 and result.aborted is None
    assert server.app.journal.entries(api="vobiz") == []


def test_client_sends_auth_headers(server: SandboxServer) -> None:
    target = make_target("vobiz", server)
    seen: list[httpx.Headers] = []
    client = target.client()  # type: ignore[attr-defined]
    client._http.event_hooks["request"] = [lambda r: seen.append(r.headers)]
    try:
        target.load(simple_contacts(1))
    finally:
        target.close()
    assert seen and all(h["x-auth-id"] == server.settings.vobiz_auth_id for h in seen)
