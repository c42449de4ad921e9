"""A large CSV validated in batches (``contactpipe.streamed``) writes what the whole-file run
writes: every report file byte for byte (``contacts.parquet``: the same frame), the same
summary.  The batches here are tiny (a few KiB) so that a file of a few thousand rows spans
dozens of them, with duplicates across batches, rejections, warnings, blank and empty rows,
quoted line breaks and control characters on the way."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from contactpipe import run
from contactpipe.extract import NotStreamable, read_file, read_file_batches

SECOND = "01245678"
CSV_FILES = ("errors.csv", "warnings.csv", "contacts.csv")


def mobile(i: int) -> str:
    j = (i * 48_271 + 12_345) % (8 * 10**7)
    return f"6{SECOND[j // 10**7]}{j % 10**7:07d}"


def phone_cell(i: int, k: int) -> str:
    n = mobile(i)
    style = k % 4
    if style == 0:
        return "0" + " ".join([n[:1], n[1:3], n[3:5], n[5:7], n[7:]])
    if style == 1:
        return f"+33 {n}"
    if style == 2:
        return f"0033{n}"
    return f"(0){n[:1]}.{n[1:3]}.{n[3:5]}.{n[5:7]}.{n[7:]}"


def make_file(path: Path, rows: int = 6000, unique: int = 4500, gaps: int = 0) -> None:
    """``rows`` data rows; row i >= ``unique`` repeats the phone of row i - unique (written
    another way), so duplicates sit thousands of rows (many batches) from their first row.
    ``gaps``: every that many rows, four empty rows (some batches then end on empty rows)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["Name", "Phone", "Email", "Tags", "Country", "Notes"])
    for i in range(rows):
        if i and i % 173 == 0:
            out.write("\n")  # a blank line: an empty row
        if i and i % 191 == 0:
            out.write(",,,,,\n")  # a row of empty cells
        if gaps and i % gaps == 0:
            out.write(",,,,,\n\n,,,,,\n\n")
        base = i - unique if i >= unique else i
        if i in (5000, 5001):
            base = 20  # two rows of one later batch share the phone of an early row
        phone = phone_cell(base, i)
        if i % 97 == 0:
            phone = "12345"
        elif i % 131 == 0:
            phone = ""
        name = f"Ana {i}"
        if i % 149 == 0:
            name = '=HYPERLINK("http://x")'
        elif i % 211 == 0:
            name = f"Line one, {i}\nline two"
        elif i % 223 == 0:
            name = f"Bad\x01name {i}"
        elif i % 61 == 0:
            name = ""
        email = f"ana{i}@example.com"
        if i % 89 == 0:
            email = "bad@"
        elif i % 83 == 0:
            email = f"a{i}@example.com, b{i}@example.com"
        tags = "vip;client" if i % 5 == 0 else ("newsletter" if i % 3 == 0 else "")
        country = "BJ" if i % 71 == 0 else ("France" if i % 2 else "")
        notes = "été à Paris" if i % 17 == 0 else ""
        w.writerow([name, phone, email, tags, country, notes])
    out.write("\n\n,,,,,\n")  # trailing blank and empty rows are not rows
    path.write_bytes(out.getvalue().encode("utf-8"))


def _summary(report: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    for key in ("seconds", "started_at", "files_written"):
        doc.pop(key)
    return doc


def _both(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_bytes: int, streams: bool
) -> tuple[Path, Path]:
    options = run.RunOptions(region="FR")
    whole = tmp_path / "whole"
    run.validate_files([str(src)], options, whole, batch_bytes=0)
    streamed = tmp_path / "streamed"
    if streams:  # the batches must do it all: reading the file whole would be a failure

        def whole_read(*_: object, **__: object) -> None:
            raise AssertionError("the streamed run read the file whole")

        monkeypatch.setattr(run, "extract_all", whole_read)
    run.validate_files([str(src)], options, streamed, batch_bytes=batch_bytes)
    monkeypatch.undo()
    return whole, streamed


def _assert_same(whole: Path, streamed: Path) -> None:
    for name in CSV_FILES:
        assert (streamed / name).read_bytes() == (whole / name).read_bytes(), name
    assert_frame_equal(
        pl.read_parquet(streamed / "contacts.parquet"), pl.read_parquet(whole / "contacts.parquet")
    )
    assert _summary(streamed) == _summary(whole)
    assert (streamed / "report.html").is_file()
    assert not [p.name for p in streamed.iterdir() if p.name.startswith(".")]


def test_batches_read_the_rows_the_whole_file_reads(tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    make_file(src)
    whole = read_file(src)[0]
    parts = list(read_file_batches(src, batch_bytes=4096))
    assert len(parts) > 20
    assert parts[0].frame.height >= 1000  # the mapping's content sample is in the first batch
    assert {p.columns for p in parts} == {whole.columns}
    assert sum(p.rows_read for p in parts) == whole.rows_read
    assert sum(p.empty_rows for p in parts) == whole.empty_rows > 0
    assert_frame_equal(pl.concat([p.frame for p in parts], how="diagonal_relaxed"), whole.frame)


def test_streamed_validate_writes_the_whole_file_report_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "big.csv"
    make_file(src)
    whole, streamed = _both(src, tmp_path, monkeypatch, 4096, streams=True)
    _assert_same(whole, streamed)
    summary = _summary(whole)
    # the file exercised what it is meant to: duplicates across batches, every kind of line
    assert summary["duplicates"] > 1400 and summary["rejected"] > 50 and summary["warnings"] > 50
    assert summary["empty_rows"] > 30
    assert {"DUPLICATE", "INVALID_NUMBER", "MISSING_PHONE", "INVALID_EMAIL"} <= set(
        summary["by_code"]
    )
    e164 = f"+33{mobile(20)}"
    contacts = pl.read_csv(whole / "contacts.csv", infer_schema=False)
    first_row = contacts.filter(pl.col("phone") == e164).get_column("row").item()
    errors = pl.read_csv(whole / "errors.csv", infer_schema=False)
    dups = errors.filter(pl.col("message").str.contains(f"same phone {e164} ", literal=True))
    # data rows 4520, 5000 and 5001 repeat row 20's phone, 5000 and 5001 side by side in one
    # batch: each points at the earliest row, many batches back
    assert dups.height == 3
    assert dups.get_column("message").str.contains(f"as row {first_row} of", literal=True).all()


def test_batches_that_end_on_empty_rows_count_them_as_the_whole_file_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "gaps.csv"
    make_file(src, rows=4000, unique=3000, gaps=12)
    whole, streamed = _both(src, tmp_path, monkeypatch, 3000, streams=True)
    _assert_same(whole, streamed)
    assert _summary(whole)["empty_rows"] > 1000


def test_a_file_that_must_be_read_whole_falls_back_with_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "ragged.csv"
    make_file(src, rows=3000, unique=2500)
    # a longer record near the end: the whole file gets an extra column, the batches would not
    src.write_bytes(src.read_bytes() + "Zoé,0612345678,,,,,extra\n".encode())
    with pytest.raises(NotStreamable):
        list(read_file_batches(src, batch_bytes=4096))
    whole, streamed = _both(src, tmp_path, monkeypatch, 4096, streams=False)
    _assert_same(whole, streamed)


def test_a_windows_1252_file_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "latin.csv"
    make_file(src, rows=2500, unique=2000)
    text = src.read_bytes().decode("utf-8").replace("\x01", "")
    src.write_bytes(text.encode("cp1252"))
    with pytest.raises(NotStreamable):
        list(read_file_batches(src, batch_bytes=4096))
    whole, streamed = _both(src, tmp_path, monkeypatch, 4096, streams=False)
    _assert_same(whole, streamed)


def test_only_a_validate_of_one_text_file_streams(tmp_path: Path) -> None:
    from contactpipe import streamed

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for p in (a, b):
        p.write_text("phone\n0612345678\n", encoding="utf-8")
    opts = run.RunOptions(region="FR")
    assert streamed.streamable([str(a)], opts, 4096) == a
    assert streamed.streamable([str(a)], opts, None) is None  # small: read whole
    assert streamed.streamable([str(a)], opts, 0) is None
    assert streamed.streamable([str(a), str(b)], opts, 4096) is None
    assert streamed.streamable([str(a)], run.RunOptions(on_duplicate="last"), 4096) is None
    assert streamed.streamable([str(a)], run.RunOptions(errors_xlsx=True), 4096) is None
    x = tmp_path / "c.xlsx"
    x.write_bytes(b"PK")
    assert streamed.streamable([str(x)], opts, 4096) is None


def test_the_api_result_reads_the_batched_contacts_on_first_use(tmp_path: Path) -> None:
    from contactpipe.api import Result

    src = tmp_path / "big.csv"
    make_file(src, rows=2500, unique=2000)
    options = run.RunOptions(region="FR")
    whole = Result.from_run(run.validate_files([str(src)], options, tmp_path / "w", batch_bytes=0))
    found = run.validate_files([str(src)], options, tmp_path / "s", batch_bytes=4096)
    assert found.contacts == tmp_path / "s" / "contacts.parquet"  # not held in memory
    streamed = Result.from_run(found)
    assert_frame_equal(streamed.contacts, whole.contacts)
    assert streamed.contacts is streamed.contacts  # read once


def test_the_page_from_lines_read_back_narrowly_is_the_page_from_every_column(
    tmp_path: Path,
) -> None:
    from contactpipe.report import html

    src = tmp_path / "big.csv"
    make_file(src, rows=2500, unique=2000)
    report = tmp_path / "r"
    run.validate_files([str(src)], run.RunOptions(region="FR"), report, batch_bytes=0)
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))

    def every_column(name: str) -> pl.DataFrame:
        frame = pl.read_csv(report / name, infer_schema=False)
        return frame.with_columns(pl.col("row").cast(pl.Int64, strict=False))

    narrow = [html._read_lines(str(report / n)) for n in ("errors.csv", "warnings.csv")]
    assert narrow[0].get_column("message").null_count() > 0  # most lines were not read whole
    full = html.render_html(
        summary, every_column("errors.csv"), every_column("warnings.csv"), report, guarded=True
    )
    assert html.render_html(summary, *narrow, report, guarded=True) == full


def test_seen_phones_answer_as_a_dictionary_does() -> None:
    # the earlier batches' phones live in sorted runs merged as they grow (``_Seen``): every
    # lookup must give what a plain dictionary of every earlier phone gives, through merges
    import random

    from contactpipe.streamed import _Seen

    rng = random.Random(16)
    seen, reference = _Seen(), {}
    rid = 0
    for batch in range(60):
        size = rng.choice([1, 7, 50, 300, 2_000])
        keys = list(
            dict.fromkeys(rng.randrange(33_600_000_000, 33_600_050_000) for _ in range(size))
        )
        if batch % 9 == 4:
            keys = []  # a batch that kept nothing
        series = pl.Series("k", keys, dtype=pl.Int64)
        found = seen.find(series)
        expected = [(i, *reference[k]) for i, k in enumerate(keys) if k in reference]
        assert found.rows() == expected, batch
        assert found.columns == ["__i", "__rid", "row"]
        new = [k for k in keys if k not in reference]
        rids = list(range(rid, rid + len(new)))
        rid += len(new) + 3
        for k, r in zip(new, rids, strict=True):
            reference[k] = (r, r + 2)
        seen.add(
            pl.Series(new, dtype=pl.Int64),
            pl.Series(rids, dtype=pl.Int64),
            pl.Series([r + 2 for r in rids], dtype=pl.Int64),
        )
    assert sum(r.height for r in seen.runs) == len(reference)
    assert len(seen.runs) <= 12  # merged as they grew, not one run per batch


def test_the_batched_page_is_the_page_of_its_lines_read_back(tmp_path: Path) -> None:
    # a batched run keeps what report.html needs as it goes (``_PageLines``) instead of
    # reading errors.csv back: the page must be the one the lines read back give
    from contactpipe.report import html

    src = tmp_path / "big.csv"
    make_file(src, rows=2500, unique=1200)
    report = tmp_path / "r"
    run.validate_files([str(src)], run.RunOptions(region="FR"), report, batch_bytes=4096)
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert summary["duplicates"] > html.SAMPLE_ROWS and summary["rejected"]
    lines = [html._read_lines(str(report / n)) for n in ("errors.csv", "warnings.csv")]
    (report / "summary.json").unlink()  # not there yet when the page was written
    page = html.render_html(summary, *lines, report, guarded=True)
    assert (report / "report.html").read_text(encoding="utf-8") == page


def test_sigterm_during_a_batched_run_stops_it_cleanly(tmp_path: Path) -> None:
    # worker threads transform batches while the main thread writes: a SIGTERM must still
    # end the run promptly (exit 143), wait for the running batches, and leave no file
    import os
    import signal
    import subprocess
    import sys
    import time

    from contactpipe.streamed import STREAM_MIN_BYTES

    src = tmp_path / "big.csv"
    rows = "".join(f"Ana {i},+3361{i % 10_000_000:07d},a{i}@example.org\n" for i in range(40_000))
    with src.open("w", encoding="utf-8") as fh:
        fh.write("Name,Phone,Email\n")
        while fh.tell() < STREAM_MIN_BYTES + (4 << 20):
            fh.write(rows)
    report = tmp_path / "r"
    cmd = [sys.executable, "-m", "contactpipe.cli", "validate", str(src), "--region", "FR"]
    proc = subprocess.Popen(
        [*cmd, "--report-dir", str(report), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (report.is_dir() and any(report.iterdir())):  # the batched files are open
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    time.sleep(0.5)  # batches in the worker threads
    os.kill(proc.pid, signal.SIGTERM)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err
    assert time.monotonic() - started < 20
    assert list(report.iterdir()) == []  # temporary files removed, nothing half-written
