"""Fuzzing (hypothesis) of the readers and the phone cleaner: whatever the bytes, a reader
returns text columns or raises InputError (never another exception), and the cleaner returns
either nothing or a valid E.164 number.

``make test`` runs a few dozen examples per target (seconds); ``make fuzz`` runs thousands
(``CONTACTPIPE_FUZZ_EXAMPLES``).  Every crash found becomes a case of test_hostile.py.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import hostile
import phonenumbers as pn
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contactpipe.errors import InputError
from contactpipe.extract import Limits, read_file
from contactpipe.transform.phones import normalize_phones

EXAMPLES = int(os.environ.get("CONTACTPIPE_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL = Limits(max_bytes=1 << 20, max_uncompressed=4 << 20, max_cells=50_000, max_columns=500)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def read(data: bytes, suffix: str) -> list | None:
    """read_file on ``data`` saved with ``suffix``: the results, or None for an InputError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"in{suffix}"
        path.write_bytes(data)
        try:
            results = read_file(path, limits=SMALL)
        except InputError:
            return None
    for result in results:
        user = result.frame.select(result.columns)
        assert all(dtype == pl.String for dtype in user.dtypes)
        row_numbers = result.frame.get_column("__row").to_list()
        assert row_numbers == sorted(row_numbers)
    return results


cells = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(list(',;\t|"\r\n\x00\x1a\ufeff+0123456789 ')),
    max_size=12,
)
tables = st.lists(st.lists(cells, min_size=1, max_size=6), min_size=1, max_size=12)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([".csv", ".txt", ".json", ".ndjson", ".xlsx"]))
def test_any_bytes(data: bytes, suffix: str) -> None:
    read(data, suffix)


@FUZZ
@given(
    tables,
    st.sampled_from([",", ";", "\t", "|"]),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]),
    st.binary(max_size=3),
)
def test_csv_like_text(rows: list[list[str]], sep: str, encoding: str, junk: bytes) -> None:
    text = "\n".join(sep.join(f'"{c}"' if '"' not in c else c for c in row) for row in rows)
    data = text.encode(encoding, "replace") + junk
    for result in read(data, ".csv") or []:
        for column in result.columns:
            assert not CONTROL.search(column)
            values = result.frame.get_column(column).drop_nulls().to_list()
            assert not any(CONTROL.search(v) for v in values), column


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)


@FUZZ
@given(st.lists(json_values, max_size=8), st.booleans())
def test_json_documents(values: list, lines: bool) -> None:
    if lines:
        data = "\n".join(json.dumps(v) for v in values).encode()
        read(data, ".ndjson")
    else:
        read(json.dumps(values).encode(), ".json")


refs = st.tuples(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=4), st.integers(1, 10**10)
)


@FUZZ
@given(st.lists(refs, min_size=1, max_size=6), st.sampled_from([None, "A1:ZZZZ99999999", "A1"]))
def test_xlsx_cell_references(positions: list[tuple[str, int]], dimension: str | None) -> None:
    cells_xml = [
        f'<row r="{row}"><c r="{col}{row}" t="inlineStr"><is><t>x</t></is></c></row>'
        for col, row in positions
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.xlsx"
        hostile.make_raw_xlsx(
            path, hostile.sheet_xml([*hostile.header_rows(), *cells_xml], dimension)
        )
        read(path.read_bytes(), ".xlsx")


def _valid_workbook() -> bytes:
    """A small valid XLSX, byte for byte the same on every call (fixed zip timestamps)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ok.xlsx"
        hostile.make_raw_xlsx(path, hostile.sheet_xml(hostile.header_rows(), "A1:B2"))
        return path.read_bytes()


VALID_XLSX = _valid_workbook()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID_XLSX) - 1), st.integers(0, 255)), max_size=8))
def test_corrupted_workbooks(flips: list[tuple[int, int]]) -> None:
    raw = bytearray(VALID_XLSX)
    for at, value in flips:
        raw[at] = value
    read(bytes(raw), ".xlsx")


phone_chars = st.sampled_from(list("0123456789+ ()-./~x#,;:ext poste\u00a0\u0660\uff11*"))
phone_cells = st.text(phone_chars, max_size=25) | st.text(max_size=10)


@FUZZ
@given(
    st.lists(phone_cells, min_size=1, max_size=20), st.sampled_from([None, "FR", "US", "BR", "BJ"])
)
def test_phone_cleaner(cells_in: list[str], region: str | None) -> None:
    out = normalize_phones(
        pl.DataFrame({"phone": cells_in}), phone_col="phone", region=region, workers=1
    )
    for cell, e164, error in zip(
        cells_in, out["__phone_e164"].to_list(), out["__phone_error"].to_list(), strict=True
    ):
        assert (e164 is None) != (error is None), cell
        if e164 is not None:
            assert re.fullmatch(r"\+[1-9]\d{6,14}", e164), (cell, e164)
            assert pn.is_valid_number(pn.parse(e164, None)), (cell, e164)
