"""One phone comparison rule for every target: normalised E.164 on both sides.

Each API is made to return its stored phones in the other spelling (MsgFlash and Vobiz
without '+', WAAPI with it, and with blanks): a re-run must find every contact (nothing
created twice), an export must give E.164, a delete by phone and a group change must find
every contact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from load_helpers import make_target, phone, simple_contacts

from contactpipe.load.base import ExportFilters, phone_key
from contactpipe.sandbox import SandboxServer

N = 6


def respell(server: SandboxServer, target: str, spell: Callable[[str], str]) -> None:
    """Rewrite every stored phone of ``target`` with ``spell`` (from its E.164), keeping the
    sandbox's phone index consistent, as if the API had always returned that form."""
    state = server.app.state
    with server.app.lock:
        if target == "msgflash":
            store = state.msgflash
            for c in store.contacts.values():
                store.by_phone[c.phone].discard(c.id)
                c.phone = spell(c.phone)
                store.by_phone.setdefault(c.phone, set()).add(c.id)
        elif target == "waapi":
            store = state.waapi
            for c in store.contacts.values():
                # the API still matches a bulk upsert by its digits: keep that key too
                c.phone = spell("+" + c.phone)
                store.by_phone[c.phone] = c.id
        else:
            store = state.vobiz
            for c in store.contacts.values():
                del store.by_phone[c.phone_number]
                c.phone_number = spell(c.phone_number)
                store.by_phone[c.phone_number] = c.id


def stored(server: SandboxServer, target: str) -> list[str]:
    state = server.app.state
    if target == "msgflash":
        return [c.phone for c in state.msgflash.contacts.values()]
    if target == "waapi":
        return [c.phone for c in state.waapi.contacts.values()]
    return [c.phone_number for c in state.vobiz.contacts.values()]


OTHER_FORM: dict[str, Callable[[str], str]] = {
    "msgflash": lambda e164: e164.lstrip("+"),
    "waapi": lambda e164: e164,  # WAAPI returns digits: here it returns the '+' form
    "vobiz": lambda e164: e164.lstrip("+"),
}
SPACED = lambda e164: f"{e164[:3]} {e164[3:6]} {e164[6:]}"  # noqa: E731


def test_phone_key_is_e164_whatever_the_spelling() -> None:
    for spelling in ("+33612345678", "33612345678", "+33 6 12 34 56 78", "33-612-345-678"):
        assert phone_key(spelling) == "+33612345678"
    assert phone_key(None) is None and phone_key("n/a") is None


@pytest.mark.parametrize("spell", [OTHER_FORM, {t: SPACED for t in OTHER_FORM}], ids=["plus", "sp"])
@pytest.mark.parametrize("target", ["msgflash", "waapi", "vobiz"])
def test_every_path_finds_contacts_the_api_spells_otherwise(
    server: SandboxServer, target: str, spell: dict[str, Callable[[str], str]]
) -> None:
    df = simple_contacts(N)
    first = make_target(target, server).load(df)
    assert first.counts()["failed"] == 0
    respell(server, target, spell[target])
    assert all(not p.startswith("+") or " " in p for p in stored(server, target)) or (
        target == "waapi"
    )

    again = make_target(target, server).load(df)
    counts = again.counts()
    assert (counts["failed"], counts["created"]) == (0, 0), again.failures
    assert len(stored(server, target)) == N  # nothing created twice

    exported = [
        c for page in make_target(target, server).export(ExportFilters(), False) for c in page
    ]
    assert sorted(c["phone"] for c in exported) == sorted(phone(i) for i in range(N))

    if target != "vobiz":  # Vobiz has no groups
        t = make_target(target, server)
        t.create_group("Forms")
        changed: Any = t.change_members("Forms", df.head(3), add=True)
        assert changed.counts()["failed"] == 0, changed.failures

    deleted = make_target(target, server).delete(df)
    assert deleted.counts()["failed"] == 0, deleted.failures
    assert stored(server, target) == []
