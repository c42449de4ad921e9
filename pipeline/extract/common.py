"""Pieces every reader shares: the result record, header detection, column naming, finishing.

Every reader ends with :func:`finish`: it receives a grid of text columns (positional, one per
column of the source), the header names and the row number of the first data row, and returns
an :class:`Extracted` with empty strings turned into nulls, trailing empty rows cut, fully empty
rows dropped and counted, and the three source-position columns appended.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from contactpipe.frames import SRC_FILE, SRC_ROW, SRC_SHEET, is_reserved

HEADER_SAMPLE_ROWS = 30
"""How many rows from the top are examined to find the header row."""

READ_WARNING = "__read_warning"
"""Reserved column of an extracted frame: ``;``-joined codes of what reading changed in the
row (null for most rows); :data:`READ_WARNING_MSG` holds the matching messages."""
READ_WARNING_MSG = "__read_warning_msg"

EXTRACT_CODES: dict[str, str] = {
    "CONTROL_CHARS_REMOVED": "control characters (NUL bytes...) were removed from the row",
    "ENCODING_REPAIRED": "bytes not valid in the file's declared encoding (UTF-8 BOM) were "
    "replaced by U+FFFD in the row",
}
"""Warning codes the readers give (kept rows stay contacts; the row is listed in
warnings.csv)."""

ReadWarnings = pl.Series | None
"""Per grid row: null, or ``CODE<TAB>message`` lines joined by newlines."""

_NUMBER_LIKE = re.compile(r"^[\s+\-(]*\d[\d\s.,:/()\-]*$")
_PHONE_CELL = re.compile(r"^\s*(?:\+|00)?[0-9][0-9\s().\-/]{5,22}\s*$")

_DATE_CELL = re.compile(r"^\s*(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b")

NO_HEADER = -1
""":func:`find_header`'s answer for a table without a header row (its first row is data)."""


def _phone_cell(cell: str | None) -> bool:
    """A cell holding a phone number (7-15 digits): a header row never has one."""
    if cell is None or not _PHONE_CELL.match(cell) or _DATE_CELL.match(cell):
        return False
    return 7 <= sum(ch.isdigit() for ch in cell) <= 15


@dataclass(frozen=True)
class Extracted:
    """One sheet (or one whole text/columnar file) read into a frame of text columns."""

    frame: pl.DataFrame
    """User columns (``pl.String``, original header text, deduplicated) + SRC_FILE/SHEET/ROW."""
    source_file: str
    """File path as given, for reports."""
    sheet: str | None
    """Sheet name for spreadsheets, ``None`` for the other formats."""
    format: str
    """``csv``, ``xlsx``, ``xlsm``, ``xls``, ``ods``, ``parquet``, ``json`` or ``ndjson``."""
    header_row: int
    """Row number of the header as a person sees it (0 when the format has no header row)."""
    rows_read: int
    """Data rows read, including empty ones (trailing empty rows are not counted)."""
    empty_rows: int
    """Data rows that were entirely empty: dropped from ``frame``, counted here."""
    encoding: str | None = None
    """Detected text encoding (text formats only)."""
    delimiter: str | None = None
    """Detected delimiter (text formats only)."""
    columns: tuple[str, ...] = ()
    """User column names, in order."""
    number_cells: pl.DataFrame | None = None
    """Boolean columns named like user columns, row-aligned with ``frame``: True where a
    ``LONG_DIGITS`` value was a *number* (spreadsheet number cell, JSON number, Parquet
    numeric column), whose text cannot have held a ``+``.  None when there is none; always
    None for CSV/TSV/TXT, which have no types."""


LONG_DIGITS = r"^[1-9][0-9]{6,}$"
"""A digit-only value that could be a phone number written without its ``+``."""


def with_number_cells(result: Extracted, numbers: dict[str, pl.Series]) -> Extracted:
    """``result`` with ``number_cells`` from per-column masks over the *source* rows.

    ``numbers``: user column -> Boolean series, element ``i`` for the source row numbered
    ``i + 1`` (True: a number).  Kept only where the text is ``LONG_DIGITS``; columns without
    such a cell are left out."""
    frame = result.frame
    index = (frame.get_column(SRC_ROW) - 1).cast(pl.UInt32)
    masks = {
        c: (m.fill_null(False).gather(index) & frame.get_column(c).str.contains(LONG_DIGITS))
        .fill_null(False)
        .alias(c)
        for c, m in numbers.items()
        if c in frame.columns
    }
    masks = {c: m for c, m in masks.items() if m.any()}
    return dataclasses.replace(
        result, number_cells=pl.DataFrame(list(masks.values())) if masks else None
    )


def _blank(cell: str | None) -> bool:
    return cell is None or not cell.strip()


def find_header(rows: Sequence[Sequence[str | None]]) -> int | None:
    """Index of the header row among the first rows of a sheet or text file.

    Heuristic (same for spreadsheets and text files), over the first
    :data:`HEADER_SAMPLE_ROWS` rows: let ``w`` be the largest number of non-empty cells in
    any row.  The header is the first row that has at least half as many non-empty cells as
    ``w`` (and at least 2 when ``w >= 2``) and whose non-empty cells are mostly (>= 50 %) text,
    i.e. do not look like numbers, phone numbers or dates.  So a one-cell title such as
    "Contacts export — March" and blank rows above the real header are skipped.  A row with a
    phone number in it is data, never a header.  When no row qualifies, the first non-empty row
    is the header, unless it holds a phone number: then the table has no header row and
    :data:`NO_HEADER` is returned (a plain list of numbers, a WhatsApp sender workbook).
    Returns ``None`` when every sampled row is empty.
    """
    sample = rows[:HEADER_SAMPLE_ROWS]
    counts = [sum(not _blank(c) for c in row) for row in sample]
    widest = max(counts, default=0)
    if widest == 0:
        return None
    need = max(2, math.ceil(widest / 2)) if widest >= 2 else 1
    for index, (row, count) in enumerate(zip(sample, counts, strict=True)):
        if count < need:
            continue
        filled = [c for c in row if not _blank(c)]
        if any(_phone_cell(c) for c in filled):
            continue
        texty = sum(not _NUMBER_LIKE.match(c) for c in filled if c is not None)
        if texty * 2 >= len(filled):
            return index
    first = next(i for i, count in enumerate(counts) if count)
    return NO_HEADER if any(_phone_cell(c) for c in sample[first]) else first


def column_names(header: Sequence[str | None]) -> list[str]:
    """User column names from header cells: blanks generated, duplicates suffixed.

    A blank (or merged-away) header cell in position ``i`` (1-based) becomes ``column_i``;
    a repeated name gets ``_2``, ``_3``... (``Phone``, ``Phone_2``).  Leading underscores are
    removed from a name that would collide with the pipeline's reserved ``__`` columns.
    A header ``*`` or ``^...$`` (which polars would take for a wildcard or a regular
    expression) is quoted: ``'*'``.  Names are otherwise kept exactly as written (not
    trimmed).
    """
    names: list[str] = []
    seen: set[str] = set()
    for position, cell in enumerate(header, start=1):
        name = f"column_{position}" if _blank(cell) else str(cell)
        if is_reserved(name):
            name = name.lstrip("_") or f"column_{position}"
        if name == "*" or (name.startswith("^") and name.endswith("$")):
            name = f"'{name}'"  # polars reads these as "every column" / a regex: quote them
        base, n = name, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        names.append(name)
    return names


def _blank_expr(column: str) -> pl.Expr:
    return pl.col(column).is_null() | pl.col(column).str.contains(r"^\s*$")


def empty_mask(frame: pl.DataFrame, columns: Sequence[str]) -> pl.Series:
    """Boolean series: True for a row whose ``columns`` are all null or whitespace-only.

    Fast on big frames: only rows that are blank in the fullest column are checked further.
    """
    if not columns or frame.height == 0:
        return pl.Series("empty", [True] * frame.height, dtype=pl.Boolean)
    fullest = min(columns, key=lambda c: frame.get_column(c).null_count())
    candidates = frame.select(_blank_expr(fullest)).to_series().arg_true()
    mask = pl.Series("empty", [False] * frame.height, dtype=pl.Boolean)
    if len(candidates):
        subset = frame[candidates].select(pl.all_horizontal([_blank_expr(c) for c in columns]))
        mask = mask.scatter(candidates, subset.to_series())
    return mask


def finish(
    grid: pl.DataFrame,
    header: Sequence[str | None],
    *,
    first_row: int,
    source: str,
    sheet: str | None,
    fmt: str,
    header_row: int,
    encoding: str | None = None,
    delimiter: str | None = None,
    row_numbers: pl.Series | None = None,
    warnings: ReadWarnings = None,
) -> Extracted:
    """Turn a positional grid of text columns into an :class:`Extracted`.

    ``grid`` holds the data rows only (below the header), all columns ``pl.String`` and in
    source order; ``header`` holds one cell per column.  Data row ``i`` (0-based) gets row
    number ``first_row + i`` unless ``row_numbers`` gives them explicitly.  Columns with a
    blank header and no value at all are dropped (the trailing ``,,,`` of many exports).
    ``warnings`` (one per data row, see :data:`ReadWarnings`) become the
    :data:`READ_WARNING` / :data:`READ_WARNING_MSG` columns.
    """
    width = grid.width
    header = list(header)[:width] + [None] * (width - len(header))
    grid = grid.select(
        pl.col(old).cast(pl.String).alias(f"c{i}") for i, old in enumerate(grid.columns)
    )
    keep = [
        i
        for i in range(width)
        if not _blank(header[i]) or grid.get_column(f"c{i}").null_count() < grid.height
    ]
    names = column_names(header)
    grid = grid.select(
        pl.when(pl.col(f"c{i}").str.len_bytes() == 0)
        .then(None)
        .otherwise(pl.col(f"c{i}"))
        .alias(names[i])
        for i in keep
    )
    user = [names[i] for i in keep]
    if row_numbers is None:
        rows = pl.int_range(first_row, first_row + grid.height, dtype=pl.Int64, eager=True)
    else:
        rows = row_numbers.cast(pl.Int64)
    empty = empty_mask(grid, user)
    grid = grid.with_columns(rows.alias(SRC_ROW), empty.alias("__empty"))
    non_empty_positions = (~empty).arg_true()
    height = int(non_empty_positions[-1]) + 1 if len(non_empty_positions) else 0
    grid = grid.head(height)
    empty_rows = int(grid.get_column("__empty").sum())
    extra: list[pl.Expr] = []
    if warnings is not None:
        grid = grid.with_columns(warnings.head(grid.height).alias("__w"))
        lines = pl.col("__w").str.split("\n")
        extra = [
            lines.list.eval(pl.element().str.split("\t").list.first())
            .list.join(";")
            .alias(READ_WARNING),
            lines.list.eval(pl.element().str.split("\t").list.last())
            .list.join("; ")
            .alias(READ_WARNING_MSG),
        ]
    frame = grid.filter(~pl.col("__empty")).select(
        *user,
        pl.lit(source, dtype=pl.String).alias(SRC_FILE),
        pl.lit(sheet, dtype=pl.String).alias(SRC_SHEET),
        pl.col(SRC_ROW),
        *extra,
    )
    return Extracted(
        frame=frame,
        source_file=source,
        sheet=sheet,
        format=fmt,
        header_row=header_row,
        rows_read=height,
        empty_rows=empty_rows,
        encoding=encoding,
        delimiter=delimiter,
        columns=tuple(user),
    )


def series_to_text(series: pl.Series) -> pl.Series:
    """Render a typed column as text, the way the rest of the pipeline expects it.

    * floats: integral values as integer text (``22997123456.0`` -> ``"22997123456"``, exact
      up to 1e18), others as the shortest round-trip repr (``0.1`` -> ``"0.1"``);
    * integers and decimals: their digits; booleans: ``"true"`` / ``"false"``;
    * dates: ``YYYY-MM-DD``; datetimes: ``YYYY-MM-DD`` at midnight, otherwise
      ``YYYY-MM-DD HH:MM:SS`` (fractional seconds kept when present); time-only spreadsheet
      cells (a date before 1900): ``HH:MM:SS``; times and durations: ``HH:MM:SS``;
    * lists of scalars: items joined with ``", "``; structs and nested lists: compact JSON.
    """
    dtype = series.dtype
    name = series.name
    if dtype == pl.String:
        return series
    if dtype == pl.Null:
        return series.cast(pl.String)
    if dtype.is_float():
        v = pl.col(name)
        integral = v.is_finite() & (v == v.floor()) & (v.abs() < 1e18)
        as_int = v.cast(pl.Int64, strict=False).cast(pl.String)
        expr = pl.when(integral).then(as_int).otherwise(v.cast(pl.String))
        return series.cast(pl.Float64).to_frame().select(expr).to_series()
    if dtype == pl.Boolean:
        return series.replace_strict({True: "true", False: "false"}, return_dtype=pl.String)
    if isinstance(dtype, pl.Datetime):
        v = pl.col(name)
        expr = (
            pl.when(v.dt.year() < 1900)
            .then(v.dt.strftime("%H:%M:%S"))
            .when(v.dt.time() == pl.time(0, 0, 0))
            .then(v.dt.strftime("%Y-%m-%d"))
            .when(v.dt.microsecond() == 0)
            .then(v.dt.strftime("%Y-%m-%d %H:%M:%S"))
            .otherwise(v.dt.strftime("%Y-%m-%d %H:%M:%S%.f"))
        )
        return series.to_frame().select(expr).to_series()
    if dtype == pl.Date:
        return series.dt.strftime("%Y-%m-%d")
    if dtype == pl.Time:
        return series.dt.strftime("%H:%M:%S")
    if isinstance(dtype, pl.Duration):
        return pl.Series(name, [_duration(s) for s in series.to_list()], dtype=pl.String)
    if isinstance(dtype, (pl.List, pl.Array)) and not dtype.inner.is_nested():
        items = series.cast(pl.List(dtype.inner)).list.eval(pl.element().cast(pl.String))
        return items.list.join(", ")
    if isinstance(dtype, pl.Struct):
        v = pl.col(name)
        return series.to_frame().select(pl.when(v.is_not_null()).then(v.struct.json_encode()))[name]
    if dtype.is_nested():
        return pl.Series(name, [_json(v) for v in series.to_list()], dtype=pl.String)
    return series.cast(pl.String)


def _duration(value: dt.timedelta | None) -> str | None:
    if value is None:
        return None
    seconds = int(value.total_seconds())
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _json(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


OWN_OUTPUT_COLUMNS = frozenset({"phone", "phone_ext", "custom_fields"})
"""Columns that mark contactpipe's own ``contacts.csv`` / ``contacts.parquet``."""


def own_output_as_input(result: Extracted) -> Extracted:
    """Read contactpipe's own contacts file back without loss.

    Its ``phone_ext`` goes back into the phone cell as ``;ext=N`` (which the phone cleaner
    splits off again) and its ``custom_fields`` JSON object becomes one ``custom.<key>``
    column per key (how the mapping reads custom fields), so re-validating a report keeps
    both.  A file without all three columns, or whose ``custom_fields`` cells are not JSON
    objects, is left unchanged."""
    if not set(result.columns) >= OWN_OUTPUT_COLUMNS:
        return result
    frame = result.frame
    decoded: list[dict[str, Any]] = []
    for cell in frame.get_column("custom_fields").to_list():
        if cell is None:
            decoded.append({})
            continue
        try:
            value = json.loads(cell)
        except (ValueError, RecursionError):
            return result
        if not isinstance(value, dict):
            return result
        decoded.append(value)
    keys: dict[str, None] = {}
    for value in decoded:
        keys.update(dict.fromkeys(value))
    present = set(result.columns)
    custom = {
        f"custom.{k}": [_custom_text(v.get(k)) for v in decoded]
        for k in keys
        if f"custom.{k}" not in present
    }
    phone, ext = pl.col("phone"), pl.col("phone_ext")
    frame = frame.with_columns(
        pl.when(phone.is_not_null() & ext.is_not_null())
        .then(pl.concat_str([phone, pl.lit(";ext="), ext]))
        .otherwise(phone)
        .alias("phone"),
        *(pl.Series(name, values, dtype=pl.String) for name, values in custom.items()),
    )
    columns = [c for c in result.columns if c not in ("phone_ext", "custom_fields")]
    columns += list(custom)
    reserved = [c for c in frame.columns if c not in present and c not in custom]
    frame = frame.select(*columns, *reserved)
    return dataclasses.replace(result, frame=frame, columns=tuple(columns))


def _custom_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
