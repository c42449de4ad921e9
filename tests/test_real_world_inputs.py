"""Issue 10: real-world exports keep every contact that has a valid phone.

Each test writes a file in the layout of the tool that produces it (Google Contacts, HubSpot,
Salesforce, Thunderbird, Odoo, German/Portuguese/Indonesian phone books, WhatsApp sender
lists) and checks where every row lands.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from contactpipe.cli import main
from contactpipe.run import RunOptions, validate_files
from contactpipe.transform.countries import country_code
from contactpipe.transform.mapping import infer_mapping
from tests.filemakers import make_csv, make_text, make_xlsx


def run(tmp_path: Path, inputs: list[Path], **options: object) -> tuple[dict, dict]:
    """validate_files -> (summary, {(file name, row): (phone, code)}) of every row."""
    out = tmp_path / "report"
    result = validate_files([str(p) for p in inputs], RunOptions(**options), out)  # type: ignore[arg-type]
    rows: dict = {}
    for name, row, phone in result.contacts.select("source_file", "row", "phone").iter_rows():
        rows[(Path(name).name, int(row))] = (phone, None)
    errors = pl.read_csv(out / "errors.csv", infer_schema=False)
    for name, row, code in errors.select("source_file", "row", "code").iter_rows():
        rows[(Path(name).name, int(row))] = (None, code)
    warnings = pl.read_csv(out / "warnings.csv", infer_schema=False)
    for name, row, code in warnings.select("source_file", "row", "code").iter_rows():
        key = (Path(name).name, int(row))
        rows[key] = (rows[key][0], code)
    return result.summary, rows


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- the rule and item 1: placeholders and typos in secondary fields ----------------------------


def test_bad_or_placeholder_emails_never_cost_a_brazilian_mobile(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "clientes.csv",
        [
            ["Nome", "Celular", "E-mail", "Idioma", "Descadastrado"],
            ["Ana", "(11) 98765-4321", "N/A", "pt-BR", "não"],
            ["Bruno", "(21) 99876-5432", "-", "", ""],
            ["Carla", "(31) 98888-7777", "none", "portugues??", "talvez"],
            ["Davi", "(41) 99999-1111", "x@hot mail.com", "", ""],
            ["Elis", "N/A", "elis@example.com", "", ""],  # a placeholder phone: missing
            ["Fabio", "—", "", "", ""],
        ],
    )
    summary, rows = run(tmp_path, [src], region="BR")
    assert rows[("clientes.csv", 2)] == ("+5511987654321", None)
    assert rows[("clientes.csv", 3)] == ("+5521998765432", None)
    assert rows[("clientes.csv", 4)] == ("+5531988887777", "INVALID_LANGUAGE;INVALID_BOOLEAN")
    assert rows[("clientes.csv", 5)] == ("+5541999991111", "INVALID_EMAIL")
    assert rows[("clientes.csv", 6)] == (None, "MISSING_PHONE")
    assert rows[("clientes.csv", 7)] == (None, "MISSING_PHONE")
    contacts = pl.read_csv(tmp_path / "report" / "contacts.csv", infer_schema=False)
    assert contacts.get_column("email").to_list() == [None, None, None, "x@hotmail.com"]
    assert summary["valid"] == 4 and summary["rejected"] == 2


def test_strict_keeps_todays_rejections(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "c.csv",
        [["Name", "Phone", "Email"], ["Ann", "+33612345678", "ann@"], ["Bob", "+33698765432", ""]],
    )
    _, rows = run(tmp_path, [src], strict=True)
    assert rows == {("c.csv", 2): (None, "INVALID_EMAIL"), ("c.csv", 3): ("+33698765432", None)}


# -- item 2: Google's ::: multi-value e-mail -------------------------------------------------


def test_google_multi_value_email_keeps_the_first_valid_address(tmp_path: Path) -> None:
    header = ["Name", "Given Name", "E-mail 1 - Type", "E-mail 1 - Value"]
    header += ["Phone 1 - Type", "Phone 1 - Value"]
    src = make_csv(
        tmp_path / "google.csv",
        [
            header,
            [
                "Ana Lima",
                "Ana",
                "* ",
                "ana.old@ ::: ana@example.com ::: a@x.org",
                "Mobile",
                "+55 11 98765-4321",
            ],
            ["Rui", "Rui", "* ", "rui@example.com", "Mobile", "+351 912 345 678"],
        ],
    )
    summary, rows = run(tmp_path, [src])
    assert summary["files"][0]["mapping"]["preset"] == "google"
    assert rows[("google.csv", 2)] == ("+5511987654321", "EXTRA_EMAILS")
    warnings = pl.read_csv(tmp_path / "report" / "warnings.csv", infer_schema=False)
    assert "ana.old@, a@x.org" in warnings.get_column("message")[0]
    contacts = pl.read_csv(tmp_path / "report" / "contacts.csv", infer_schema=False)
    assert contacts.get_column("email").to_list() == ["ana@example.com", "rui@example.com"]


# -- item 6: country names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Deutschland", "DE"),
        ("España", "ES"),
        ("Brasil", "BR"),
        ("Schweiz", "CH"),
        ("Viêt Nam", "VN"),
        ("Viet Nam", "VN"),
        ("Russian Federation", "RU"),
        ("Korea, Republic of", "KR"),
        ("Czechia", "CZ"),
        ("Türkiye", "TR"),
        ("U.S.A.", "US"),
        ("UAE", "AE"),
        ("The Netherlands", "NL"),
        ("DR Congo", "CD"),
        ("DEU", "DE"),
        ("bra", "BR"),
        ("Германия", "DE"),
        ("المغرب", "MA"),
        ("Atlantis", None),
    ],
)
def test_country_names_in_many_languages_and_alpha3(value: str, code: str | None) -> None:
    assert country_code(value) == code


def test_hubspot_export_with_country_names_and_an_unknown_country(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "hubspot-crm-exports-all-contacts.csv",
        [
            [
                "Record ID",
                "First Name",
                "Last Name",
                "Email",
                "Phone Number",
                "Mobile Phone Number",
                "Country/Region",
            ],
            ["101", "Jonas", "Meyer", "j@example.de", "", "0151 23456789", "Deutschland"],
            ["102", "Lucía", "Gómez", "", "612 34 56 78", "null", "España"],
            ["103", "Minh", "Nguyen", "", "", "091 234 56 78", "Viêt Nam"],
            ["104", "Emre", "Kaya", "", "", "0532 123 45 67", "TUR"],
            ["105", "Zed", "Q", "", "", "0049 151 23456780", "Atlantis"],  # own 00 prefix
            ["106", "Kim", "Lee", "", "", "+82 10-1234-5678", "Korea (the South)"],
            ["107", "Yan", "Ng", "", "", "0612345678", "Atlantis"],  # no prefix: unknown
        ],
    )
    summary, rows = run(tmp_path, [src])
    name = src.name
    assert summary["files"][0]["mapping"]["preset"] == "hubspot"
    assert rows[(name, 2)] == ("+4915123456789", None)
    assert rows[(name, 3)] == ("+34612345678", None)  # 'null' mobile: the other column
    assert rows[(name, 4)] == ("+84912345678", None)
    assert rows[(name, 5)] == ("+905321234567", None)
    assert rows[(name, 6)] == ("+4915123456780", None)
    assert rows[(name, 7)] == ("+821012345678", None)
    assert rows[(name, 8)] == (None, "INVALID_REGION")


# -- item 7: headers and presets --------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "phones", "others"),
    [
        (["Name", "Büro", "Privat", "Mobil"], ("Mobil", "Privat", "Büro"), {"name": ("Name",)}),
        (["Nom", "Prénom", "fixe", "Portable"], ("Portable", "fixe"), {"last_name": ("Nom",)}),
        (
            ["Nome", "Telefone1", "Telefone2", "Telefone3", "Telefone4"],
            ("Telefone1", "Telefone2", "Telefone3", "Telefone4"),
            {"first_name": ("Nome",)},
        ),
        (["Name", "Home Mobile", "Home Phone"], ("Home Mobile", "Home Phone"), {}),
        (["Destinatario", "Mensaje"], ("Destinatario",), {}),
        (["Nama", "noHP", "Alamat"], ("noHP",), {"name": ("Nama",)}),
        (["Naam", "Telefoonnummer", "Mobiel"], ("Mobiel", "Telefoonnummer"), {"name": ("Naam",)}),
        (["Nome e cognome", "Cellulare", "Paese"], ("Cellulare",), {"country": ("Paese",)}),
        (["Ad Soyad", "Cep Telefonu", "E-posta"], ("Cep Telefonu",), {"email": ("E-posta",)}),
        (["Imię", "Nazwisko", "Numer telefonu"], ("Numer telefonu",), {"last_name": ("Nazwisko",)}),
        (["ФИО", "Мобильный телефон", "Страна"], ("Мобильный телефон",), {"name": ("ФИО",)}),
        (
            ["الاسم", "رقم الجوال", "البريد الإلكتروني"],
            ("رقم الجوال",),
            {"email": ("البريد الإلكتروني",)},
        ),
        (["Naam", "Mobile No", "Desh"], ("Mobile No",), {"country": ("Desh",)}),
        (["Họ và tên", "Số điện thoại", "Ghi chú"], ("Số điện thoại",), {"notes": ("Ghi chú",)}),
        (["Jina", "Namba ya simu", "Nchi"], ("Namba ya simu",), {"country": ("Nchi",)}),
        (["Name", "Phone", "Phone_2"], ("Phone", "Phone_2"), {}),  # two 'Phone' headers
    ],
)
def test_headers_of_real_phone_books(headers: list[str], phones: tuple, others: dict) -> None:
    m = infer_mapping(headers)
    assert m.phone_candidates == phones
    for fld, cols in others.items():
        assert m.fields[fld] == cols


def test_thunderbird_export_email_columns_are_kept(tmp_path: Path) -> None:
    header = ["First Name", "Last Name", "Display Name", "Nickname", "Primary Email"]
    header += ["Secondary Email", "Screen Name", "Work Phone", "Home Phone", "Fax Number"]
    header += ["Pager Number", "Mobile Number", "Notes"]
    src = make_csv(
        tmp_path / "thunderbird.csv",
        [
            header,
            [
                "Eva",
                "Roth",
                "Eva Roth",
                "",
                "eva@example.ch",
                "",
                "",
                "044 668 18 00",
                "",
                "",
                "",
                "079 123 45 67",
                "",
            ],
            [
                "Max",
                "Frei",
                "Max Frei",
                "",
                "max@example.ch",
                "",
                "",
                "044 668 18 01",
                "",
                "",
                "",
                "",
                "",
            ],
        ],
    )
    summary, rows = run(tmp_path, [src], region="CH")
    assert summary["files"][0]["mapping"]["preset"] == "thunderbird"
    assert rows == {
        # the mobile first; the work number is listed, not lost (issue 10, item 3)
        ("thunderbird.csv", 2): ("+41791234567", "EXTRA_NUMBERS"),
        ("thunderbird.csv", 3): ("+41446681801", None),
    }
    contacts = pl.read_csv(tmp_path / "report" / "contacts.csv", infer_schema=False)
    assert contacts.get_column("email").to_list() == ["eva@example.ch", "max@example.ch"]
    assert contacts.get_column("name").to_list() == ["Eva Roth", "Max Frei"]


def test_salesforce_and_odoo_exports_need_no_mapping(tmp_path: Path) -> None:
    sf = make_csv(
        tmp_path / "salesforce.csv",
        [
            [
                "Id",
                "FirstName",
                "LastName",
                "Email",
                "Phone",
                "MobilePhone",
                "MailingCountry",
                "MailingCountryCode",
            ],
            ["003A1", "Aisha", "Bello", "aisha@example.ng", "", "0803 123 4567", "Nigeria", "NG"],
            ["003A2", "Omar", "Haddad", "", "02 234 5678", "", "", "AE"],
        ],
    )
    odoo = make_csv(
        tmp_path / "res.partner.csv",
        [
            ["id", "name", "email", "phone", "mobile", "country_id", "category_id"],
            [
                "__export__.res_partner_7",
                "Agrolait",
                "s.l@agrolait.be",
                "+32 10 588 558",
                "",
                "Belgium",
                "Customer",
            ],
            [
                "__export__.res_partner_8",
                "Wood Corner",
                "",
                "",
                "0470 12 34 56",
                "Belgique",
                "Vendor,VIP",
            ],
        ],
    )
    summary, rows = run(tmp_path, [sf, odoo])
    assert [f["mapping"]["preset"] for f in summary["files"]] == ["salesforce", "odoo"]
    assert rows == {
        ("salesforce.csv", 2): ("+2348031234567", None),
        ("salesforce.csv", 3): ("+97122345678", None),
        ("res.partner.csv", 2): ("+3210588558", None),
        ("res.partner.csv", 3): ("+32470123456", None),
    }
    contacts = pl.read_csv(tmp_path / "report" / "contacts.csv", infer_schema=False)
    assert contacts.get_column("tags").to_list()[2:] == ["Customer", "Vendor, VIP"]


# -- item 8: the phone column found by its content; headerless files --------------------------


def test_phone_column_found_by_content(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "lista.csv",
        [
            ["Cliente", "Contato", "Cidade"],
            ["Ana", "+55 11 98765-4321", "São Paulo"],
            ["Bia", "+55 21 99876-5432", "Rio"],
            ["Caio", "", "Recife"],
        ],
    )
    summary, rows = run(tmp_path, [src])
    assert summary["files"][0]["mapping"]["phone_by_content"] == ["Contato"]
    assert rows[("lista.csv", 2)] == ("+5511987654321", None)
    assert rows[("lista.csv", 4)] == (None, "MISSING_PHONE")


def test_headerless_number_list_and_whatsapp_sender_workbook(tmp_path: Path) -> None:
    plain = make_text(tmp_path / "numeros.txt", "5511987654321\n5521998765432\n+55 31 98888-7777\n")
    book = make_xlsx(
        tmp_path / "disparo.xlsx",
        {"Planilha1": [[5511912345678, "Ana"], [5511923456789, "Bia"], [5511934567890, "Caio"]]},
    )
    summary, rows = run(tmp_path, [plain, book], region="BR", default_name="{phone}")
    assert [f["header_row"] for f in summary["files"]] == [0, 0]
    assert rows == {  # the first row is a contact too
        ("numeros.txt", 1): ("+5511987654321", None),
        ("numeros.txt", 2): ("+5521998765432", None),
        ("numeros.txt", 3): ("+5531988887777", None),
        ("disparo.xlsx", 1): ("+5511912345678", None),
        ("disparo.xlsx", 2): ("+5511923456789", None),
        ("disparo.xlsx", 3): ("+5511934567890", None),
    }


def test_no_header_option_forces_the_first_row_as_data(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "a.csv", [["Ana", "0612345678"], ["Bob", "0698765432"]])
    code, _, _ = cli(
        "validate",
        str(src),
        "--region",
        "FR",
        "--default-name",
        "{phone}",
        "--no-header",
        "--report-dir",
        str(tmp_path / "r"),
        "-q",
    )
    assert code == 0
    contacts = pl.read_csv(tmp_path / "r" / "contacts.csv", infer_schema=False)
    assert contacts.select("phone", "row").rows() == [("+33612345678", "1"), ("+33698765432", "2")]


# -- items 9 and 10: a folder of mixed exports ------------------------------------------------


def test_a_folder_of_mixed_exports_keeps_every_valid_phone_and_says_what_it_skipped(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    make_csv(
        folder / "1-google.csv",
        [
            ["Name", "Phone 1 - Type", "Phone 1 - Value", "E-mail 1 - Value"],
            ["Ana", "Mobile", "+55 11 98765-4321", "N/A"],
        ],
    )
    make_csv(folder / "2-products.csv", [["SKU", "Description", "Price"], ["A-1", "Pen", "1.20"]])
    make_xlsx(
        folder / "3-book.xlsx",
        {
            "Contatos": [["Nome", "Celular", "Email"], ["Bia", "+55 21 99876-5432", "-"]],
            "Resumo": [["Mês", "Total"], ["Janeiro", 12]],
        },
    )
    make_csv(folder / "4-quiet-day.csv", [["Name", "Phone"]])
    make_csv(
        folder / "5-hubspot.csv",
        [
            [
                "Record ID",
                "First Name",
                "Last Name",
                "Email",
                "Mobile Phone Number",
                "Phone Number",
            ],
            ["1", "Caio", "Reis", "none", "null", "+55 31 98888-7777"],
        ],
    )
    make_csv(
        folder / "6-telefonbuch.csv",
        [["Name", "Büro", "Privat", "Mobil"], ["Jonas Meyer", "+49 30 1234567", "", "k.A."]],
        delimiter=";",
    )
    make_text(folder / "7-sender-list.txt", "+55 41 99999-1111\n+55 41 99999-2222\n")
    code, out, err = cli(
        "validate",
        *(str(folder), "--sheet", "*", "--default-name", "{phone}"),
        *("--report-dir", str(tmp_path / "r"), "--json"),
    )
    assert code == 0, err
    summary = json.loads(out)
    contacts = pl.read_csv(tmp_path / "r" / "contacts.csv", infer_schema=False)
    assert sorted(contacts.get_column("phone")) == [  # every valid phone of the folder
        "+49301234567",
        "+5511987654321",
        "+5521998765432",
        "+5531988887777",
        "+5541999991111",
        "+5541999992222",
    ]
    assert summary["rejected"] == 0
    skipped = {(Path(s["file"]).name, s["sheet"]): s["headers"] for s in summary["skipped"]}
    assert skipped == {
        ("2-products.csv", None): ["SKU", "Description", "Price"],
        ("3-book.xlsx", "Resumo"): ["Mês", "Total"],
    }
    assert any("4-quiet-day.csv: no data rows" in n for n in summary["notes"])
    code, _, err = cli(
        "validate", str(folder), "--sheet", "*", "--report-dir", str(tmp_path / "r2"), "-q"
    )
    assert code == 0
    assert "skipped" in err and "2-products.csv" in err and "'SKU'" in err


def test_exit_2_only_when_no_input_has_a_phone_column(tmp_path: Path) -> None:
    folder = tmp_path / "none"
    folder.mkdir()
    make_csv(folder / "a.csv", [["SKU", "Price"], ["A-1", "1.20"]])
    make_csv(folder / "b.csv", [["City", "Zip"], ["Lyon", "69001"]])
    code, _, err = cli("validate", str(folder), "--report-dir", str(tmp_path / "r"))
    assert code == 2 and "no input has a phone column" in err


def test_a_header_only_file_is_a_quiet_run_and_an_empty_file_an_error(tmp_path: Path) -> None:
    quiet = make_csv(tmp_path / "export.csv", [["Name", "Phone", "Email"]])
    code, out, _ = cli("validate", str(quiet), "--report-dir", str(tmp_path / "r"), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["valid"] == summary["rows_read"] == 0
    assert summary["notes"] == [f"{quiet}: no data rows (header only)"]
    empty = make_text(tmp_path / "empty.csv", "")
    code, _, err = cli("validate", str(empty), "--report-dir", str(tmp_path / "r2"))
    assert code == 2 and "is empty" in err


# -- item 14: messages --------------------------------------------------------------------------


def test_messages_say_the_right_thing(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "us.csv",
        [
            ["Name", "Phone", "Other number", "Email"],
            ["Ann", "(465) 808-8296", "", ""],
            ["Bob", "", "+1 415 555 2671", ""],
            ["Cy", "+1 415 555 2672", "", "=HYPERLINK(1)"],
        ],
    )
    validate_files([str(src)], RunOptions(region="US"), tmp_path / "r")
    errors = pl.read_csv(tmp_path / "r" / "errors.csv", infer_schema=False)
    messages = dict(errors.select("row", "message").iter_rows())
    assert "without its '+'" not in messages["2"]  # a US-shaped number, not a Swedish one
    assert "column 'Other number' holds one" in messages["3"]
    warnings = pl.read_csv(tmp_path / "r" / "warnings.csv", infer_schema=False)
    [message] = warnings.get_column("message").to_list()
    assert message.startswith("not an e-mail address: =HYPERLINK(1)")  # no Excel ' inside


def test_a_warning_names_the_column_of_its_field(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "c.csv",
        [["Nome", "Celular", "Correio"], ["Ana", "+55 11 98765-4321", "ana@ exemplo.com.br"]],
    )
    validate_files([str(src)], RunOptions(), tmp_path / "r")
    warnings = pl.read_csv(tmp_path / "r" / "warnings.csv", infer_schema=False)
    assert warnings.select("column", "code").rows() == [("Correio", "INVALID_EMAIL")]


def test_a_preset_without_its_phone_columns_lets_the_aliases_find_them() -> None:
    m = infer_mapping(["Record ID", "First Name", "Last Name", "WhatsApp", "Telefone"])
    assert m.preset == "hubspot"
    assert m.phone_candidates == ("WhatsApp", "Telefone")


def test_no_header_and_header_row_together_is_a_usage_error(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "a.csv", [["0612345678"]])
    code, _, err = cli("validate", str(src), "--no-header", "--header-row", "2")
    assert code == 2 and "--no-header and --header-row" in err


def test_a_preset_phone_column_does_not_hide_other_phone_columns(tmp_path: Path) -> None:
    """Headers that match a preset (here Salesforce's report labels) plus a phone column the
    preset does not name: it stays a candidate after the preset's own."""
    src = make_csv(
        tmp_path / "crm.csv",
        [
            ["First Name", "Last Name", "Email", "Mobile Phone", "Phone Number"],
            ["Hans", "Meier", "h@example.de", "", "030 1234567"],
            ["Ute", "Ross", "u@example.de", "null", "0151 23456789"],
            ["Kai", "Lenz", "k@example.de", "0171 2345678", "030 7654321"],
        ],
    )
    summary, rows = run(tmp_path, [src], region="DE")
    assert summary["files"][0]["mapping"]["fields"]["phone"] == ["Mobile Phone", "Phone Number"]
    assert rows == {
        ("crm.csv", 2): ("+49301234567", None),
        ("crm.csv", 3): ("+4915123456789", None),
        ("crm.csv", 4): ("+491712345678", "EXTRA_NUMBERS"),
    }
