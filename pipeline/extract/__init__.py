"""Extract: one reader per format -> polars frame of text columns + source position columns.

``read_file(path)`` returns one :class:`Extracted` per sheet read.  Every frame holds the
user's columns as ``pl.String`` (original header text; blank headers become ``column_N``,
duplicates ``Phone_2``) followed by ``__source_file``, ``__sheet`` and ``__row`` (see
:mod:`pipeline.frames`).  Values are not trimmed or changed, except that empty strings become
null; rows whose cells are all empty are dropped and counted in ``empty_rows``.

Formats are detected from content (:func:`detect_format`); each reader documents its rules:
:mod:`.text` (CSV/TSV/TXT), :mod:`.excel` (XLSX/XLSM/XLS/ODS), :mod:`.columnar`
(Parquet/JSON/NDJSON).  Anything wrong with the input raises
:class:`pipeline.errors.InputError` naming the file (and sheet).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from pipeline.errors import InputError
from pipeline.extract.columnar import read_json, read_ndjson, read_parquet
from pipeline.extract.common import Extracted
from pipeline.extract.detect import SUPPORTED_EXTENSIONS, check_readable, detect_format
from pipeline.extract.excel import read_workbook
from pipeline.extract.text import read_text
from pipeline.frames import SRC_FILE

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Extracted",
    "detect_format",
    "expand_inputs",
    "read_file",
]

_GLOB_CHARS = frozenset("*?[")


def read_file(
    path: str | os.PathLike[str], *, sheet: str | None = None, header_row: int | None = None
) -> list[Extracted]:
    """Read one input file into one :class:`Extracted` per sheet read.

    ``sheet``: for workbooks, ``None`` reads the first visible sheet with content, ``"NAME"``
    that sheet (case-insensitive match allowed; an unknown name lists the available ones),
    ``"*"`` every visible sheet with data.  Other formats ignore it.  ``header_row=N`` forces
    the header onto row N as a person counts rows (spreadsheets and text files), ``header_row=0``
    reads a table without a header row (columns ``column_1``...); otherwise it is detected
    (:func:`pipeline.extract.common.find_header`, which also recognises a headerless table).
    A header with no data rows gives a result with 0 rows.
    """
    file = Path(path)
    fmt = detect_format(file)
    if fmt in ("xlsx", "xlsm", "xls", "ods"):
        results = read_workbook(file, fmt, sheet=sheet, header_row=header_row)
    elif fmt == "parquet":
        results = [read_parquet(file)]
    elif fmt == "json":
        results = [read_json(file)]
    elif fmt == "ndjson":
        results = [read_ndjson(file)]
    else:
        results = [read_text(file, header_row=header_row)]
    shown = os.fspath(path)
    return [_with_source(result, shown) for result in results]


def _with_source(result: Extracted, shown: str) -> Extracted:
    """Keep the path exactly as the caller gave it (readers use ``str(Path)``)."""
    if result.source_file == shown:
        return result
    frame = result.frame.with_columns(pl.lit(shown, dtype=pl.String).alias(SRC_FILE))
    return dataclasses.replace(result, frame=frame, source_file=shown)


def _is_candidate(path: Path) -> bool:
    name = path.name
    return (
        path.is_file()
        and path.suffix.lower() in SUPPORTED_EXTENSIONS
        and not name.startswith((".", "~$"))
    )


def expand_inputs(args: Sequence[str]) -> list[Path]:
    """Files named on the command line -> the list of files to read, in the order given.

    Each argument is a file, a directory (its supported files, sorted, not recursive; hidden
    files and Excel lock files ``~$*`` skipped) or a glob pattern (``data/*.csv``,
    ``**/*.xlsx``: matching files, sorted).  Duplicates are kept once, at their first place.
    A missing file, a pattern that matches no file or a directory without supported files
    raises :class:`InputError`.
    """
    found: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    if not args:
        raise InputError("no input file given")
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if _is_candidate(p))
            if not files:
                supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
                raise InputError(f"{arg}: directory has no supported file ({supported})")
            for file in files:
                add(file)
        elif path.exists():
            check_readable(path)
            add(path)
        elif _GLOB_CHARS & set(arg):
            matches = sorted(
                Path(m)
                for m in glob.glob(arg, recursive=True)
                if Path(m).is_file() and not Path(m).name.startswith("~$")
            )
            if not matches:
                raise InputError(f"{arg}: no file matches this pattern")
            for match in matches:
                add(match)
        else:
            raise InputError(f"{arg}: file not found")
    return found
