"""The kit's side of the sync state, without HTTP: account fingerprints never hold a secret,
row hashes follow what is sent (not where the row came from), the decisions, and the ledger
merge."""

from __future__ import annotations

from pathlib import Path

from load_helpers import contacts_df, simple_contacts

from contactpipe.load import registry
from contactpipe.load.base import CREATED, LoadOptions, LoadResult, TargetConfig
from contactpipe.load.kit import state as sync
from contactpipe.state import Confirmed, open_store

ENV = {
    "MSGFLASH_API_KEY": "msgf_live_secretkey123",
    "WAAPI_TOKEN": "waapi-secret-token",
    "WAAPI_PHONE_ID": "100200300",
    "WAAPI_BASE_URL": "http://127.0.0.1:9/api",
    "VOBIZ_AUTH_ID": "MA_ACCOUNT1",
    "VOBIZ_AUTH_TOKEN": "vobiz-secret-token",
}


def target(name: str, **env: str):  # type: ignore[no-untyped-def]
    cls = registry.get(name)
    return cls(cls.config_from_env({**ENV, **env}, None), LoadOptions())


def test_fingerprints_name_the_account_and_never_a_secret() -> None:
    for name in registry.names():
        t = target(name)
        key, label = sync.fingerprint(t)
        for secret in t.config.secrets:
            assert secret not in label and secret not in key
        assert t.config.base_url.rstrip("/") in label
    assert "auth-id:MA_ACCOUNT1" in sync.fingerprint(target("vobiz"))[1]
    assert "phone:" in sync.fingerprint(target("waapi"))[1]
    # another account on the same host is another key
    assert (
        sync.fingerprint(target("vobiz"))[0]
        != sync.fingerprint(target("vobiz", VOBIZ_AUTH_ID="MA_OTHER"))[0]
    )
    # a team key: the team id; a personal key: a one-way digest of the key
    team = target("msgflash", MSGFLASH_API_KEY="msgf_team_k1", MSGFLASH_TEAM_ID="T9")
    assert "team:T9" in sync.fingerprint(team)[1]
    personal = sync.fingerprint(target("msgflash"))[1]
    assert "credentials-sha256:" in personal and "secretkey" not in personal


def test_row_hashes_follow_the_payload_not_the_source_row() -> None:
    t = target("waapi")
    a = contacts_df([{"phone": "+33612000001", "name": "Ana", "row": 2}])
    b = contacts_df([{"phone": "+33612000001", "name": "Ana", "row": 90, "source_file": "x"}])
    c = contacts_df([{"phone": "+33612000001", "name": "Ana B", "row": 2}])
    d = contacts_df([{"phone": "+33612000001", "name": "Ana", "tags": ["vip"]}])
    assert sync.row_hashes(t, a) == sync.row_hashes(t, b)
    assert sync.row_hashes(t, a) != sync.row_hashes(t, c)
    assert sync.row_hashes(t, a) != sync.row_hashes(t, d)
    assert sync.row_hashes(t, simple_contacts(0)) == []


def test_prepare_decides_row_by_row(tmp_path: Path) -> None:
    t = target("vobiz")
    contacts = simple_contacts(5)
    with open_store(tmp_path / "s.sqlite") as store:
        first = sync.prepare(store, t, contacts)
        assert (first.mode, first.send, first.known) == ("first", [0, 1, 2, 3, 4], None)
        hashes = sync.row_hashes(t, contacts)
        phones = contacts.get_column("phone").to_list()
        store.confirm("vobiz", first.account, "r1", [Confirmed(phones[0], hashes[0], "id0")])
        store.confirm("vobiz", first.account, "r1", [Confirmed(phones[1], "stale-hash")])
        inc = sync.prepare(store, t, contacts)
        assert (inc.mode, inc.skip, inc.send) == ("incremental", [0], [1, 2, 3, 4])
        assert inc.known == {phones[0]: "id0", phones[1]: ""}
        full = sync.prepare(store, t, contacts, full_refresh=True)
        assert (full.mode, full.skip, full.known) == ("full_refresh", [], None)


def test_merge_maps_a_partial_ledger_back_to_the_input() -> None:
    full = LoadResult("waapi", 6)
    part = LoadResult("waapi", 3)
    part.mark([0], CREATED)
    part.fail([2], "API_REJECTED", "no")
    part.ids[0] = "c1"
    part.in_flight = [1]
    sync.merge(full, part, [1, 3, 5])
    assert full.state[1] == CREATED and full.failures == {5: ("API_REJECTED", "no")}
    assert full.ids == {1: "c1"} and list(full.in_flight) == [3]


def test_the_placeholder_config_has_no_account() -> None:
    assert TargetConfig("http://h", {}).account == ""
