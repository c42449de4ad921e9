"""The workbook check's two paths: counts in polars that prove a sheet small, and the exact
placement of every cell when they cannot.  The hostile files themselves run through the CLI
in ``test_hostile.py``; here, the pieces each path relies on."""

from __future__ import annotations

import random
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contactpipe.errors import InputError
from contactpipe.extract import limits
from tests import hostile
from tests.filemakers import make_xlsx


def _letters(n: int) -> str:
    out = ""
    while n:
        n, rest = divmod(n - 1, 26)
        out = chr(65 + rest) + out
    return out


@given(st.integers(1, 2_000_000), st.integers(0, 4_000_000))
def test_at_most_numbers(limit: int, value: int) -> None:
    pattern = re.compile(limits.at_most(str(limit), ("0", "9"), "1"))
    assert bool(pattern.fullmatch(str(value))) == (1 <= value <= limit)
    assert not pattern.fullmatch("0" + str(value))  # a leading zero is never inside


@given(st.integers(1, 16_384), st.integers(1, 40_000))
def test_at_most_column_letters(limit: int, value: int) -> None:
    pattern = re.compile(limits.at_most(_letters(limit), ("A", "Z"), "A"))
    assert bool(pattern.fullmatch(_letters(value))) == (value <= limit)
    assert limits._column_number(_letters(value).encode()) == value


@given(st.lists(st.integers(1, 200), min_size=1, max_size=60), st.integers(0, 2**32))
def test_pieces_never_split_a_tag(sizes: list[int], seed: int) -> None:
    rng = random.Random(seed)
    words = ["<row r='1'>", '<c r="A1" t="x>y">', "text", "</c>", "&lt;", "</row>", " "]
    xml = "".join(rng.choice(words) for _ in range(300)).encode()
    chunks, at = [], 0
    for size in sizes * 50:
        if at >= len(xml):
            break
        chunks.append(xml[at : at + size])
        at += size
    chunks.append(xml[at:])
    pieces = list(limits._pieces(iter(chunks), "x"))
    assert b"".join(pieces) == xml
    for piece in pieces:
        opened = piece.rfind(b"<")  # the last tag a piece opens, it also closes
        assert opened == -1 or b">" in piece[opened:]


def test_pieces_refuse_a_tag_longer_than_a_chunk() -> None:
    chunks = iter([b"<row>", b"<c " + b"a" * limits._CHUNK, b"more"])
    with pytest.raises(InputError, match=r"XML tag longer than 4\.0 MiB"):
        list(limits._pieces(chunks, "book.xlsx (sheet1)"))


def test_ahead_hands_over_errors_and_stops_its_thread() -> None:
    def failing() -> Iterator[bytes]:
        yield b"one"
        raise InputError("boom")

    pieces = limits._ahead(failing())
    assert next(pieces) == b"one"
    with pytest.raises(InputError, match="boom"):
        next(pieces)

    before = threading.active_count()
    endless = limits._ahead(iter(lambda: b"x" * 10, None))  # never ends on its own
    assert next(endless) == b"x" * 10
    endless.close()
    assert threading.active_count() == before


def _genuine_books(tmp: Path) -> list[Path]:
    import openpyxl

    rows = [["Name", "Phone", "City"]] + [
        [f"N{i}", f"+3361234{i:04d}", "Lyon"] for i in range(3000)
    ]
    written = make_xlsx(tmp / "xlsxwriter.xlsx", {"Contacts": rows, "Other": [["a"], [1]]})
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.column_dimensions["A"].width = 30  # a <cols> element before the cells
    for row in rows:
        sheet.append(row)
    book.save(tmp / "openpyxl.xlsx")
    streamed = openpyxl.Workbook(write_only=True)  # writes no <dimension> at all
    sheet = streamed.create_sheet("Contacts")
    for row in rows:
        sheet.append(row)
    streamed.save(tmp / "write-only.xlsx")
    # the same tables as the .NET Open XML SDK writes them: <x:row r="1"><x:c r="A1">
    prefixed = hostile.prefix_workbook(written, tmp / "prefixed.xlsx")
    return [written, tmp / "openpyxl.xlsx", tmp / "write-only.xlsx", prefixed]


def test_genuine_workbooks_take_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    books = _genuine_books(tmp_path)

    def exact(*args: object) -> None:
        raise AssertionError("the exact check ran on a genuine workbook")

    monkeypatch.setattr(limits, "_check_worksheet_exact", exact)
    for book in books:
        limits.check_workbook(book, "xlsx", book.name, limits.DEFAULT_LIMITS)


def test_the_exact_path_lets_the_same_workbooks_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "_check_worksheet_fast", lambda *args: False)
    for book in [*_genuine_books(tmp_path), hostile.make_odd_genuine_xlsx(tmp_path / "odd.xlsx")]:
        limits.check_workbook(book, "xlsx", book.name, limits.DEFAULT_LIMITS)


@pytest.mark.parametrize("form", list(hostile.REFERENCE_FORMS))
def test_the_fast_path_proves_nothing_about_odd_references(tmp_path: Path, form: str) -> None:
    book = hostile.make_far_reference_xlsx(tmp_path / "far.xlsx", form)
    with zipfile.ZipFile(book) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        pieces = limits._pieces(
            limits._stream(archive, info, [0], "far", limits.DEFAULT_LIMITS), "far"
        )
        assert limits._check_worksheet_fast(pieces, "far", limits.DEFAULT_LIMITS) is False
    with pytest.raises(InputError, match="used range of 14,745,600,000 cells"):
        limits.check_workbook(book, "xlsx", "far", limits.DEFAULT_LIMITS)


def _fast(book: Path) -> bool:
    with zipfile.ZipFile(book) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        pieces = limits._pieces(limits._stream(archive, info, [0], "p", limits.DEFAULT_LIMITS), "p")
        return limits._check_worksheet_fast(pieces, "p", limits.DEFAULT_LIMITS)


def test_a_prefixed_sheet_of_many_pieces_takes_the_fast_path(tmp_path: Path) -> None:
    """A sheet written with one prefix throughout (``x:``) is proven by the counts, piece
    after piece (the prefix is found in the first one)."""
    rows = [
        f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>N{i}</t></is></c>'
        f'<c r="B{i}"><v>3361234{i:05d}</v></c></row>'
        for i in range(1, 90_001)
    ]
    xml = hostile.prefixed("".join(hostile.sheet_xml(rows)), "x")
    assert len(xml) > 2 * (4 << 20)  # three 4 MiB pieces
    book = hostile.make_raw_xlsx(tmp_path / "x.xlsx", [xml])
    assert _fast(book) is True


@pytest.mark.parametrize("tag", ["x:c", "c", "y:c", ":c"])  # its prefix, none, another, empty
def test_a_far_cell_in_a_prefixed_sheet_is_refused(tmp_path: Path, tag: str) -> None:
    far = f'<row r="900000"><{tag} r="XFD900000" t="inlineStr"><is><t>x</t></is></{tag}></row>'
    xml = hostile.prefixed("".join(hostile.sheet_xml(hostile.header_rows())), "x")
    book = hostile.make_raw_xlsx(
        tmp_path / "far.xlsx", [xml.replace("</x:sheetData>", far + "</x:sheetData>")]
    )
    assert _fast(book) is False
    with pytest.raises(InputError, match="used range of 14,745,600,000 cells"):
        limits.check_workbook(book, "xlsx", "far", limits.DEFAULT_LIMITS)


@pytest.mark.parametrize(
    "odd",
    [
        '<c r="C2" t="inlineStr"><is><t>x</t></is></c>',  # unprefixed among x:
        '<y:c r="C2" t="inlineStr"><is><t>x</t></is></y:c>',  # another prefix
        '<x:c t="inlineStr"><is><t>x</t></is></x:c>',  # no reference
        '<x:c x:r="C2" t="inlineStr"><is><t>x</t></is></x:c>',  # prefixed r: none either
    ],
)
def test_a_prefixed_sheet_with_an_odd_cell_goes_to_the_exact_check(
    tmp_path: Path, odd: str
) -> None:
    rows = [*hostile.header_rows(), '<row r="3">ODD</row>']
    xml = hostile.prefixed("".join(hostile.sheet_xml(rows)), "x").replace("ODD", odd)
    book = hostile.make_raw_xlsx(tmp_path / "odd.xlsx", [xml])
    assert _fast(book) is False
    limits.check_workbook(book, "xlsx", "odd", limits.DEFAULT_LIMITS)  # small: let through


def test_a_sheet_bomb_is_refused_through_the_read_ahead(tmp_path: Path) -> None:
    """Cells the counts accept, inflating past the budget: the refusal raised in the
    read-ahead thread reaches the caller."""
    block = '<row r="2"><c r="A2" t="inlineStr"><is><t>Bob</t></is></c></row>' * 20_000
    sheet = hostile.sheet_xml([*hostile.header_rows(), *[block] * 60], dimension="A1:B2")
    book = hostile.make_raw_xlsx(tmp_path / "bomb.xlsx", sheet)
    small = limits.Limits(max_uncompressed=40 << 20)
    with zipfile.ZipFile(book) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        assert info.file_size > 60 << 20
        with pytest.raises(InputError, match=r"above the limit of 40\.0 MiB"):
            limits._check_worksheet(archive, info, [0], "bomb (sheet1)", "bomb", small)


_TEXT = "<is><t>x</t></is>"


@st.composite
def _odd_sheets(draw: st.DrawFn) -> list[str]:
    """Small sheets with references in every form calamine reads, rows with and without
    ``r``, cells with and without references."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row_r = draw(st.one_of(st.none(), st.integers(1, 40)))
        cells = []
        for _ in range(draw(st.integers(1, 5))):
            if draw(st.booleans()):
                cells.append(f'<c t="inlineStr">{_TEXT}</c>')
                continue
            letters = _letters(draw(st.integers(1, 30)))
            if draw(st.booleans()):
                letters = letters.lower()
            ref = f"{letters}{draw(st.integers(1, 40))}"
            # a prefixed x:r is not calamine's r: alone, the cell has no reference
            form = draw(
                st.sampled_from(
                    ['r="{}"', "r='{}'", 'r = "{}"', 's="0" r="{}"', 'x:r="{}"',
                     'x:r="A1" r="{}"', 'r="{}" x:r="A1"']
                )
            )  # fmt: skip
            # quick-xml takes any prefix before the first ':' (even none, or odd bytes); a
            # form feed after the name makes it another element
            tag = draw(st.sampled_from(["c", "c", "c", "x:c", ":c", "é:c", "x/:c", "c\x0c"]))
            end = tag.rstrip("\x0c")
            cells.append(f'<{tag} {form.format(ref)} t="inlineStr">{_TEXT}</{end}>')
        opening = "<row>" if row_r is None else f'<row r="{row_r}">'
        if row_r is not None and draw(st.booleans()):
            opening = f'<row x:r="{row_r}">'  # no row number for calamine either
        rows.append(opening + "".join(cells) + "</row>")
    return rows


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_odd_sheets())
def test_placed_cells_cover_what_calamine_loads(tmp_path: Path, rows: list[str]) -> None:
    """The exact check's placement against the reader itself: the rectangle calamine loads
    is never larger than the one the check bounds."""
    import fastexcel

    book = hostile.make_raw_xlsx(tmp_path / "odd.xlsx", hostile.sheet_xml(rows))
    with zipfile.ZipFile(book) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        pieces = limits._pieces(limits._stream(archive, info, [0], "o", limits.DEFAULT_LIMITS), "o")
        bounds = limits.placed_bounds(pieces, "o", limits.DEFAULT_LIMITS)
    assert bounds is not None
    _top, bottom, left, right = bounds
    grid = fastexcel.read_excel(str(book)).load_sheet(0, header_row=None, dtypes="string")
    frame = grid.to_polars()
    assert frame.width <= right - left + 1
    assert frame.height <= bottom  # the grid starts at row 1


def test_rows_out_of_order_go_to_the_exact_check(tmp_path: Path) -> None:
    """The guessed bounds assume rows written in order: a later row number early in a piece
    proves nothing, and the exact placement reads the sheet instead (and lets it through)."""
    rows = [
        *hostile.header_rows(),
        '<row r="9"><c r="A9" t="inlineStr"><is><t>Cid</t></is></c></row>',
        '<row r="3"><c r="B3" t="inlineStr"><is><t>+33612345679</t></is></c></row>',
    ]
    book = hostile.make_raw_xlsx(tmp_path / "order.xlsx", hostile.sheet_xml(rows))
    with zipfile.ZipFile(book) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        pieces = limits._pieces(limits._stream(archive, info, [0], "o", limits.DEFAULT_LIMITS), "o")
        assert limits._check_worksheet_fast(pieces, "o", limits.DEFAULT_LIMITS) is False
    limits.check_workbook(book, "xlsx", "order", limits.DEFAULT_LIMITS)


def test_a_far_cell_before_the_last_row_is_refused(tmp_path: Path) -> None:
    """The row bound comes from each piece's last cell: a far cell earlier in the piece is
    outside it, so the counts prove nothing and the exact check refuses."""
    rows = [
        *hostile.header_rows(),
        '<row r="3"><c r="C900000" t="inlineStr"><is><t>x</t></is></c></row>',
        '<row r="4"><c r="A4" t="inlineStr"><is><t>Bob</t></is></c></row>',
    ]
    book = hostile.make_raw_xlsx(tmp_path / "far.xlsx", hostile.sheet_xml(rows))
    with pytest.raises(InputError, match="used range of 2,700,000 cells"):
        limits.check_workbook(book, "xlsx", "far", limits.Limits(max_cells=1_000_000))
