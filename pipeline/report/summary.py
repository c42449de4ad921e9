"""Human rendering of a run summary (the CLI prints it; library code never does)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contactpipe.transform.validate import CODES

if TYPE_CHECKING:  # rich is imported by the tables: a run through the API never prints them
    from rich.console import Console
    from rich.table import Table


def outcome_table(summary: dict[str, Any]) -> Table:
    """A table of outcomes: one line per outcome, then one per code."""
    from rich.table import Table

    table = Table(title="contactpipe " + summary.get("command", "run"), title_justify="left")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    total = summary["rows_read"] or 1
    for label, key in (
        ("rows read", "rows_read"),
        ("empty rows (skipped)", "empty_rows"),
        ("valid contacts", "valid"),
        ("rejected", "rejected"),
        ("duplicates", "duplicates"),
        ("kept with a warning", "warnings"),
    ):
        value = summary[key]
        table.add_row(label, f"{value:,}", f"{value / total:.1%}" if key != "rows_read" else "")
    codes = summary.get("by_code", {})
    for severity in ("error", "duplicate", "warning"):
        rows = [(c, n) for c, n in codes.items() if CODES.get(c, ("", "error"))[1] == severity]
        if rows:
            table.add_section()
            for code, count in rows:
                table.add_row(f"  {code}", f"{count:,}", f"{count / total:.1%}")
    return table


def fmt_duration(seconds: float) -> str:
    """``1 h 02 min``, ``20 min 35 s``, ``4.2 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = math.ceil(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s"


def plan_lines(load: dict[str, Any]) -> list[str]:
    """One line per endpoint of a plan: requests, items and the least time the documented
    rate limit allows, e.g. ``POST /api/v1/contacts: 12,345 requests at >= 20 min 35 s``."""
    out = []
    known = [line["min_seconds"] for line in load.get("plan", [])]
    for line in load.get("plan", []):
        least = line["min_seconds"]
        when = "no documented rate limit" if least is None else f">= {fmt_duration(least)}"
        note = f" ({line['note']})" if line.get("note") else ""
        out.append(
            f"{load['target']}: {line['endpoint']}: {line['requests']:,} request(s) for "
            f"{line['items']:,} item(s), {when}{note}"
        )
    if any(k is not None for k in known):
        total = sum(k for k in known if k is not None)
        out.append(
            f"{load['target']}: least total time under the rate limits: {fmt_duration(total)}"
        )
    return out


LOAD_ROWS = (
    ("contacts loaded", "loaded"),
    ("  created", "created"),
    ("  updated", "updated"),
    ("  unchanged", "unchanged"),
    ("failed at load", "failed"),
)


def load_table(load: dict[str, Any], title: str = "", rows: Any = LOAD_ROWS) -> Table:
    """What the load did: contacts by outcome, then requests, retries, 429s and bytes."""
    from rich.table import Table

    table = Table(title=title or f"load into {load['target']}", title_justify="left")
    table.add_column(title.split(" ", 1)[0] if title else "load")
    table.add_column("count", justify="right")
    for label, key in rows:
        table.add_row(label, f"{load[key]:,}")
    table.add_section()
    for label, key in (
        ("requests", "requests"),
        ("retries", "retries"),
        ("rate limited (429)", "rate_limited"),
        ("bytes sent", "bytes_sent"),
    ):
        table.add_row(label, f"{load[key]:,}")
    if load.get("not_carried"):
        table.add_section()
        for fld, n in load["not_carried"].items():
            table.add_row(f"not carried: {fld}", f"{n:,}")
    return table


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """Outcome table, load table or plan, time per stage and where the report is."""
    console.print(outcome_table(summary))
    load = summary.get("load")
    if load is not None and load.get("skipped"):
        console.print(
            f"load skipped, nothing sent: {load['skipped']}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    elif load is not None and load.get("dry_run"):
        console.print("dry run: nothing was sent. Plan:")
        for line in plan_lines(load):
            console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
        console.print(
            f"  request bodies: {len(load.get('request_files', []))} file(s) in the report's "
            "dry-run/ folder",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    elif load is not None:
        console.print(load_table(load))
    for section, verb in (("delete", "deleted"), ("groups", "changed")):
        part = summary.get(section)
        if part is None:
            continue
        if part.get("skipped"):
            console.print(f"{section} skipped, nothing sent: {part['skipped']}", markup=False)
            continue
        if part.get("dry_run"):
            verb = f"would be {verb} (dry run)"
        rows = ((f"contacts {verb}", "loaded"), ("not found", "not_found"), ("failed", "failed"))
        console.print(load_table(part, f"{section} in {part['target']}", rows))
    deferred = (summary.get("load") or {}).get("deferred")
    if deferred:
        console.print(
            f"deferred: {deferred['reason']}; {deferred.get('rows', 0):,} rows not sent yet, "
            f"resume after {deferred['resume_at']} (import --resume)",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    for part in (summary.get(k) for k in ("load", "delete", "groups")):
        if part and part.get("aborted"):
            console.print(
                f"aborted: {part['aborted']}", soft_wrap=True, markup=False, highlight=False
            )
    secs = summary.get("seconds", {})
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in secs.items() if v is not None)
    # no markup, no highlighting: rich would compile its repr-highlighting patterns (~5 ms of a
    # one-row run) to colour these numbers
    console.print(f"time: {parts}", markup=False, highlight=False)
    files = summary.get("files_written", {})
    if files.get("errors_csv"):
        report_dir = str(Path(files["summary_json"]).parent)
        lines = [
            f"report: {report_dir}",
            f"  errors:   {files['errors_csv']}",
            f"  contacts: {files['contacts_csv']}",
        ]
        if files.get("report_html"):  # last: the line to click
            lines.append(f"  page:     {files['report_html']}")
        for line in lines:
            console.print(line, soft_wrap=True, markup=False, highlight=False)
