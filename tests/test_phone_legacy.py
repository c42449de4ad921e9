"""Old national plans on real-looking files: Brazil's ninth digit, Mexico's '+52 1'."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from contactpipe.run import RunOptions, validate_files
from tests.filemakers import make_csv

# A vCard export converted to Google's CSV layout, as Brazilian phone books often are
ROWS = [
    ["Name", "Phone 1 - Type", "Phone 1 - Value", "Phone 2 - Type", "Phone 2 - Value"],
    ["Ana", "Mobile", "+55 47 9235-6855", "", ""],
    ["Bia", "Mobile", "(11) 8765-4321", "Home", "(11) 3333-4444"],
    ["Caio", "Mobile", "+55 47 99235-6855", "", ""],  # the same person, already migrated
    ["Davi", "Mobile", "+52 1 55 1234 5678", "", ""],
    ["Eva", "Home", "+55 47 3235-6855", "", ""],
]


def test_old_brazilian_and_mexican_mobiles_are_migrated(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "contacts.csv", ROWS)
    result = validate_files([str(src)], RunOptions(region="BR"), tmp_path / "r")
    s = result.summary
    assert (s["valid"], s["rejected"], s["duplicates"]) == (4, 0, 1)
    phones = dict(result.contacts.select("name", "phone").iter_rows())
    assert phones == {
        "Ana": "+5547992356855",
        "Bia": "+5511987654321",
        "Davi": "+525512345678",
        "Eva": "+554732356855",
    }
    warnings = pl.read_csv(tmp_path / "r" / "warnings.csv", infer_schema=False)
    migrated = warnings.filter(pl.col("code").str.contains("LEGACY_MIGRATED"))
    assert migrated["row"].to_list() == ["2", "3", "5"]
    assert "+551187654321 -> +5511987654321 (plan changed 2012-07)" in migrated["message"][1]


def test_legacy_numbers_reject(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "contacts.csv", ROWS)
    result = validate_files(
        [str(src)], RunOptions(region="BR", legacy_numbers="reject"), tmp_path / "r"
    )
    errors = pl.read_csv(tmp_path / "r" / "errors.csv", infer_schema=False)
    legacy = errors.filter(pl.col("code") == "LEGACY_NUMBER")
    assert legacy["row"].to_list() == ["2", "5"]
    assert "today it is +5547992356855" in legacy["message"][0]
    # Bia's home number is valid: with the old mobile refused, it is her contact number
    assert "+551133334444" in result.contacts["phone"].to_list()
