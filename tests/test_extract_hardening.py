"""Readers facing hostile or odd inputs, in process: size limits before allocation, pipes,
BOM repair, stray control characters, ODS time cells, contactpipe's own output read back
without loss.  (The same inputs through the CLI under a memory ceiling: test_hostile.py.)"""

from __future__ import annotations

import csv
import json
import os
import threading
import zipfile
from pathlib import Path

import hostile
import polars as pl
import pytest
from click.testing import CliRunner
from filemakers import make_csv, make_ods, make_xlsx

from contactpipe.cli import main
from contactpipe.errors import InputError, UsageError
from contactpipe.extract import Limits, read_file
from contactpipe.extract.common import READ_WARNING
from contactpipe.extract.limits import check_workbook, parse_size
from contactpipe.report.safe import safe_header, terminal_safe
from contactpipe.report.writer import prepare_report_dir


def rows(path: Path, **kwargs: object) -> list[tuple]:
    [result] = read_file(path, **kwargs)
    return result.frame.select(result.columns).rows()


@pytest.mark.parametrize(
    "text,size",
    [
        ("1048576", 1 << 20),
        ("500M", 500 << 20),
        ("2G", 2 << 30),
        ("1.5GiB", 3 << 29),
        ("64k", 65536),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_an_ordinary_workbook_passes_every_check(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "ok.xlsx", {"S": [["Name", "Phone"], ["Ana", "+33612345678"]]})
    check_workbook(path, "xlsx", "ok.xlsx", Limits())
    assert rows(path) == [("Ana", "+33612345678")]


def test_used_range_counts_from_first_to_last_cell(tmp_path: Path) -> None:
    path = hostile.make_far_cell_xlsx(tmp_path / "far.xlsx", ref="J100")  # 10 x 100
    check_workbook(path, "xlsx", "far.xlsx", Limits(max_cells=1000))
    with pytest.raises(InputError, match="used range of 1,000 cells, above the limit of 999"):
        read_file(path, limits=Limits(max_cells=999))


def test_the_directory_sizes_are_checked_before_inflating(tmp_path: Path) -> None:
    path = hostile.make_sheet_bomb_xlsx(tmp_path / "b.xlsx", inflated=8 << 20)
    with pytest.raises(InputError, match="--max-uncompressed") as info:
        read_file(path, limits=Limits(max_uncompressed=4 << 20))
    assert "decompresses to more than 8.8 MiB, above the limit of 4.0 MiB" in str(info.value)


def test_ods_value_cells_written_self_closing_count(tmp_path: Path) -> None:
    path = make_ods(tmp_path / "v.ods", {"S": [["Name", "Phone"], ["Ana", "+33612345678"]]})
    with zipfile.ZipFile(path) as archive:
        parts = {i.filename: archive.read(i) for i in archive.infolist()}
    cell = b'<table:table-cell office:value-type="float" office:value="1"/>'
    row = b'<table:table-row><table:table-cell table:number-columns-repeated="30"/>' + cell
    parts["content.xml"] = parts["content.xml"].replace(
        b"</table:table>", row + b"</table:table-row></table:table>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), parts.pop("mimetype"))
        for name, data in parts.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED)
    with pytest.raises(InputError, match="has 31 columns, above the limit of 20"):
        read_file(path, limits=Limits(max_columns=20))


def test_a_fifo_is_read_once_and_named_as_given(tmp_path: Path) -> None:
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as sink:
            sink.write("Name,Phone\nAna,+33612345678\n")

    threading.Thread(target=feed, daemon=True).start()
    [result] = read_file(fifo)
    assert result.frame.select("Name", "Phone").rows() == [("Ana", "+33612345678")]
    assert result.source_file == str(fifo)


def test_a_pipe_error_names_the_pipe_not_the_copy(tmp_path: Path) -> None:
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as sink:
            sink.write("Name,Phone,City\nAna,+33612345678,Lyon\n")

    threading.Thread(target=feed, daemon=True).start()
    with pytest.raises(InputError) as info:
        read_file(fifo, limits=Limits(max_columns=2))
    assert str(info.value).startswith(f"{fifo}: has 3 columns")


def test_a_character_device_is_refused() -> None:
    with pytest.raises(InputError, match="/dev/zero: is a character device"):
        read_file("/dev/zero")


def test_bom_file_with_a_bad_byte_stays_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfName,Phone\nJos\xc3\xa9,1\nB\xe9a,2\nCl\xc3\xa9o,3\n")
    [result] = read_file(path)
    assert result.encoding == "utf-8-sig (repaired)"
    assert result.frame.get_column("Name").to_list() == ["José", "B\ufffda", "Cléo"]
    assert result.frame.get_column(READ_WARNING).to_list() == [None, "ENCODING_REPAIRED", None]


def test_a_file_without_bom_still_falls_back_to_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "win.csv"
    path.write_bytes(b"Name,Phone\nB\xe9a,2\n")
    [result] = read_file(path)
    assert result.encoding == "cp1252" and rows(path) == [("Béa", "2")]
    assert READ_WARNING not in result.frame.columns


def test_stray_control_characters_are_removed_and_warned(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"Na\x00me,Phone\nAna\x00,+33\x0b612345678\nBob,+33612345679\n")
    [result] = read_file(path)
    assert result.columns == ("Name", "Phone")
    assert result.frame.select("Name", "Phone").rows() == [
        ("Ana", "+33612345678"),
        ("Bob", "+33612345679"),
    ]
    assert result.frame.get_column(READ_WARNING).to_list() == ["CONTROL_CHARS_REMOVED", None]


@pytest.mark.parametrize("byte", [0x00, 0x08, 0x0B, 0x0C, 0x0E, 0x1F, 0x7F])
def test_each_control_byte_is_found(tmp_path: Path, byte: int) -> None:
    # the reader looks for them by deleting a byte set, not with CONTROL_CHARS: same set
    import re

    from contactpipe.extract.text import _CONTROL_BYTES, CONTROL_CHARS

    pattern = re.compile(CONTROL_CHARS.encode())
    assert set(_CONTROL_BYTES) == {b for b in range(256) if pattern.search(bytes([b]))}
    path = tmp_path / "one.csv"
    path.write_bytes(b"Name,Phone\nAna" + bytes([byte]) + b",+33612345678\n")
    [result] = read_file(path)
    assert result.frame.get_column(READ_WARNING).to_list() == ["CONTROL_CHARS_REMOVED"]
    assert result.frame.get_column("Name").to_list() == ["Ana"]


def test_mostly_control_characters_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "bin.csv"
    path.write_bytes(b"Name,Phone\n" + bytes(range(1, 9)) * 200)
    with pytest.raises(InputError, match="binary content"):
        read_file(path)


def test_read_warnings_reach_the_report(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"Name,Phone\nAna\x00,+33612345678\nBob,+33612345679\n")
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["validate", str(path), "--report-dir", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["valid"] == 2 and summary["by_code"] == {"CONTROL_CHARS_REMOVED": 1}
    assert "CONTROL_CHARS_REMOVED" in summary["codes"]
    with (out / "warnings.csv").open(encoding="utf-8") as fh:
        [line] = list(csv.DictReader(fh))
    assert (line["row"], line["code"], line["Name"]) == ("2", "CONTROL_CHARS_REMOVED", "Ana")


def test_ods_time_cells_are_read_as_text(tmp_path: Path) -> None:
    path = make_ods(tmp_path / "t.ods", {"S": [["Name", "Phone", "Call"], ["Ana", "1", "T1"]]})
    with zipfile.ZipFile(path) as archive:
        parts = {i.filename: archive.read(i) for i in archive.infolist()}
    parts["content.xml"] = parts["content.xml"].replace(
        b'<table:table-cell office:value-type="string"><text:p>T1</text:p></table:table-cell>',
        b'<table:table-cell office:value-type="time" office:time-value="PT17H30M00S">'
        b"<text:p>17:30</text:p></table:table-cell>",
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), parts.pop("mimetype"))
        for name, data in parts.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED)
    assert rows(path) == [("Ana", "1", "17:30:00")]


def test_own_contacts_file_revalidates_without_loss(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "src.csv",
        [
            ["Name", "Phone", "City", "Team"],
            ["Ana", "+33 6 12 34 56 78 poste 12", "Paris", "A"],
            ["Bob", "+33612345679", "Lyon", None],
        ],
    )
    runner = CliRunner()
    first, second = tmp_path / "r1", tmp_path / "r2"
    args = ["validate", str(src), "--keep-extra-columns", "-q", "--report-dir", str(first)]
    assert runner.invoke(main, args).exit_code == 0
    again = ["validate", str(first / "contacts.csv"), "-q", "--report-dir", str(second)]
    assert runner.invoke(main, again).exit_code == 0
    a = pl.read_csv(first / "contacts.csv", infer_schema=False)
    b = pl.read_csv(second / "contacts.csv", infer_schema=False)
    keep = ["phone", "phone_ext", "name", "custom_fields"]
    assert a.select(keep).rows() == b.select(keep).rows()
    assert b.get_column("phone_ext").to_list() == ["12", None]
    assert json.loads(b.get_column("custom_fields")[0]) == {"city": "Paris", "team": "A"}
    parquet = [
        "validate",
        str(first / "contacts.parquet"),
        "-q",
        "--report-dir",
        str(tmp_path / "p"),
    ]
    assert runner.invoke(main, parquet).exit_code == 0
    c = pl.read_csv(tmp_path / "p" / "contacts.csv", infer_schema=False)
    assert a.select(keep).rows() == c.select(keep).rows()


def test_safe_header_and_terminal_safe() -> None:
    assert safe_header(["Name", "=HYPERLINK(1)", "'=HYPERLINK(1)", "+33 1", "+33"]) == [
        "Name",
        "'=HYPERLINK(1)",
        "'=HYPERLINK(1) (2)",
        "'+33 1",
        "+33",
    ]
    assert terminal_safe("a\x1b[2Jb\x00c\td\ne\x9b") == "a\\x1b[2Jb\\x00c\td\ne\\x9b"


def test_report_dir_checks(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "contacts.csv", [["Name", "Phone"], ["Ana", "1"]])
    with pytest.raises(UsageError, match="would overwrite the input file"):
        prepare_report_dir(tmp_path, [str(src)])
    link = tmp_path / "elsewhere"
    link.symlink_to(tmp_path)
    with pytest.raises(UsageError, match="would overwrite the input file"):
        prepare_report_dir(link, [str(src)])
    prepare_report_dir(tmp_path / "sub", [str(src)])  # another folder: fine
    prepare_report_dir(tmp_path, [str(make_csv(tmp_path / "in.csv", [["a"], ["1"]]))])
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        prepare_report_dir(tmp_path / "file", [])


@pytest.mark.parametrize("space", [" ", "\n", "\t", "\r\n"])
def test_a_far_cell_is_found_whatever_the_whitespace(tmp_path: Path, space: str) -> None:
    far = f'<row r="2"><c{space}r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    path = hostile.make_raw_xlsx(
        tmp_path / "w.xlsx", hostile.sheet_xml([*hostile.header_rows(), far])
    )
    with pytest.raises(InputError, match="used range of 17,179,869,184 cells"):
        check_workbook(path, "xlsx", "w.xlsx", Limits())  # the check alone: never the reader


def test_namespace_prefixed_cells_are_counted(tmp_path: Path) -> None:
    rows = "".join(f'<x:row r="{r}"><x:c r="A{r}"><x:v>1</x:v></x:c></x:row>' for r in range(1, 60))
    path = hostile.make_raw_xlsx(tmp_path / "ns.xlsx", [rows])
    with pytest.raises(InputError, match="has 59 cells, above the limit of 50"):
        check_workbook(path, "xlsx", "ns.xlsx", Limits(max_cells=50))


def test_parquet_cells_are_counted_from_the_footer(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame({"phone": ["+33612345678"] * 3000, "name": ["Ana"] * 3000}).write_parquet(path)
    with pytest.raises(InputError, match="has 6,000 cells, above the limit of 5,000"):
        read_file(path, limits=Limits(max_cells=5000))
    assert len(rows(path, limits=Limits(max_cells=6000))) == 3000


def test_json_is_capped_at_an_eighth_of_the_file_limit(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"phone": "+33612345678"}] * 100), "utf-8")
    size = path.stat().st_size
    with pytest.raises(InputError, match="the most JSON read at once"):
        read_file(path, limits=Limits(max_bytes=size * 8 - 8))
    assert len(rows(path, limits=Limits(max_bytes=size * 8))) == 100


def test_a_text_file_of_empty_fields_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "commas.csv"
    path.write_bytes(b"Name,Phone" + b"," * 98 + b"\n" + (b"Ana,1" + b"," * 98 + b"\n") * 200)
    with pytest.raises(InputError, match=r"has about 20,10\d fields, above the limit of 20,000"):
        read_file(path, limits=Limits(max_cells=5000))
    read_file(path, limits=Limits(max_cells=6000))  # 24,000 allowed
