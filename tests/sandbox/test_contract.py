"""The three OpenAPI documents (schemas/apis/*.yaml): valid OpenAPI 3.1, what the sandbox
serves and enforces, and a checker that catches what a lenient server would let through."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from sandbox_helpers import SyncClient, fast_settings
from starlette.routing import Route

from contactpipe.sandbox import build_app
from contactpipe.sandbox.contract import APIS, contract, read_document

WAAPI_BASE = "http://sandbox.test/api"
BEARER = {"Authorization": "Bearer t"}


def strict(request: httpx.Request, api: str = "waapi") -> list[str]:
    """The strict checker's verdict on a request built by httpx, as the client builds it."""
    problems = contract(api).check_request(
        request.method,
        request.url.path,
        request.url.query.decode(),
        request.headers,
        request.read(),
    )
    return [str(p) for p in problems]


@pytest.mark.parametrize("api", APIS)
def test_documents_are_valid_openapi_31(api: str) -> None:
    document = read_document(api)
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on an invalid document


@pytest.mark.parametrize("api", APIS)
def test_the_sandbox_serves_exactly_the_documented_operations(api: str) -> None:
    app = build_app(fast_settings())
    served = app.apis[api]
    routes = {
        (method, route.path)
        for route in served.app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    base = served.contract.base_path
    documented = {
        (op.method.upper(), base + op.template.replace("{", "<").replace("}", ">"))
        for op in served.contract.operations
    }

    # Starlette and OpenAPI name path parameters differently: compare the shapes.
    def shape(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        import re

        return {(m, re.sub(r"[{<][^}>]+[}>]", "*", p)) for m, p in pairs}

    assert shape(routes) == shape(documented)


def test_a_body_without_its_content_type_fails_the_check() -> None:
    body = json.dumps({"contacts": [{"phone": "+919876543210", "name": "A"}]}).encode()
    request = httpx.Request(
        "POST", f"{WAAPI_BASE}/external/contacts/MTAw/bulk", content=body, headers=BEARER
    )
    assert strict(request) == [
        "content_type Content-Type: must be application/json, got no Content-Type"
    ]
    fixed = httpx.Request(
        "POST", f"{WAAPI_BASE}/external/contacts/MTAw/bulk", json=json.loads(body), headers=BEARER
    )
    assert strict(fixed) == []


def test_an_extra_or_a_missing_required_field_fails_the_check() -> None:
    url = f"{WAAPI_BASE}/external/contacts/MTAw"
    extra = httpx.Request(
        "POST", url, json={"name": "A", "phone": "+919876543210", "nickname": "a"}, headers=BEARER
    )
    assert strict(extra) == ["body nickname: field not in the contract"]
    missing = httpx.Request("POST", url, json={"name": "A"}, headers=BEARER)
    assert strict(missing) == ["body phone: required field missing"]
    entry = httpx.Request(
        "POST", f"{url}/bulk", json={"contacts": [{"name": "A", "tag": "x"}]}, headers=BEARER
    )
    assert strict(entry) == [
        "body contacts/0/phone: required field missing",
        "body contacts/0/tag: field not in the contract",
    ]


def test_the_checker_knows_limits_query_values_and_credentials() -> None:
    mf = "http://sandbox.test/api/v1/contacts"
    key = {"x-api-key": "k"}
    too_many = httpx.Request(
        "POST", f"{mf}/bulk-delete", json={"contactIds": ["c"] * 10_001}, headers=key
    )
    assert strict(too_many, "msgflash") == ["body contactIds: at most 10000 items (got 10001)"]
    sort = httpx.Request("GET", mf, params={"sort": "name_desc", "limit": 100}, headers=key)
    assert strict(sort, "msgflash") == [
        "query sort: must be one of ['createdAt_desc', 'name_asc'] (got 'name_desc')"
    ]
    anonymous = httpx.Request("GET", mf)
    assert strict(anonymous, "msgflash") == [
        "security headers: credentials missing: send x-api-key or x-api-key + X-Team-Id"
    ]
    notes = httpx.Request(
        "POST",
        f"{WAAPI_BASE}/external/contacts/MTAw",
        json={"name": "A", "phone": "+919876543210", "notes": "n" * 2001},
        headers=BEARER,
    )
    assert strict(notes)[0].startswith("body notes: ")
    vobiz = "http://sandbox.test/api/v1/messaging/contacts/import"
    auth = {"X-Auth-ID": "MA_X", "X-Auth-Token": "t"}
    wrong_part = httpx.Request(
        "POST", vobiz, files={"file": ("c.csv", b"phone_number,name\n", "text/plain")}, headers=auth
    )
    assert strict(wrong_part, "vobiz") == [
        "content_type file: part must be text/csv, got 'text/plain'"
    ]
    good = httpx.Request(
        "POST", vobiz, files={"file": ("c.csv", b"phone_number,name\n", "text/csv")}, headers=auth
    )
    assert strict(good, "vobiz") == []


def test_bulk_entries_are_left_to_the_api_in_the_sandbox_but_not_in_the_checker() -> None:
    bad_entry = httpx.Request(
        "POST",
        f"{WAAPI_BASE}/external/contacts/MTAw/bulk",
        json={"contacts": [{"phone": "12345"}]},
        headers=BEARER,
    )
    assert strict(bad_entry) == [
        "body contacts/0/phone: must be an E.164 number ('+' then 7 to 15 digits)"
    ]
    lenient = contract("waapi").check_request(
        "POST",
        bad_entry.url.path,
        "",
        bad_entry.headers,
        bad_entry.read(),
        strict=False,
    )
    assert lenient == []


# -- the sandbox enforces the documents, in each API's own error envelope --------------------
def test_waapi_refuses_a_bulk_body_without_content_type(wa: SyncClient, wa_path: str) -> None:
    body = json.dumps({"contacts": [{"phone": "+919876543210", "name": "A"}]}).encode()
    r = wa.post(f"{wa_path}/bulk", content=body)
    assert r.status_code == 400
    assert r.json()["success"] is False and r.json()["error"] == "VALIDATION_ERROR"
    assert "Content-Type" in r.json()["message"]
    assert len(wa.app.waapi.store.contacts) == 0
    ok = wa.post(f"{wa_path}/bulk", content=body, headers={"Content-Type": "application/json"})
    assert ok.status_code == 200 and ok.json()["data"]["created"] == 1


def test_waapi_bulk_limits_and_entries(wa: SyncClient, wa_path: str) -> None:
    r = wa.post(f"{wa_path}/bulk", json={"contacts": [{"phone": "+919876543210"}] * 50_001})
    assert r.status_code == 400 and "50000" in r.json()["message"]
    r = wa.post(f"{wa_path}/bulk", json={"contacts": [], "extra": 1})
    assert r.status_code == 400
    # one bad entry is the API's per-entry business: the others are written
    r = wa.post(
        f"{wa_path}/bulk",
        json={"contacts": [{"phone": "12345"}, {"phone": "+919876543210", "name": "B"}]},
    )
    assert r.status_code == 200
    assert r.json()["data"]["created"] == 1 and r.json()["data"]["errors"][0]["index"] == 0


def test_msgflash_refuses_an_unknown_field_and_too_many_ids(mf: SyncClient) -> None:
    r = mf.post("/api/v1/contacts", json={"name": "A", "phone": "+33612345678", "email": "x"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"] == [{"field": "email", "message": "field not in the contract"}]
    r = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ["x"] * 10_001})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "contactIds"
    r = mf.post("/api/v1/contacts", content=b'{"name": "A", "phone": "+33612345678"}')
    assert r.status_code == 400 and "Content-Type" in r.json()["error"]["message"]
    r = mf.get("/api/v1/contacts?limit=20&colour=red")
    assert r.status_code == 400
    assert r.json()["error"]["details"] == [
        {"field": "colour", "message": "unknown query parameter"}
    ]


def test_vobiz_refuses_in_its_envelope(vb: SyncClient) -> None:
    C = "/api/v1/messaging/contacts"
    r = vb.post(C, content=b'{"phone_number": "+919876543210", "name": "A"}')
    assert r.status_code == 422
    body: dict[str, Any] = r.json()
    assert body["status"] == "error" and body["error"]["code"] == "VALIDATION_ERROR"
    assert body["requestId"] == r.headers["x-request-id"]
    r = vb.post(C, json={"phone_number": "+919876543210"})
    assert r.status_code == 422
    assert r.json()["error"]["details"] == [{"field": "name", "message": "required field missing"}]
    r = vb.post(f"{C}/import", files={"file": ("c.csv", b"phone_number,name\n", "text/plain")})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "file"


def test_audit_notes_violations_in_the_journal_without_header_values() -> None:
    settings = fast_settings(contract_audit=True)
    app = build_app(settings)
    client = SyncClient(app, {"Authorization": f"Bearer {settings.waapi_token}"})
    try:
        path = f"/api/external/contacts/{settings.waapi_encoded_phone_id}"
        client.post(f"{path}/bulk", json={"contacts": [{"phone": "+919876543210", "x": 1}]})
        client.get(path, params={"limit": 10})
    finally:
        client.close()
    first, second = app.journal.entries()
    assert first.status == 200  # the sandbox leaves entries to the API logic...
    assert first.violations == ("body contacts/0/x: field not in the contract",)  # ...not audit
    assert second.violations == ()
    assert settings.waapi_token not in json.dumps([e.to_dict() for e in app.journal])


# -- WAAPI bulk entries: the sandbox's per-entry check is the document's BulkEntry ----------
BULK_FIELDS = list(read_document("waapi")["components"]["schemas"]["BulkEntry"]["properties"])
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 1),
    st.text(max_size=3),
    st.sampled_from(["+919876543210", "919876543210", "a@b.co", "", " ", "x" * 2001]),
    st.lists(st.one_of(st.sampled_from(["vip", "", " "]), st.integers(0, 1)), max_size=2),
    st.dictionaries(st.sampled_from(["city", "tier"]), st.text(max_size=2), max_size=1),
)
ENTRIES = st.dictionaries(st.sampled_from([*BULK_FIELDS, "nickname"]), VALUES, max_size=6)


@settings(max_examples=400, derandomize=True, deadline=None)
@example(entry={"name": "A", "first_name": 5, "phone": "+919876543210"})
@example(entry={"phone": "+919876543210", "groups": None})
@given(entry=st.one_of(ENTRIES, ENTRIES.map(lambda e: {**e, "phone": "+919876543210"})))
def test_the_sandbox_skips_exactly_the_bulk_entries_outside_the_document(entry: Any) -> None:
    from jsonschema import Draft202012Validator

    from contactpipe.sandbox import ManualClock
    from contactpipe.sandbox.waapi_store import WaapiStore

    checker = contract("waapi")._validator("/components/schemas/BulkEntry", True)
    assert isinstance(checker, Draft202012Validator)
    answer = WaapiStore(fast_settings(), ManualClock()).bulk_upsert([entry])
    assert (answer["errors"] == []) is checker.is_valid(entry), (entry, answer["errors"])
