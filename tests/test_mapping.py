"""Column mapping: aliases in five languages, presets, override files, custom fields."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contactpipe.errors import InputError, UsageError
from contactpipe.frames import SRC_FILE, SRC_ROW, SRC_SHEET
from contactpipe.transform.mapping import (
    PHONE_SOURCE,
    apply_mapping,
    fold,
    infer_mapping,
    load_mapping_file,
)


def frame(data: dict[str, list[str | None]]) -> pl.DataFrame:
    n = len(next(iter(data.values())))
    return pl.DataFrame(
        {
            **data,
            SRC_FILE: ["f.csv"] * n,
            SRC_SHEET: [None] * n,
            SRC_ROW: list(range(2, n + 2)),
        },
        schema_overrides={
            **dict.fromkeys(data, pl.String),
            SRC_SHEET: pl.String,
            SRC_ROW: pl.Int64,
        },
    )


def _fold_long_way(header: str) -> str:
    """fold() without its ASCII shortcut: NFKD, combining marks dropped, casefold."""
    import re
    import unicodedata

    text = unicodedata.normalize("NFKD", header)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[\W_]+", "", text.casefold())


@given(st.text(alphabet=st.characters(max_codepoint=127)) | st.text())
def test_fold_of_ascii_takes_a_shortcut_with_the_same_answer(header: str) -> None:
    assert fold(header) == _fold_long_way(header)


def test_fold_ignores_case_accents_space_and_punctuation() -> None:
    assert fold("Téléphone") == fold("TELEPHONE") == fold(" télé-phone ") == "telephone"
    assert fold("Numéro WhatsApp") == "numerowhatsapp"


@pytest.mark.parametrize(
    "header",
    [
        "Téléphone",
        "Numéro WhatsApp",
        "Mobile Phone",
        "Tel",
        "TEL.",
        "phone_number",
        "Teléfono móvil",
        "Celular",
        "Telemóvel",
        "Handynummer",
        "Telefonnummer",
        "Portable",
    ],
)
def test_phone_aliases_in_five_languages(header: str) -> None:
    m = infer_mapping([header, "Whatever"])
    assert m.fields["phone"] == (header,)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["Prénom", "Nom", "Tél"], {"first_name": ("Prénom",), "last_name": ("Nom",)}),
        (
            ["Vorname", "Nachname", "Telefon"],
            {"first_name": ("Vorname",), "last_name": ("Nachname",)},
        ),
        (
            ["Nombre", "Apellidos", "Teléfono"],
            {"first_name": ("Nombre",), "last_name": ("Apellidos",)},
        ),
        (
            ["Nome completo", "Telefone", "E-mail"],
            {"name": ("Nome completo",), "email": ("E-mail",)},
        ),
        (["Full Name", "Phone", "Courriel"], {"name": ("Full Name",), "email": ("Courriel",)}),
    ],
)
def test_name_and_email_aliases(headers: list[str], expected: dict[str, tuple[str, ...]]) -> None:
    m = infer_mapping(headers)
    for fld, cols in expected.items():
        assert m.fields[fld] == cols


def test_mobile_and_whatsapp_columns_win_over_a_plain_phone_column() -> None:
    m = infer_mapping(["Home Phone", "Phone", "WhatsApp", "Name"])
    assert m.fields["phone"] == ("WhatsApp", "Phone", "Home Phone")
    df = frame(
        {
            "Home Phone": ["01", None],
            "Phone": ["02", "03"],
            "WhatsApp": [None, "04"],
            "Name": ["a", "b"],
        }
    )
    out = apply_mapping(df, m)
    assert out.get_column("phone").to_list() == ["02", "04"]
    assert out.get_column(PHONE_SOURCE).to_list() == ["Phone", "WhatsApp"]


def test_no_phone_column_is_a_clear_error_listing_the_headers() -> None:
    with pytest.raises(InputError) as info:
        infer_mapping(["Name", "City", "Zip"], source="people.csv")
    text = str(info.value)
    assert "people.csv: no phone column found" in text
    assert "'Name', 'City', 'Zip'" in text
    assert "--mapping" in text


GOOGLE_HEADERS = [
    "First Name", "Middle Name", "Last Name", "Labels", "E-mail 1 - Label", "E-mail 1 - Value",
    "Phone 1 - Label", "Phone 1 - Value", "Phone 2 - Label", "Phone 2 - Value", "Notes",
]  # fmt: skip


def test_google_contacts_export() -> None:
    df = frame(
        {
            "First Name": ["Awa", "Koffi"],
            "Middle Name": [None, None],
            "Last Name": ["Doe", "Agossou"],
            "Labels": ["* myContacts ::: VIP", "* starred ::: Clients ::: VIP"],
            "E-mail 1 - Label": ["* Home", None],
            "E-mail 1 - Value": ["awa@example.com", None],
            "Phone 1 - Label": ["Work", "Work"],
            "Phone 1 - Value": ["+33 1 23 45 67 89", "+229 21 30 00 00"],
            "Phone 2 - Label": ["Mobile", "Mobile"],
            "Phone 2 - Value": ["+33 6 12 34 56 78 ::: +33 6 98 76 54 32", "+229 01 97 12 34 56"],
            "Notes": ["met in Lyon", None],
        }
    )
    m = infer_mapping(df.columns)
    assert m.preset == "google"
    assert m.fields["phone"] == ("Phone 1 - Value", "Phone 2 - Value")
    assert m.phone_labels == {
        "Phone 1 - Value": "Phone 1 - Label",
        "Phone 2 - Value": "Phone 2 - Label",
    }
    assert m.fields["groups"] == ("Labels",)
    out = apply_mapping(df, m)
    assert out.get_column("phone").to_list() == [  # the mobile-labelled number of each row
        "+33 6 12 34 56 78 ; +33 6 98 76 54 32",
        "+229 01 97 12 34 56",
    ]
    assert out.get_column(PHONE_SOURCE).to_list() == ["Phone 2 - Value", "Phone 2 - Value"]
    assert out.get_column("groups").to_list() == ["* myContacts;VIP", "* starred;Clients;VIP"]
    assert out.get_column("first_name").to_list() == ["Awa", "Koffi"]
    assert out.get_column("email").to_list() == ["awa@example.com", None]


def test_google_export_without_a_mobile_label_uses_the_first_number() -> None:
    df = frame(
        {
            "First Name": ["A", "B"],
            "Phone 1 - Label": ["Work", "Mobile"],
            "Phone 1 - Value": ["+33 1 23 45 67 89", "+33 6 12 34 56 78"],
            "Phone 2 - Label": ["Home", "Work"],
            "Phone 2 - Value": ["+33 1 98 76 54 32", "+33 1 11 11 11 11"],
        }
    )
    out = apply_mapping(df, infer_mapping(df.columns))
    assert out.get_column("phone").to_list() == ["+33 1 23 45 67 89", "+33 6 12 34 56 78"]
    assert out.get_column(PHONE_SOURCE).to_list() == ["Phone 1 - Value", "Phone 1 - Value"]


def test_outlook_export() -> None:
    headers = ["First Name", "Last Name", "E-mail Address", "Business Phone", "Home Phone",
               "Mobile Phone", "Categories", "Notes"]  # fmt: skip
    df = frame(
        {
            "First Name": ["Jean"],
            "Last Name": ["Martin"],
            "E-mail Address": ["jean@example.fr"],
            "Business Phone": ["01 23 45 67 89"],
            "Home Phone": [None],
            "Mobile Phone": ["06 12 34 56 78"],
            "Categories": ["VIP;Clients"],
            "Notes": [None],
        }
    )
    m = infer_mapping(headers)
    assert m.preset == "outlook"
    assert m.fields["phone"][:2] == ("Mobile Phone", "Business Phone")
    out = apply_mapping(df, m)
    assert out.get_column("phone").to_list() == ["06 12 34 56 78"]
    assert out.get_column("tags").to_list() == ["VIP;Clients"]


def test_mapping_file_overrides_ignores_and_adds_custom_fields(tmp_path) -> None:
    path = tmp_path / "map.json"
    path.write_text(
        json.dumps({"Numéro perso": "phone", "Tel": None, "Ville": "custom.city"}), "utf-8"
    )
    override = load_mapping_file(path)
    m = infer_mapping(["Tel", "Numéro perso", "Ville", "Nom"], override=override)
    assert m.fields["phone"] == ("Numéro perso",)
    assert m.custom == {"city": "Ville"}
    assert "Tel" not in m.unmapped


def test_mapping_file_in_toml_and_under_columns_key(tmp_path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('[columns]\n"GSM perso" = "phone"\n', "utf-8")
    assert load_mapping_file(path) == {"GSM perso": "phone"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON/TOML"),
        ('{"A": "telephone"}', "unknown field 'telephone'"),
        ('["phone"]', "must hold an object"),
        ('{"A": 3}', "must be a string or null"),
    ],
)
def test_bad_mapping_files_are_usage_errors(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content, "utf-8")
    with pytest.raises(UsageError, match=message):
        load_mapping_file(path)


def test_missing_mapping_file_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="cannot read mapping file"):
        load_mapping_file(tmp_path / "nope.json")


def test_keep_extra_columns_turns_the_rest_into_custom_fields() -> None:
    m = infer_mapping(["Phone", "Ville de naissance", "Loyalty Tier"], keep_extra_columns=True)
    assert m.custom == {"ville_de_naissance": "Ville de naissance", "loyalty_tier": "Loyalty Tier"}
    assert m.unmapped == ()
    without = infer_mapping(["Phone", "Ville de naissance"])
    assert without.custom == {} and without.unmapped == ("Ville de naissance",)


def test_apply_mapping_blank_cells_become_null_and_custom_columns_appear() -> None:
    df = frame({"Phone": ["  +33612345678 ", "   "], "City": ["Lyon", ""]})
    m = infer_mapping(df.columns, keep_extra_columns=True)
    out = apply_mapping(df, m)
    assert out.get_column("phone").to_list() == ["+33612345678", None]
    assert out.get_column("custom.city").to_list() == ["Lyon", None]
    assert out.get_column("email").dtype == pl.String
    assert out.get_column(SRC_ROW).to_list() == [2, 3]


def test_custom_dot_columns_are_custom_fields_without_a_mapping() -> None:
    """``custom.<key>`` is how contactpipe exports custom fields: a re-import keeps them."""
    m = infer_mapping(["phone", "name", "custom.city", "custom.", "id", "created_at"])
    assert m.custom == {"city": "custom.city"}
    assert m.fields["phone"] == ("phone",)


def test_a_message_lists_at_most_thirty_headers_each_cut_short() -> None:
    from contactpipe.transform.mapping import headers_seen

    assert headers_seen([]) == "(none)"
    assert headers_seen(["Name", None]) == "'Name', None"
    wide = [f"col{i}" for i in range(16_000)]
    text = headers_seen(wide)
    assert text.startswith("'col0', 'col1'") and text.endswith(", ... and 15,970 more")
    assert "'col29'" in text and "'col30'" not in text
    assert headers_seen(["x" * 500]) == "'" + "x" * 56 + "..."


def test_no_phone_column_in_a_wide_file_is_a_one_line_error(tmp_path: Path) -> None:
    from contactpipe.run import RunOptions, validate_files

    src = tmp_path / "wide.csv"
    src.write_text(",".join(f"h{i}" for i in range(5000)) + "\n" + ",".join("x" * 5000) + "\n")
    with pytest.raises(InputError) as info:
        validate_files([str(src)], RunOptions(region="FR"), tmp_path / "r")
    assert len(str(info.value)) < 1000 and "and 4,970 more" in str(info.value)
