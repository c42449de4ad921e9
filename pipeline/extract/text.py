"""CSV / TSV / TXT: encoding and delimiter detection, then polars' native CSV reader.

Encoding: a BOM decides (UTF-8, UTF-16 LE/BE); without one, UTF-16 is recognised by its NUL
bytes, then UTF-8 is tried, then cp1252 (Windows Excel's "CSV"), then latin-1 for bytes cp1252
leaves undefined.  Anything not UTF-8 is transcoded to UTF-8 bytes before polars sees it.  A
UTF-8 BOM is a promise: a byte sequence that is not valid UTF-8 in such a file is replaced by
U+FFFD and the rows holding one get the warning ``ENCODING_REPAIRED``; the rest of the file
keeps its accents.

Control characters: stray NUL bytes and other C0 controls (tab, line ends excepted) inside a
text file are removed from the cells, and the rows that held one get the warning
``CONTROL_CHARS_REMOVED``.  A file made mostly of them (more than 5 % of its first 64 KiB) is
binary and refused.

Delimiter: among ``,`` ``;`` tab and ``|``, the one whose count outside quotes is the same on
the most sampled records (then the larger count, then that order) wins.  A first line
``sep=;`` (Excel's hint) is obeyed and not counted as a row.

Rows are numbered as Excel shows the file: one row per *record* (a quoted field with embedded
newlines is still one row), the header is the row it is on (1 for a plain CSV), and blank lines
are rows too: inside the data they count as empty rows; trailing ones are ignored.

Ragged rows: a record with fewer fields than the header is padded with nulls; a record with
more fields keeps the extra values in generated columns ``column_N``.  Both cases are read
without error.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from contactpipe.errors import InputError
from contactpipe.extract.common import (
    HEADER_SAMPLE_ROWS,
    NO_HEADER,
    Extracted,
    ReadWarnings,
    find_header,
    finish,
)
from contactpipe.extract.detect import describe
from contactpipe.extract.limits import (
    DEFAULT_LIMITS,
    TEXT_CELLS_FACTOR,
    Limits,
    check_columns,
    file_too_big,
    read_capped,
    too_big,
)

DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 1 << 16
_MAX_SAMPLE = 64 << 20
_SAMPLE_RECORD = 1 << 20
_DETECT_CHARS = 16 << 10
_CHUNK = 1 << 23
_SEP_HINT = re.compile(rb"^sep=([,;\t|])[ \t]*\r?\n")
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r", "\f", "\v", "\x1a"}
CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
"""Characters removed from text cells (tab, line feed and carriage return are kept)."""
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_BINARY_SHARE = 0.05


REPAIRED = "utf-8-sig (repaired)"


class _NotUtf8(Exception):
    """Raised when bytes assumed to be UTF-8 (the sample was) turn out not to be."""


def decode(raw: bytes, name: str, *, trust_sample: bool = False) -> tuple[bytes, str]:
    """UTF-8 bytes (without BOM) of ``raw`` and the name of the encoding it was in.

    With ``trust_sample``, UTF-8 is assumed when the first 64 KiB are valid UTF-8 and the
    rest is left for polars to validate (it raises on invalid UTF-8, see :func:`read_text`).
    A UTF-8 BOM keeps the file UTF-8: invalid sequences become U+FFFD and the encoding is
    reported as ``utf-8-sig (repaired)``.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        body = raw[3:]
        if _is_utf8(body[:_SAMPLE_BYTES] if trust_sample else body, final=not trust_sample):
            return body, "utf-8-sig"
        return body.decode("utf-8", "replace").encode("utf-8"), REPAIRED
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if raw.startswith(bom):
            return _transcode(raw[2:], codec, name), codec
    guessed = _utf16_without_bom(raw[:4096])
    if guessed:
        return _transcode(raw, guessed, name), guessed
    if _is_utf8(raw[:_SAMPLE_BYTES] if trust_sample else raw, final=not trust_sample):
        return raw, "utf-8"
    try:
        return raw.decode("cp1252").encode("utf-8"), "cp1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1").encode("utf-8"), "latin-1"


def _is_utf8(data: bytes, *, final: bool = True) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), _CHUNK):
            last = final and start + _CHUNK >= len(data)
            decoder.decode(view[start : start + _CHUNK], final=last)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(head: bytes) -> str | None:
    if len(head) < 8:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _transcode(data: bytes, codec: str, name: str) -> bytes:
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: starts like {codec.upper()} text but byte {exc.start} is not valid {codec}"
        ) from exc


def _check_text(sample: str, name: str, encoding: str) -> None:
    if not sample.strip():
        raise InputError(f"{name}: is empty")
    controls = sum(1 for ch in sample if ch in _CONTROL)
    if controls > max(16, len(sample) * _BINARY_SHARE):
        raise InputError(
            f"{name}: is not a text file (binary content) and not a known spreadsheet format",
            hint="CSV/TSV/TXT, XLSX, XLSM, XLS, ODS, Parquet, JSON and NDJSON are supported",
        )
    if encoding in ("cp1252", "latin-1") and sum(ch > "\x7f" for ch in sample) > len(sample) * 0.3:
        raise InputError(
            f"{name}: does not look like text in a supported encoding "
            "(UTF-8, UTF-16 or Windows-1252/Latin-1)",
            hint="export the file again as CSV UTF-8",
        )


def split_records(data: bytes, at_eof: bool) -> list[tuple[int, bytes]]:
    """``(offset, bytes)`` of each complete CSV record in ``data`` (quote-aware).

    A record ends at a line end outside double quotes.  When ``at_eof`` is false the last,
    possibly incomplete, record is left out.
    """
    records: list[tuple[int, bytes]] = []
    start = position = 0
    in_quotes = False
    for line in data.splitlines(keepends=True):
        position += len(line)
        if line.count(b'"') % 2:
            in_quotes = not in_quotes
        if not in_quotes and line.endswith((b"\n", b"\r")):
            records.append((start, data[start:position]))
            start = position
    if at_eof and start < len(data):
        records.append((start, data[start:]))
    return records


def _count_outside_quotes(record: str, delimiter: str) -> int:
    count, in_quotes = 0, False
    for ch in record:
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == delimiter and not in_quotes:
            count += 1
    return count


def detect_delimiter(records: list[str], default: str = ",") -> str:
    """The delimiter used most consistently across ``records`` (see module docstring)."""
    lines = [r for r in records if r.strip()][:50]
    best: tuple[float, int, int] | None = None
    choice = default
    for rank, delimiter in enumerate(DELIMITERS):
        counts = [_count_outside_quotes(line, delimiter) for line in lines]
        nonzero = [c for c in counts if c]
        if not nonzero:
            continue
        mode, _ = max(Counter(nonzero).items(), key=lambda item: (item[1], item[0]))
        score = (counts.count(mode) / len(counts), mode, -rank)
        if best is None or score > best:
            best, choice = score, delimiter
    return choice


def _fields(record: str, delimiter: str) -> list[str | None]:
    try:
        row = next(csv.reader(io.StringIO(record), delimiter=delimiter), [])
    except csv.Error:
        row = record.rstrip("\r\n").split(delimiter)
    return [cell or None for cell in row]


def _python_parse(text: str, delimiter: str, name: str, first_row: int) -> pl.DataFrame:
    """Fallback for what polars refuses (longer rows, stray quotes): Python's csv module.

    Strict about a quote left open at the end of the file (which would silently swallow
    every following row into one cell): that is an :class:`InputError` naming the row.
    """
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 28))
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        loose = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        raise InputError(
            f'{name}: row {first_row + len(loose) - 1} opens a quoted field (") that is never '
            f"closed ({exc})",
            hint="fix or remove the unbalanced double quote in that row",
        ) from exc
    width = max((len(row) for row in rows), default=0)
    columns = {f"c{i}": [row[i] if i < len(row) else None for row in rows] for i in range(width)}
    return pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String))


def read_text(
    path: Path, *, header_row: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> Extracted:
    """Read one CSV/TSV/TXT file (see the module docstring for every rule)."""
    name = describe(path)
    raw = read_capped(path, name, limits)
    data, encoding = decode(raw, name, trust_sample=True)
    try:
        return _read(path, data, encoding, header_row, limits)
    except _NotUtf8:
        data, encoding = decode(raw, name)  # full check this time: cp1252 or latin-1
        return _read(path, data, encoding, header_row, limits)


def _read_grid(body: bytes, delimiter: str, name: str, first_row: int) -> pl.DataFrame:
    """Parse ``body`` (header record first) with polars, or with Python's csv when needed.

    An odd number of double quotes means a stray or unterminated quote: polars would either
    fail or swallow the rest of the file into one cell, so the strict Python parser decides.
    """
    if body.count(b'"') % 2 == 0:
        try:
            return pl.read_csv(
                body,
                has_header=False,
                infer_schema=False,
                separator=delimiter,
                quote_char='"',
                raise_if_empty=False,
                truncate_ragged_lines=False,
            )
        except Exception as exc:
            if "utf-8" in str(exc).lower():
                raise _NotUtf8 from exc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _NotUtf8 from exc
    return _python_parse(text, delimiter, name, first_row)


@dataclass(frozen=True)
class _Layout:
    """Where a text file's table is: its delimiter, its header record and its body."""

    data: bytes
    """The file's UTF-8 bytes, without a ``sep=`` hint line (Mac line ends made ``\n``)."""
    delimiter: str
    index: int
    """Record index of the header (:data:`NO_HEADER`: none, every record is data)."""
    body_start: int
    """Offset in ``data`` of the header record (of the first record when headerless)."""
    header_record: bytes
    """The header record's bytes (empty when headerless)."""

    @property
    def headerless(self) -> bool:
        return self.index == NO_HEADER

    @property
    def first_row(self) -> int:
        """Row number of the first data record."""
        return 1 if self.headerless else self.index + 2


def _layout(
    path: Path, data: bytes, encoding: str, header_row: int | None, limits: Limits
) -> _Layout:
    name = describe(path)
    _check_text(data[:_SAMPLE_BYTES].decode("utf-8", "ignore"), name, encoding)
    if b"\n" not in data[:_SAMPLE_BYTES] and b"\r" in data[:_SAMPLE_BYTES]:
        data = data.replace(b"\r", b"\n")  # classic Mac line ends
    delimiter: str | None = None
    hint = _SEP_HINT.match(data)
    if hint:
        delimiter = hint.group(1).decode()
        data = data[hint.end() :]
    want = max(HEADER_SAMPLE_ROWS, header_row or 0) + 1
    size = _SAMPLE_BYTES
    while True:
        at_eof = size >= len(data)
        records = split_records(data[:size], at_eof=at_eof)
        if len(records) >= want or at_eof:
            break
        if size >= _MAX_SAMPLE:  # a record of tens of MiB: sample what there is
            if not records:
                raise InputError(
                    f"{name}: its first line is longer than {_MAX_SAMPLE >> 20} MiB; "
                    "not a contact list"
                )
            break
        size *= 4
    # detection looks at the start of each record: a giant line costs no more than a short one
    texts = [record[:_SAMPLE_RECORD].decode("utf-8", "replace") for _, record in records]
    if delimiter is None:
        default = "\t" if path.suffix.lower() == ".tsv" else ","
        delimiter = detect_delimiter([t[:_DETECT_CHARS] for t in texts[:60]], default)
    sample = [_fields(t, delimiter) for t in texts[:HEADER_SAMPLE_ROWS]]
    check_columns(name, max((len(row) for row in sample), default=0), limits)
    if header_row == 0:  # --no-header
        index = NO_HEADER
    elif header_row is not None:
        if header_row < 1:
            raise InputError(f"{name}: header row must be 1 or more, not {header_row}")
        if header_row > len(records):
            raise InputError(f"{name}: header row {header_row} is past the end of the file")
        index = header_row - 1
    else:
        found = find_header(sample)
        if found is None:
            raise InputError(f"{name}: has no content in its first {len(sample)} rows")
        index = found
    if index == NO_HEADER or not records:
        return _Layout(data, delimiter, index, 0, b"")
    start, header = records[index]
    return _Layout(data, delimiter, index, start if index > 0 else 0, header)


def _read(
    path: Path, data: bytes, encoding: str, header_row: int | None, limits: Limits
) -> Extracted:
    name = describe(path)
    lay = _layout(path, data, encoding, header_row, limits)
    body = lay.data[lay.body_start :]
    _check_fields(body, lay.delimiter, name, limits)
    grid = _read_grid(body, lay.delimiter, name, 1 if lay.headerless else lay.index + 1)
    if grid.height == 0:
        raise InputError(f"{name}: is empty")
    check_columns(name, grid.width, limits)
    grid, warnings = _clean(grid, lay.data, encoding)
    return _finish(grid, lay, name, encoding, warnings)


def _finish(
    grid: pl.DataFrame,
    lay: _Layout,
    name: str,
    encoding: str,
    warnings: ReadWarnings,
    *,
    first_row: int | None = None,
) -> Extracted:
    """The grid of a body (header record first unless headerless) as an :class:`Extracted`;
    ``first_row``: the number of its first data row (default: the file's first)."""
    first_row = lay.first_row if first_row is None else first_row
    if lay.headerless:
        return finish(
            grid,
            [None] * grid.width,
            first_row=first_row,
            source=name,
            sheet=None,
            fmt="csv",
            header_row=0,
            encoding=encoding,
            delimiter=lay.delimiter,
            warnings=warnings,
        )
    header = list(grid.row(0))
    return finish(
        grid.slice(1),
        header,
        first_row=first_row,
        source=name,
        sheet=None,
        fmt="csv",
        header_row=lay.index + 1,
        encoding=encoding,
        delimiter=lay.delimiter,
        warnings=warnings.slice(1) if warnings is not None else None,
    )  # a header-only file gives 0 rows: a run with no contacts, not an error


def _check_fields(body: bytes, delimiter: str, name: str, limits: Limits) -> None:
    """Refuse a file of (mostly empty) fields that would cost far more parsed than on disk:
    delimiters and line ends, counted before parsing, bound the number of cells."""
    cap = limits.max_cells * TEXT_CELLS_FACTOR
    if len(body) <= cap:  # at least one byte per field: cannot be above
        return
    fields = body.count(delimiter.encode()) + body.count(b"\n") + 1
    if fields > cap:
        raise _too_many_fields(name, fields, limits)


def _too_many_fields(name: str, fields: int, limits: Limits) -> InputError:
    cap = limits.max_cells * TEXT_CELLS_FACTOR
    return too_big(
        name,
        f"has about {fields:,} fields, above the limit of {cap:,} for a text file "
        f"({TEXT_CELLS_FACTOR} x --max-cells)",
        "--max-cells",
        f"{DEFAULT_LIMITS.max_cells:,}",
    )


def _count_fields(path: Path, delimiter: str) -> int:
    """Delimiters and line ends of the whole file, + 1 (what :func:`_check_fields` counts),
    read 8 MiB at a time."""
    sep = delimiter.encode()
    fields = 1
    with path.open("rb") as handle:
        while block := handle.read(8 << 20):
            fields += block.count(sep) + block.count(b"\n")
    return fields


def _clean(grid: pl.DataFrame, data: bytes, encoding: str) -> tuple[pl.DataFrame, ReadWarnings]:
    """Remove control characters from every cell; flag the rows that held one, and in a
    repaired UTF-8 file the rows holding a replacement character (U+FFFD)."""
    # the bytes of CONTROL_CHARS deleted: a shorter copy means the file has one (four times
    # quicker than a regex search of the bytes, 0.08 against 0.36 s for 73 MB)
    controls = len(data.translate(None, _CONTROL_BYTES)) != len(data)
    repaired = encoding == REPAIRED
    if not controls and not repaired:
        return grid, None
    columns = grid.columns
    flags = []
    if controls:
        had = pl.any_horizontal(pl.col(c).str.contains(CONTROL_CHARS) for c in columns)
        flags.append(
            pl.when(had.fill_null(False)).then(
                pl.lit(
                    "CONTROL_CHARS_REMOVED\tcontrol characters (such as NUL bytes) were "
                    "removed from this row"
                )
            )
        )
    if repaired:
        bad = pl.any_horizontal(pl.col(c).str.contains("\ufffd", literal=True) for c in columns)
        flags.append(
            pl.when(bad.fill_null(False)).then(
                pl.lit(
                    "ENCODING_REPAIRED\tbytes that are not valid UTF-8 (the file starts with "
                    "a UTF-8 BOM) were replaced by \ufffd in this row"
                )
            )
        )
    joined = pl.concat_str(flags, separator="\n", ignore_nulls=True)
    both = grid.select(pl.when(joined != "").then(joined).alias("w")).to_series()
    if controls:
        grid = grid.with_columns(pl.col(c).str.replace_all(CONTROL_CHARS, "") for c in columns)
    return grid, both


# -- batches: the same reading, a slice of records at a time (issue 16) ---------------------


class NotStreamable(Exception):
    """This file must be read whole for the answers to be the same: not UTF-8 throughout,
    classic Mac line ends, or batches that disagree on the columns (ragged rows, a blank
    header column with values in some batches only)."""


def _record_end(data: bytes) -> int:
    """Offset just past the last complete record of ``data`` (which starts at a record
    boundary), 0 when there is none: the last line end outside double quotes."""
    end = len(data)
    while True:
        nl = data.rfind(b"\n", 0, end)
        if nl < 0:
            return 0
        if data.count(b'"', 0, nl) % 2 == 0:
            return nl + 1
        end = nl


def _record_slices(handle: object, first: bytes, batch_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """``(bytes, last)``: consecutive slices of whole records, about ``batch_bytes`` each,
    the first starting with ``first`` (what was already read)."""
    read = handle.read  # type: ignore[attr-defined]
    carry = first
    pending: bytes | None = None
    while True:
        block = read(batch_bytes)
        data = carry + block if carry else block
        if not block:
            if pending is not None:
                if data:
                    yield pending, False
                    yield data, True
                else:
                    yield pending, True
            elif data:
                yield data, True
            return
        cut = _record_end(data)
        if cut == 0:  # one record longer than a batch: read on
            carry = data
            continue
        if pending is not None:
            yield pending, False
        pending, carry = data[:cut], data[cut:]


def read_text_batches(
    path: Path,
    *,
    header_row: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    batch_bytes: int = 32 << 20,
    first_rows: int = 1000,
) -> Iterator[Extracted]:
    """Read one CSV/TSV/TXT file as :func:`read_text` does, about ``batch_bytes`` of records
    at a time, so that memory does not grow with the file.

    Each batch is an :class:`Extracted` of the same columns whose row numbers continue the
    previous batch's; ``rows_read`` and ``empty_rows`` count the batch's records (empty rows
    at the end of a batch that is not the last are counted as empty rows, as they would be
    inside the whole file).  The first batch holds at least ``first_rows`` data rows (or the
    whole file): the column mapping samples that many.  Raises :class:`NotStreamable` when
    the file has to be read whole for the same answers; the caller then reads it whole."""
    name = describe(path)
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from exc
    if size > limits.max_bytes:
        handle.close()
        raise file_too_big(name, limits)
    with handle:
        head = handle.read(_SAMPLE_BYTES)
        if head.startswith(b"\xef\xbb\xbf"):
            head, encoding = head[3:], "utf-8-sig"
        elif _is_utf8(head, final=len(head) < _SAMPLE_BYTES) and not _utf16_without_bom(
            head[:4096]
        ):
            encoding = "utf-8"
        else:
            raise NotStreamable(f"{name}: not UTF-8")
        if not _is_utf8(head, final=len(head) < _SAMPLE_BYTES):
            raise NotStreamable(f"{name}: not UTF-8")
        if b"\n" not in head and b"\r" in head:
            raise NotStreamable(f"{name}: classic Mac line ends")
        lay: _Layout | None = None
        columns: tuple[str, ...] | None = None
        row = 0
        cap = limits.max_cells * TEXT_CELLS_FACTOR
        held = b""
        for data, last in _record_slices(handle, head, max(batch_bytes, 1)):
            if lay is None and not last and (held + data).count(b"\n") < 2 * first_rows + 64:
                held += data  # the first batch holds the mapping's sample
                continue
            if held:
                data, held = held + data, b""
            if lay is None:
                lay = _layout(path, data, encoding, header_row, limits)
                body = lay.data[lay.body_start :]
                row = lay.first_row
                if size > cap:  # what _check_fields refuses in a whole file, counted first
                    fields = _count_fields(path, lay.delimiter)
                    if fields > cap:
                        raise _too_many_fields(name, fields, limits)
            else:
                body = lay.header_record + data
            try:
                grid = _read_grid(body, lay.delimiter, name, row - (0 if lay.headerless else 1))
            except _NotUtf8 as exc:
                raise NotStreamable(f"{name}: not UTF-8 throughout") from exc
            check_columns(name, grid.width, limits)
            records = grid.height - (0 if lay.headerless else 1)
            if columns is None and grid.height == 0:
                raise InputError(f"{name}: is empty")
            grid, warnings = _clean(grid, body, encoding)
            part = _finish(grid, lay, name, encoding, warnings, first_row=row)
            del grid, body, data, warnings  # not held while the caller works on the batch
            if columns is None:
                columns = part.columns
                if not last and part.frame.height < first_rows:
                    raise NotStreamable(f"{name}: first batch too small for the mapping sample")
            elif part.columns != columns:
                raise NotStreamable(f"{name}: batches disagree on the columns")
            if not last and part.rows_read < records:  # empty rows at the end of this batch
                part = replace(
                    part,
                    empty_rows=part.empty_rows + records - part.rows_read,
                    rows_read=records,
                )
            row += records
            yield part
