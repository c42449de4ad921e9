"""Exact per-row outcomes of normalize_phones on a table of tricky cells."""

from __future__ import annotations

import polars as pl
import pytest

from contactpipe.errors import InputError, UsageError
from contactpipe.transform.phones import OUTPUT_COLUMNS, normalize_phones

FR_MOBILE = "+33612345678"
N = None

# cell, region, (e164, ext, error, warning)
CASES = [
    ("06 12 34 56 78", "FR", (FR_MOBILE, N, N, N)),
    ("06.12.34.56.78", "FR", (FR_MOBILE, N, N, N)),
    ("06-12-34-56-78", "FR", (FR_MOBILE, N, N, N)),
    ("(06) 12 34 56 78", "FR", (FR_MOBILE, N, N, N)),
    ("0612345678", "FR", (FR_MOBILE, N, N, N)),
    ("612345678", "FR", (FR_MOBILE, N, N, N)),
    ("+33 6 12 34 56 78", "FR", (FR_MOBILE, N, N, N)),
    ("+33 6 12 34 56 78", None, (FR_MOBILE, N, N, N)),
    ("0033 6 12 34 56 78", "FR", (FR_MOBILE, N, N, N)),
    ("(+33) 6 12 34 56 78", "FR", (FR_MOBILE, N, N, N)),
    ("+33 (0)6 12 34 56 78", "FR", (FR_MOBILE, N, N, N)),
    ("+44 (0)20 7946 0958", "FR", ("+442079460958", N, N, N)),
    ("+39 06 1234 5678", "FR", ("+390612345678", N, N, N)),  # Italian 0 is kept
    ("'0612345678", "FR", (FR_MOBILE, N, N, N)),
    ('"06 12 34 56 78"', "FR", (FR_MOBILE, N, N, N)),
    ("\u00a006\u202f12\u200934\u00a056 78 ", "FR", (FR_MOBILE, N, N, N)),
    ("０６１２３４５６７８", "FR", (FR_MOBILE, N, N, N)),
    ("06 12 34 56 78 ext. 12", "FR", (FR_MOBILE, "12", N, N)),
    ("06 12 34 56 78 x 305", "FR", (FR_MOBILE, "305", N, N)),
    ("06 12 34 56 78 poste 4", "FR", (FR_MOBILE, "4", N, N)),
    ("+33612345678;ext=99", "FR", (FR_MOBILE, "99", N, N)),
    ("06 12 34 56 78 / 07 11 22 33 44", "FR", (FR_MOBILE, N, N, "EXTRA_NUMBERS")),
    ("0612345678 ou 0711223344", "FR", (FR_MOBILE, N, N, "EXTRA_NUMBERS")),
    ("12 / 06 12 34 56 78", "FR", (FR_MOBILE, N, N, "EXTRA_NUMBERS")),  # "12" is no number
    ("92011 ; +919895270723", "FR", ("+919895270723", N, N, "EXTRA_NUMBERS")),
    ("0612345678 ; 06 12 34 56 78", "FR", (FR_MOBILE, N, N, N)),  # the kept one, again
    ("12 ; 34567", "FR", (N, N, "INVALID_NUMBER", N)),  # no part is long enough to be one
    ("030/1234567", "DE", ("+49301234567", N, N, N)),  # a valid whole wins over its parts
    ("33612345678.0", "FR", (FR_MOBILE, N, N, "EXCEL_FLOAT_FIXED")),
    ("2.2997123456E+10", "FR", (N, N, "INVALID_NUMBER", "EXCEL_FLOAT_FIXED")),
    ("2.2997E+10", "BJ", (N, N, "PRECISION_LOST", N)),
    ("2.5E+0", "FR", (N, N, "INVALID_NUMBER", N)),
    ("+229 97 12 34 56", "FR", ("+2290197123456", N, N, "LEGACY_MIGRATED")),
    ("97 12 34 56", "BJ", ("+2290197123456", N, N, "LEGACY_MIGRATED")),
    ("22997123456.0", "BJ", ("+2290197123456", N, N, "EXCEL_FLOAT_FIXED;LEGACY_MIGRATED")),
    ("2.2997123456E+10", "BJ", ("+2290197123456", N, N, "EXCEL_FLOAT_FIXED;LEGACY_MIGRATED")),
    ("+229 01 97 12 34 56", "FR", ("+2290197123456", N, N, N)),
    ("+225 07 12 34 56", "FR", ("+2250707123456", N, N, "LEGACY_MIGRATED")),  # Orange
    ("+225 05 12 34 56", "FR", ("+2250505123456", N, N, "LEGACY_MIGRATED")),  # MTN
    ("+225 41 12 34 56", "FR", ("+2250141123456", N, N, "LEGACY_MIGRATED")),  # Moov
    ("+225 20 21 22 23", "FR", (N, N, "LEGACY_NUMBER", N)),  # fixed: mapping unverified
    ("+225 07 07 12 34 56", "FR", ("+2250707123456", N, N, N)),
    ("+55 47 9235-6855", "FR", ("+5547992356855", N, N, "LEGACY_MIGRATED")),  # Brazil's 9th
    ("(47) 9235-6855", "BR", ("+5547992356855", N, N, "LEGACY_MIGRATED")),
    ("+55 47 3235-6855", "FR", ("+554732356855", N, N, N)),  # a fixed line keeps 8 digits
    ("+52 1 55 1234 5678", "FR", ("+525512345678", N, N, "LEGACY_MIGRATED")),  # Mexico 2019
    ("044 55 1234 5678", "MX", ("+525512345678", N, N, "LEGACY_MIGRATED")),
    ("+54 9 11 1234-5678", "FR", ("+5491112345678", N, N, N)),  # Argentina: phonenumbers
    ("011 15 1234-5678", "AR", ("+5491112345678", N, N, N)),
    ("", "FR", (N, N, "MISSING_PHONE", N)),
    ("   ", "FR", (N, N, "MISSING_PHONE", N)),
    (None, "FR", (N, N, "MISSING_PHONE", N)),
    ("N/A", "FR", (N, N, "INVALID_NUMBER", N)),
    ("call me", "FR", (N, N, "INVALID_NUMBER", N)),
    ("+", "FR", (N, N, "INVALID_NUMBER", N)),
    ("06 12 34", "FR", (N, N, "INVALID_NUMBER", N)),
    ("06 12 34 56 78 90 12", "FR", (N, N, "INVALID_NUMBER", N)),
    ("2015550123", "FR", (N, N, "INVALID_NUMBER", N)),  # valid only with '+'
    ("06 12 34 56 78", None, (N, N, "INVALID_NUMBER", N)),
    ("1-800-FLOWERS", "US", ("+18003569377", N, N, N)),  # vanity letters: phonenumbers
    ("tel:+33-6-12-34-56-78", "FR", (FR_MOBILE, N, N, N)),
    ("06 12 34 56 78 (mobile)", "FR", (FR_MOBILE, N, N, N)),  # a label, not vanity letters
    ("+33 6 12 34 56 78 [domicile]", "FR", (FR_MOBILE, N, N, N)),
    ("06 12 34 56 78 (poste 12)", "FR", (FR_MOBILE, "12", N, N)),  # bracketed extension
    ("06 12 34 56 78 (bureau 2)", "FR", (N, N, "INVALID_NUMBER", N)),  # digits: no label
    ("1-800-FLOWERS (office)", "US", ("+18003569377", N, N, N)),
    # "~" / "～" before final digits is an extension marker for phonenumbers, not a separator
    ("+82 1544-1643~12", "FR", ("+8215441643", "12", N, N)),
    ("+82 1544-1643～12", "FR", ("+8215441643", "12", N, N)),
    ("500~2345678", "US", (N, "2345678", "INVALID_NUMBER", N)),
    ("201-555-0123~", "US", ("+12015550123", N, N, N)),  # no digits after it: punctuation
    ("201\u2053555\u223c0123", "US", ("+12015550123", N, N, N)),  # swung dash, tilde operator
]


def _run(cells: list[str | None], region: str | None, **kw: object) -> pl.DataFrame:
    return normalize_phones(
        pl.DataFrame({"phone": cells}, schema={"phone": pl.String}),
        phone_col="phone",
        region=region,
        **kw,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(("cell", "region", "expected"), CASES)
def test_tricky_cells(cell: str | None, region: str | None, expected: tuple) -> None:
    row = _run([cell], region).row(0, named=True)
    got = (row["__phone_e164"], row["__phone_ext"], row["__phone_error"], row["__phone_warning"])
    assert got == expected, row
    assert (row["__phone_error"] is None) == (row["__phone_error_msg"] is None)
    assert (row["__phone_warning"] is None) == (row["__phone_warning_msg"] is None)


def test_messages_are_explicit() -> None:
    out = _run(
        ["2015550123", "06 12 34", "2.2997E+10", "+229 97 12 34 56", "0612 / 0711223344"], "FR"
    )
    msgs = out["__phone_error_msg"].to_list()
    assert "looks like an international number without its '+' (+2015550123)" in msgs[0]
    assert "too short" in msgs[1]
    assert "scientific notation" in msgs[2]
    warn = out["__phone_warning_msg"].to_list()
    assert warn[3] == "old Benin number +22997123456 -> +2290197123456 (plan changed 2024-11-30)"


def test_first_valid_part_of_a_cell_and_no_repeat_of_the_kept_number() -> None:
    out = _run(
        [
            "92011 ; +919895270723",
            "12 / 06 20 30 40 51",
            "0612345678 ; +33 6 12 34 56 78 ; 07 81 22 33 44 ; 0781223344",
        ],
        "FR",
    )
    assert out["__phone_e164"].to_list() == ["+919895270723", "+33620304051", FR_MOBILE]
    warn = out["__phone_warning_msg"].to_list()
    assert warn[0] == "2 numbers in the cell, used the first valid one; also: 92011"
    assert warn[1] == "2 numbers in the cell, used the first valid one; also: 12"
    assert warn[2] == "2 numbers in the cell, used the first valid one; also: 07 81 22 33 44"


def test_legacy_reject_mode() -> None:
    out = _run(["+229 97 12 34 56", "+225 07 12 34 56", "+2290197123456"], "FR", legacy="reject")
    assert out["__phone_error"].to_list() == ["LEGACY_NUMBER", "LEGACY_NUMBER", None]
    assert out["__phone_e164"].to_list() == [None, None, "+2290197123456"]
    assert "today it is +2290197123456" in out["__phone_error_msg"][0]


def test_mobile_only() -> None:
    out = _run(["01 23 45 67 89", "06 12 34 56 78", "+1 201-555-0123"], "FR", mobile_only=True)
    assert out["__phone_error"].to_list() == ["NOT_MOBILE", None, None]  # US: fixed-or-mobile
    assert out["__phone_e164"].to_list() == [None, FR_MOBILE, "+12015550123"]


def test_mobile_only_prefers_the_mobile_of_a_cell_with_several() -> None:
    out = _run(["01 23 45 67 89 / 06 12 34 56 78"], "FR", mobile_only=True)
    assert out["__phone_e164"].to_list() == [FR_MOBILE]
    assert out["__phone_warning"].to_list() == ["EXTRA_NUMBERS"]


def test_country_column() -> None:
    df = pl.DataFrame(
        {
            "phone": [
                "97 12 34 56",
                "0197123456",
                "07 07 12 34 56",
                "06 12 34 56 78",
                "06 12 34 56 78",
                "+33 6 12 34 56 78",
                "06 12 34 56 78",
                "0612345678",
            ],
            "country": ["bj", "+229", "Côte d'Ivoire", "", None, "Atlantis", "Atlantis", " FR "],
        }
    )
    out = normalize_phones(df, phone_col="phone", region="FR", country_col="country")
    assert out["__phone_e164"].to_list() == [
        "+2290197123456",
        "+2290197123456",
        "+2250707123456",
        FR_MOBILE,
        FR_MOBILE,
        FR_MOBILE,
        None,
        FR_MOBILE,
    ]
    assert out["__phone_error"][6] == "INVALID_REGION"
    assert "Atlantis" in out["__phone_error_msg"][6]


def test_row_order_columns_and_types_preserved() -> None:
    cells = ["06 12 34 56 78", "x", None, "+44 20 7946 0958"] * 50
    df = pl.DataFrame({"id": list(range(200)), "phone": cells})
    out = normalize_phones(df, phone_col="phone", region="FR", workers=1)
    assert out.columns == ["id", "phone", *OUTPUT_COLUMNS]
    assert out["id"].to_list() == list(range(200))
    assert all(out.schema[c] == pl.String for c in OUTPUT_COLUMNS)
    assert out["__phone_e164"].to_list()[:4] == [FR_MOBILE, None, None, "+442079460958"]


def test_numeric_phone_column() -> None:
    df = pl.DataFrame({"phone": [33612345678.0, None]})
    out = normalize_phones(df, phone_col="phone", region="FR")
    assert out["__phone_e164"].to_list() == [FR_MOBILE, None]
    assert out["__phone_warning"].to_list() == ["EXCEL_FLOAT_FIXED", None]


def test_bad_arguments_raise() -> None:
    df = pl.DataFrame({"phone": ["1"]})
    with pytest.raises(InputError):
        normalize_phones(df, phone_col="tel", region="FR")
    with pytest.raises(UsageError):
        normalize_phones(df, phone_col="phone", region="XX")


def test_parallel_equals_in_process() -> None:
    cells = [f"06 {i % 100:02d} {i // 100 % 100:02d} 34 {i % 97:02d}" for i in range(6000)]
    cells += [f"+1 555 {i:07d}" for i in range(6000)]  # invalid: all go to phonenumbers
    a = _run(cells, "FR", workers=1)
    b = _run(cells, "FR", workers=2)
    assert a.equals(b)
