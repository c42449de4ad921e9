"""CSV / TSV / TXT: encoding and delimiter detection, then polars' native CSV reader.

Encoding: a BOM decides (UTF-8, UTF-16 LE/BE); without one, UTF-16 is recognised by its NUL
bytes, then UTF-8 is tried, then cp1252 (Windows Excel's "CSV"), then latin-1 for bytes cp1252
leaves undefined.  Anything not UTF-8 is transcoded to UTF-8 bytes before polars sees it.

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
from pathlib import Path

import polars as pl

from pipeline.errors import InputError
from pipeline.extract.common import (
    HEADER_SAMPLE_ROWS,
    NO_HEADER,
    Extracted,
    find_header,
    finish,
)
from pipeline.extract.detect import describe

DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 1 << 16
_CHUNK = 1 << 23
_SEP_HINT = re.compile(rb"^sep=([,;\t|])[ \t]*\r?\n")
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r", "\f", "\v", "\x1a"}


class _NotUtf8(Exception):
    """Raised when bytes assumed to be UTF-8 (the sample was) turn out not to be."""


def decode(raw: bytes, name: str, *, trust_sample: bool = False) -> tuple[bytes, str]:
    """UTF-8 bytes (without BOM) of ``raw`` and the name of the encoding it was in.

    With ``trust_sample``, UTF-8 is assumed when the first 64 KiB are valid UTF-8 and the
    rest is left for polars to validate (it raises on invalid UTF-8, see :func:`read_text`).
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        body = raw[3:]
        if _is_utf8(body[:_SAMPLE_BYTES] if trust_sample else body, final=not trust_sample):
            return body, "utf-8-sig"
        raw = body
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
    if "\x00" in sample or controls > max(2, len(sample) // 100):
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


def read_text(path: Path, *, header_row: int | None = None) -> Extracted:
    """Read one CSV/TSV/TXT file (see the module docstring for every rule)."""
    name = describe(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from exc
    data, encoding = decode(raw, name, trust_sample=True)
    try:
        return _read(path, data, encoding, header_row)
    except _NotUtf8:
        data, encoding = decode(raw, name)  # full check this time: cp1252 or latin-1
        return _read(path, data, encoding, header_row)


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


def _read(path: Path, data: bytes, encoding: str, header_row: int | None) -> Extracted:
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
        records = split_records(data[:size], at_eof=size >= len(data))
        if len(records) >= want or size >= len(data):
            break
        size *= 4
    texts = [record.decode("utf-8", "replace") for _, record in records]
    if delimiter is None:
        default = "\t" if path.suffix.lower() == ".tsv" else ","
        delimiter = detect_delimiter(texts[:60], default)
    sample = [_fields(t, delimiter) for t in texts[:HEADER_SAMPLE_ROWS]]
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
    if index == NO_HEADER:  # every row is data; columns are named column_1, column_2...
        grid = _read_grid(data, delimiter, name, 1)
        if grid.height == 0:
            raise InputError(f"{name}: is empty")
        return finish(
            grid,
            [None] * grid.width,
            first_row=1,
            source=name,
            sheet=None,
            fmt="csv",
            header_row=0,
            encoding=encoding,
            delimiter=delimiter,
        )
    body = data[records[index][0] :] if index else data
    grid = _read_grid(body, delimiter, name, index + 1)
    if grid.height == 0:
        raise InputError(f"{name}: is empty")
    header = list(grid.row(0))
    return finish(
        grid.slice(1),
        header,
        first_row=index + 2,
        source=name,
        sheet=None,
        fmt="csv",
        header_row=index + 1,
        encoding=encoding,
        delimiter=delimiter,
    )  # a header-only file gives 0 rows: a run with no contacts, not an error
