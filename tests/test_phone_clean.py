"""Units of phone cleaning, region values and legacy plan data."""

from __future__ import annotations

import polars as pl
import pytest

from contactpipe.transform.phone_clean import alternatives, clean_frame, split_extension
from contactpipe.transform.phone_legacy import legacy_candidates, load_plans
from contactpipe.transform.phone_regions import resolve_region


@pytest.mark.parametrize(
    ("cell", "cand", "excel", "lost", "decimal"),
    [
        ("22997123456.0", "22997123456", True, False, False),
        ("+22997123456.00", "+22997123456", True, False, False),
        ("2.2997123456E+10", "22997123456", True, False, False),
        ("2,2997123456e10", "22997123456", True, False, False),
        ("2.29971234560E+10", "22997123456", True, False, False),  # dropped digit is a 0
        ("2.2997E+10", "2.2997E+10", False, True, False),
        ("2.29971234565E+10", "2.29971234565E+10", False, False, True),
        ("06.12.34.56.78", "0612345678", False, False, False),
        ("  '+33 (0)6 12-34/56.78  ", "+330612345678", False, False, False),
    ],
)
def test_clean_frame(cell: str, cand: str, excel: bool, lost: bool, decimal: bool) -> None:
    row = clean_frame(pl.DataFrame({"raw": [cell]}), "raw").row(0, named=True)
    assert (row["c_cand"], row["c_excel"], row["c_lost"], row["c_decimal"]) == (
        cand,
        excel,
        lost,
        decimal,
    )


def test_split_extension_and_alternatives() -> None:
    assert split_extension("06 12 34 56 78 ext. 12") == ("06 12 34 56 78", "12")
    assert split_extension("06 12 34 56 78 Durchwahl 7") == ("06 12 34 56 78", "7")
    assert split_extension("x 12") == ("x 12", None)  # no number before the marker
    # a slash inside one German number: the whole cell is tried first, "030" is never kept
    assert alternatives("030/1234567") == (
        [("030/1234567", None), ("030", None), ("1234567", None)],
        True,
    )
    assert alternatives("12/06/2020") is None  # no part long enough for a number
    assert alternatives("92011 ; +919895270723") == (
        [("92011", None), ("+919895270723", None)],
        False,
    )
    assert alternatives("0612345678 / 0711223344") == (
        [("0612345678 / 0711223344", None), ("0612345678", None), ("0711223344", None)],
        True,
    )
    assert alternatives("0612345678 x 2; 0711223344") == (
        [("0612345678", "2"), ("0711223344", None)],
        False,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bj", ("BJ", True)),
        (" CI ", ("CI", True)),
        ("+229", ("BJ", True)),
        ("44", ("GB", True)),
        ("Côte d'Ivoire", ("CI", True)),
        ("Allemagne", ("DE", True)),
        ("UK", ("GB", True)),
        ("", ("FR", True)),
        (None, ("FR", True)),
        ("Atlantis", (None, False)),
        ("+800", (None, False)),
    ],
)
def test_resolve_region(value: str | None, expected: tuple) -> None:
    assert resolve_region(value, "FR") == expected


def test_legacy_rules() -> None:
    assert [p["country_code"] for p in load_plans()] == [229, 225, 55, 52, 52, 52]
    for plan in load_plans():
        assert plan["sources"] and plan["effective"], plan["name"]
    invalid = pl.DataFrame(
        {
            "cand": ["a", "b", "c", "d", "e"],
            "region": ["FR"] * 5,
            "cc": [229, 225, 225, 225, 33],
            "nsn": ["97123456", "47123456", "20812345", "0101234567", "12345678"],
        },
        schema={"cand": pl.String, "region": pl.String, "cc": pl.Int32, "nsn": pl.String},
    )
    out = legacy_candidates(invalid).sort("cand")
    assert out["new_cand"].to_list() == ["+2290197123456", "+2250747123456", "+2252120812345"]
    assert out["verified"].to_list() == [True, True, False]


def test_legacy_rules_with_groups_and_their_own_dates() -> None:
    invalid = pl.DataFrame(
        {
            "cand": ["a", "b", "c", "d", "e"],
            "region": ["BR", "BR", "MX", "MX", "BR"],
            "cc": [55, 55, 52, 52, 55],
            "nsn": ["4792356855", "1187654321", "15512345678", "0455512345678", "4732356855"],
        },
        schema={"cand": pl.String, "region": pl.String, "cc": pl.Int32, "nsn": pl.String},
    )
    out = legacy_candidates(invalid).sort("cand")
    assert out["new_cand"].to_list() == [
        "+5547992356855",  # the 9 between area code and number
        "+5511987654321",
        "+525512345678",
        "+525512345678",
    ]  # "e" is a fixed line (3...): no rule
    assert out["effective"].to_list() == ["2016-11-06", "2012-07", "2019-08-03", "2019-08-03"]
