"""Several phone columns in a row: the first valid number wins, whole runs on files."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from contactpipe.run import RunOptions, validate_files
from contactpipe.transform.phones import PICK, normalize_phones
from tests.filemakers import make_csv

FR_MOBILE = "+33612345678"
N = None


def _report(tmp_path: Path, name: str) -> pl.DataFrame:
    path = tmp_path / "r" / name
    return pl.read_csv(path, infer_schema=False) if path.stat().st_size else pl.DataFrame()


def test_junk_in_the_preferred_column_does_not_hide_a_valid_number(tmp_path: Path) -> None:
    # HubSpot-like export: the mobile column comes first and holds junk in some rows
    src = make_csv(
        tmp_path / "hubspot.csv",
        [
            ["First Name", "Mobile Phone Number", "Phone Number"],
            ["Ana", "null", "06 12 34 56 78"],
            ["Bea", "07 81 22 33 44", "01 23 45 67 89"],
            ["Cid", "xx", "yy"],
            ["Dan", "", ""],
            ["Eve", "06 98 76 54 32", "+33 6 98 76 54 32"],
        ],
    )
    result = validate_files([str(src)], RunOptions(region="FR"), tmp_path / "r")
    phones = dict(result.contacts.select("name", "phone").iter_rows())
    assert phones == {"Ana": FR_MOBILE, "Bea": "+33781223344", "Eve": "+33698765432"}
    errors = _report(tmp_path, "errors.csv")
    got = sorted(errors.select("row", "column", "code").iter_rows())
    assert got == [
        ("4", "Mobile Phone Number", "INVALID_NUMBER"),  # the preferred column's error
        ("5", "Mobile Phone Number", "MISSING_PHONE"),
    ]
    warnings = _report(tmp_path, "warnings.csv")
    bea = warnings.filter(pl.col("row") == "3").row(0, named=True)
    assert "EXTRA_NUMBERS" in bea["code"]
    assert "+33123456789" in bea["message"]
    assert warnings.filter(pl.col("row") == "6").is_empty()  # same number twice: not extra


def test_a_repeated_header_is_a_candidate_too(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "dup.csv",
        [["Name", "Phone", "Phone"], ["Ana", "-", "06 12 34 56 78"], ["Bob", "0698765432", ""]],
    )
    for keep in (False, True):
        options = RunOptions(region="FR", keep_extra_columns=keep)
        result = validate_files([str(src)], options, tmp_path / f"r{keep}")
        assert result.contacts["phone"].to_list() == [FR_MOBILE, "+33698765432"]
        assert result.summary["rejected"] == 0


def test_candidates_in_the_phones_layer() -> None:
    df = pl.DataFrame(
        {
            "wa": [None, "0612345678", "bad", None],
            "mob": ["06 12 34 56 78", "06 12 34 56 78", None, None],
            "tel": ["01 23 45 67 89", "01 23 45 67 89", "0123", None],
        }
    )
    out = normalize_phones(df, phone_col=["wa", "mob", "tel"], region="FR")
    assert out["__phone_e164"].to_list() == [FR_MOBILE, FR_MOBILE, None, None]
    assert out[PICK].to_list() == [1, 0, 0, None]
    assert out["__phone_error"].to_list() == [N, N, "INVALID_NUMBER", "MISSING_PHONE"]
    assert out["__phone_warning_msg"].to_list() == [
        "other phone columns: +33123456789",
        "other phone columns: +33123456789",  # the same mobile again in "mob" is not listed
        N,
        N,
    ]
    mobile = normalize_phones(df, phone_col=["tel", "mob"], region="FR", mobile_only=True)
    assert mobile["__phone_e164"].to_list() == [FR_MOBILE, FR_MOBILE, None, None]
    assert mobile[PICK].to_list() == [1, 1, 0, None]
