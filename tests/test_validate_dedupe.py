"""Field validation codes and dedupe by phone (first, last, merge)."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from contactpipe.frames import SRC_FILE, SRC_ROW, SRC_SHEET
from contactpipe.transform.dedupe import dedupe
from contactpipe.transform.mapping import FIELDS, PHONE_SOURCE
from contactpipe.transform.validate import CODES, ValidateOptions, validate

PHONE_COLS = ("__phone_e164", "__phone_ext", "__phone_error", "__phone_error_msg",
              "__phone_warning", "__phone_warning_msg")  # fmt: skip


def canon(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A canonical frame as mapping + phones produce it, from partial row dicts."""
    cols = [*FIELDS, *PHONE_COLS, PHONE_SOURCE, SRC_FILE, SRC_SHEET]
    data = {c: [r.get(c) for r in rows] for c in cols}
    data["__phone_e164"] = [r.get("__phone_e164", "+33612345678") for r in rows]
    data[SRC_FILE] = [r.get(SRC_FILE, "a.csv") for r in rows]
    df = pl.DataFrame(data, schema=dict.fromkeys(cols, pl.String))
    return df.with_columns(
        pl.Series(SRC_ROW, range(2, len(rows) + 2), pl.Int64),
        pl.Series("__rid", range(len(rows)), pl.Int64),
    )


def codes(df: pl.DataFrame) -> list[str | None]:
    return validate(df).get_column("__error").to_list()


def test_a_complete_valid_row_has_no_error_and_typed_fields() -> None:
    out = validate(
        canon(
            [
                {
                    "name": "  Awa   Doe ",
                    "email": "awa@example.com",
                    "language_code": "pt_BR",
                    "tags": "vip, newsletter;vip | b2b",
                    "groups": "Clients VIP",
                    "opt_out": "Oui",
                    "opt_out_marketing": "no",
                    "reply_bot_enabled": "1",
                    "notes": "x" * 2000,
                }
            ]
        )
    )
    row = out.row(0, named=True)
    assert row["__error"] is None and row["__warning"] is None
    assert row["name"] == "Awa Doe"
    assert row["language_code"] == "pt-br"
    assert row["tags"] == ["vip", "newsletter", "b2b"]
    assert row["groups"] == ["Clients VIP"]
    assert (row["opt_out"], row["opt_out_marketing"], row["reply_bot_enabled"]) == (
        True,
        False,
        True,
    )


def test_a_clean_frame_has_the_same_columns_as_one_with_problems() -> None:
    """A frame with no row to flag skips building the messages: its columns, their order and
    types, and every clean row's values are those of a frame with a flagged row."""
    clean = [{"name": "Awa", "email": "awa@example.com"}, {"name": "Bo", "tags": "x"}]
    flagged = [*clean, {"name": "Cy", "email": "not an address"}]
    quiet = validate(canon(clean))
    noisy = validate(canon(flagged))
    assert quiet.schema == noisy.schema
    assert quiet.equals(noisy.head(2))
    for col in ("__warning", "__error_msg", "__warning_msg", "__error"):
        assert quiet.get_column(col).null_count() == quiet.height
    assert noisy.row(2, named=True)["__warning"] == "INVALID_EMAIL"
    assert validate(canon([])).schema == noisy.schema  # no row at all


def test_name_is_built_from_first_and_last_name() -> None:
    out = validate(canon([{"first_name": "Koffi", "last_name": "Agossou"}, {"last_name": "Solo"}]))
    assert out.get_column("name").to_list() == ["Koffi Agossou", "Solo"]


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({"__phone_e164": None, "__phone_error": "MISSING_PHONE", "name": "A"}, "MISSING_PHONE"),
    ],
)
def test_each_rejection_code(row: dict[str, Any], code: str) -> None:
    assert codes(canon([row])) == [code]
    assert CODES[code][1] == "error"


FIELD_PROBLEMS = [
    ({"name": None}, "MISSING_NAME", "name", "+33612345678"),  # the number is the name
    ({"name": "A", "email": "not-an-email"}, "INVALID_EMAIL", "email", None),
    ({"name": "A", "email": "a@b"}, "INVALID_EMAIL", "email", None),
    ({"name": "A", "notes": "x" * 2001}, "NOTES_TOO_LONG", "notes", "x" * 2000),
    ({"name": "A", "language_code": "klingon-ish"}, "INVALID_LANGUAGE", "language_code", None),
    ({"name": "A", "opt_out": "maybe"}, "INVALID_BOOLEAN", "opt_out", None),
    ({"name": "A", "reply_bot_enabled": "perhaps"}, "INVALID_BOOLEAN", "reply_bot_enabled", None),
]


@pytest.mark.parametrize(("row", "code", "field", "kept"), FIELD_PROBLEMS)
def test_a_bad_secondary_field_is_a_warning_and_the_field_is_repaired_or_emptied(
    row: dict[str, Any], code: str, field: str, kept: Any
) -> None:
    out = validate(canon([row])).row(0, named=True)
    assert out["__error"] is None  # the contact is kept
    assert out["__warning"] == code
    assert out[field] == kept
    assert CODES[code][1] == "warning"


@pytest.mark.parametrize(("row", "code", "field", "kept"), FIELD_PROBLEMS)
def test_strict_rejects_a_bad_secondary_field(
    row: dict[str, Any], code: str, field: str, kept: Any
) -> None:
    out = validate(canon([row]), ValidateOptions(strict=True)).row(0, named=True)
    assert (out["__error"], out["__error_field"]) == (code, field)


def test_the_first_problem_wins_and_the_others_are_listed() -> None:
    row = {"name": None, "email": "bad", "notes": "y" * 2001}
    out = validate(canon([row]), ValidateOptions(strict=True)).row(0, named=True)
    assert out["__error"] == "MISSING_NAME"
    assert out["__error_field"] == "name"
    assert "also: not an e-mail address: bad" in out["__error_msg"]
    assert "notes are 2001 characters long" in out["__error_msg"]
    lenient = validate(canon([row])).row(0, named=True)
    assert lenient["__error"] is None  # a valid phone is a contact
    assert lenient["__warning"].split(";") == ["MISSING_NAME", "INVALID_EMAIL", "NOTES_TOO_LONG"]
    assert lenient["name"] == lenient["__phone_e164"]


@pytest.mark.parametrize(
    ("cell", "kept", "code", "listed"),
    [
        ("ana@example.com ::: ana.work@example.org", "ana@example.com", "EXTRA_EMAILS", "ana.work"),
        ("N/A ; bob@example.com", "bob@example.com", "EXTRA_EMAILS", "N/A"),
        ("x@hot mail.com", "x@hotmail.com", "INVALID_EMAIL", "read as x@hotmail.com"),
        ("cy@example.com;", "cy@example.com", None, None),
        ("no address here", None, "INVALID_EMAIL", "left empty"),
    ],
)
def test_email_cells_are_repaired_or_emptied(
    cell: str, kept: str | None, code: str | None, listed: str | None
) -> None:
    out = validate(canon([{"name": "A", "email": cell}])).row(0, named=True)
    assert out["__error"] is None
    assert (out["email"], out["__warning"]) == (kept, code)
    if listed:
        assert listed in out["__warning_msg"]


def test_language_names_become_codes() -> None:
    out = validate(
        canon([{"name": "A", "language_code": "Français"}, {"name": "B", "language_code": "EN"}])
    )
    assert out.get_column("language_code").to_list() == ["fr", "en"]


def test_default_name_fills_missing_names_with_the_phone() -> None:
    out = validate(canon([{"name": None}]), ValidateOptions(default_name="Contact {phone}"))
    assert out.get_column("name").to_list() == ["Contact +33612345678"]
    assert out.get_column("__error").to_list() == [None]


def test_default_name_works_on_many_rows_and_several_placeholders() -> None:
    rows = [
        {"name": None, "__phone_e164": "+33612345678"},
        {"name": "Awa"},
        {"name": None, "__phone_e164": "+22997123456"},
    ]
    out = validate(canon(rows), ValidateOptions(default_name="{phone} ({phone})"))
    assert out.get_column("name").to_list() == [
        "+33612345678 (+33612345678)",
        "Awa",
        "+22997123456 (+22997123456)",
    ]


def test_formula_like_cells_are_kept_with_a_warning() -> None:
    out = validate(canon([{"name": '=HYPERLINK("http://evil.example","x")'}]))
    row = out.row(0, named=True)
    assert row["__error"] is None
    assert row["__warning"] == "FORMULA_TEXT"


def test_phone_warnings_and_formula_warnings_are_joined() -> None:
    out = validate(
        canon(
            [
                {
                    "name": "=1+1",
                    "__phone_warning": "LEGACY_MIGRATED",
                    "__phone_warning_msg": "+22997123456 -> +2290197123456",
                }
            ]
        )
    )
    row = out.row(0, named=True)
    assert row["__warning"] == "LEGACY_MIGRATED;FORMULA_TEXT"
    assert row["__warning_msg"].startswith("+22997123456 -> +2290197123456; ")


def test_a_warning_message_names_only_the_checks_that_fired() -> None:
    # the fields' checks that pass (a short note, a yes/no value, a language code) add
    # nothing to another warning's message (they did: "notes are 5 characters long...")
    row = {
        "name": None,
        "notes": "hello",
        "opt_out": "yes",
        "language_code": "pt-BR",
        "__phone_warning": "PLUS_ADDED",
        "__phone_warning_msg": "a '+' was added",
    }
    out = validate(canon([row])).row(0, named=True)
    assert out["__warning"] == "PLUS_ADDED;MISSING_NAME"
    assert out["__warning_msg"] == (
        "a '+' was added; no name (or first/last name): the phone number is used as the name"
    )


def test_google_system_groups_are_dropped_and_extra_groups_added() -> None:
    out = validate(
        canon([{"name": "A", "groups": "* myContacts;VIP"}]),
        ValidateOptions(extra_groups=("Imported",)),
    )
    assert out.get_column("groups").to_list() == [["VIP", "Imported"]]


def people() -> pl.DataFrame:
    rows = [
        {"name": "Awa", "tags": "a", "__phone_e164": "+1", "email": None},
        {"name": "Bob", "tags": "b", "__phone_e164": "+2"},
        {"name": "Awa D.", "tags": "c;a", "__phone_e164": "+1", "email": "awa@example.com"},
        {"name": None, "first_name": "Ann", "tags": "d", "__phone_e164": "+1", "groups": "G"},
    ]
    return validate(canon(rows))


@pytest.mark.parametrize(
    ("mode", "kept_rids", "dup_of"),
    [
        ("first", [0, 1], {2: 0, 3: 0}),
        ("last", [1, 3], {0: 3, 2: 3}),
        ("merge", [0, 1], {2: 0, 3: 0}),
    ],
)
def test_dedupe_modes(mode: str, kept_rids: list[int], dup_of: dict[int, int]) -> None:
    kept, dups = dedupe(people(), mode)  # type: ignore[arg-type]
    assert sorted(kept.get_column("__rid").to_list()) == kept_rids
    assert dict(zip(dups.get_column("__rid"), dups.get_column("__dup_of"), strict=True)) == dup_of


def test_merge_takes_first_non_empty_values_and_unions_lists() -> None:
    kept, _ = dedupe(people(), "merge")
    awa = kept.filter(pl.col("__phone_e164") == "+1").row(0, named=True)
    assert awa["name"] == "Awa"
    assert awa["email"] == "awa@example.com"
    assert awa["tags"] == ["a", "c", "d"]
    assert awa["groups"] == ["G"]
    assert awa[SRC_ROW] == 2  # the kept row's own position


def test_dedupe_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="first, last or merge"):
        dedupe(people(), "random")  # type: ignore[arg-type]


def test_formula_in_a_custom_field_is_flagged_too() -> None:
    df = canon([{"name": "A"}]).with_columns(pl.lit("=cmd|' /C calc'!A0").alias("custom.city"))
    assert validate(df).get_column("__warning").to_list() == ["FORMULA_TEXT"]
