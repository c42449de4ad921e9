"""Extract: one reader per format -> polars frame of text columns + source position columns.

``read_file(path)`` returns one :class:`Extracted` per sheet read.  Every frame holds the
user's columns as ``pl.String`` (original header text; blank headers become ``column_N``,
duplicates ``Phone_2``) followed by ``__source_file``, ``__sheet`` and ``__row`` (see
:mod:`contactpipe.frames`), and, when a reader had to change a row (control characters removed,
bytes repaired), ``__read_warning`` / ``__read_warning_msg``.  Values are not trimmed or
changed otherwise, except that empty strings become null; rows whose cells are all empty are
dropped and counted in ``empty_rows``.  Size limits (:mod:`.limits`) are checked before any
reader allocates.

Formats are detected from content (:func:`detect_format`); each reader documents its rules:
:mod:`.text` (CSV/TSV/TXT), :mod:`.excel` (XLSX/XLSM/XLS/ODS), :mod:`.columnar`
(Parquet/JSON/NDJSON).  Anything wrong with the input raises
:class:`contactpipe.errors.InputError` naming the file (and sheet).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from contactpipe.errors import InputError
from contactpipe.extract.columnar import read_json, read_ndjson, read_parquet
from contactpipe.extract.common import OWN_OUTPUT_COLUMNS, Extracted, own_output_as_input
from contactpipe.extract.detect import SUPPORTED_EXTENSIONS, check_readable, detect_format
from contactpipe.extract.excel import read_workbook
from contactpipe.extract.limits import DEFAULT_LIMITS, Limits, check_workbook, file_too_big
from contactpipe.extract.text import NotStreamable, read_text, read_text_batches
from contactpipe.frames import SRC_FILE

__all__ = [
    "DEFAULT_LIMITS",
    "SUPPORTED_EXTENSIONS",
    "Extracted",
    "Limits",
    "NotStreamable",
    "detect_format",
    "expand_inputs",
    "read_file",
    "read_file_batches",
]

_GLOB_CHARS = frozenset("*?[")


def read_file(
    path: str | os.PathLike[str],
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Extracted]:
    """Read one input file into one :class:`Extracted` per sheet read.

    ``sheet``: for workbooks, ``None`` reads the first visible sheet with content, ``"NAME"``
    that sheet (case-insensitive match allowed; an unknown name lists the available ones),
    ``"*"`` every visible sheet with data.  Other formats ignore it.  ``header_row=N`` forces
    the header onto row N as a person counts rows (spreadsheets and text files), ``header_row=0``
    reads a table without a header row (columns ``column_1``...); otherwise it is detected
    (:func:`contactpipe.extract.common.find_header`, which also recognises a headerless table).
    A header with no data rows gives a result with 0 rows.

    ``limits`` (:mod:`contactpipe.extract.limits`) are checked before any reader allocates: a
    larger file, a workbook that would inflate or allocate beyond them, or a wider table is
    refused with :class:`InputError`.  A pipe or FIFO (``<(cat file.csv)``) is copied once,
    up to ``limits.max_bytes``, then read like a file; a device is refused.  contactpipe's
    own contacts file reads back without loss (:func:`~.common.own_output_as_input`).
    """
    shown = os.fspath(path)
    with _regular(Path(path), limits) as file:
        try:
            results = _read(file, sheet, header_row, limits, shown)
        except InputError as exc:
            if file != Path(path):  # a spooled pipe: name what the user gave, not the copy
                exc.message = exc.message.replace(str(file), shown)
                exc.args = (exc.message,)
            raise
    return [_with_source(own_output_as_input(result), shown) for result in results]


def read_file_batches(
    path: str | os.PathLike[str],
    *,
    header_row: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    batch_bytes: int = 32 << 20,
) -> Iterator[Extracted]:
    """:func:`read_file` of a CSV/TSV/TXT file, about ``batch_bytes`` of it at a time
    (:func:`~contactpipe.extract.text.read_text_batches`): the same rows, columns and row
    numbers, in consecutive batches.  Raises :class:`NotStreamable` for what must be read
    whole (another format, a pipe, not UTF-8 throughout, contactpipe's own contacts file...)
    before yielding anything when it can tell, else from the batch where it finds out."""
    shown = os.fspath(path)
    file = Path(path)
    check_readable(file)
    try:
        info = file.stat()
    except OSError as exc:
        raise InputError(f"{shown}: cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise NotStreamable(f"{shown}: not a regular file")
    if detect_format(file) != "csv":
        raise NotStreamable(f"{shown}: not a text file")
    for part in read_text_batches(
        file, header_row=header_row, limits=limits, batch_bytes=batch_bytes
    ):
        if set(part.columns) >= OWN_OUTPUT_COLUMNS:
            raise NotStreamable(f"{shown}: contactpipe's own contacts file")
        yield _with_source(part, shown)


def _read(
    file: Path, sheet: str | None, header_row: int | None, limits: Limits, shown: str
) -> list[Extracted]:
    fmt = detect_format(file)
    if fmt in ("xlsx", "xlsm", "ods"):
        check_workbook(file, fmt, str(file), limits)
    if fmt in ("xlsx", "xlsm", "xls", "ods"):
        return read_workbook(file, fmt, sheet=sheet, header_row=header_row, limits=limits)
    if fmt == "parquet":
        return [read_parquet(file, limits)]
    if fmt == "json":
        return [read_json(file, limits)]
    if fmt == "ndjson":
        return [read_ndjson(file, limits)]
    return [read_text(file, header_row=header_row, limits=limits)]


_DEVICES = {
    stat.S_IFCHR: "a character device (such as /dev/urandom or a terminal)",
    stat.S_IFBLK: "a block device (a disk)",
}


@contextmanager
def _regular(path: Path, limits: Limits) -> Iterator[Path]:
    """``path`` itself when it is a regular file within ``limits.max_bytes``; for a pipe,
    FIFO or socket, a temporary copy of what it delivers (capped); a device is refused."""
    name = os.fspath(path)
    check_readable(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from exc
    mode = stat.S_IFMT(info.st_mode)
    if stat.S_ISREG(info.st_mode):
        if info.st_size > limits.max_bytes:
            raise file_too_big(name, limits)
        yield path
        return
    if mode in _DEVICES:
        raise InputError(f"{name}: is {_DEVICES[mode]}, not a file", hint="give a file")
    if not (stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode)):
        raise InputError(f"{name}: is not a regular file")
    folder = Path(tempfile.mkdtemp(prefix="contactpipe-pipe-"))
    copy = folder / (path.name or "input")
    try:
        with path.open("rb") as source, copy.open("wb") as sink:
            copied = 0
            while chunk := source.read(1 << 20):
                copied += len(chunk)
                if copied > limits.max_bytes:
                    raise file_too_big(name, limits)
                sink.write(chunk)
        yield copy
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
