"""Human rendering of a run summary (the CLI prints it; library code never does).

On a terminal the tables are rich's; elsewhere (a log file, a pipe, cron's mail, an Airflow
task log) they are plain aligned text written without importing rich (:class:`PlainConsole`):
no box-drawing characters in the log, and a one-row run from a scheduler does not pay rich's
~30 ms import (8% of it, issue 16)."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from contactpipe.transform.validate import CODES

if TYPE_CHECKING:  # rich is imported by the tables: a run through the API never prints them
    from rich.console import Console
    from rich.table import Table


class TextTable:
    """A titled table of text cells in sections, for :meth:`to_rich` or :meth:`plain`."""

    __slots__ = ("columns", "right", "sections", "title")

    def __init__(self, title: str, columns: Sequence[str], right: Sequence[bool]) -> None:
        self.title = title
        self.columns = list(columns)
        self.right = list(right)  # right-justified (numbers)
        self.sections: list[list[tuple[str, ...]]] = [[]]

    def add_row(self, *cells: str) -> None:
        self.sections[-1].append(cells)

    def add_section(self) -> None:
        self.sections.append([])

    def to_rich(self) -> Table:
        from rich.table import Table

        table = Table(title=self.title, title_justify="left")
        for name, right in zip(self.columns, self.right, strict=True):
            table.add_column(name, justify="right" if right else "left")
        for i, rows in enumerate(self.sections):
            if i and rows:
                table.add_section()
            for row in rows:
                table.add_row(*row)
        return table

    def plain(self) -> str:
        """The title, then the header and rows in aligned columns, sections apart."""
        rows = [r for sec in self.sections for r in sec]
        widths = [
            max(len(r[i]) for r in [tuple(self.columns), *rows]) for i in range(len(self.columns))
        ]

        def line(cells: Sequence[str]) -> str:
            out = [
                c.rjust(w) if right else c.ljust(w)
                for c, w, right in zip(cells, widths, self.right, strict=True)
            ]
            return ("  " + "  ".join(out)).rstrip()

        rule = "  " + "  ".join("-" * w for w in widths)
        lines = [self.title, line(self.columns), rule]
        for i, sec in enumerate(s for s in self.sections if s):
            if i:
                lines.append(rule)
            lines.extend(line(r) for r in sec)
        return "\n".join(lines)


class PlainConsole:
    """The part of rich's ``Console`` :func:`print_summary` uses, as plain text on ``file``
    (standard output, looked up at each print, when None)."""

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file

    def print(self, obj: object = "", **_style: Any) -> None:
        text = obj.plain() if isinstance(obj, TextTable) else str(obj)
        print(text, file=self.file or sys.stdout)

    def rule(self, title: str = "") -> None:
        self.print(f"-- {title} --" if title else "--")


def console_for(stream: TextIO) -> Console | PlainConsole:
    """rich's console when ``stream`` is a terminal, else :class:`PlainConsole`."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: plain text
        tty = False
    if not tty:
        return PlainConsole(None if stream is sys.stdout else stream)
    from rich.console import Console

    # emoji=False: ":name:" in a label stays text (and rich need not load its emoji table)
    return Console(file=None if stream is sys.stdout else stream, emoji=False)


def outcome_table(summary: dict[str, Any]) -> TextTable:
    """A table of outcomes: one line per outcome, then one per code."""
    table = TextTable(
        "contactpipe " + summary.get("command", "run"), ("outcome", "rows", "share"),
        (False, True, True),
    )  # fmt: skip
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


def load_table(load: dict[str, Any], title: str = "", rows: Any = LOAD_ROWS) -> TextTable:
    """What the load did: contacts by outcome, then requests, retries, 429s and bytes."""
    table = TextTable(
        title or f"load into {load['target']}",
        (title.split(" ", 1)[0] if title else "load", "count"),
        (False, True),
    )
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


def print_summary(summary: dict[str, Any], console: Console | PlainConsole) -> None:
    """Outcome table, load table or plan, time per stage and where the report is."""

    def table(t: TextTable) -> Any:
        return t if isinstance(console, PlainConsole) else t.to_rich()

    console.print(table(outcome_table(summary)))
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
        console.print(table(load_table(load)))
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
        console.print(table(load_table(part, f"{section} in {part['target']}", rows)))
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
