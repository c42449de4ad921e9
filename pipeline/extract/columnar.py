"""Parquet, JSON (an array of objects) and NDJSON (one object per line), cast to text.

Values become text like spreadsheet cells do: numbers exactly (integral floats as integers,
others as the shortest round-trip repr), booleans ``"true"``/``"false"``, dates ISO, nulls stay
null.  A list of scalars becomes its items joined with ``", "`` (``["lead", "vip"]`` ->
``"lead, vip"``, as tags look in a spreadsheet); a nested object, or a list holding objects or
lists, becomes compact JSON text.

Row numbers: Parquet -> 1-based row index; JSON -> 1-based index of the object in the array;
NDJSON -> line number (a blank line is an empty row, like a blank CSV line).  These formats
have no header row (``header_row`` is 0); columns are the keys in order of first appearance.
A JSON document that is an object with a single array of objects inside (``{"contacts":
[...]}``) is read from that array.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from contactpipe.errors import InputError
from contactpipe.extract.common import (
    Extracted,
    column_names,
    finish,
    series_to_text,
    with_number_cells,
)
from contactpipe.extract.detect import describe
from contactpipe.extract.limits import (
    DEFAULT_LIMITS,
    Limits,
    check_cells,
    check_columns,
    human,
    read_capped,
    too_big,
)
from contactpipe.extract.text import decode


def read_parquet(path: Path, limits: Limits = DEFAULT_LIMITS) -> Extracted:
    """Read a Parquet file; every column rendered as text."""
    name = describe(path)
    _check_parquet(path, name, limits)
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(
            f"{name}: cannot be read as Parquet: corrupt or truncated ({message})"
        ) from exc
    if frame.width == 0:
        raise InputError(f"{name}: has no columns")
    grid = pl.DataFrame([series_to_text(frame.get_column(c)) for c in frame.columns])
    result = _finish(grid, frame.columns, name, "parquet")
    names = column_names(frame.columns)
    numbers = {
        n: frame.get_column(c).is_not_null()
        for n, c in zip(names, frame.columns, strict=True)
        if frame.get_column(c).dtype.is_numeric()
    }
    return with_number_cells(result, numbers)


def _check_parquet(path: Path, name: str, limits: Limits) -> None:
    """Columns, cells (rows x columns) and decoded size from the footer, before reading:
    Parquet compresses and dictionary-encodes, so a small file can hold billions of cells."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        width = len(pl.read_parquet_schema(path))
    except Exception:
        return  # a corrupt footer: the read says so
    check_columns(name, width, limits)
    check_cells(name, "has", meta.num_rows * max(width, 1), limits)
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > limits.max_uncompressed:
        raise too_big(
            name,
            f"decodes to {human(size)}, above the limit of {human(limits.max_uncompressed)}",
            "--max-uncompressed",
            human(DEFAULT_LIMITS.max_uncompressed),
        )


JSON_SHARE = 8
"""JSON and NDJSON are parsed into Python objects, about ten times their size in memory: they
may be at most 1/8 of ``max_bytes`` (256 MiB by default)."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e18 else repr(value)
    if isinstance(value, list) and not any(isinstance(v, (list, dict)) for v in value):
        return ", ".join(t for t in map(_text, value) if t is not None)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        return "(nested too deeply to show)"


def _load_json_bytes(path: Path, limits: Limits) -> bytes:
    name = describe(path)
    cap = limits.max_bytes // JSON_SHARE
    if path.stat().st_size > cap:
        raise too_big(
            name,
            f"is larger than {human(cap)}, the most JSON read at once (it is parsed into "
            f"objects about ten times its size; 1/{JSON_SHARE} of --max-file-size)",
            "--max-file-size",
            human(DEFAULT_LIMITS.max_bytes),
        )
    raw = read_capped(path, name, limits)
    data, _encoding = decode(raw, name)
    if not data.strip():
        raise InputError(f"{name}: is empty")
    return data


def _parse(text: bytes | str, name: str, where: str = "") -> Any:
    """``json.loads`` with every way it can fail turned into one InputError naming the file:
    a syntax error, nesting too deep to parse, an integer too long to convert."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if where:
            raise InputError(f"{name}: {where} is not valid JSON ({exc.msg})") from exc
        raise InputError(
            f"{name}: is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except RecursionError as exc:
        raise InputError(
            f"{name}: {where + ': ' if where else ''}JSON nested too deeply to read "
            "(a contact is a flat object)"
        ) from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        detail = str(exc).split(";")[0][:120]
        raise InputError(
            f"{name}: {where + ': ' if where else ''}unreadable JSON ({detail})"
        ) from exc


def _records_to_grid(
    records: list[dict[str, Any] | None], name: str, limits: Limits
) -> tuple[pl.DataFrame, list[str]]:
    keys: dict[str, None] = {}
    for record in records:
        if record:
            keys.update(dict.fromkeys(record))
            if len(keys) > limits.max_columns:
                check_columns(name, len(keys), limits)
    columns = list(keys)
    data = {
        f"c{i}": [None if r is None else _text(r.get(key)) for r in records]
        for i, key in enumerate(columns)
    }
    return pl.DataFrame(data, schema=dict.fromkeys(data, pl.String)), columns


def read_json(path: Path, limits: Limits = DEFAULT_LIMITS) -> Extracted:
    """Read a JSON array of objects (or an object wrapping exactly one such array)."""
    name = describe(path)
    document = _parse(_load_json_bytes(path, limits), name)
    if isinstance(document, dict):
        arrays = [v for v in document.values() if isinstance(v, list)]
        if len(arrays) == 1:
            document = arrays[0]
    if not isinstance(document, list):
        raise InputError(f"{name}: JSON must be an array of objects (one object per contact)")
    for index, item in enumerate(document, start=1):
        if item is not None and not isinstance(item, dict):
            raise InputError(
                f"{name}: item {index} of the JSON array is a {type(item).__name__}, not an object"
            )
    grid, columns = _records_to_grid(document, name, limits)
    return with_number_cells(_finish(grid, columns, name, "json"), _numbers(document, columns))


def read_ndjson(path: Path, limits: Limits = DEFAULT_LIMITS) -> Extracted:
    """Read newline-delimited JSON: one object per line, blank lines are empty rows."""
    name = describe(path)
    records: list[dict[str, Any] | None] = []
    for number, line in enumerate(_load_json_bytes(path, limits).splitlines(), start=1):
        if not line.strip():
            records.append(None)
            continue
        item = _parse(line, name, f"line {number}")
        if item is not None and not isinstance(item, dict):
            raise InputError(
                f"{name}: line {number} is a JSON {type(item).__name__}, not an object"
            )
        records.append(item)
    grid, columns = _records_to_grid(records, name, limits)
    return with_number_cells(_finish(grid, columns, name, "ndjson"), _numbers(records, columns))


def _numbers(records: list[dict[str, Any] | None], columns: list[str]) -> dict[str, pl.Series]:
    """JSON number values (a phone stored as a number cannot hold its ``+``), per column."""
    out = {}
    for name, key in zip(column_names(columns), columns, strict=True):
        flags = [
            r is not None and type(r.get(key)) in (int, float)  # bool is not a number here
            for r in records
        ]
        if any(flags):
            out[name] = pl.Series(name, flags, dtype=pl.Boolean)
    return out


def _finish(grid: pl.DataFrame, columns: list[str], name: str, fmt: str) -> Extracted:
    if not columns:
        raise InputError(f"{name}: has no columns (no object has any key)")
    result = finish(grid, columns, first_row=1, source=name, sheet=None, fmt=fmt, header_row=0)
    if result.rows_read == 0:
        raise InputError(f"{name}: has no rows")
    return result
