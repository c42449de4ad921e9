"""Size limits checked *before* a reader allocates anything: a hostile or broken file gets a
one-line refusal instead of exhausting memory.

=====================  ===============  ===================================================
limit                  default          what it bounds (option that lifts it)
=====================  ===============  ===================================================
``max_bytes``          2 GiB            bytes read from one input file, pipe or FIFO
                                        (``--max-file-size``)
``max_uncompressed``   1 GiB            decompressed XML of one XLSX/XLSM/ODS workbook:
                                        central-directory sizes first, then counted while
                                        streaming, so a lying directory is caught too
                                        (``--max-uncompressed``)
``max_cells``          20,000,000       cells of one sheet's used range (the rectangle from
                                        the first to the last cell, which the reader
                                        allocates) and shared strings of a workbook;
                                        rows x columns of Parquet; 4 x as many fields
                                        of a text file (``--max-cells``)
``max_columns``        16,384           columns of any input (Excel's own cap)
                                        (``--max-columns``)
=====================  ===============  ===================================================

The workbook check streams each worksheet (or ODS ``content.xml``) once through ``zlib`` with
a regular expression over cell references; it never builds the grid.  XLS (BIFF) is bounded by
its own format (65,536 x 256) and by ``max_bytes``.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from contactpipe.errors import InputError

GIB = 1 << 30
EXCEL_MAX_COLUMNS = 16_384
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Limits:
    """What one input may cost; see the module docstring for each limit and its option."""

    max_bytes: int = 2 * GIB
    max_uncompressed: int = GIB
    max_cells: int = 20_000_000
    max_columns: int = EXCEL_MAX_COLUMNS


DEFAULT_LIMITS = Limits()

TEXT_CELLS_FACTOR = 4
"""A text file may hold this many times ``max_cells`` fields (80 M by default): its cells cost
about half a spreadsheet reader's, and wide CRM exports are common."""

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"500M"``, ``"2G"``, ``"1.5GiB"``, ``"1048576"`` -> bytes; ValueError otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 500M, 2G, 1048576)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def human(n: int) -> str:
    """Bytes as a short text: ``1.0 GiB``, ``512 MiB``, ``900 B``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def too_big(name: str, what: str, option: str, default: str) -> InputError:
    """The refusal every limit raises: what was found, and how to lift the limit."""
    return InputError(
        f"{name}: {what}; refused to protect memory",
        hint=f"if the file is genuine, raise the limit with {option} (default {default})",
    )


def check_columns(name: str, width: int, limits: Limits) -> None:
    """Refuse an input wider than ``limits.max_columns``."""
    if width > limits.max_columns:
        raise too_big(
            name,
            f"has {width:,} columns, above the limit of {limits.max_columns:,}",
            "--max-columns",
            f"{EXCEL_MAX_COLUMNS:,}, Excel's own",
        )


def check_cells(name: str, what: str, cells: int, limits: Limits) -> None:
    """Refuse ``cells`` above ``limits.max_cells`` (``what`` says what was counted)."""
    if cells > limits.max_cells:
        raise too_big(
            name,
            f"{what} {cells:,} cells, above the limit of {limits.max_cells:,}",
            "--max-cells",
            f"{DEFAULT_LIMITS.max_cells:,}",
        )


def _inflated(name: str, size: int, limits: Limits) -> InputError:
    return too_big(
        name,
        f"decompresses to more than {human(size)}, above the limit of "
        f"{human(limits.max_uncompressed)} (a ZIP bomb or a giant workbook)",
        "--max-uncompressed",
        human(DEFAULT_LIMITS.max_uncompressed),
    )


def _stream(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], name: str, limits: Limits
) -> Iterator[bytes]:
    """The decompressed bytes of one part in chunks, counted against the shared ``budget``."""
    with archive.open(info) as part:
        while chunk := part.read(_CHUNK):
            budget[0] += len(chunk)
            if budget[0] > limits.max_uncompressed:
                raise _inflated(name, budget[0], limits)
            yield chunk


def _tags(chunks: Iterator[bytes], end: bytes = b">") -> Iterator[bytes]:
    """Re-cut chunks so that no XML tag (or, with ``end=b"row>"``, no worksheet row) is split
    between two pieces."""
    tail = b""
    for chunk in chunks:
        data = tail + chunk
        cut = data.rfind(end) + len(end) if end in data else 0
        tail = data[cut:]
        if len(tail) > _CHUNK:  # a tag this long is itself absurd: no need to keep it whole
            yield tail
            tail = b""
        yield data[:cut]
    yield tail


# Only cells have r="A1"-like attributes.  The space-led patterns let the regex engine skip
# ahead by a literal (twice as fast); another whitespace before r= switches to the \s ones.
_REF_COLUMNS = re.compile(rb' r="([A-Z]{1,8})[0-9]')
_REF_ROWS = re.compile(rb' r="[A-Z]{1,8}([0-9]{1,12})"')
_REF_COLUMNS_ANY = re.compile(rb'\sr="([A-Z]{1,8})[0-9]')
_REF_ROWS_ANY = re.compile(rb'\sr="[A-Z]{1,8}([0-9]{1,12})"')
_CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")
_ROW_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s/>]")
_ROW_BLOCK = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:)?row\b[^>]*>(.*?)</(?:[A-Za-z_][\w.-]*:)?row>", re.DOTALL
)
_SI_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s/>]")


def _count(piece: bytes, tag: bytes, pattern: re.Pattern[bytes]) -> int:
    """About how many ``tag`` elements ``piece`` holds, never fewer: ``<c`` also counts the
    few ``<col>``/``<cfRule>`` elements.  The regex is used when the XML has a namespace
    prefix (``<x:c ...>``)."""
    n = piece.count(b"<" + tag)
    if n == 0 and b":" + tag in piece:
        return len(pattern.findall(piece))
    return n


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def _check_worksheet(chunks: Iterator[bytes], where: str, limits: Limits) -> None:
    """Bound the rectangle a reader allocates: from the first to the last cell reference, and
    for cells written without a reference (placed one after the other), by the widest row
    and the number of rows."""
    columns: set[bytes] = set()
    rows: set[bytes] = set()
    cells = row_tags = widest = 0
    for piece in _tags(chunks, b"row>"):
        odd = b'\nr="' in piece or b'\tr="' in piece or b'\rr="' in piece
        letters = (_REF_COLUMNS_ANY if odd else _REF_COLUMNS).findall(piece)
        columns.update(letters)
        rows.update((_REF_ROWS_ANY if odd else _REF_ROWS).findall(piece))
        in_piece = _count(piece, b"c", _CELL_TAG)
        cells += in_piece
        row_tags += _count(piece, b"row", _ROW_TAG)
        check_cells(where, "has", cells, limits)
        if in_piece > len(letters):  # rare: measure each row's width
            for block in _ROW_BLOCK.finditer(piece):
                widest = max(widest, len(_CELL_TAG.findall(block.group(1))))
    first_col = last_col = first_row = last_row = 1
    if columns:
        numbers = [_column_number(c) for c in columns]
        first_col, last_col = min(numbers), max(numbers)
        row_numbers = [int(r) for r in rows]
        first_row, last_row = min(row_numbers), max(row_numbers)
    width = max(last_col - first_col + 1, widest)
    check_columns(where, width, limits)
    height = max(last_row - first_row + 1, row_tags)
    check_cells(where, "has a used range of", height * width, limits)


_ODS_TOKEN = re.compile(
    rb"<table:table-row\b([^>]*)>|</table:table-row>|<table:table(?=[\s>])[^>]*>"
    rb"|<table:(?:covered-)?table-cell\b([^>]*?)(/?)>"
)
_ROWS_REPEATED = re.compile(rb'number-rows-repeated="(\d+)"')
_COLS_REPEATED = re.compile(rb'number-columns-repeated="(\d+)"')


def _check_ods_content(chunks: Iterator[bytes], where: str, limits: Limits) -> None:
    """Bound each table by its last non-empty cell (trailing empty repeats cost nothing)."""
    row = height = width = 0
    row_repeat = 1
    column = last_filled = 0
    for piece in _tags(chunks):
        for match in _ODS_TOKEN.finditer(piece):
            text = match.group(0)
            if text.startswith(b"<table:table-row"):
                repeat = _ROWS_REPEATED.search(match.group(1))
                row_repeat = int(repeat.group(1)) if repeat else 1
                column = last_filled = 0
            elif text == b"</table:table-row>":
                if last_filled:
                    height = row + min(row_repeat, 1 << 20)
                    width = max(width, last_filled)
                row += row_repeat
            elif text.startswith(b"<table:table ") or text == b"<table:table>":
                row = 0
            else:
                repeat = _COLS_REPEATED.search(match.group(2) or b"")
                span = int(repeat.group(1)) if repeat else 1
                column += span
                attrs = match.group(2) or b""
                if not match.group(3) or b"value-type" in attrs:  # a cell with content
                    last_filled = column
                    check_columns(where, last_filled, limits)
                    check_cells(where, "has a used range of", height * width, limits)
    check_columns(where, width, limits)
    check_cells(where, "has a used range of", height * width, limits)


def check_workbook(path: Path, fmt: str, name: str, limits: Limits) -> None:
    """Refuse an XLSX/XLSM/ODS whose parts would inflate or allocate beyond ``limits``."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            declared = sum(i.file_size for i in infos)
            if declared > limits.max_uncompressed:
                raise _inflated(name, declared, limits)
            budget = [0]
            for info in infos:
                part = info.filename
                if fmt == "ods" and part == "content.xml":
                    _check_ods_content(_stream(archive, info, budget, name, limits), name, limits)
                elif part.startswith("xl/worksheets/") and part.endswith(".xml"):
                    where = f"{name} ({part.rsplit('/', 1)[-1].removesuffix('.xml')})"
                    _check_worksheet(_stream(archive, info, budget, name, limits), where, limits)
                elif part == "xl/sharedStrings.xml":
                    strings = 0
                    for piece in _tags(_stream(archive, info, budget, name, limits)):
                        strings += len(_SI_TAG.findall(piece))
                    check_cells(name, "has a shared-string table of", strings, limits)
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
    ) as exc:
        raise InputError(
            f"{name}: is a corrupt or truncated ZIP/Excel file, or one whose parts are larger "
            f"than its directory says ({exc})",
            hint="open it in Excel or LibreOffice and save it again",
        ) from exc


def read_capped(path: Path, name: str, limits: Limits) -> bytes:
    """All bytes of ``path``, refusing (without reading on) past ``limits.max_bytes``."""
    cap = limits.max_bytes
    try:
        with path.open("rb") as handle:
            # read(n) allocates n bytes up front: ask for the size the file says it has
            size = min(os.fstat(handle.fileno()).st_size, cap)
            chunks = [handle.read(size + 1)] if size else []
            total = sum(map(len, chunks))
            while total <= cap and (chunk := handle.read(1 << 20)):  # grown, or /proc-like
                chunks.append(chunk)
                total += len(chunk)
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from exc
    if total > cap:
        raise file_too_big(name, limits)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def file_too_big(name: str, limits: Limits) -> InputError:
    """The refusal of an input larger than ``limits.max_bytes``."""
    return too_big(
        name,
        f"is larger than {human(limits.max_bytes)}",
        "--max-file-size",
        human(DEFAULT_LIMITS.max_bytes),
    )
