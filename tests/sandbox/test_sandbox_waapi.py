"""WAAPI sandbox: the docs' curl examples, permissions, phone id, bulk upsert, groups, limits."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sandbox_helpers import SyncClient, fast_settings

from contactpipe.sandbox import ManualClock, build_app

# Literals copied from waapi-contacts.md
DOC_CREATE = {
    "name": "Jane Smith",
    "phone": "+919876543210",
    "email": "jane@example.com",
    "language_code": "en",
    "tags": ["customer", "vip"],
    "notes": "High-value customer",
    "reply_bot_enabled": True,
    "custom_fields": {"city": "Delhi", "loyalty_tier": "platinum"},
}
DOC_UPDATE = {"tags": ["vip", "renewed"], "custom_fields": {"loyalty_tier": "gold"}}
DOC_BULK = {
    "contacts": [
        {
            "name": "John Doe",
            "phone": "+919876543210",
            "email": "john@example.com",
            "language_code": "en",
            "tags": ["newsletter"],
            "groups": ["VIP Customers"],
            "custom_fields": {"city": "Mumbai"},
        },
        {"name": "Jane Smith", "phone": "+919812345678"},
    ]
}
DOC_GROUP = {
    "name": "Newsletter Subscribers",
    "description": "Contacts subscribed to the weekly newsletter",
}
CONTACT_KEYS = {
    "_id",
    "name",
    "phone",
    "email",
    "language_code",
    "tags",
    "notes",
    "opt_out",
    "opt_out_marketing",
    "reply_bot_enabled",
    "custom_fields",
    "createdAt",
    "updatedAt",
}
WRITE_DENIED = "Permission denied. This token does not have 'write_contacts' permission."


def failure(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and isinstance(body["message"], str) and "error" in body
    return body


def test_curl_list_contacts(wa: SyncClient, wa_path: str) -> None:
    wa.post(wa_path, json={"name": "John Doe", "phone": "+919876543210", "tags": ["vip"]})
    wa.post(wa_path, json={"name": "John Other", "phone": "+919876543211"})
    r = wa.get(f"{wa_path}?search=john&tag=vip&page=1&limit=20")
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["message"] == "Contacts retrieved successfully."
    assert body["data"]["pagination"] == {"page": 1, "limit": 20, "total": 1, "totalPages": 1}
    (item,) = body["data"]["contacts"]
    assert set(item) == {"_id", "name", "phone", "email", "tags", "opt_out", "createdAt"}
    assert item["phone"] == "919876543210"


def test_curl_create_get_update_delete(wa: SyncClient, wa_path: str) -> None:
    r = wa.post(wa_path, json=DOC_CREATE)
    assert r.status_code == 201
    body = r.json()
    assert body["message"] == "Contact created successfully."
    contact = body["data"]["contact"]
    assert set(contact) == CONTACT_KEYS
    assert contact["phone"] == "919876543210" and len(contact["_id"]) == 24
    cid = contact["_id"]
    got = wa.get(f"{wa_path}/{cid}").json()
    assert got["data"]["contact"] == contact and got["message"] == "Contact retrieved successfully."
    r = wa.put(f"{wa_path}/{cid}", json=DOC_UPDATE)
    assert r.status_code == 200 and r.json()["message"] == "Contact updated successfully."
    updated = r.json()["data"]["contact"]
    assert updated["tags"] == ["vip", "renewed"]
    assert updated["custom_fields"] == {"city": "Delhi", "loyalty_tier": "gold"}
    r = wa.delete(f"{wa_path}/{cid}")
    assert r.json() == {"success": True, "data": None, "message": "Contact deleted successfully."}
    assert failure(wa.get(f"{wa_path}/{cid}"), 404)["message"] == "Contact not found."


def test_curl_bulk_import(wa: SyncClient, wa_path: str) -> None:
    r = wa.post(f"{wa_path}/bulk", json=DOC_BULK)
    assert r.status_code == 200
    assert r.json() == {
        "success": True,
        "data": {"created": 2, "updated": 0, "skipped": 0, "errors": []},
        "message": "Bulk import complete.",
    }
    groups = wa.get(f"{wa_path}/groups").json()["data"]["groups"]
    assert [(g["name"], len(g["contacts"])) for g in groups] == [("VIP Customers", 1)]
    again = wa.post(f"{wa_path}/bulk", json=DOC_BULK).json()["data"]
    assert again == {"created": 0, "updated": 0, "skipped": 2, "errors": []}
    changed = {"contacts": [{"phone": "+919812345678", "tags": ["new"]}]}
    assert wa.post(f"{wa_path}/bulk", json=changed).json()["data"]["updated"] == 1


def test_bulk_errors_and_counts(wa: SyncClient, wa_path: str) -> None:
    entries = [
        {"first_name": "Asha", "last_name": "Rao", "phone": "+919800000001"},
        {"name": "Bad", "phone": "9800000002"},
        {"name": "No phone"},
        {"name": "Twice", "phone": "+919800000001"},
        {"name": "Long", "phone": "+919800000003", "notes": "x" * 2001},
        "not an object",
        {"name": "Ok", "phone": "+919800000004", "groups": ["Team A", "team a "]},
    ]
    data = wa.post(f"{wa_path}/bulk", json={"contacts": entries}).json()["data"]
    assert (data["created"], data["updated"], data["skipped"]) == (2, 0, 5)
    assert [e["index"] for e in data["errors"]] == [1, 2, 3, 4, 5]
    assert all(set(e) == {"index", "phone", "error"} for e in data["errors"])
    assert data["errors"][0]["phone"] == "9800000002"
    names = {c["name"] for c in wa.get(wa_path).json()["data"]["contacts"]}
    assert names == {"Asha Rao", "Ok"}
    assert len(wa.get(f"{wa_path}/groups").json()["data"]["groups"]) == 1


def test_bulk_size_limit_50000(wa: SyncClient, wa_path: str) -> None:
    too_many = [{"phone": f"+9190{i:08d}"} for i in range(50_001)]
    r = wa.post(f"{wa_path}/bulk", json={"contacts": too_many})
    failure(r, 400)
    r = wa.post(f"{wa_path}/bulk", json={"contacts": too_many[:50_000]})
    assert r.status_code == 200 and r.json()["data"]["created"] == 50_000
    assert failure(wa.post(f"{wa_path}/bulk", json={"contacts": []}), 400)


def test_curl_groups(wa: SyncClient, wa_path: str) -> None:
    r = wa.post(f"{wa_path}/groups", json=DOC_GROUP)
    assert r.status_code == 201 and r.json()["message"] == "Group created successfully."
    group = r.json()["data"]["group"]
    assert group["contacts"] == [] and group["name"] == "Newsletter Subscribers"
    gid = group["_id"]
    failure(wa.post(f"{wa_path}/groups", json={"name": "newsletter subscribers"}), 409)
    cid = wa.post(wa_path, json=DOC_CREATE).json()["data"]["contact"]["_id"]
    r = wa.post(
        f"{wa_path}/groups/{gid}/add", json={"contact_ids": [cid, "64f1a2b3c4d5e6f7a8b9c0d4"]}
    )
    data = r.json()["data"]
    assert (data["added"], data["already_in_group"], data["not_found"]) == (
        1,
        0,
        ["64f1a2b3c4d5e6f7a8b9c0d4"],
    )
    populated = wa.get(f"{wa_path}/groups/{gid}").json()["data"]["group"]["contacts"]
    assert [c["_id"] for c in populated] == [cid] and set(populated[0]) == CONTACT_KEYS
    r = wa.put(
        f"{wa_path}/groups/{gid}",
        json={"name": "Premium Subscribers", "description": "Updated description"},
    )
    assert r.json()["data"]["group"]["name"] == "Premium Subscribers"
    r = wa.post(f"{wa_path}/groups/{gid}/remove", json={"contact_ids": [cid]})
    assert r.json()["data"]["removed"] == 1
    assert wa.delete(f"{wa_path}/groups/{gid}").json()["data"] is None
    failure(wa.get(f"{wa_path}/groups/{gid}"), 404)
    assert wa.get(f"{wa_path}/{cid}").status_code == 200  # contacts are not deleted


# -- auth and permissions ------------------------------------------------------------
def test_tokens_permissions_and_phone_id(make_client: Any, settings: Any, wa_path: str) -> None:
    app = build_app(
        fast_settings(
            waapi_extra_tokens={
                "ro": frozenset({"read_contacts"}),
                "wo": frozenset({"write_contacts"}),
            }
        )
    )
    ro = make_client({"Authorization": "Bearer ro"}, app=app)
    wo = make_client({"Authorization": "Bearer wo"}, app=app)
    assert ro.get(wa_path).status_code == 200
    assert failure(ro.post(wa_path, json=DOC_CREATE), 403)["message"] == WRITE_DENIED
    assert "'read_contacts'" in failure(wo.get(wa_path), 403)["message"]
    assert wo.post(wa_path, json=DOC_CREATE).status_code == 201
    failure(make_client(app=app).get(wa_path), 401)
    failure(make_client({"Authorization": "Bearer nope"}, app=app).get(wa_path), 401)
    failure(make_client({"Authorization": settings.waapi_token}, app=app).get(wa_path), 401)
    other = base64.b64encode(b"999").decode()
    failure(ro.get(f"/api/external/contacts/{other}"), 404)
    raw = settings.waapi_phone_id.encode()
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert ro.get(f"/api/external/contacts/{urlsafe}").status_code == 200


# -- validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"name": "A", "phone": "919876543210"},
        {"name": "A", "phone": "+91 98765 43210"},
        {"phone": "+919876543210"},
        {"name": "A"},
        {"name": "A", "phone": "+919876543210", "notes": "x" * 2001},
        {"name": "A", "phone": "+919876543210", "email": "not-an-email"},
        {"name": "A", "phone": "+919876543210", "opt_out": "yes"},
        {"name": "A", "phone": "+919876543210", "tags": [1]},
    ],
)
def test_create_validation(wa: SyncClient, wa_path: str, body: dict[str, Any]) -> None:
    assert failure(wa.post(wa_path, json=body), 400)["error"] == "VALIDATION_ERROR"


def test_notes_2000_ok_and_duplicate_phone_409(wa: SyncClient, wa_path: str) -> None:
    body = {"name": "A", "phone": "+919876543210", "notes": "x" * 2000}
    assert wa.post(wa_path, json=body).status_code == 201
    r = wa.post(wa_path, json=body)
    assert failure(r, 409)["message"] == "A contact with this phone number already exists."


def test_custom_fields_unknown_names_ignored(make_client: Any, settings: Any, wa_path: str) -> None:
    app = build_app(fast_settings(waapi_custom_fields=frozenset({"city"})))
    wa = make_client({"Authorization": f"Bearer {settings.waapi_token}"}, app=app)
    contact = wa.post(wa_path, json=DOC_CREATE).json()["data"]["contact"]
    assert contact["custom_fields"] == {"city": "Delhi"}


def test_page_walk_and_limit_bounds(wa: SyncClient, wa_path: str) -> None:
    wa.post(
        f"{wa_path}/bulk",
        json={"contacts": [{"name": f"N{i}", "phone": f"+9191{i:08d}"} for i in range(45)]},
    )
    seen = []
    for page in (1, 2, 3):
        data = wa.get(f"{wa_path}?page={page}&limit=20").json()["data"]
        assert data["pagination"]["totalPages"] == 3
        seen += [c["_id"] for c in data["contacts"]]
    assert len(seen) == len(set(seen)) == 45
    far = wa.get(f"{wa_path}?page={10**20}")  # past sys.maxsize items: an empty page, not a 500
    assert far.status_code == 200 and far.json()["data"]["contacts"] == []
    too_big = wa.get(f"{wa_path}?limit=500")
    assert too_big.status_code == 400, too_big.text
    assert too_big.json()["error"] == "VALIDATION_ERROR"
    assert "limit" in too_big.json()["message"]
    assert wa.get(f"{wa_path}?limit=100").json()["data"]["pagination"]["limit"] == 100
    assert wa.get(wa_path).json()["data"]["pagination"]["limit"] == 20
    wa.put(f"{wa_path}/{seen[0]}", json={"opt_out": True})
    assert wa.get(f"{wa_path}?opt_out=true").json()["data"]["pagination"]["total"] == 1


# -- rate limit ---------------------------------------------------------------------------
def test_rate_limit_headers_and_429(make_client: Any, settings: Any, wa_path: str) -> None:
    clock = ManualClock()
    app = build_app(fast_settings(waapi_rate_limit=100, waapi_rate_window_s=900), clock)
    wa = make_client({"Authorization": f"Bearer {settings.waapi_token}"}, app=app)
    for i in range(100):
        r = wa.get(wa_path)
        assert r.status_code == 200
        assert r.headers["RateLimit-Limit"] == "100"
        assert r.headers["RateLimit-Remaining"] == str(99 - i)
        assert r.headers["RateLimit-Policy"] == "100;w=900"
    clock.advance(300)
    r = wa.get(wa_path)
    body = failure(r, 429)
    assert body["error"] == "RATE_LIMIT_EXCEEDED"
    assert r.headers["Retry-After"] == "600" and r.headers["RateLimit-Reset"] == "600"
    assert r.headers["RateLimit-Remaining"] == "0"
    failure(make_client(app=app).get(wa_path), 429)  # unauthenticated requests count too
    clock.advance(600)
    assert wa.get(wa_path).headers["RateLimit-Remaining"] == "99"
