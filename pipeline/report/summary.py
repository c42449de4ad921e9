"""Human rendering of a run summary (the CLI prints it; library code never does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.transform.validate import CODES


def outcome_table(summary: dict[str, Any]) -> Table:
    """A table of outcomes: one line per outcome, then one per code."""
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


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """Outcome table, time per stage and where the report is."""
    console.print(outcome_table(summary))
    secs = summary.get("seconds", {})
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in secs.items() if v is not None)
    console.print(f"time: {parts}")
    files = summary.get("files_written", {})
    if files.get("errors_csv"):
        report_dir = str(Path(files["summary_json"]).parent)
        for line in (
            f"report: {report_dir}",
            f"  errors:   {files['errors_csv']}",
            f"  contacts: {files['contacts_csv']}",
        ):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
