"""The load kit's pieces on their own: paginators and their loop guard, the phone normaliser,
the time model, the lookup's cost rule, the pool and the job follower."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from contactpipe.errors import TerminalRemoteError
from contactpipe.load.client import ApiRefused
from contactpipe.load.kit.groups import create_once, named
from contactpipe.load.kit.jobs import STALLED, UNREADABLE, follow_jobs
from contactpipe.load.kit.lookup import lookup_requests
from contactpipe.load.kit.paging import cursor_pages, more_pages, numbered_pages
from contactpipe.load.kit.phones import norm_phone
from contactpipe.load.kit.pool import run_pool
from contactpipe.load.kit.timing import Rate, Step, timed


def test_cursor_pages_follow_the_cursor_and_stop_on_a_repeated_one() -> None:
    answers = {None: "a", "a": "b", "b": None}
    seen = [
        m["at"]
        for _, m in cursor_pages(
            lambda c: ([], {"at": c, "next": answers[c]}), lambda m: m["next"], "listing"
        )
    ]
    assert seen == [None, "a", "b"]
    loop = {None: "a", "a": "b", "b": "a"}
    pages = cursor_pages(lambda c: ([], {"next": loop[c]}), lambda m: m["next"], "X listing")
    with pytest.raises(TerminalRemoteError, match="X listing: the API gave cursor 'a' a second"):
        list(pages)


def test_numbered_pages_stop_when_the_api_ignores_page() -> None:
    def same_page(page: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [{"id": "1"}, {"id": "2"}], {"has_more": True}

    pages = numbered_pages(
        same_page, lambda p, a: more_pages(p, 2, len(a[0]), a[1]), lambda x: x["id"], "L"
    )
    assert next(pages)[0][0]["id"] == "1"
    with pytest.raises(TerminalRemoteError, match="answered page 2 with the items of page 1"):
        next(pages)


@pytest.mark.parametrize(
    ("meta", "n", "more"),
    [
        ({"has_more": False, "totalPages": 9}, 2, False),  # has_more wins
        ({"hasMore": True}, 2, True),
        ({"totalPages": 3}, 2, True),
        ({"totalPages": 1}, 2, False),
        ({"total": 4}, 2, False),  # page 2 of 2 items: 4 seen
        ({}, 2, True),  # a full page: maybe more
        ({}, 1, False),  # a short page: the last
        ({"has_more": True}, 0, False),  # an empty page ends it whatever the answer says
    ],
)
def test_more_pages_reads_what_the_answer_says(meta: dict[str, Any], n: int, more: bool) -> None:
    assert more_pages(2, 2, n, meta) is more


def test_one_phone_normaliser_for_every_comparison() -> None:
    assert norm_phone("+33 6 12-34-56-78") == norm_phone("33612345678") == "+33612345678"
    assert [norm_phone(v) for v in (None, "", "  ", "-", "+")] == [None] * 5
    assert norm_phone(33612345678) == "+33612345678"


def test_the_time_model_charges_no_first_window_and_shares_one_budget() -> None:
    rate = Rate(100, 900.0)
    assert [rate.least_seconds(n) for n in (0, 1, 100, 101, 1000)] == [0, 0, 0, 900, 8100]
    lines = timed(rate, [Step("a", 60, 60), Step("b", 60, 60)], before=0)
    assert [line.min_seconds for line in lines] == [0.0, 900.0]  # the 101st request waits
    assert sum(line.min_seconds or 0 for line in lines) == rate.least_seconds(120)
    assert [line.min_seconds for line in timed(None, [Step("a", 5, 5)])] == [None]
    assert Rate(10, 1.0).text() == "10 requests per s" and rate.text() == "100 requests per 15 min"


def test_the_lookup_cost_rule() -> None:
    assert lookup_requests(0, 10_000, 100) == (0, "nothing to look up")
    assert lookup_requests(1, 10_000, 100)[0] == 1  # one key: looked up directly
    assert lookup_requests(150, 10_000, 100)[0] == 100  # 99 pages left <= 150 keys: list
    assert lookup_requests(50, 10_000, 100)[0] == 51  # page 1, then 50 searches


def test_the_pool_stops_at_the_first_error_and_clears_its_stop() -> None:
    stop = threading.Event()
    done: list[int] = []

    def work(x: int) -> int:
        if x == 3:
            raise ValueError("boom")
        done.append(x)
        return x * 2

    assert run_pool([1, 2], work, workers=2, stop=stop) == [2, 4]
    with pytest.raises(ValueError, match="boom"):
        run_pool(list(range(100)), work, workers=1, stop=stop)
    assert 3 not in done and max(done) < 3 + 1 and not stop.is_set()


def test_the_job_follower_reports_each_end() -> None:
    answers = {
        "done": iter([{"status": "processing", "processedCount": 5}, {"status": "done"}]),
        "stuck": iter([{"status": "processing", "processedCount": 1}] * 50),
    }

    def poll(job: str) -> dict[str, Any]:
        if job == "refused":
            raise ApiRefused(404, "NOT_FOUND", "no such job")
        return next(answers[job])

    moved: list[tuple[str, int]] = []
    ends = list(
        follow_jobs(
            ["done", "stuck", "refused"],
            poll,
            interval_s=0.0,
            stall_s=0.02,
            on_progress=lambda j, n: moved.append((j, n)),
            sleep=lambda s: threading.Event().wait(0.005),
        )
    )
    statuses = {job: status for job, status, _ in ends}
    assert statuses == {"done": "done", "stuck": STALLED, "refused": UNREADABLE}
    assert ("done", 5) in moved and ("stuck", 1) in moved


def test_groups_match_in_any_case_and_are_created_once() -> None:
    groups = [{"id": "1", "name": "Clients VIP"}, {"id": "2", "name": "Other"}]
    assert named(groups, "  clients vip ") == groups[0] and named(groups, "VIP") is None
    posted: list[str] = []

    def post(name: str) -> dict[str, Any]:
        posted.append(name)
        if name == "Late":  # someone else created it between our look and our post
            groups.append({"id": "3", "name": "late"})
            raise ApiRefused(409, "CONFLICT", "exists")
        return {"id": "9", "name": name}

    find = lambda name: named(groups, name)  # noqa: E731
    assert create_once("other", find, post) == (groups[1], False) and posted == []
    assert create_once("New", find, post) == ({"id": "9", "name": "New"}, True)
    assert create_once("Late", find, post) == ({"id": "3", "name": "late"}, False)
    with pytest.raises(ApiRefused):
        create_once(
            "x", lambda name: None, lambda name: (_ for _ in ()).throw(ApiRefused(409, "C", "m"))
        )
