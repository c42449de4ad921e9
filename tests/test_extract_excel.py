"""Workbook extraction (XLSX, XLSM, XLS, ODS): cell rendering, sheets, header rows, errors."""

from __future__ import annotations

import datetime as dt
import zipfile

import pytest
from filemakers import make_encrypted_xlsx, make_ods, make_truncated, make_xls, make_xlsx

from contactpipe.errors import InputError
from contactpipe.extract import read_file
from contactpipe.frames import SRC_FILE, SRC_ROW, SRC_SHEET

TITLED = [
    ["Contacts export — March"],
    [],
    ["Name", "Phone", "Note", "Phone"],
    ["Awa", 22997123456, "0612345678", "12.0"],
    ["Ben", 2290197123456, "'+33612345678", '=HYPERLINK("http://x")'],
    [None, None, None, None],
    ["Cé", "+229 97 12 34 56", 12.0, None],
    [],
    [],
]


def table(result) -> list[tuple]:
    return result.frame.select(*result.columns, SRC_ROW).rows()


def test_xlsx_numeric_phones_title_rows_and_text_cells(tmp_path):
    path = make_xlsx(tmp_path / "book.xlsx", {"Contacts": TITLED})
    [result] = read_file(path)
    assert (result.format, result.sheet, result.header_row) == ("xlsx", "Contacts", 3)
    assert result.columns == ("Name", "Phone", "Note", "Phone_2")
    assert table(result) == [
        ("Awa", "22997123456", "0612345678", "12.0", 4),
        ("Ben", "2290197123456", "'+33612345678", '=HYPERLINK("http://x")', 5),
        ("Cé", "+229 97 12 34 56", "12", None, 7),
    ]
    assert (result.rows_read, result.empty_rows) == (4, 1)  # rows 4-7; trailing blanks ignored
    assert (result.encoding, result.delimiter) == (None, None)
    assert result.frame.get_column(SRC_SHEET).to_list() == ["Contacts"] * 3
    assert result.frame.get_column(SRC_FILE).to_list() == [str(path)] * 3


def test_xlsx_dates_decimals_booleans(tmp_path):
    rows = [
        ["name", "born", "seen", "score", "vip", "at", "mixed"],
        [
            "A",
            dt.date(1990, 5, 17),
            dt.datetime(2024, 3, 5, 13, 4, 5),
            0.1,
            True,
            dt.time(8, 30),
            1.5,
        ],
        ["B", dt.date(2001, 1, 2), dt.datetime(2024, 3, 6), 1 / 3, False, None, True],
        ["C", None, None, 22997123456, None, None, "n/a"],
    ]
    [result] = read_file(make_xlsx(tmp_path / "types.xlsx", {"S": rows}))
    assert table(result) == [
        ("A", "1990-05-17", "2024-03-05 13:04:05", "0.1", "true", "08:30:00", "1.5", 2),
        ("B", "2001-01-02", "2024-03-06", "0.3333333333333333", "false", None, "true", 3),
        ("C", None, None, "22997123456", None, None, "n/a", 4),
    ]


def test_sheet_selection_hidden_empty_and_star(tmp_path):
    sheets = {
        "Secret": [["name", "phone"], ["Hidden", 1]],
        "Blank": [],
        "January": [["name", "phone"], ["Ann", 33612345678]],
        "February": [["Titre"], ["name", "phone"], ["Bob", "0612"], ["Cid", 612]],
        "HeaderOnly": [["name", "phone"]],
    }
    path = make_xlsx(tmp_path / "multi.xlsx", sheets, hidden=["Secret"])
    [first] = read_file(path)
    assert first.sheet == "January"
    assert table(first) == [("Ann", "33612345678", 2)]

    every = read_file(path, sheet="*")
    assert [r.sheet for r in every] == ["January", "February"]
    assert table(every[1]) == [("Bob", "0612", 3), ("Cid", "612", 4)]
    assert every[1].header_row == 2

    [named] = read_file(path, sheet="february")  # case-insensitive
    assert named.sheet == "February"
    [hidden] = read_file(path, sheet="Secret")  # a hidden sheet can be asked for by name
    assert table(hidden) == [("Hidden", "1", 2)]

    with pytest.raises(InputError) as info:
        read_file(path, sheet="March")
    message = str(info.value)
    assert str(path) in message and "'March'" in message
    assert "'Secret', 'Blank', 'January', 'February', 'HeaderOnly'" in message
    with pytest.raises(InputError, match="sheet 'Blank': is empty"):
        read_file(path, sheet="Blank")
    [header_only] = read_file(path, sheet="HeaderOnly")  # a quiet day's export: 0 rows
    assert (header_only.rows_read, header_only.frame.height) == (0, 0)


def test_forced_header_row_in_sheet(tmp_path):
    rows = [["x", "y"], ["name", "phone"], ["Ann", 612]]
    path = make_xlsx(tmp_path / "f.xlsx", {"S": rows})
    [result] = read_file(path, header_row=2)
    assert (result.header_row, table(result)) == (2, [("Ann", "612", 3)])
    with pytest.raises(InputError, match="header row 7 is past the last row"):
        read_file(path, header_row=7)


def test_leading_blank_rows_and_blank_header_cells(tmp_path):
    rows = [[], [], [None, "name", None, "phone"], [None, "Ann", "x", 612]]
    [result] = read_file(make_xlsx(tmp_path / "b.xlsx", {"S": rows}))
    assert result.header_row == 3
    assert result.columns == ("name", "column_2", "phone")  # column A is empty: not in range
    assert table(result) == [("Ann", "x", "612", 4)]


def test_xlsm(tmp_path):
    path = make_xlsx(tmp_path / "macro.xlsm", {"S": TITLED}, macro=True)
    [result] = read_file(path)
    assert result.format == "xlsm"
    assert table(result)[0] == ("Awa", "22997123456", "0612345678", "12.0", 4)


def test_xls(tmp_path):
    pytest.importorskip("xlwt")
    sheets = {
        "Hidden": [["a"], ["b"]],
        "Contacts": [["Name", "Phone", "Born"], ["Awa", 22997123456, dt.date(1990, 5, 17)]],
    }
    path = make_xls(tmp_path / "old.xls", sheets, hidden=["Hidden"])
    [result] = read_file(path)
    assert (result.format, result.sheet) == ("xls", "Contacts")
    assert table(result) == [("Awa", "22997123456", "1990-05-17", 2)]


def test_ods(tmp_path):
    sheets = {
        "Cachée": [["a"], ["b"]],
        "Contacts": [
            ["Titre"],
            [],
            ["Name", "Phone", "Zip", "Ok"],
            ["Awa", 22997123456, "01000", True],
            [None, None, None, None],
            ["Ben", 2290197123456.0, "75001", False],
        ],
    }
    path = make_ods(tmp_path / "calc.ods", sheets, hidden=["Cachée"])
    [result] = read_file(path)
    assert (result.format, result.sheet, result.header_row) == ("ods", "Contacts", 3)
    assert table(result) == [
        ("Awa", "22997123456", "01000", "true", 4),
        ("Ben", "2290197123456", "75001", "false", 6),
    ]
    assert result.empty_rows == 1


def test_xlsx_renamed_csv_reads_as_xlsx(tmp_path):
    path = make_xlsx(tmp_path / "export.csv", {"Data": [["phone"], [22997123456]]})
    [result] = read_file(path)
    assert (result.format, result.sheet) == ("xlsx", "Data")
    assert table(result) == [("22997123456", 2)]


def test_big_sheet_reads_quickly(tmp_path):
    import time

    rows = [["name", "phone"]] + [[f"P{i}", 22997000000 + i] for i in range(20_000)]
    path = make_xlsx(tmp_path / "big.xlsx", {"S": rows})
    start = time.perf_counter()
    [result] = read_file(path)
    assert time.perf_counter() - start < 3
    assert result.frame.row(-1) == ("P19999", "22997019999", str(path), "S", 20001)


def test_corrupt_and_truncated_workbooks(tmp_path):
    good = make_xlsx(tmp_path / "good.xlsx", {"S": TITLED})
    truncated = make_truncated(tmp_path / "cut.xlsx", good, 0.5)
    with pytest.raises(InputError, match=r"cut\.xlsx: is a corrupt or truncated"):
        read_file(truncated)

    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = data[: len(data) // 2]
            dst.writestr(item, data)
    with pytest.raises(InputError, match=r"broken\.xlsx"):
        read_file(broken)

    zipped = tmp_path / "notes.xlsx"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(InputError, match="ZIP archive, not a spreadsheet"):
        read_file(zipped)

    fake_xls = tmp_path / "fake.xls"
    fake_xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(InputError, match=r"fake\.xls: cannot be read as XLS"):
        read_file(fake_xls)


def test_password_protected_xlsx(tmp_path):
    pytest.importorskip("msoffcrypto")
    path = make_encrypted_xlsx(tmp_path / "locked.xlsx", [["name"], ["Ann"]])
    with pytest.raises(InputError, match=r"locked\.xlsx: is password-protected"):
        read_file(path)
