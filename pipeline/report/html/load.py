"""The load part of ``report.html``: plan vs actual per endpoint, least vs real time, requests
over time with 429s and retries marked, what the target could not carry.

Chart geometry is computed here (plain numbers in an SVG ``viewBox``); the template only
draws it, so the page needs no JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contactpipe.report.html.data import clip
from contactpipe.report.summary import fmt_duration

CHART_W = 640
MAX_ENDPOINTS = 30


def _split(endpoint: str) -> tuple[str, str]:
    method, _, path = endpoint.partition(" ")
    return method, path.rstrip("/").rsplit("/", 1)[-1]


def plan_vs_actual(
    plan: Sequence[Mapping[str, Any]], actual: Mapping[str, int]
) -> list[dict[str, Any]]:
    """One row per endpoint: planned requests, items and least time; requests sent.

    The client may name an endpoint more briefly than the plan (``POST bulk`` for
    ``POST /external/contacts/{id}/bulk``): an exact name wins, else the same method and last
    path segment when only one planned endpoint has them."""
    rows: list[dict[str, Any]] = []
    left = dict(actual)
    for line in plan:
        rows.append(
            {
                "endpoint": str(line.get("endpoint", "")),
                "planned": line.get("requests"),
                "item_count": line.get("items"),
                "least": line.get("min_seconds"),
                "note": str(line.get("note") or ""),
                "actual": left.pop(str(line.get("endpoint", "")), None),
                "sent_as": None,
            }
        )
    for name in list(left):
        candidates = [
            r for r in rows if r["actual"] is None and _split(r["endpoint"]) == _split(name)
        ]
        if len(candidates) == 1:
            candidates[0]["actual"] = left.pop(name)
            candidates[0]["sent_as"] = name
    for name, n in left.items():
        rows.append(
            {
                "endpoint": name,
                "planned": None,
                "item_count": None,
                "least": None,
                "note": "not in the plan",
                "actual": n,
                "sent_as": None,
            }
        )
    return rows[:MAX_ENDPOINTS]


def endpoint_chart(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Planned and actual requests as paired bars, one block per endpoint."""
    top = max([r["planned"] or 0 for r in rows] + [r["actual"] or 0 for r in rows] + [1])
    scale = (CHART_W - 80) / top
    blocks, y = [], 0
    for r in rows:
        block: dict[str, Any] = {"label": clip(r["endpoint"], 90), "y_text": y + 12, "bars": []}
        present = [
            (k, n) for k, n in (("planned", r["planned"]), ("sent", r["actual"])) if n is not None
        ]
        for i, (kind, n) in enumerate(present):
            block["bars"].append(
                {
                    "kind": kind,
                    "y": y + 17 + i * 11,
                    "width": round(max(n * scale, 1.0 if n else 0.0), 2),
                    "count": n,
                }
            )
        blocks.append(block)
        y += 44
    return {"width": CHART_W, "height": max(y, 1), "blocks": blocks}


def time_chart(least: float | None, real: float | None) -> dict[str, Any] | None:
    """Least time under the documented rate limits vs the real time of the step."""
    if real is None and least is None:
        return None
    top = max(least or 0.0, real or 0.0) or 1.0
    scale = (CHART_W - 210) / top
    bars = []
    for i, (label, s, kind) in enumerate(
        (("least time (rate limits)", least, "planned"), ("real time", real, "sent"))
    ):
        if s is None:
            continue
        bars.append(
            {
                "label": label,
                "kind": kind,
                "y": 4 + i * 24,
                "width": round(max(s * scale, 1.0), 2),
                "text": fmt_duration(s),
            }
        )
    return {"width": CHART_W, "height": 52, "bars": bars}


def timeline_chart(tl: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Requests per time bucket as columns; 429s as red triangles above their bucket,
    retries as orange ticks below the axis."""
    if not tl or not tl.get("requests"):
        return None
    req = list(tl["requests"])
    n = len(req)
    limited = list(tl.get("rate_limited") or [0] * n)
    retries = list(tl.get("retries") or [0] * n)
    left, plot_w, plot_h, top_pad = 44, CHART_W - 54, 120, 14
    step = plot_w / n
    peak = max(req) or 1
    bucket = float(tl.get("bucket_s") or 0)
    cols, marks, ticks = [], [], []
    for i in range(n):
        x = left + i * step
        h = plot_h * req[i] / peak
        t0, t1 = i * bucket, (i + 1) * bucket
        span = f"{t0:.2f}-{t1:.2f} s" if bucket < 10 else f"{fmt_duration(t0)}-{fmt_duration(t1)}"
        if req[i]:
            cols.append(
                {
                    "x": round(x + step * 0.1, 2),
                    "y": round(top_pad + plot_h - h, 2),
                    "w": round(step * 0.8, 2),
                    "h": round(max(h, 0.5), 2),
                    "title": f"{span}: {req[i]:,} request(s)",
                }
            )
        cx = round(x + step / 2, 2)
        if limited[i]:
            marks.append({"x": cx, "title": f"{span}: {limited[i]:,} × 429"})
        if retries[i]:
            ticks.append({"x": cx, "title": f"{span}: {retries[i]:,} retry(ies)"})
    return {
        "width": CHART_W,
        "height": top_pad + plot_h + 36,
        "left": left,
        "right": left + plot_w,
        "top": top_pad,
        "base": top_pad + plot_h,
        "peak": peak,
        "cols": cols,
        "marks": marks,
        "ticks": ticks,
        "bucket": fmt_duration(bucket) if bucket >= 0.1 else f"{bucket * 1000:.0f} ms",
        "span": fmt_duration(float(tl.get("seconds") or n * bucket)),
        "total_429": sum(limited),
        "total_retries": sum(retries),
    }


def load_view(section: str, part: Mapping[str, Any], real_seconds: float | None) -> dict[str, Any]:
    """Everything the page says about one load / delete / group step (or an export)."""
    plan = list(part.get("plan") or [])
    rows = plan_vs_actual(plan, part.get("requests_by_endpoint") or {})
    known = [line["min_seconds"] for line in plan if line.get("min_seconds") is not None]
    least = sum(known) if known else None
    unknown = len(plan) - len(known)
    steps: dict[str, Any] = part["seconds"] if isinstance(part.get("seconds"), dict) else {}
    if real_seconds is None and steps:
        real_seconds = sum(v for v in steps.values() if isinstance(v, (int, float)))
    nothing_sent = bool(part.get("dry_run")) and section == "load"  # a dry delete looks up
    for r in rows:
        r["least_text"] = "no documented limit" if r["least"] is None else fmt_duration(r["least"])
    return {
        "section": section,
        "target": part.get("target"),
        "base_url": part.get("base_url"),
        "dry_run": bool(part.get("dry_run")),
        "nothing_sent": nothing_sent,
        "skipped": part.get("skipped"),
        "aborted": part.get("aborted"),
        "batch_size": part.get("batch_size"),
        "counts": {
            k: part[k]
            for k in ("loaded", "created", "updated", "unchanged", "not_found", "failed")
            if isinstance(part.get(k), int)
        },
        "traffic": {
            k: part[k]
            for k in ("requests", "retries", "rate_limited", "bytes_sent")
            if isinstance(part.get(k), int)
        },
        "rows": rows,
        "endpoint_chart": endpoint_chart(rows) if rows else None,
        "time_chart": None if nothing_sent else time_chart(least, real_seconds),
        "least_text": fmt_duration(least) if least is not None else None,
        "unknown_limits": unknown,
        "real_text": fmt_duration(real_seconds) if real_seconds is not None else None,
        "timeline": timeline_chart(part.get("timeline")),
        "steps": {k: v for k, v in steps.items() if isinstance(v, (int, float))},
        "not_carried": dict(part.get("not_carried") or {}),
        "notes": [clip(n, 300) for n in list(part.get("notes") or [])[:20]],
    }
