"""CSV / TSV / TXT extraction: encodings, delimiters, quoting, row numbers, header detection."""

from __future__ import annotations

import polars as pl
import pytest
from filemakers import csv_text, make_csv, make_text

from contactpipe.errors import InputError
from contactpipe.extract import read_file
from contactpipe.frames import SRC_FILE, SRC_ROW, SRC_SHEET

CONTACTS = [
    ["Nom", "Téléphone", "Ville"],
    ["Hélène Dupré", "0612345678", "Besançon"],
    ["François Œuvray", "+33 6 98 76 54 32", "Orléans"],
]


def table(result, *extra: str) -> list[tuple]:
    """User columns (+ extra columns) of every row, then the row number."""
    return result.frame.select(*result.columns, *extra, SRC_ROW).rows()


def read_one(path, **kwargs):
    results = read_file(path, **kwargs)
    assert len(results) == 1
    return results[0]


def test_cp1252_semicolon_with_accents(tmp_path):
    path = make_csv(tmp_path / "excel_fr.csv", CONTACTS, encoding="cp1252", delimiter=";")
    result = read_one(path)
    assert (result.encoding, result.delimiter, result.format) == ("cp1252", ";", "csv")
    assert result.columns == ("Nom", "Téléphone", "Ville")
    assert table(result) == [
        ("Hélène Dupré", "0612345678", "Besançon", 2),
        ("François Œuvray", "+33 6 98 76 54 32", "Orléans", 3),
    ]
    assert result.frame.schema == pl.Schema(
        {
            "Nom": pl.String,
            "Téléphone": pl.String,
            "Ville": pl.String,
            SRC_FILE: pl.String,
            SRC_SHEET: pl.String,
            SRC_ROW: pl.Int64,
        }
    )
    assert result.frame.get_column(SRC_FILE).to_list() == [str(path)] * 2
    assert result.frame.get_column(SRC_SHEET).to_list() == [None, None]
    assert (result.header_row, result.rows_read, result.empty_rows) == (1, 2, 0)


def test_latin1_bytes_undefined_in_cp1252(tmp_path):
    path = make_text(tmp_path / "l1.csv", "name,code\nA\x81b,1\n", encoding="latin-1")
    result = read_one(path)
    assert result.encoding == "latin-1"
    assert table(result) == [("A\x81b", "1", 2)]


def test_utf8_bom_comma(tmp_path):
    path = make_csv(tmp_path / "bom.csv", CONTACTS, encoding="utf-8", bom=True)
    result = read_one(path)
    assert (result.encoding, result.delimiter) == ("utf-8-sig", ",")
    assert result.columns[0] == "Nom"  # no BOM glued to the first header
    assert table(result)[1] == ("François Œuvray", "+33 6 98 76 54 32", "Orléans", 3)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_tab_separated_with_bom(tmp_path, encoding):
    path = make_csv(tmp_path / "export.txt", CONTACTS, encoding=encoding, delimiter="\t", bom=True)
    result = read_one(path)
    assert (result.encoding, result.delimiter) == (encoding, "\t")
    assert table(result) == [
        ("Hélène Dupré", "0612345678", "Besançon", 2),
        ("François Œuvray", "+33 6 98 76 54 32", "Orléans", 3),
    ]


def test_utf16_without_bom_is_recognised(tmp_path):
    path = make_csv(tmp_path / "nobom.tsv", CONTACTS, encoding="utf-16-le", delimiter="\t")
    result = read_one(path)
    assert result.encoding == "utf-16-le"
    assert table(result)[0] == ("Hélène Dupré", "0612345678", "Besançon", 2)


def test_pipe_delimited(tmp_path):
    rows = [
        ["id", "name", "phone"],
        ["1", "Ann, Jr.", "0033612345678"],
        ["2", "Bob", "+22997123456"],
    ]
    result = read_one(make_csv(tmp_path / "p.txt", rows, delimiter="|"))
    assert result.delimiter == "|"
    assert table(result) == [("1", "Ann, Jr.", "0033612345678", 2), ("2", "Bob", "+22997123456", 3)]


def test_semicolon_wins_over_commas_inside_values(tmp_path):
    rows = [["name", "phone", "note"], ["Dupont, Jean", "06", "a, b, c"], ["Marc", "07", "x"]]
    result = read_one(make_csv(tmp_path / "s.csv", rows, delimiter=";"))
    assert result.delimiter == ";"
    assert table(result) == [("Dupont, Jean", "06", "a, b, c", 2), ("Marc", "07", "x", 3)]


def test_quoted_embedded_newlines_keep_row_numbers(tmp_path):
    rows = [
        ["name", "address", "phone"],
        ["Ann", "1 rue A\nBâtiment B\n75001 Paris", "0611111111"],
        ["Bob", "2 rue B", "0622222222"],
        ["Cid", 'He said "hi"\r\nthen left', "0633333333"],
        ["Dan", "4 rue D", "0644444444"],
    ]
    result = read_one(make_csv(tmp_path / "nl.csv", rows, newline="\r\n"))
    assert table(result) == [
        ("Ann", "1 rue A\nBâtiment B\n75001 Paris", "0611111111", 2),
        ("Bob", "2 rue B", "0622222222", 3),
        ("Cid", 'He said "hi"\r\nthen left', "0633333333", 4),
        ("Dan", "4 rue D", "0644444444", 5),
    ]


def test_phone_text_kept_verbatim(tmp_path):
    rows = [
        ["phone", "zip"],
        ["0612345678", "01000"],
        ["+33612345678", "00100"],
        ["'+22997123456", "007"],
        ["22997123456", "1e5"],
        [" 06 12 ", "12.0"],
    ]
    result = read_one(make_csv(tmp_path / "phones.csv", rows))
    assert table(result) == [
        ("0612345678", "01000", 2),
        ("+33612345678", "00100", 3),
        ("'+22997123456", "007", 4),
        ("22997123456", "1e5", 5),
        (" 06 12 ", "12.0", 6),
    ]


def test_blank_lines_are_numbered_and_counted(tmp_path):
    text = "name,phone\nAnn,061\n\nBob,062\n,\n   ,  \nCid,063\n\n\n"
    result = read_one(make_text(tmp_path / "blank.csv", text))
    assert table(result) == [("Ann", "061", 2), ("Bob", "062", 4), ("Cid", "063", 7)]
    assert (result.rows_read, result.empty_rows) == (6, 3)


def test_empty_strings_become_null_other_values_untouched(tmp_path):
    text = 'name,phone,note\n"",061,"  spaced  "\nBob,,\n'
    result = read_one(make_text(tmp_path / "e.csv", text))
    assert table(result) == [(None, "061", "  spaced  ", 2), ("Bob", None, None, 3)]


def test_ragged_rows_padded_and_extra_kept(tmp_path):
    text = "name,phone\nAnn,061,extra1,extra2\nBob\nCid,063\n"
    result = read_one(make_text(tmp_path / "ragged.csv", text))
    assert result.columns == ("name", "phone", "column_3", "column_4")
    assert table(result) == [
        ("Ann", "061", "extra1", "extra2", 2),
        ("Bob", None, None, None, 3),
        ("Cid", "063", None, None, 4),
    ]


def test_stray_quote_inside_unquoted_field(tmp_path):
    text = 'name,size,phone\nTV,55" screen,061\nBob,M,062\n'
    result = read_one(make_text(tmp_path / "q.csv", text))
    assert table(result) == [("TV", '55" screen', "061", 2), ("Bob", "M", "062", 3)]


def test_title_and_blank_lines_before_header(tmp_path):
    text = "Contacts export — March\n\nname;phone;city\nAnn;061;Lyon\n\nBob;062;Nice\n"
    result = read_one(make_text(tmp_path / "title.csv", text))
    assert result.header_row == 3
    assert result.columns == ("name", "phone", "city")
    assert table(result) == [("Ann", "061", "Lyon", 4), ("Bob", "062", "Nice", 6)]
    assert (result.rows_read, result.empty_rows) == (3, 1)


def test_forced_header_row(tmp_path):
    text = "a,b\nname,phone\nAnn,061\n"
    result = read_one(make_text(tmp_path / "f.csv", text), header_row=2)
    assert result.header_row == 2
    assert table(result) == [("Ann", "061", 3)]
    with pytest.raises(InputError, match="header row 9 is past the end"):
        read_file(tmp_path / "f.csv", header_row=9)


def test_blank_and_duplicate_headers(tmp_path):
    text = "Phone,,Phone,phone,__row\n1,2,3,4,5\n"
    result = read_one(make_text(tmp_path / "h.csv", text))
    assert result.columns == ("Phone", "column_2", "Phone_2", "phone", "row")
    assert table(result) == [("1", "2", "3", "4", "5", 2)]


def test_trailing_empty_columns_of_exports_dropped(tmp_path):
    result = read_one(make_text(tmp_path / "t.csv", "name,phone,,\nAnn,061,,\n"))
    assert result.columns == ("name", "phone")


def test_sep_hint_line(tmp_path):
    result = read_one(make_text(tmp_path / "sep.csv", "sep=;\nname;note\nAnn;a,b,c\n"))
    assert (result.delimiter, result.header_row) == (";", 1)
    assert table(result) == [("Ann", "a,b,c", 2)]


def test_classic_mac_line_endings(tmp_path):
    result = read_one(make_text(tmp_path / "mac.csv", "name,phone\rAnn,061\rBob,062\r"))
    assert table(result) == [("Ann", "061", 2), ("Bob", "062", 3)]


def test_single_column_file(tmp_path):
    result = read_one(make_text(tmp_path / "one.txt", "phone\n0612\n+3361\n"))
    assert table(result) == [("0612", 2), ("+3361", 3)]


def test_invalid_utf8_late_in_big_file_falls_back_to_cp1252(tmp_path):
    body = csv_text([["name", "phone"]] + [["Ann", "061"]] * 20000)
    data = body.encode("utf-8") + "Zoé,062\n".encode("cp1252")
    path = tmp_path / "late.csv"
    path.write_bytes(data)
    result = read_one(path)
    assert result.encoding == "cp1252"
    assert table(result)[-1] == ("Zoé", "062", 20002)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n\n  \r\n", "is empty"),
        (b"\xef\xbb\xbf", "is empty"),
        (bytes(range(256)) * 40, "not a text file"),
        (b"\x00\x01\x02garbage\x03\x04" * 100, "not a text file"),
        (bytes(range(0xA0, 0x100)) * 40, "does not look like text in a supported encoding"),
        (b'name,phone\n"Ann,061\nBob,062\n', r"row 2 opens a quoted field .* never closed"),
        (b"%PDF-1.7\n...", "PDF document"),
        (b"<html><body><table><tr><td>a</td></tr></table></body></html>", "HTML page"),
    ],
)
def test_bad_text_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_file(path)
    assert str(path) in str(info.value)


def test_large_file_reads_fast(tmp_path):
    import time

    rows = "".join(f"Person {i},+2299712{i:05d},{i:07d}\n" for i in range(200_000))
    path = make_text(tmp_path / "big.csv", "name,phone,zip\n" + rows)
    start = time.perf_counter()
    result = read_one(path)
    elapsed = time.perf_counter() - start
    assert result.frame.height == 200_000
    assert result.frame.row(-1) == (
        "Person 199999",
        "+2299712199999",
        "0199999",
        str(path),
        None,
        200001,
    )
    assert elapsed < 3  # ~0.1 s on the 2-core CI machine; generous for a busy one
