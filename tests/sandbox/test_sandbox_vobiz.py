"""Vobiz sandbox: the docs' curl examples, CSV import, auth, error body, limits."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_helpers import SyncClient, fast_settings

from contactpipe.sandbox import ManualClock, build_app

C = "/api/v1/messaging/contacts"
# Literals copied from vobiz-contacts.md
DOC_CREATE = {
    "phone_number": "+919876543210",
    "name": "Rahul Sharma",
    "tags": ["vip"],
    "custom_attributes": {"company": "Acme"},
}
DOC_UPDATE = {"name": "Rahul Kumar", "tags": ["vip", "premium"]}
DOC_CSV = b"""phone_number,name,tags
+919876543210,Rahul Sharma,"vip,enterprise"
+919123456789,Priya Nair,"new"
"""
CONTACT_KEYS = {
    "id",
    "account_id",
    "phone_number",
    "name",
    "tags",
    "custom_attributes",
    "created_at",
    "updated_at",
}


def failure(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"status", "error", "timestamp", "requestId"}
    assert body["status"] == "error" and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert r.headers["X-Request-ID"] == body["requestId"]
    return body


def upload(client: SyncClient, content: bytes, field: str = "file") -> Any:
    return client.post(f"{C}/import", files={field: ("contacts.csv", content, "text/csv")})


def test_curl_create_list_get_update_delete(vb: SyncClient, settings: Any) -> None:
    r = vb.post(C, json=DOC_CREATE)
    assert r.status_code == 201
    contact = r.json()
    assert set(contact) == CONTACT_KEYS and contact["account_id"] == settings.vobiz_auth_id
    assert contact["created_at"].endswith("Z")
    r = vb.get(f"{C}?page=1&limit=25&search=Rahul&tag=vip")
    assert r.status_code == 200
    assert r.json() == {"items": [contact], "total": 1, "page": 1, "limit": 25, "has_more": False}
    assert vb.get(f"{C}/{contact['id']}").json() == contact
    r = vb.put(f"{C}/{contact['id']}", json=DOC_UPDATE)
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["tags"]) == ("Rahul Kumar", ["vip", "premium"])
    assert r.json()["custom_attributes"] == {"company": "Acme"}
    r = vb.delete(f"{C}/{contact['id']}")
    assert r.status_code == 204 and r.content == b""
    failure(vb.get(f"{C}/{contact['id']}"), 404, "NOT_FOUND")


def test_curl_import_matches_existing_by_phone(vb: SyncClient) -> None:
    vb.post(C, json={"phone_number": "+919876543210", "name": "Old name"})
    r = upload(vb, DOC_CSV)
    assert r.status_code == 200
    assert r.json() == {"total": 2, "created": 1, "updated": 1, "failed": 0, "errors": []}
    items = {c["phone_number"]: c for c in vb.get(C).json()["items"]}
    assert items["+919876543210"]["name"] == "Rahul Sharma"
    assert items["+919876543210"]["tags"] == ["vip", "enterprise"]


def test_import_with_errors_as_in_the_doc(vb: SyncClient) -> None:
    vb.post(C, json={"phone_number": "+919876543210", "name": "Rahul"})
    csv = b"""phone_number,name,tags
+919876543210,Rahul Sharma,"vip"
98765,Bad Number,
+919123456789,Priya Nair,"new"
"""
    assert upload(vb, csv).json() == {
        "total": 3,
        "created": 1,
        "updated": 1,
        "failed": 1,
        "errors": [
            {
                "row": 3,
                "phone_number": "98765",
                "reason": "invalid phone_number: must be E.164 format",
            }
        ],
    }


@pytest.mark.parametrize(
    "content",
    [b"name,tags\nRahul,vip\n", b"phone_number\n+919876543210\n", b"", b"\xff\xfe\x00bad"],
)
def test_import_rejects_unusable_files(vb: SyncClient, content: bytes) -> None:
    failure(upload(vb, content), 422, "VALIDATION_ERROR")


def test_import_needs_the_file_field(vb: SyncClient) -> None:
    body = failure(upload(vb, DOC_CSV, field="csv"), 422, "VALIDATION_ERROR")
    assert body["error"]["details"][0]["field"] == "file"
    failure(vb.post(f"{C}/import", content=DOC_CSV), 422, "VALIDATION_ERROR")


def test_import_row_limit_and_10000_rows(make_client: Any, settings: Any) -> None:
    app = build_app(fast_settings(vobiz_import_max_rows=10_000))
    vb = make_client(
        {"X-Auth-ID": settings.vobiz_auth_id, "X-Auth-Token": settings.vobiz_auth_token}, app=app
    )
    rows = "".join(f'+9199{i:08d},Name {i},"a,b"\n' for i in range(10_001))
    failure(upload(vb, f"phone_number,name,tags\n{rows}".encode()), 422, "VALIDATION_ERROR")
    rows = rows[: rows.rindex("+9199")]
    r = upload(vb, f"phone_number,name,tags\n{rows}".encode())
    assert r.json()["created"] == 10_000 and r.json()["failed"] == 0
    assert app.journal.entries(path=f"{C}/import")[-1].items == 10_000


def test_auth(make_client: Any, settings: Any) -> None:
    app = build_app(fast_settings(vobiz_extra_tokens={"readonly": frozenset({"read"})}))
    auth_id, token = settings.vobiz_auth_id, settings.vobiz_auth_token
    bearer = make_client({"Authorization": f"Bearer {settings.vobiz_bearer_token}"}, app=app)
    assert bearer.post(C, json=DOC_CREATE).status_code == 201
    for headers in (
        {},
        {"X-Auth-ID": auth_id},
        {"X-Auth-ID": "MA_OTHER000", "X-Auth-Token": token},
        {"X-Auth-ID": auth_id, "X-Auth-Token": "wrong"},
        {"Authorization": "Bearer not.a.jwt"},
    ):
        failure(make_client(headers, app=app).get(C), 401, "UNAUTHORIZED")
    readonly = make_client({"X-Auth-ID": auth_id, "X-Auth-Token": "readonly"}, app=app)
    assert readonly.get(C).status_code == 200
    failure(readonly.post(C, json=DOC_CREATE), 403, "FORBIDDEN")


def test_validation_conflict_and_bad_json(vb: SyncClient) -> None:
    body = failure(vb.post(C, json={"phone_number": "98765", "name": ""}), 422, "VALIDATION_ERROR")
    assert {d["field"] for d in body["error"]["details"]} == {"phone_number", "name"}
    vb.post(C, json=DOC_CREATE)
    failure(vb.post(C, json=DOC_CREATE), 409, "CONFLICT")
    failure(
        vb.post(C, content=b"{", headers={"content-type": "application/json"}), 400, "BAD_REQUEST"
    )
    failure(vb.get(f"{C}?page=0"), 422, "VALIDATION_ERROR")


def test_page_walk_and_clamp(vb: SyncClient) -> None:
    csv = "phone_number,name\n" + "".join(f"+9198{i:08d},N{i}\n" for i in range(60))
    upload(vb, csv.encode())
    seen, page = [], 1
    while True:
        data = vb.get(f"{C}?page={page}").json()
        seen += [c["id"] for c in data["items"]]
        if not data["has_more"]:
            break
        page += 1
    assert page == 3 and len(seen) == len(set(seen)) == 60
    assert vb.get(f"{C}?limit=1000").json()["limit"] == 100
    far = vb.get(f"{C}?page={10**20}")  # past sys.maxsize items: an empty page, not a 500
    assert far.status_code == 200 and far.json()["items"] == []


def test_rate_limit(make_client: Any, settings: Any) -> None:
    clock = ManualClock()
    app = build_app(fast_settings(vobiz_rate_limit=3, vobiz_rate_window_s=1.0), clock)
    vb = make_client(
        {"X-Auth-ID": settings.vobiz_auth_id, "X-Auth-Token": settings.vobiz_auth_token}, app=app
    )
    assert [vb.get(C).status_code for _ in range(3)] == [200] * 3
    r = vb.get(C)
    failure(r, 429, "RATE_LIMITED")
    assert r.headers["Retry-After"] == "1"
    clock.advance(1.0)
    assert vb.get(C).status_code == 200
