"""Progress display: silent by default, one log line per stage off a terminal, a check line per
stage on a terminal."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from pipeline.report.progress import LogProgress, NullProgress, TerminalProgress


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
