"""One time model for every plan: the least time ``n`` requests take under a documented rate
limit of ``limit`` requests per ``window_s`` seconds.

The first window is free (``limit`` requests can start at once), each further window costs
``window_s``: ``(ceil(n / limit) - 1) * window_s``.  A plan's lines share one budget, counted
in the order the command sends them (requests already made, such as the plan's own count
request, come first), so the lines add up to the least time of the whole command.  A target
without a documented limit has no least time (None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PlanLine:
    """One endpoint in a plan: how many requests, and the least time the documented rate
    limit allows for them (None: no documented limit)."""

    endpoint: str
    requests: int
    items: int
    min_seconds: float | None
    note: str = ""


@dataclass(frozen=True)
class Rate:
    """A documented rate limit: ``limit`` requests per ``window_s`` seconds."""

    limit: int
    window_s: float

    def least_seconds(self, requests: int) -> float:
        """Least time from the first to the last of ``requests`` requests."""
        return max(0, math.ceil(requests / self.limit) - 1) * self.window_s

    def text(self) -> str:
        w = self.window_s
        per = "s" if w == 1 else f"{w / 60:g} min" if w >= 60 else f"{w:g} s"
        return f"{self.limit} requests per {per}"


@dataclass(frozen=True)
class Step:
    """One endpoint of a plan before timing: requests and items."""

    endpoint: str
    requests: int
    items: int
    note: str = ""


def timed(rate: Rate | None, steps: Iterable[Step], before: int = 0) -> list[PlanLine]:
    """Plan lines for ``steps`` sent in this order after ``before`` requests."""
    out = []
    for s in steps:
        least: float | None = None
        if rate is not None:
            least = rate.least_seconds(before + s.requests) - rate.least_seconds(before)
        out.append(PlanLine(s.endpoint, s.requests, s.items, least, s.note))
        before += s.requests
    return out


def pages(count: int | None, page_size: int) -> int:
    """Requests to list ``count`` items (an empty or unknown listing still takes one)."""
    return max(1, math.ceil((count or 0) / page_size))
