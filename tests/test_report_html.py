"""report.html: rendered for the sample data, a 100k-row run and a hostile file, and opened in
a real headless Chromium (no console error, no network request, a screenshot kept)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from browser import check_in_browser, chromium_path, open_page, text_of
from click.testing import CliRunner
from filemakers import make_csv, make_xlsx

from contactpipe.cli import main
from contactpipe.load.timeline import Timeline
from contactpipe.report.html import REPORT_NAME, write_html
from contactpipe.report.html.data import SAMPLE_ROWS, clip
from contactpipe.run import RunOptions, validate_files

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"

needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="Chromium is not installed: `make chromium` installs the Debian package "
    "(needs root and apt-get; `make test` runs it)",
)


# --- the sample data ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample") / "report"
    result = validate_files([str(SAMPLES)], RunOptions(region="FR", errors_xlsx=True), out)
    return out, result.summary


def test_sample_report_says_what_happened_to_every_row(sample_run: tuple[Path, dict]) -> None:
    out, summary = sample_run
    page = (out / REPORT_NAME).read_text(encoding="utf-8")
    assert summary["files_written"]["report_html"] == str(out / REPORT_NAME)
    text = text_of(page)
    # the outcome legend: valid with and without a warning, rejected, duplicate, empty
    with_warning = summary["warnings"]
    for label, n in (
        ("valid", summary["valid"] - with_warning),
        ("valid, with a warning", with_warning),
        ("rejected", summary["rejected"]),
        ("duplicate", summary["duplicates"]),
        ("empty (skipped)", summary["empty_rows"]),
    ):
        assert f"{label}: {n:,} (" in text, label
    # one expandable block per code, with its count
    for code, n in summary["by_code"].items():
        block = re.search(rf'<details id="code-{code}">.*?</details>', page, re.S)
        assert block, code
        assert f"{n:,} row(s)" in text_of(block.group(0))
    # a reject shows its spreadsheet row, the failing column and the original value
    email = re.search(r'<details id="code-INVALID_EMAIL">.*?</details>', page, re.S).group(0)
    assert '<span class="hit"><b>E-mail:</b> chloe@exemple</span>' in email
    assert ">5</td>" in email  # row 5 of clients_fr.csv, as a spreadsheet numbers it
    missing = re.search(r'<details id="code-MISSING_PHONE">.*?</details>', page, re.S).group(0)
    assert '<span class="hit"><b>Téléphone:</b> (empty)</span>' in missing  # what failed
    # the mapping of each file, with how it was read
    assert "encoding cp1252" in text and "delimiter ';' (semicolon)" in text
    assert "preset google" in text and "Ville" in text
    assert "[Leads]" in text
    # links to the files beside it, which exist
    for name in ("errors.csv", "warnings.csv", "errors.xlsx", "contacts.csv", "summary.json"):
        assert f'href="{name}"' in page
    assert "contactpipe" in text and "polars" in text  # versions
    assert "<th>region</th><td><code>FR</code>" in page


def test_per_file_bars_add_up_to_the_rows_read(sample_run: tuple[Path, dict]) -> None:
    out, summary = sample_run
    page = (out / REPORT_NAME).read_text(encoding="utf-8")
    rows = re.findall(
        r'<tr><td class="file">([^<]*sample_data/[^<]+)</td><td>[^<]*</td>(.*?)</tr>', page
    )
    assert len(rows) == len(summary["files"])
    for (name, cells), f in zip(rows, summary["files"], strict=True):
        numbers = [int(n.replace(",", "")) for n in re.findall(r'"num">([\d,]*)<', cells)]
        assert name == f["file"]
        assert sum(numbers[:-1]) == numbers[-1] == f["rows_read"]


def test_summary_json_comes_last_and_lists_the_page(sample_run: tuple[Path, dict]) -> None:
    out, _ = sample_run
    written = json.loads((out / "summary.json").read_text())["files_written"]
    assert written["report_html"] == str(out / REPORT_NAME)
    assert (out / "summary.json").stat().st_mtime_ns >= (out / REPORT_NAME).stat().st_mtime_ns


@needs_chromium
def test_sample_report_in_chromium(sample_run: tuple[Path, dict]) -> None:
    out, summary = sample_run
    page = check_in_browser(out / REPORT_NAME, "report-sample")
    assert page.evaluated["details"] == len(summary["by_code"])
    assert page.evaluated["svgs"] >= 1 + len(summary["files"])
    assert "What happened to every input row" in page.evaluated["text"]


# --- a large run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """100,000 rows: 10% invalid numbers, 5% nameless (warnings), 5% duplicates, 3% bad e-mails."""
    root = tmp_path_factory.mktemp("big")
    lines = ["name,phone,email"]
    for i in range(100_000):
        number = f"+336{i:08d}"
        name, email = f"Client {i}", f"c{i}@example.com"
        if i % 10 == 1:
            number = f"12{i}"
        elif i % 20 == 2:
            name = ""
        elif i % 20 == 3:
            number = f"+336{i - 1:08d}"
        elif i % 33 == 4:
            email = f"c{i}-at-example"
        lines.append(f"{name},{number},{email}")
    src = root / "big.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = validate_files([str(src)], RunOptions(), root / "report")
    return root / "report", result.summary


@needs_chromium
def test_long_file_paths_wrap_instead_of_widening_the_page(tmp_path: Path) -> None:
    """The column mapping shows each file's full path in a grid of cards: a path with no
    space or hyphen to break at (a checkout under /tmp/tmp.XXXXXXXXXX) widened the whole page
    past a laptop's width instead of wrapping."""
    deep = tmp_path / "tmp.MX4DVW7QE9" / "sample_data"
    deep.mkdir(parents=True)
    for name in ("clients_fr.csv", "google_contacts.csv", "leads_afrique.xlsx"):
        shutil.copy(SAMPLES / name, deep / name)
    out = tmp_path / "report"
    validate_files([str(deep)], RunOptions(region="FR"), out)
    check_in_browser(out / REPORT_NAME, "report-long-paths")  # width <= 1200 among its checks


@pytest.mark.slow
def test_a_100k_row_report_stays_small(big_run: tuple[Path, dict]) -> None:
    out, summary = big_run
    assert summary["rows_read"] == 100_000
    assert summary["rejected"] == 10_000  # the invalid numbers; a missing name is a warning
    page = (out / REPORT_NAME).read_text(encoding="utf-8")
    assert len(page.encode()) < 150_000
    text = text_of(page)
    for code, n in summary["by_code"].items():
        assert n > SAMPLE_ROWS
        block = re.search(rf'<details id="code-{code}">.*?</details>', page, re.S).group(0)
        assert block.count("<tr>") == SAMPLE_ROWS + 1  # header + the first rows only
        assert f"Showing the first {SAMPLE_ROWS} of {n:,}; {n - SAMPLE_ROWS:,} more in" in (
            text_of(block)
        )
    assert f"{summary['rejected']:,}" in text


@pytest.mark.slow
@needs_chromium
def test_a_100k_row_report_in_chromium(big_run: tuple[Path, dict]) -> None:
    out, _ = big_run
    page = check_in_browser(out / REPORT_NAME, "report-100k")
    assert page.evaluated["height"] < 20_000  # a page, not a dump (details open)


# --- a hostile file -------------------------------------------------------------------------

SCRIPT = "<script>document.title='pwned';fetch('http://127.0.0.1:9/x')</script>"
IMG = '"><img src="http://127.0.0.1:9/y.png" onerror="alert(1)">'
HUGE = "A" * 1_000_000


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("hostile")
    src = root / "evil<b>name&amp;.csv"
    make_csv(
        src,
        [
            ["name", "phone", "email", SCRIPT, "notes"],
            [SCRIPT, "+33612345678", "x@example.com", IMG, "fine"],
            ['=HYPERLINK("http://evil.example";"click")', "+33612345679", "", "", ""],
            [IMG, "not a number", "", "", ""],
            ["Bidi \u202eevil\u202c", "+33612345680", "bad-at-mail", "x\x1b[31my", ""],
            ["Huge", "+33612345681", "", HUGE, HUGE],
            ["</style><style>*{display:none}</style>", "12", "", "{{ 7*7 }}", ""],
            ["<!--", "+33612345682", "not-an-email", "-->", ""],
        ],
    )
    book = root / "sheet.xlsx"
    make_xlsx(
        book,
        {"<img src=x onerror=y>": [["name", "phone"], [SCRIPT, "+33612345690"], ["=1+1", "bad"]]},
    )
    result = validate_files(
        [str(src), str(book)], RunOptions(region="FR", keep_extra_columns=True), root / "r"
    )
    return root / "r", result.summary


def test_hostile_values_stay_text(hostile_run: tuple[Path, dict]) -> None:
    out, summary = hostile_run
    page = (out / REPORT_NAME).read_text(encoding="utf-8")
    assert summary["rejected"] >= 3
    # not one tag from the data: every one was escaped
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "evil<b>" not in page
    assert page.count("<style>") == 1 and page.count("</style>") == 1
    text = text_of(page)
    assert SCRIPT in text  # readable as what it is
    assert "evil<b>name&amp;.csv" in text
    assert '=HYPERLINK("http://evil.example";"click")' in text  # shown, never evaluated
    assert "{{ 7*7 }}" in text  # data is never a template
    assert "\u202e" not in page and "\x1b" not in page  # bidi override, ESC: shown as �
    # a 1 MB cell does not make a 1 MB page
    assert len(page.encode()) < 100_000
    assert f"… (+{len(HUGE) - 160:,} chars)" in text


def test_clip_caps_and_cleans() -> None:
    assert clip("a\x00b\u202ec") == "a\ufffdb\ufffdc"
    assert clip("x" * 200, 10) == "x" * 10 + "… (+190 chars)"
    assert clip(None) == ""


@needs_chromium
def test_hostile_report_in_chromium(hostile_run: tuple[Path, dict]) -> None:
    out, _ = hostile_run
    page = check_in_browser(out / REPORT_NAME, "report-hostile")
    assert page.evaluated["title"].startswith("contactpipe validate")  # not 'pwned'
    assert SCRIPT in page.evaluated["text"]


@needs_chromium
def test_the_browser_check_sees_a_request_and_an_error(tmp_path: Path) -> None:
    """The check can fail: a page that loads an image and runs a failing script is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/z.png">'
        "<script>console.error('boom'); undefinedCall();</script></body></html>",
        encoding="utf-8",
    )
    page = open_page(bad, open_details=False)
    assert any(u.startswith("http://127.0.0.1:9/") for u in page.foreign_requests)
    assert any("boom" in e for e in page.errors)
    assert any("undefinedCall" in e for e in page.errors)


# --- the command line -----------------------------------------------------------------------


def test_cli_prints_the_page_last_and_no_html_skips_it(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "in.csv", [["name", "phone"], ["A", "+33612345678"]])
    runner = CliRunner()
    done = runner.invoke(main, ["validate", str(src), "--report-dir", str(tmp_path / "a"), "-q"])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[-1] == f"  page:     {tmp_path / 'a' / REPORT_NAME}"
    assert (tmp_path / "a" / REPORT_NAME).is_file()
    skipped = runner.invoke(
        main, ["validate", str(src), "--report-dir", str(tmp_path / "b"), "-q", "--no-html"]
    )
    assert skipped.exit_code == 0, skipped.output
    assert not (tmp_path / "b" / REPORT_NAME).exists()
    assert (
        "report_html"
        not in json.loads((tmp_path / "b" / "summary.json").read_text())["files_written"]
    )
    assert "page:" not in skipped.output


def test_write_html_reads_the_csv_files_back(sample_run: tuple[Path, dict]) -> None:
    """Without frames (migrate re-renders after the import), the page comes from the CSVs,
    with the formula guard of the CSV writer taken off again."""
    out, summary = sample_run
    again = out.parent / "again"
    again.mkdir()
    page = write_html(again, summary).read_text(encoding="utf-8")
    first = (out / REPORT_NAME).read_text(encoding="utf-8")

    def problems(p: str) -> str:
        return re.search(r'<section id="problems">.*?</section>', p, re.S).group(0)

    assert problems(page) == problems(first)  # same rows, same original values
    warnings = pl.read_csv(out / "warnings.csv", infer_schema=False)
    assert warnings.get_column("Nom").str.starts_with("'=").any()  # guarded in the CSV...
    assert "<b>Nom:</b> =HYPERLINK(" in problems(page)  # ...and shown as written


# --- the load's time series -----------------------------------------------------------------


def test_timeline_stays_bounded_and_keeps_every_count() -> None:
    now = [0.0]
    tl = Timeline(max_buckets=8, start_width_s=0.5, clock=lambda: now[0])
    for i in range(100):
        now[0] = i * 0.3
        tl.record("requests")
        if i % 10 == 0:
            tl.record("rate_limited")
            tl.record("retries", 2)
    tl.record("unknown")
    doc = tl.as_dict()
    assert len(doc["requests"]) <= 8
    assert len(doc["requests"]) == len(doc["rate_limited"]) == len(doc["retries"])
    assert (sum(doc["requests"]), sum(doc["rate_limited"]), sum(doc["retries"])) == (100, 10, 20)
    # 0.5 s buckets doubled until 29.7 s fits in 8: 4 s, the first holds t = 0, 0.3 ... 3.9
    assert doc["bucket_s"] == 4.0 and doc["seconds"] == pytest.approx(29.7)
    assert doc["requests"][0] == 14 and doc["rate_limited"][:2] == [2, 1]


# --- caps -----------------------------------------------------------------------------------


def test_many_files_and_wide_rows_are_capped(tmp_path: Path) -> None:
    from contactpipe.report.html.data import MAX_FILES, VALUES_PER_ROW

    (tmp_path / "in").mkdir()
    for i in range(MAX_FILES + 7):
        make_csv(tmp_path / "in" / f"f{i:03d}.csv", [["name", "phone"], [f"N{i}", "12"]])
    wide = [["name", "phone", *(f"col{j}" for j in range(300))]]
    wide.append(["W", "bad", *(f"v{j}" for j in range(300))])
    make_csv(tmp_path / "in" / "a_wide.csv", wide)  # read first
    result = validate_files([str(tmp_path / "in")], RunOptions(region="FR"), tmp_path / "r")
    page = (tmp_path / "r" / REPORT_NAME).read_text(encoding="utf-8")
    text = text_of(page)
    assert result.summary["rejected"] == MAX_FILES + 8
    assert text.count("and 8 more file(s)/sheet(s): see summary.json.") == 2  # bars, mapping
    assert page.count('<div class="filebar">') == MAX_FILES
    assert f"+{302 - VALUES_PER_ROW} more" in text  # the wide row: 12 values shown
    assert "and 100 more unused column(s)." in text  # 300 unused, 200 listed


def test_a_line_with_two_codes_counts_under_each() -> None:
    from contactpipe.report.html.data import code_groups

    lines = pl.DataFrame(
        {
            "source_file": ["a.csv"] * 3,
            "sheet": [None] * 3,
            "row": [2, 3, 4],
            "column": ["E-mail", "Nom", "E-mail"],
            "code": ["INVALID_EMAIL;MISSING_NAME", "MISSING_NAME", "INVALID_EMAIL"],
            "message": ["m1", "m2", "m3"],
            "E-mail": ["x@", None, "y@"],
            "Nom": [None, None, "Z"],
        },
        schema_overrides={"sheet": pl.String},
    )
    groups = {g["code"]: g for g in code_groups(lines, {}, warning=False, csv_name="e.csv")}
    assert {c: g["count"] for c, g in groups.items()} == {"INVALID_EMAIL": 2, "MISSING_NAME": 2}
    assert [r["row"] for r in groups["MISSING_NAME"]["rows"]] == [2, 3]
    first = groups["MISSING_NAME"]["rows"][1]["cells"]
    assert first == [{"header": "Nom", "value": "(empty)", "failed": True}]
    capped = code_groups(lines, {}, warning=False, csv_name="e.csv", cap=1)
    assert [(g["code"], len(g["rows"]), g["not_shown"]) for g in capped] == [
        ("INVALID_EMAIL", 1, 1),
        ("MISSING_NAME", 1, 1),
    ]


def test_skipped_inputs_and_phone_found_by_content_are_on_the_page(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    make_csv(drop / "products.csv", [["sku", "price"], ["A-1", "9.90"]])
    make_csv(drop / "people.csv", [["who", "reach"], ["Ana", "+33 6 12 34 56 78"]])
    out = tmp_path / "report"
    result = validate_files([str(drop)], RunOptions(region="FR"), out)
    assert result.summary["valid"] == 1
    page = text_of((out / REPORT_NAME).read_text(encoding="utf-8"))
    assert "Inputs skipped" in page
    assert "products.csv" in page and "sku, price" in page
    assert "content (most cells are phone numbers)" in page


def test_an_export_page_escapes_its_columns_and_caps_them(tmp_path: Path) -> None:
    """An export's page is built from the API's answer: custom field keys and the output path
    are data too.  Its shape is run.export_contacts'; hundreds of custom fields stay capped."""
    hostile = "custom.<script>alert(1)</script>"
    filled = {"phone": 3, hostile: 1, **{f"custom.f{i}": 1 for i in range(300)}}
    output = tmp_path / "evil<b>.csv"
    output.write_text("phone\n", encoding="utf-8")
    summary = {
        "command": "export",
        "started_at": "2026-01-01T00:00:00+00:00",
        "target": "vobiz",
        "output": str(output),
        "rows": 3,
        "columns": list(filled),
        "filled": filled,
        "total_reported": 4,  # a contact removed during the export
        "filters": {"search": None, "tag": "<i>vip</i>", "group": None, "opt_out": None},
        "with_groups": False,
        "excel": False,
        "requests": 1,
        "retries": 0,
        "rate_limited": 0,
        "plan": [{"endpoint": "GET /api/v1/messaging/contacts", "requests": 1, "items": 4}],
        "seconds": {"fetch": 0.01, "total": 0.02},
        "files_written": {"export": str(output)},
    }
    page = (write_html(tmp_path, summary)).read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "evil<b>" not in page and "<i>vip" not in page
    text = text_of(page)
    assert hostile in text and "<i>vip</i>" in text
    assert f"3 contact(s) exported to {output}; the API reported 4 matching" in text
    assert "and 102 more column(s): see summary.json." in text  # 302 columns, 200 shown
    assert "What happened to every input row" not in text and "Export from vobiz" in text
    assert 'href="evil%3Cb%3E.csv"' in page  # the output beside the page is linked


def test_the_page_names_the_platform_as_the_platform_module_does() -> None:
    # built from uname and glibc's own version string (platform() reads the executable)
    import platform

    from contactpipe.report.html import _platform, _versions

    assert _platform() == platform.platform(terse=True)
    import phonenumbers

    got = _versions({"contactpipe_version": "x"})
    assert got["polars"] == pl.__version__ and got["phonenumbers"] == phonenumbers.__version__
    assert ("httpx" in got) == ("httpx" in sys.modules)  # only a library the run used


def test_a_validate_page_names_no_http_client(tmp_path: Path) -> None:
    """A validate never imports httpx: its page does not list it (reading its version from
    the package metadata cost a one-row run ~2 ms)."""
    args = ["validate", str(SAMPLES), "--region", "FR", "--report-dir", str(tmp_path), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-c", "from contactpipe.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 2), done.stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<th>polars</th>" in page and "<th>httpx</th>" not in page
