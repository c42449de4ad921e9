"""The demo's sample files: the exact outcome of every row (also documented in
sample_data/README.md)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from contactpipe.run import RunOptions, validate_files

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
CLIENTS = "clients_fr.csv"
LEADS = "leads_afrique.xlsx"
GOOGLE = "google_contacts.csv"

# (file, row) -> E.164 of a kept contact
KEPT = {
    (CLIENTS, 2): "+33612345678",
    (CLIENTS, 3): "+33698765432",
    (CLIENTS, 4): "+33781234567",
    (CLIENTS, 5): "+33645231109",  # a bad e-mail is a warning: the contact stays
    (CLIENTS, 8): "+33123456789",
    (CLIENTS, 10): "+33611223344",
    (CLIENTS, 11): "+33645678912",
    (CLIENTS, 14): "+447400123456",
    (CLIENTS, 15): "+33620304050",
    (CLIENTS, 16): "+12015550123",
    (CLIENTS, 18): "+33633445566",  # no name: the number is the name, a warning
    (CLIENTS, 19): "+33677889900",  # an unreadable yes/no is a warning too
    (LEADS, 4): "+2250707070707",
    (LEADS, 5): "+2290197123456",
    (LEADS, 6): "+2290196123456",
    (LEADS, 7): "+2250707080910",
    (LEADS, 8): "+2252722445566",
    (LEADS, 9): "+221771234567",
    (LEADS, 10): "+221701234567",
    (LEADS, 11): "+2348021234567",
    (LEADS, 12): "+918123456789",
    (GOOGLE, 2): "+34612345678",
    (GOOGLE, 3): "+4915123456789",
}
# (file, row) -> code in errors.csv
ERRORS = {
    (CLIENTS, 6): "MISSING_PHONE",
    (CLIENTS, 7): "DUPLICATE",
    (CLIENTS, 9): "INVALID_NUMBER",
    (CLIENTS, 12): "PRECISION_LOST",
    (CLIENTS, 17): "INVALID_NUMBER",
    (CLIENTS, 20): "DUPLICATE",  # same phone as row 5, now kept
    (LEADS, 13): "DUPLICATE",
    (LEADS, 14): "INVALID_NUMBER",
    (LEADS, 15): "INVALID_REGION",
    (GOOGLE, 4): "MISSING_PHONE",
}
WARNINGS = {
    (CLIENTS, 5): "INVALID_EMAIL",
    (CLIENTS, 18): "MISSING_NAME",
    (CLIENTS, 19): "INVALID_BOOLEAN",
    (CLIENTS, 8): None,  # extension kept apart, no warning
    (CLIENTS, 10): "FORMULA_TEXT",
    (CLIENTS, 11): "EXCEL_FLOAT_FIXED",
    (CLIENTS, 15): "EXTRA_NUMBERS",
    (LEADS, 5): "LEGACY_MIGRATED",
    (LEADS, 7): "LEGACY_MIGRATED",
    (GOOGLE, 3): "EXTRA_NUMBERS",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("report")
    result = validate_files([str(SAMPLES)], RunOptions(region="FR"), out)
    return {
        "summary": result.summary,
        "contacts": pl.read_csv(out / "contacts.csv", infer_schema=False),
        "errors": pl.read_csv(out / "errors.csv", infer_schema=False),
        "warnings": pl.read_csv(out / "warnings.csv", infer_schema=False),
    }


def keyed(df: pl.DataFrame, value: str) -> dict[tuple[str, int], str]:
    return {
        (Path(f).name, int(r)): v for f, r, v in df.select("source_file", "row", value).iter_rows()
    }


def test_every_row_of_every_sample_lands_where_expected(report: dict) -> None:
    assert keyed(report["contacts"], "phone") == KEPT
    assert keyed(report["errors"], "code") == ERRORS
    s = report["summary"]
    assert (s["rows_read"], s["empty_rows"]) == (19 + 12 + 3, 1)
    assert s["rows_read"] == s["empty_rows"] + s["valid"] + s["rejected"] + s["duplicates"]


def test_warnings(report: dict) -> None:
    expected = {k: v for k, v in WARNINGS.items() if v}
    assert keyed(report["warnings"], "code") == expected


def test_details_people_rely_on(report: dict) -> None:
    contacts = report["contacts"]
    ines = contacts.filter(pl.col("row") == "8", pl.col("source_file").str.ends_with(CLIENTS))
    assert ines.get_column("phone_ext").to_list() == ["12"]
    koffi = contacts.filter(pl.col("phone") == "+2290197123456").row(0, named=True)
    assert koffi["sheet"] == "Leads" and koffi["groups"] == "Prospects"
    errors = report["errors"]
    dup = errors.filter(pl.col("code") == "DUPLICATE", pl.col("row") == "13").row(0, named=True)
    assert "same phone +2290197123456 as row 5 of" in dup["message"]
    assert dup["column"] == "Numéro WhatsApp"
    assert dup["Nom complet"] == "Koffi Agossou"  # original values follow
    hostile = report["warnings"].filter(pl.col("code") == "FORMULA_TEXT").row(0, named=True)
    assert hostile["Nom"] == '\'=HYPERLINK("http://evil.example";"cliquez")'  # neutralised


def test_contacts_columns_follow_the_canonical_schema(report: dict) -> None:
    from contactpipe import schemas

    expected = [f for f in schemas.contact_fields() if f != "country"]
    assert report["contacts"].columns == [*expected, "source_file", "sheet", "row"]
    assert report["errors"].columns[:6] == [
        "source_file",
        "sheet",
        "row",
        "column",
        "code",
        "message",
    ]
