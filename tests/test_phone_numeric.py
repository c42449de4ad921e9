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
