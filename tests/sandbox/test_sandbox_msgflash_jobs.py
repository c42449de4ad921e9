"""MsgFlash bulk jobs: sync under 100 ids, 202 + job at 100 or more, progress over time,
cancel, failure, job list; time moves only when the test says so (ManualClock)."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_helpers import SyncClient, fast_settings

from contactpipe.sandbox import ManualClock, Sandbox, build_app

JOB_KEYS = {
    "id",
    "operation",
    "status",
    "requestedCount",
    "processedCount",
    "progress",
    "groupId",
    "summary",
    "error",
    "createdAt",
    "updatedAt",
    "completedAt",
}


@pytest.fixture
def jobs(make_client: Any, settings: Any) -> tuple[Sandbox, ManualClock, SyncClient]:
    """A sandbox whose jobs wait 1 s, then process 100 ids per second."""
    clock = ManualClock()
    app = build_app(fast_settings(msgflash_job_pending_s=1.0, msgflash_job_items_per_s=100), clock)
    return app, clock, make_client({"x-api-key": settings.msgflash_api_key}, app=app)


def seed(app: Sandbox, n: int) -> list[str]:
    store = app.state.msgflash
    return [store.create_contact(f"P{i}", f"+3361{i:07d}", [], {}).id for i in range(n)]


def job(client: SyncClient, job_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/contacts/bulk-jobs/{job_id}")
    assert r.status_code == 200
    return r.json()["data"]


def test_99_ids_are_synchronous_100_are_a_job(jobs: Any) -> None:
    app, _, mf = jobs
    ids = seed(app, 199)
    r = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids[:99]})
    assert r.status_code == 200 and r.json()["data"]["deleted"] == 99
    r = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids[99:]})
    assert r.status_code == 202
    data = r.json()["data"]
    assert data["mode"] == "async" and data["status"] == "pending" and data["progress"] == 0
    assert data["operation"] == "bulk_delete_contacts" and data["requestedCount"] == 100
    assert data["jobId"].startswith("job_") and "message" in data and "groupId" in data


def test_job_goes_pending_processing_done(jobs: Any) -> None:
    app, clock, mf = jobs
    ids = seed(app, 250)
    job_id = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids[:200]}).json()["data"][
        "jobId"
    ]
    first = job(mf, job_id)
    assert set(first) == JOB_KEYS
    assert (first["status"], first["processedCount"], first["completedAt"]) == ("pending", 0, None)
    clock.advance(1.5)  # 0.5 s of processing at 100/s
    mid = job(mf, job_id)
    assert (mid["status"], mid["processedCount"], mid["progress"]) == ("processing", 50, 25)
    assert mid["summary"] == {"deleted": 50, "notFound": 0}
    assert mf.get("/api/v1/contacts").json()["data"]["total"] == 200  # work really applied
    progress = mf.get(f"/api/v1/contacts/bulk-jobs/{job_id}/progress").json()["data"]
    assert progress == {
        "id": job_id,
        "status": "processing",
        "progress": 25,
        "processedCount": 50,
        "requestedCount": 200,
    }
    clock.advance(5)
    done = job(mf, job_id)
    assert (done["status"], done["processedCount"], done["progress"]) == ("done", 200, 100)
    assert done["completedAt"] is not None and done["error"] is None
    assert mf.get("/api/v1/contacts").json()["data"]["total"] == 50


def test_cancel_keeps_only_the_work_done(jobs: Any) -> None:
    app, clock, mf = jobs
    ids = seed(app, 300)
    job_id = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids}).json()["data"][
        "jobId"
    ]
    clock.advance(1.7)
    r = mf.post(f"/api/v1/contacts/bulk-jobs/{job_id}/cancel")
    assert r.status_code == 200
    cancelled = r.json()["data"]
    assert (cancelled["status"], cancelled["processedCount"]) == ("cancelled", 70)
    clock.advance(60)
    assert job(mf, job_id)["processedCount"] == 70
    assert mf.get("/api/v1/contacts").json()["data"]["total"] == 230
    assert set(app.state.msgflash.contacts) == set(ids[70:])
    r = mf.post(f"/api/v1/contacts/bulk-jobs/{job_id}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "CONFLICT"


def test_cancel_a_pending_job(jobs: Any) -> None:
    app, _, mf = jobs
    ids = seed(app, 100)
    job_id = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids}).json()["data"][
        "jobId"
    ]
    data = mf.post(f"/api/v1/contacts/bulk-jobs/{job_id}/cancel").json()["data"]
    assert (data["status"], data["processedCount"]) == ("cancelled", 0)
    assert len(app.state.msgflash.contacts) == 100


def test_member_jobs_add_then_remove(jobs: Any) -> None:
    app, clock, mf = jobs
    ids = seed(app, 150)
    gid = mf.post("/api/v1/contacts/groups", json={"name": "Big"}).json()["data"]["id"]
    r = mf.post(f"/api/v1/contacts/groups/{gid}/members", json={"contactIds": [*ids, "ghost"]})
    assert r.status_code == 202
    data = r.json()["data"]
    assert (data["operation"], data["groupId"], data["requestedCount"]) == (
        "add_to_group",
        gid,
        151,
    )
    clock.advance(10)
    done = job(mf, data["jobId"])
    assert done["status"] == "done"
    assert done["summary"] == {"added": 150, "alreadyInGroup": 0, "notFound": 1}
    assert mf.get(f"/api/v1/contacts/groups/{gid}").json()["data"]["contactCount"] == 150
    r = mf.request("DELETE", f"/api/v1/contacts/groups/{gid}/members", json={"contactIds": ids})
    assert r.status_code == 202 and r.json()["data"]["operation"] == "remove_from_group"
    clock.advance(10)
    assert job(mf, r.json()["data"]["jobId"])["summary"] == {"removed": 150, "notInGroup": 0}


def test_failed_job(jobs: Any) -> None:
    app, clock, mf = jobs
    ids = seed(app, 100)
    app.fail_next_msgflash_job(after=30, error="worker crashed")
    job_id = mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids}).json()["data"][
        "jobId"
    ]
    clock.advance(10)
    data = job(mf, job_id)
    assert (data["status"], data["processedCount"], data["error"]) == (
        "failed",
        30,
        "worker crashed",
    )
    assert len(app.state.msgflash.contacts) == 70


def test_job_list_pages(jobs: Any) -> None:
    app, _, mf = jobs
    ids = seed(app, 100)
    made = [
        mf.post("/api/v1/contacts/bulk-delete", json={"contactIds": ids}).json()["data"]["jobId"]
        for _ in range(3)
    ]
    page = mf.get("/api/v1/contacts/bulk-jobs?limit=2").json()["data"]
    assert set(page) == {"jobs", "nextCursor", "hasMore"} and page["hasMore"]
    rest = mf.get(f"/api/v1/contacts/bulk-jobs?limit=2&cursor={page['nextCursor']}").json()["data"]
    assert [j["id"] for j in page["jobs"] + rest["jobs"]] == made[::-1]
    assert mf.get("/api/v1/contacts/bulk-jobs?limit=101").status_code == 400
    assert mf.get("/api/v1/contacts/bulk-jobs/job_nope").status_code == 404
