"""A number cell cannot hold a '+': digits valid only with it are accepted, with PLUS_ADDED."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from contactpipe.extract import read_file
from contactpipe.run import RunOptions, validate_files
from contactpipe.transform.phones import normalize_phones
from tests.filemakers import (
    make_csv,
    make_json,
    make_ndjson,
    make_ods,
    make_parquet,
    make_xls,
    make_xlsx,
)

BENIN = 2290197892959  # +229 01 97 89 29 59: invalid as a French national number

ROWS = [
    ["Nom", "Téléphone"],
    ["Awa", BENIN],  # a number cell
    ["Bob", str(BENIN)],  # the same digits typed as text
    ["Cid", 612345678],  # a number cell, valid as it is (French mobile without its 0)
    ["Dan", "+33 6 98 76 54 32"],
]


@pytest.mark.parametrize(
    ("suffix", "maker"), [("xlsx", make_xlsx), ("ods", make_ods), ("xls", make_xls)]
)
def test_number_cells_of_spreadsheets(tmp_path: Path, suffix: str, maker: object) -> None:
    src = maker(tmp_path / f"fr.{suffix}", {"Contacts": ROWS})  # type: ignore[operator]
    extracted = read_file(src)[0]
    assert extracted.number_cells is not None
    assert extracted.number_cells["Téléphone"].to_list() == [True, False, True, False]

    result = validate_files([str(src)], RunOptions(region="FR"), tmp_path / "r")
    phones = dict(result.contacts.select("name", "phone").iter_rows())
    assert phones == {"Awa": "+2290197892959", "Cid": "+33612345678", "Dan": "+33698765432"}
    errors = pl.read_csv(tmp_path / "r" / "errors.csv", infer_schema=False)
    bob = errors.row(0, named=True)
    assert (bob["row"], bob["code"]) == ("3", "INVALID_NUMBER")  # text: today's rule
    assert "without its '+' (+2290197892959)" in bob["message"]
    warnings = pl.read_csv(tmp_path / "r" / "warnings.csv", infer_schema=False)
    awa = warnings.row(0, named=True)
    assert (awa["row"], awa["code"]) == ("2", "PLUS_ADDED")
    assert "2290197892959 read as +2290197892959" in awa["message"]
    assert warnings.height == 1


def test_number_values_of_json_ndjson_and_parquet(tmp_path: Path) -> None:
    records = [{"Name": r[0], "Phone": r[1]} for r in ROWS[1:]]
    files = [
        make_json(tmp_path / "c.json", records),
        make_ndjson(tmp_path / "c.ndjson", records),
        make_parquet(tmp_path / "n.parquet", {"Name": ["Awa", "Cid"], "Phone": [BENIN, 612345678]}),
    ]
    for src in files:
        result = validate_files([str(src)], RunOptions(region="FR"), tmp_path / src.stem)
        phones = dict(result.contacts.select("name", "phone").iter_rows())
        assert phones["Awa"] == "+2290197892959", src
        assert phones["Cid"] == "+33612345678", src
        assert "Bob" not in phones  # the text value: rejected with the hint
        assert result.summary["by_code"]["PLUS_ADDED"] == 1, src


def test_an_excel_float_in_a_text_file_was_a_number_cell(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "export.csv",
        [["Name", "Phone"], ["Awa", f"{BENIN}.0"], ["Bob", str(BENIN)], ["Cid", "2.2997E+10"]],
    )
    result = validate_files([str(src)], RunOptions(region="FR"), tmp_path / "r")
    assert result.contacts["phone"].to_list() == ["+2290197892959"]
    warnings = pl.read_csv(tmp_path / "r" / "warnings.csv", infer_schema=False)
    assert warnings["code"].to_list() == ["EXCEL_FLOAT_FIXED;PLUS_ADDED"]
    errors = pl.read_csv(tmp_path / "r" / "errors.csv", infer_schema=False)
    assert errors["code"].to_list() == ["INVALID_NUMBER", "PRECISION_LOST"]


def test_plus_added_in_the_phones_layer() -> None:
    df = pl.DataFrame(
        {
            "phone": [str(BENIN), str(BENIN), "612345678", "12345", "22997123456"],
            "num": [True, False, True, True, True],
        }
    )
    out = normalize_phones(df, phone_col="phone", region="FR", numeric_cols={"phone": "num"})
    assert out["__phone_e164"].to_list() == [
        "+2290197892959",
        None,  # text: the '+' could have been typed
        "+33612345678",  # valid as a national number: no '+' tried
        None,  # not valid with a '+' either
        None,  # '+22997123456' is an old Benin number: legacy plans need the '+' typed
    ]
    assert out["__phone_warning"].to_list() == ["PLUS_ADDED", None, None, None, None]
    # without a region, a number cell is still a number
    out = normalize_phones(
        df.head(1), phone_col="phone", region=None, numeric_cols={"phone": "num"}
    )
    assert out["__phone_e164"].to_list() == ["+2290197892959"]


OFFSET_ROWS = [  # a blank row, a title, then the table from column B, phones in column D
    [None, None, None, None],
    [None, "Export du 2026-12-01"],
    [None, "Nom", "Ville", "Téléphone", "Fixe"],
    [None, "Awa", "Cotonou", BENIN, "+33 1 23 45 67 89"],
    [None, "Bob", "Paris", str(BENIN), 2290197892959],
    [None, "Cid", None, None, str(BENIN)],
    [None, "Dan", "Lyon", 612345678, None],
]


@pytest.mark.parametrize("sheet", [None, "*", "Contacts"])
def test_number_cells_loaded_in_a_thread_equal_the_loads_one_after_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sheet: str | None
) -> None:
    """The number-cell load of a small workbook runs beside its text load, over every column;
    a large one loads only the long-digit columns afterwards.  Same answers, with the table
    away from A1 and a hidden sheet before it."""
    from contactpipe.extract import excel

    src = make_xlsx(
        tmp_path / "offset.xlsx",
        {"Old": [["Tel"], [BENIN]], "Contacts": OFFSET_ROWS},
        hidden=["Old"],
    )
    threaded = read_file(src, sheet=sheet)
    monkeypatch.setattr(excel, "PREFETCH_MAX_BYTES", 0)
    started = []
    monkeypatch.setattr(excel._NumberLoad, "__init__", lambda *a: started.append(a))
    sequential = read_file(src, sheet=sheet)
    assert not started  # the sequential run really was sequential
    assert len(threaded) == len(sequential) == 1
    cells = threaded[0].number_cells
    assert cells is not None
    assert cells.to_dict(as_series=False) == {
        "Téléphone": [True, False, False, True],
        "Fixe": [False, True, False, False],
    }
    assert sequential[0].number_cells is not None
    assert sequential[0].number_cells.equals(cells)


@pytest.mark.parametrize("threaded", [True, False])
def test_number_cells_of_a_table_that_starts_in_column_b(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threaded: bool
) -> None:
    """A blank column A: the number cells were looked up by fastexcel's ``use_columns``, which
    counts from column A, so the phone column's number cells were missed and a valid number
    typed without its '+' was rejected."""
    from contactpipe.extract import excel

    if not threaded:
        monkeypatch.setattr(excel, "PREFETCH_MAX_BYTES", 0)
    rows = [[None, "Nom", "Téléphone"], [None, "Awa", BENIN], [None, "Bob", str(BENIN)]]
    src = make_xlsx(tmp_path / "b.xlsx", {"Contacts": rows})
    result = validate_files([str(src)], RunOptions(region="FR"), tmp_path / "r")
    assert dict(result.contacts.select("name", "phone").iter_rows()) == {"Awa": "+2290197892959"}
