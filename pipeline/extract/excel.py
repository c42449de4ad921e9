"""XLSX / XLSM / XLS / ODS through fastexcel (calamine): every cell comes out as text.

Each sheet is loaded once as a grid of strings with fastexcel's ``dtypes="string"``, which
renders cells the way Excel shows them in the *General* format: a number cell holding
22997123456 becomes ``"22997123456"`` (never ``"22997123456.0"`` or ``"2.2997E+10"``), a text
cell stays exactly as typed (``"0612345678"``, ``"'+33…"``, ``"12.0"``, ``"=HYPERLINK(…)"``),
booleans become ``"true"``/``"false"``, formulas give their cached value and error cells
(``#DIV/0!``) become null.  ODS time cells (``17:30``), which the text load leaves empty, are
read as ``HH:MM:SS`` (``17:30:00``).

When the data holds numbers with decimals or date/time values, the sheet is loaded a second
time with typed columns, and every column whose cells are all numbers, all dates or all
booleans is re-rendered by :func:`contactpipe.extract.common.series_to_text`: shortest round-trip
decimals (``0.1``, ``0.3333333333333333``), dates as ``YYYY-MM-DD``, date-times as
``YYYY-MM-DD HH:MM:SS``, time-only cells as ``HH:MM:SS``.  In a column that mixes text with
numbers or dates, non-text cells keep the General rendering (up to ~10 significant digits for
decimals, ``YYYY-MM-DD HH:MM:SS`` for dates); integers, and so phone numbers, are exact in
both cases.

Row numbers are worksheet row numbers: title or blank rows above the header shift them.
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from contactpipe.errors import InputError
from contactpipe.extract.common import (
    HEADER_SAMPLE_ROWS,
    LONG_DIGITS,
    NO_HEADER,
    Extracted,
    column_names,
    find_header,
    finish,
    series_to_text,
    with_number_cells,
)
from contactpipe.extract.detect import describe
from contactpipe.extract.limits import DEFAULT_LIMITS, Limits, check_columns

if TYPE_CHECKING:
    import fastexcel

_NEEDS_TYPED = r"^-?\d*\.\d+$|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"


PREFETCH_MAX_BYTES = 256 << 20
"""Workbooks whose parts decompress to at most this many bytes have the number-cell load
(:func:`_with_number_cells`) of a sheet run in a second thread while the text load runs: the
two calamine parses of the sheet overlap on two cores.  Each load holds the sheet's cells while
it runs, so larger workbooks load one after the other, as before."""


class _NumberLoad:
    """A sheet loaded as booleans with coercion (a number or boolean cell gives a value, a text
    cell null), every column, by its own reader in a thread: started before the text load,
    collected by :func:`_with_number_cells`.  ``result()`` is None when the load failed, and
    the caller then loads what it needs itself."""

    def __init__(self, path: Path, sheet: str) -> None:
        self.sheet = sheet
        self._frame: pl.DataFrame | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        import fastexcel

        try:
            self._frame = _load_numbers(fastexcel.read_excel(str(path)), self.sheet)
        except Exception:  # the caller's own load reports what is wrong, if anything
            self._frame = None

    def result(self) -> pl.DataFrame | None:
        self._thread.join()
        return self._frame


def _load_numbers(reader: fastexcel.ExcelReader, sheet: str) -> pl.DataFrame:
    """Every column of ``sheet`` as booleans with coercion; row ``i`` is worksheet row
    ``i + 1`` and column ``__UNNAMED__{j}`` the ``j``-th of the text load's grid.

    Every column, not only the wanted ones: fastexcel's ``use_columns`` counts from column A
    while the grid starts at the sheet's first used column, so a table that starts in
    column B got the wrong columns; the parse of the sheet costs the same either way."""
    return reader.load_sheet(
        sheet, header_row=None, skip_rows=0, dtypes="boolean", dtype_coercion="coerce"
    ).to_polars()


def _prefetch_fits(path: Path, fmt: str) -> bool:
    """Whether holding a sheet's two loads at once costs little (:data:`PREFETCH_MAX_BYTES`
    of XML, or of file for XLS)."""
    try:
        if fmt == "xls":
            size = path.stat().st_size
        else:
            with zipfile.ZipFile(path) as archive:
                size = sum(i.file_size for i in archive.infolist())
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return size <= PREFETCH_MAX_BYTES


def _error_text(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _open(path: Path, fmt: str) -> fastexcel.ExcelReader:
    import fastexcel  # here: a run over CSV files never needs it

    try:
        return fastexcel.read_excel(str(path))
    except Exception as exc:
        raise InputError(
            f"{describe(path)}: cannot be read as {fmt.upper()}: corrupt, truncated or "
            f"not really {fmt.upper()} ({_error_text(exc)})",
            hint="open it in Excel or LibreOffice and save it again",
        ) from exc


def _load_grid(
    reader: fastexcel.ExcelReader, path: Path, sheet: str, fmt: str = "xlsx"
) -> tuple[pl.DataFrame, bool]:
    """All cells of ``sheet`` as text, row ``i`` (0-based) being worksheet row ``i + 1``."""
    try:
        loaded = reader.load_sheet(sheet, header_row=None, skip_rows=0, dtypes="string")
        grid = loaded.to_polars()
        if fmt == "ods":
            grid = _ods_times(reader, sheet, grid)
        return grid, loaded.visible == "visible"
    except Exception as exc:
        raise InputError(
            f"{describe(path)}, sheet {sheet!r}: cannot be read ({_error_text(exc)})"
        ) from exc


def _ods_times(reader: fastexcel.ExcelReader, sheet: str, grid: pl.DataFrame) -> pl.DataFrame:
    """ODS time cells (``office:value-type="time"``, e.g. 17:30) come out of the text load as
    nulls: fill them from a load that reads every cell as a duration, as ``HH:MM:SS``."""
    if grid.is_empty() or not any(grid.get_column(c).null_count() for c in grid.columns):
        return grid
    times = reader.load_sheet(
        sheet, header_row=None, skip_rows=0, dtypes="duration", dtype_coercion="coerce"
    ).to_polars()
    if times.shape != grid.shape:
        return grid
    fills = []
    for name, column in zip(grid.columns, times.columns, strict=True):
        series = times.get_column(column)
        if series.null_count() == series.len():
            continue
        text = series_to_text(series)
        fills.append(pl.coalesce(pl.col(name), pl.lit(text)).alias(name))
    return grid.with_columns(fills) if fills else grid


def _has_content(grid: pl.DataFrame) -> bool:
    return grid.height > 0 and any(
        grid.get_column(c).null_count() < grid.height for c in grid.columns
    )


def _resolve_sheet(names: list[str], wanted: str, path: Path) -> str:
    if wanted in names:
        return wanted
    folded = [n for n in names if n.casefold() == wanted.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    listing = ", ".join(repr(n) for n in names)
    raise InputError(
        f"{describe(path)}: no sheet named {wanted!r}; available sheets: {listing}",
        hint='use --sheet NAME with one of these, or --sheet "*" for all of them',
    )


def _typed_fix(
    reader: fastexcel.ExcelReader, sheet: str, header_index: int | None, data: pl.DataFrame
) -> pl.DataFrame:
    """Re-render homogeneous numeric/date columns from a typed load (see module docstring)."""
    flags = data.select(pl.any_horizontal(pl.all().str.contains(_NEEDS_TYPED).any()))
    if not flags.item():
        return data
    try:
        typed = reader.load_sheet(
            sheet, header_row=header_index, schema_sample_rows=None, dtype_coercion="coerce"
        ).to_polars()
    except Exception:
        return data  # the General rendering already loaded stays: still valid text
    if typed.width != data.width or typed.height > data.height:
        return data
    replaced = []
    for position, column in enumerate(typed.columns):
        series = typed.get_column(column)
        shape = _shape_of(series.dtype)
        if shape is None:
            continue
        text = series_to_text(series)
        padding = pl.Series([None] * (data.height - typed.height), dtype=pl.String)
        original = pl.col(data.columns[position])
        typed_text = pl.lit(pl.concat([text, padding]))
        replaced.append(
            pl.when(original.str.contains(shape))
            .then(typed_text)
            .otherwise(original)
            .alias(data.columns[position])
        )
    return data.with_columns(replaced) if replaced else data


def _shape_of(dtype: pl.DataType) -> str | None:
    """What fastexcel's General rendering of a cell of ``dtype`` looks like.

    Only cells with that shape are re-rendered from the typed load, so a boolean or a text
    cell that the typed load coerced into a number column keeps its own text.
    """
    if dtype.is_numeric():
        return r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$"
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?$"
    return None


def _extract(
    reader: fastexcel.ExcelReader,
    path: Path,
    fmt: str,
    sheet: str,
    grid: pl.DataFrame,
    header_row: int | None,
    numbers: _NumberLoad | None = None,
) -> Extracted:
    name = describe(path)
    if header_row == 0:  # --no-header
        index = NO_HEADER
    elif header_row is not None:
        if header_row < 1:
            raise InputError(f"{name}: header row must be 1 or more, not {header_row}")
        if header_row > grid.height:
            raise InputError(
                f"{name}, sheet {sheet!r}: header row {header_row} is past the last row "
                f"({grid.height})"
            )
        index = header_row - 1
    else:
        found = find_header(grid.head(HEADER_SAMPLE_ROWS).rows())
        if found is None:
            raise InputError(
                f"{name}, sheet {sheet!r}: no content in the first {HEADER_SAMPLE_ROWS} rows",
                hint="pass --header-row N if the table starts further down",
            )
        index = found
    if index == NO_HEADER:  # every row is data; columns are named column_1, column_2...
        data = _typed_fix(reader, sheet, None, grid)  # None: fastexcel reads no header
        header: list[str | None] = [None] * data.width
        result = finish(data, header, first_row=1, source=name, sheet=sheet, fmt=fmt, header_row=0)
        return _with_number_cells(reader, sheet, header, result, numbers)
    data = _typed_fix(reader, sheet, index, grid.slice(index + 1))
    result = finish(
        data,
        list(grid.row(index)),
        first_row=index + 2,
        source=name,
        sheet=sheet,
        fmt=fmt,
        header_row=index + 1,
    )
    return _with_number_cells(reader, sheet, list(grid.row(index)), result, numbers)


def _with_number_cells(
    reader: fastexcel.ExcelReader,
    sheet: str,
    header: list[str | None],
    result: Extracted,
    prefetched: _NumberLoad | None = None,
) -> Extracted:
    """Which long digit-only cells were number cells (``Extracted.number_cells``).

    The text load cannot tell the number 2290197892959 from the text "2290197892959"; a
    load of those columns as booleans with coercion can: a number (or boolean) cell gives a
    value, a text cell gives null.  The sheet is loaded again that way when a column holds
    such digits, unless ``prefetched`` did it in a thread already."""
    frame = result.frame
    wanted = [c for c in result.columns if frame.get_column(c).str.contains(LONG_DIGITS).any()]
    if not wanted:
        return result
    names = column_names(header)
    positions = {names.index(c): c for c in wanted}
    typed = prefetched.result() if prefetched is not None else None
    if typed is None:
        try:
            typed = _load_numbers(reader, sheet)
        except Exception:
            return result  # unknown: every cell is treated as text, today's rule
    numbers = {  # row i of this load is worksheet row i + 1
        c: typed.get_column(f"__UNNAMED__{i}").is_not_null()
        for i, c in positions.items()
        if f"__UNNAMED__{i}" in typed.columns
    }
    return with_number_cells(result, numbers)


def read_workbook(
    path: Path,
    fmt: str,
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Extracted]:
    """Read the selected sheet(s) of a workbook.

    ``sheet=None``: the first visible sheet that has any content; ``sheet="NAME"``: that sheet
    (exact name, else a unique case-insensitive match; hidden sheets can be named); ``"*"``:
    every visible sheet with data rows.  A sheet with a header but no data rows gives 0 rows
    (``"*"`` skips it).
    """
    name = describe(path)
    reader = _open(path, fmt)
    names = list(reader.sheet_names)
    if not names:
        raise InputError(f"{name}: the workbook has no sheets")
    prefetch = _prefetch_fits(path, fmt)
    if sheet is not None and sheet != "*":
        chosen = _resolve_sheet(names, sheet, path)
        numbers = _NumberLoad(path, chosen) if prefetch else None
        grid, _visible = _load_grid(reader, path, chosen, fmt)
        check_columns(f"{name}, sheet {chosen!r}", grid.width, limits)
        if not _has_content(grid):
            raise InputError(f"{name}, sheet {chosen!r}: is empty")
        return [_extract(reader, path, fmt, chosen, grid, header_row, numbers)]
    results: list[Extracted] = []
    for candidate in names:
        numbers = _NumberLoad(path, candidate) if prefetch else None
        grid, visible = _load_grid(reader, path, candidate, fmt)
        check_columns(f"{name}, sheet {candidate!r}", grid.width, limits)
        if not visible or not _has_content(grid):
            if numbers is not None:
                numbers.result()  # no thread outlives its sheet
            continue
        result = _extract(reader, path, fmt, candidate, grid, header_row, numbers)
        if sheet is None:  # a header-only sheet is a run with no contacts, not an error
            return [result]
        if result.rows_read:
            results.append(result)
    if not results:
        listing = ", ".join(repr(n) for n in names)
        what = "no visible sheet with data" if sheet == "*" else "no visible sheet with content"
        raise InputError(f"{name}: {what} (sheets: {listing})")
    return results
