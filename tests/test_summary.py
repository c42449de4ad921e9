"""The summary the CLI prints: rich's tables on a terminal, the same cells as plain aligned
text elsewhere (a log, a pipe, cron's mail)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from contactpipe.report.summary import (
    PlainConsole,
    TextTable,
    console_for,
    outcome_table,
    print_summary,
)

VALIDATE = {
    "command": "validate",
    "rows_read": 1200,
    "empty_rows": 3,
    "valid": 1100,
    "rejected": 80,
    "duplicates": 17,
    "warnings": 40,
    "by_code": {"INVALID_NUMBER": 70, "MISSING_PHONE": 10, "DUPLICATE": 17, "INVALID_EMAIL": 40},
    "seconds": {"extract": 0.01, "transform": 0.04, "report": 0.01, "total": 0.06},
    "files_written": {
        "errors_csv": "r/errors.csv",
        "contacts_csv": "r/contacts.csv",
        "summary_json": "r/summary.json",
        "report_html": "r/report.html",
    },
}
LOAD = {
    "target": "waapi",
    "loaded": 1090,
    "created": 1000,
    "updated": 60,
    "unchanged": 30,
    "failed": 10,
    "requests": 12,
    "retries": 2,
    "rate_limited": 1,
    "bytes_sent": 123456,
    "not_carried": {"opt_out_marketing": 1090},
}
IMPORT = {**VALIDATE, "command": "import", "load": LOAD}
DRY_RUN = {
    **VALIDATE,
    "command": "import",
    "load": {
        "target": "msgflash",
        "dry_run": True,
        "plan": [
            {"endpoint": "POST /contacts/bulk", "requests": 3, "items": 1100, "min_seconds": 0.2}
        ],
        "request_files": ["a.json", "b.json", "c.json"],
    },
}
DELETE = {
    **VALIDATE,
    "command": "delete",
    "delete": {
        "target": "vobiz",
        "loaded": 5,
        "not_found": 2,
        "failed": 0,
        "requests": 7,
        "retries": 0,
        "rate_limited": 0,
        "bytes_sent": 900,
    },
}


def _plain(summary: dict[str, Any]) -> str:
    out = io.StringIO()
    print_summary(summary, PlainConsole(out))
    return out.getvalue()


def _rich(summary: dict[str, Any]) -> str:
    out = io.StringIO()
    print_summary(summary, Console(file=out, width=200, color_system=None, emoji=False))
    return out.getvalue()


def _cells(text: str) -> list[str]:
    """The words and numbers of a rendering, in order, without rules and box drawing."""
    return re.findall(r"[\w.%:/()>=,-]+", re.sub(r"[─━│┃┏┓┗┛┡┩├┤┼╇╋┳┻└┘┌┐]", " ", text))


@pytest.mark.parametrize("summary", [VALIDATE, IMPORT, DRY_RUN, DELETE], ids=str)
def test_plain_text_says_what_the_rich_tables_say(summary: dict[str, Any]) -> None:
    plain = _plain(summary)
    assert "━" not in plain and "│" not in plain
    assert [c for c in _cells(plain) if set(c) != {"-"}] == [
        c for c in _cells(_rich(summary)) if set(c) != {"-"}
    ]


def test_plain_columns_are_aligned_and_sections_ruled() -> None:
    lines = outcome_table(VALIDATE).plain().splitlines()
    assert lines[0] == "contactpipe validate"
    assert lines[1].split() == ["outcome", "rows", "share"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    body = [ln for ln in lines[3:] if set(ln.replace(" ", "")) != {"-"}]
    ends = {len(ln) for ln in body if ln.rstrip().endswith("%")}
    assert len(ends) == 1, "shares are right-aligned to one column"
    label_width = len("empty rows (skipped)")  # the widest label
    assert lines[3] == "  " + "rows read".ljust(label_width) + "  " + "1,200"  # no share
    # one rule under the header, then one between the outcomes and each severity's codes
    assert sum(set(ln.replace(" ", "")) == {"-"} for ln in lines) == 4
    assert any("INVALID_NUMBER" in ln and ln.rstrip().endswith("5.8%") for ln in lines)


def test_a_table_of_one_empty_section_renders_its_header() -> None:
    table = TextTable("t", ("a", "n"), (False, True))
    assert table.plain().splitlines() == ["t", "  a  n", "  -  -"]
    table.add_section()  # empty sections draw no rule
    table.add_row("x", "12")
    assert table.plain().splitlines() == ["t", "  a   n", "  -  --", "  x  12"]


def test_console_for_a_terminal_is_rich_and_else_plain() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(console_for(io.StringIO()), PlainConsole)
    assert isinstance(console_for(Tty()), Console)

    class Closed(io.StringIO):
        def isatty(self) -> bool:
            raise ValueError("I/O operation on closed file")

    assert isinstance(console_for(Closed()), PlainConsole)
