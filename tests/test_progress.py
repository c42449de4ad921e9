"""Progress display: silent by default, one log line per stage off a terminal, a check line per
stage on a terminal."""

from __future__ import annotations

import io
import json
import logging

import pytest
from rich.console import Console

from contactpipe.report.progress import LogProgress, NullProgress, TerminalProgress


def test_null_progress_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with NullProgress().stage("extract", "reading") as st:
        st.note("3 rows")
    assert st.seconds >= 0
    assert capsys.readouterr() == ("", "")


def test_log_progress_writes_one_line_per_finished_stage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="contactpipe")
    with LogProgress().stage("extract", "reading files") as st:
        st.note("1,000 rows from 1 file(s)/sheet(s)")
    with pytest.raises(RuntimeError), LogProgress().stage("transform"):
        raise RuntimeError("boom")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1  # a failed stage logs nothing: the error says what happened
    assert messages[0].startswith("extract: 1,000 rows from 1 file(s)/sheet(s) (")


def test_terminal_progress_prints_a_check_line() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    with TerminalProgress(console).stage("report", "writing") as st:
        st.note("12 lines in errors.csv")
    assert "✓ report     12 lines in errors.csv" in out.getvalue()


def test_counters_show_a_bar_on_a_terminal_and_a_line_per_step_in_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    progress = TerminalProgress(console)
    with progress.stage("load", "WAAPI"), progress.counter("waapi bulk", 20, "contacts") as bar:
        bar.advance(10, "batch 1/2")  # a bar inside a stage's spinner must not raise
        bar.advance(10, "batch 2/2")
    assert bar.done == 20
    caplog.set_level(logging.INFO, logger="contactpipe")
    with LogProgress().counter("waapi bulk", 20, "contacts") as logged:
        logged.advance(10, "batch 1/2")
        logged.advance(10, "batch 2/2")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("waapi bulk: 10/20 contacts (batch 1/2), ETA")
    assert lines[1] == "waapi bulk: 20/20 contacts (batch 2/2)"
    assert caplog.records[0].done == 10  # type: ignore[attr-defined]


def test_json_log_lines_carry_the_step_fields() -> None:
    from contactpipe.report.progress import JsonLogFormatter

    record = logging.LogRecord("contactpipe", logging.INFO, "", 0, "bulk: 1/2", (), None)
    record.step, record.done, record.total = "bulk", 1, 2
    doc = json.loads(JsonLogFormatter().format(record))
    assert doc["message"] == "bulk: 1/2" and (doc["done"], doc["total"]) == (1, 2)
    assert doc["level"] == "info"
