"""Report files are safe to open in Excel and keep phones exactly as written."""

from __future__ import annotations

import csv

import openpyxl
import polars as pl
import pytest

from contactpipe.report.safe import excel_safe_frame
from contactpipe.report.writer import write_csv, write_xlsx

CELLS = {
    '=HYPERLINK("http://evil.example","click")': True,
    "=1+1": True,
    "@SUM(A1)": True,
    "\tcmd": True,
    "\rcmd": True,
    "+cmd|' /C calc'!A0": True,
    "-2+3": True,
    "+33 6 12 34 56 78": True,
    "-": True,
    "+2290197123456": False,
    "-12.5": False,
    "+33612345678": False,
    "0612345678": False,
    "Awa Doe": False,
    "a=b": False,
    "": False,
}


@pytest.mark.parametrize(("cell", "risky"), CELLS.items())
def test_risky_cells_are_neutralised_and_numbers_are_not(cell: str, risky: bool) -> None:
    out = excel_safe_frame(pl.DataFrame({"v": [cell]})).item()
    assert out == (f"'{cell}" if risky else cell)


def test_whole_frame_equals_cell_by_cell() -> None:
    """Columns without a cell starting with a character the guard looks at are skipped;
    the frame is still exactly the guard applied to every cell (nulls and numbers kept)."""
    cells = list(CELLS)
    df = pl.DataFrame(
        {
            "mixed": cells,
            "plain": [f"Name {i}" for i in range(len(cells))],
            "phones": ["+33612345678", None] * (len(cells) // 2),
            "nulls": pl.Series([None] * len(cells), dtype=pl.String),
            "n": list(range(len(cells))),
        }
    )
    out = excel_safe_frame(df)
    one = {c: excel_safe_frame(pl.DataFrame({"v": [c]})).item() for c in CELLS}
    assert out["mixed"].to_list() == [one[c] for c in cells]
    assert out.drop("mixed").equals(df.drop("mixed"))
    assert excel_safe_frame(df.clear()).equals(df.clear())


def test_csv_report_cells_never_start_a_formula(tmp_path) -> None:
    df = pl.DataFrame({"phone": ["+2290197123456"], "name": ['=HYPERLINK("x")'], "n": [3]})
    path = tmp_path / "out.csv"
    write_csv(df, path)
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["phone", "name", "n"], ["+2290197123456", '\'=HYPERLINK("x")', "3"]]
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no leftovers


def test_xlsx_cells_are_text_never_formulas(tmp_path) -> None:
    df = pl.DataFrame(
        {
            "phone": ["+2290197123456", "0612345678"],
            "name": ["=1+1", "@x"],
            "tags": [["a", "b"], []],
        }
    )
    path = tmp_path / "errors.xlsx"
    write_xlsx(df, path)
    ws = openpyxl.load_workbook(path).active
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0] == ["phone", "name", "tags"]
    assert values[1] == ["+2290197123456", "=1+1", "a, b"]
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            assert cell.value is None or cell.data_type == "s"  # text, not formula ('f') or number


def test_atomic_writes_leave_nothing_under_the_final_name_when_interrupted(tmp_path) -> None:
    from contactpipe.report.writer import atomic

    final = tmp_path / "contacts.csv"
    final.write_text("previous run\n", "utf-8")
    with pytest.raises(KeyboardInterrupt), atomic(final) as tmp:
        tmp.write_text("half a fi", "utf-8")
        raise KeyboardInterrupt
    assert final.read_text("utf-8") == "previous run\n"  # untouched, never half-written
    assert list(tmp_path.iterdir()) == [final]  # and no temporary file left behind


def test_a_wide_frame_is_neutralised_like_a_narrow_one() -> None:
    from contactpipe.report.safe import excel_safe_frame

    cells = ["x", "=1+1", "+33612345678", "-a", "@b", None]
    wide = pl.DataFrame({f"c{i}": [cells[i % 6], cells[(i + 1) % 6]] for i in range(200)})
    narrow = [excel_safe_frame(wide.select(c)) for c in wide.columns]
    assert excel_safe_frame(wide).equals(pl.concat(narrow, how="horizontal"))
    assert excel_safe_frame(wide)["c1"].to_list() == ["'=1+1", "+33612345678"]
