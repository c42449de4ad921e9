"""Whole-run behaviour: several files, dedupe across them, source positions, nothing lost."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contactpipe.run import RunOptions, validate_files


def write_csv(
    path: Path, rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8"
) -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return path


def test_dedupe_across_files_keeps_the_first_file_and_reports_the_other(tmp_path: Path) -> None:
    a = write_csv(
        tmp_path / "a.csv", [["Name", "Phone"], ["Awa", "+33612345678"], ["Bob", "0698765432"]]
    )
    b = write_csv(
        tmp_path / "b.csv",
        [
            ["Nom", "Téléphone", "Étiquettes"],
            ["Awa Doe", "06 12 34 56 78", "vip"],
            ["Zed", "+33 6 98 76 54 33", ""],
        ],
        delimiter=";",
        encoding="cp1252",
    )
    result = validate_files(
        [str(a), str(b)], RunOptions(region="FR", on_duplicate="merge"), tmp_path / "r"
    )
    s = result.summary
    assert (s["rows_read"], s["valid"], s["duplicates"], s["rejected"]) == (4, 3, 1, 0)
    awa = result.contacts.filter(pl.col("phone") == "+33612345678").row(0, named=True)
    assert (Path(awa["source_file"]).name, awa["row"], awa["name"], awa["tags"]) == (
        "a.csv",
        2,
        "Awa",
        ["vip"],
    )
    errors = pl.read_csv(tmp_path / "r" / "errors.csv", infer_schema=False)
    line = errors.row(0, named=True)
    assert (Path(line["source_file"]).name, line["row"], line["column"], line["code"]) == (
        "b.csv",
        "2",
        "Téléphone",
        "DUPLICATE",
    )
    assert line["message"].startswith("same phone +33612345678 as row 2 of")
    assert line["Nom"] == "Awa Doe" and line["Name"] is None  # original values of that row only
    assert [f["encoding"] for f in s["files"]] == ["utf-8", "cp1252"]


def test_workbook_rows_are_numbered_as_in_the_sheet(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Contacts"
    ws.append(["Export CRM — novembre"])
    ws.append([])
    ws.append(["Name", "Mobile"])
    ws.append(["Awa", 33612345678])  # a number cell without its '+'
    ws.append(["Bob", "+33 6 98 76 54 32"])
    ws.append(["Cy", "n/b"])
    wb.save(tmp_path / "c.xlsx")
    result = validate_files([str(tmp_path / "c.xlsx")], RunOptions(region="FR"), tmp_path / "r")
    errors = pl.read_csv(tmp_path / "r" / "errors.csv", infer_schema=False)
    assert errors.select("sheet", "row", "column", "code").rows() == [
        ("Contacts", "6", "Mobile", "INVALID_NUMBER")
    ]
    assert sorted(result.contacts.get_column("row").to_list()) == [4, 5]
    assert sorted(result.contacts.get_column("phone").to_list()) == ["+33612345678", "+33698765432"]


def test_errors_xlsx_on_request(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "a.csv", [["Name", "Phone"], ["=cmd|' /C calc'!A0", "bad"]])
    result = validate_files([str(src)], RunOptions(errors_xlsx=True), tmp_path / "r")
    ws = openpyxl.load_workbook(result.report_files["errors_xlsx"]).active
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    assert rows[0][:6] == ["source_file", "sheet", "row", "column", "code", "message"]
    assert rows[1][2:5] == ["2", "Phone", "INVALID_NUMBER"]
    assert rows[1][6] == "=cmd|' /C calc'!A0" and ws.cell(2, 7).data_type == "s"


def test_summary_json_has_the_public_fields(tmp_path: Path) -> None:
    rows = [["Name", "Phone"], ["A", "+33612345678"], ["", ""], ["B", "+33698765432"], [" ", ""]]
    src = write_csv(tmp_path / "a.csv", rows)  # the blank row inside counts, the trailing one not
    validate_files([str(src)], RunOptions(), tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text("utf-8"))
    for key in (
        "rows_read",
        "empty_rows",
        "valid",
        "rejected",
        "duplicates",
        "by_code",
        "seconds",
        "files",
    ):
        assert key in summary
    assert summary["empty_rows"] == 1
    assert set(summary["seconds"]) == {"extract", "transform", "report", "total"}


CELLS = st.sampled_from(
    ["+33612345678", "06 12 34 56 78", "0698765432", "+2290197123456", "97123456", "12", "", "  ",
     "n/a", "+44 7400 123456", "2.2997E+10", "+33 6 12 34 56 78 / 0698765432", "=1+1"]
)  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(st.sampled_from(["Awa", "", "Bob"]), CELLS), min_size=1, max_size=30)
)
def test_every_row_is_accounted_for_exactly_once(
    tmp_path: Path, rows: list[tuple[str, str]]
) -> None:
    src = write_csv(tmp_path / "in.csv", [["Name", "Phone"], *map(list, rows)])
    result = validate_files([str(src)], RunOptions(region="FR"), tmp_path / "r")
    s = result.summary
    errors = pl.read_csv(tmp_path / "r" / "errors.csv", infer_schema=False)
    seen = sorted(
        [*result.contacts.get_column("row").to_list(), *map(int, errors.get_column("row"))]
    )
    non_empty = [i + 2 for i, (name, phone) in enumerate(rows) if name.strip() or phone.strip()]
    assert seen == non_empty
    read = non_empty[-1] - 1 if non_empty else 0  # empty rows after the last one are not rows
    assert s["rows_read"] == read
    assert read == s["empty_rows"] + s["valid"] + s["rejected"] + s["duplicates"]
    assert result.contacts.get_column("phone").is_unique().all()


def test_a_run_that_dies_while_writing_leaves_no_summary_that_vouches_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_csv(tmp_path / "a.csv", [["Name", "Phone"], ["A", "+33612345678"]])
    report = tmp_path / "r"
    validate_files([str(src)], RunOptions(), report)
    assert (report / "summary.json").is_file()

    import contactpipe.report.writer as writer

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # what a kill looks like half-way through the report

    monkeypatch.setattr(writer, "write_parquet", killed)
    with pytest.raises(KeyboardInterrupt):
        validate_files([str(src)], RunOptions(), report)
    assert not (report / "summary.json").exists()
    assert not list(report.glob(".*tmp*"))
