"""The same contact list in every supported format gives the same outcome, row for row,
through the whole validate run (extract -> map -> phones -> validate -> dedupe -> report)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from filemakers import make_csv, make_json, make_ndjson, make_ods, make_parquet, make_xls, make_xlsx

from contactpipe.run import RunOptions, validate_files

HEADER = ["Nom", "Téléphone", "Pays", "Email"]
ROWS = [
    ["Awa Koné", "0707070707", "CI", "awa@example.ci"],
    ["Koffi Agossou", 97123456, "BJ", None],  # a number cell where the format has them
    ["Jean Martin", "06 12 34 56 78", None, "jean@example.fr"],
    ['=HYPERLINK("http://evil.example","x")', "+44 7400 123456", None, None],
    ["Bad Number", "12345", None, None],
    ["Same Phone", "+33 6 12 34 56 78", None, None],
    ["Émile Zoé", None, None, None],
]
# position in ROWS -> (E.164 kept, code in errors.csv or warnings.csv)
OUTCOME = {
    0: ("+2250707070707", None),
    1: ("+2290197123456", "LEGACY_MIGRATED"),
    2: ("+33612345678", None),
    3: ("+447400123456", "FORMULA_TEXT"),
    4: (None, "INVALID_NUMBER"),
    5: (None, "DUPLICATE"),
    6: (None, "MISSING_PHONE"),
}
TITLE = [["Export CRM — test"], []]  # spreadsheets: a title and a blank row above the header


def as_text(rows: list[list]) -> list[list]:
    return [[None if c is None else str(c) for c in row] for row in rows]


def records(numbers: bool) -> list[dict]:
    return [
        {h: (c if numbers or c is None else str(c)) for h, c in zip(HEADER, row, strict=True)}
        for row in ROWS
    ]


# name -> (maker(path), file name, row number of ROWS[0])
FORMATS: dict[str, tuple[Callable[[Path], Path], str, int]] = {
    "csv utf-8": (lambda p: make_csv(p, [HEADER, *as_text(ROWS)]), "a.csv", 2),
    "csv cp1252 ;": (
        lambda p: make_csv(p, [HEADER, *as_text(ROWS)], encoding="cp1252", delimiter=";"),
        "a.csv",
        2,
    ),
    "utf-16-le tab txt": (
        lambda p: make_csv(
            p, [HEADER, *as_text(ROWS)], encoding="utf-16-le", delimiter="\t", bom=True
        ),
        "a.txt",
        2,
    ),
    "utf-16-be tab tsv": (
        lambda p: make_csv(
            p, [HEADER, *as_text(ROWS)], encoding="utf-16-be", delimiter="\t", bom=True
        ),
        "a.tsv",
        2,
    ),
    "pipe csv": (lambda p: make_csv(p, [HEADER, *as_text(ROWS)], delimiter="|"), "a.csv", 2),
    "xlsx": (
        lambda p: make_xlsx(p, {"Contacts": [*TITLE, HEADER, *ROWS], "Autre": [["x", "y"]]}),
        "a.xlsx",
        4,
    ),
    "xlsx saved as .csv": (lambda p: make_xlsx(p, {"Contacts": [HEADER, *ROWS]}), "a.csv", 2),
    "ods": (lambda p: make_ods(p, {"Contacts": [*TITLE, HEADER, *ROWS]}), "a.ods", 4),
    "xls": (lambda p: make_xls(p, {"Contacts": [*TITLE, HEADER, *ROWS]}), "a.xls", 4),
    "parquet": (
        lambda p: make_parquet(p, {h: [r[i] for r in as_text(ROWS)] for i, h in enumerate(HEADER)}),
        "a.parquet",
        1,
    ),
    "json": (lambda p: make_json(p, records(numbers=True)), "a.json", 1),
    "ndjson": (lambda p: make_ndjson(p, records(numbers=True)), "a.ndjson", 1),
}


@pytest.mark.parametrize("kind", FORMATS)
def test_same_contacts_same_outcome_in_every_format(tmp_path: Path, kind: str) -> None:
    if kind == "xls":
        pytest.importorskip("xlwt")
    maker, name, first_row = FORMATS[kind]
    src = maker(tmp_path / name)
    result = validate_files([str(src)], RunOptions(region="FR"), tmp_path / "r")

    contacts = result.contacts
    kept = dict(zip(contacts.get_column("row"), contacts.get_column("phone"), strict=True))
    assert kept == {first_row + i: e164 for i, (e164, _) in OUTCOME.items() if e164}

    codes = {}
    for report in ("errors.csv", "warnings.csv"):
        lines = pl.read_csv(tmp_path / "r" / report, infer_schema=False)
        codes |= dict(zip(map(int, lines.get_column("row")), lines.get_column("code"), strict=True))
    assert codes == {first_row + i: code for i, (_, code) in OUTCOME.items() if code}

    s = result.summary
    assert (s["rows_read"], s["valid"], s["rejected"], s["duplicates"]) == (7, 4, 2, 1)
