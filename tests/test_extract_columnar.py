"""Parquet, JSON and NDJSON extraction: values as text, row numbers, errors."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from filemakers import make_json, make_ndjson, make_parquet, make_text, make_truncated

from contactpipe.errors import InputError
from contactpipe.extract import read_file
from contactpipe.frames import SRC_ROW, SRC_SHEET


def table(result) -> list[tuple]:
    return result.frame.select(*result.columns, SRC_ROW).rows()


def test_parquet_every_type_as_text(tmp_path):
    path = make_parquet(
        tmp_path / "c.parquet",
        {
            "name": ["Awa", None, "Ben"],
            "phone": [22997123456, None, 2290197123456],
            "score": [1.0, None, 0.1],
            "vip": [True, None, False],
            "born": [dt.date(1990, 5, 17), None, None],
            "tags": [["lead", "vip"], None, []],
            "meta": [{"k": 1}, None, {"k": 2}],
        },
    )
    [result] = read_file(path)
    assert (result.format, result.header_row, result.sheet) == ("parquet", 0, None)
    assert table(result) == [
        ("Awa", "22997123456", "1", "true", "1990-05-17", "lead, vip", '{"k":1}', 1),
        ("Ben", "2290197123456", "0.1", "false", None, None, '{"k":2}', 3),
    ]
    assert (result.rows_read, result.empty_rows) == (3, 1)
    assert result.frame.get_column(SRC_SHEET).dtype == pl.String


def test_json_array_of_objects(tmp_path):
    records = [
        {"name": "Awa", "phone": "+22997123456", "tags": ["a", "b"], "n": 22997123456},
        {"name": "Ben", "phone": "0612", "extra": {"city": "Lyon"}, "n": 1.5, "ok": True},
        {},
        {"name": None, "phone": "", "n": 2.0},
        {"name": "Cé", "tags": [{"x": 1}]},
    ]
    [result] = read_file(make_json(tmp_path / "c.json", records))
    assert (result.format, result.header_row) == ("json", 0)
    assert result.columns == ("name", "phone", "tags", "n", "extra", "ok")
    assert table(result) == [
        ("Awa", "+22997123456", "a, b", "22997123456", None, None, 1),
        ("Ben", "0612", None, "1.5", '{"city":"Lyon"}', "true", 2),
        (None, None, None, "2", None, None, 4),
        ("Cé", None, '[{"x":1}]', None, None, None, 5),
    ]
    assert (result.rows_read, result.empty_rows) == (5, 1)


def test_json_object_wrapping_one_array(tmp_path):
    [result] = read_file(make_json(tmp_path / "w.json", {"contacts": [{"phone": "061"}]}))
    assert table(result) == [("061", 1)]


def test_ndjson_line_numbers(tmp_path):
    records = [{"name": "Awa", "phone": "061"}, None, {"phone": 22997123456}, {"name": "Cé"}]
    [result] = read_file(make_ndjson(tmp_path / "c.ndjson", records))
    assert result.format == "ndjson"
    assert table(result) == [("Awa", "061", 1), (None, "22997123456", 3), ("Cé", None, 4)]
    assert (result.rows_read, result.empty_rows) == (4, 1)


def test_ndjson_detected_from_content_with_json_extension(tmp_path):
    path = make_text(tmp_path / "lines.json", '{"a": "1"}\n{"a": "2"}\n')
    [result] = read_file(path)
    assert (result.format, table(result)) == ("ndjson", [("1", 1), ("2", 2)])


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", '[{"a": 1},', "not valid JSON"),
        ("num.json", "[1, 2]", "item 1 of the JSON array is a int"),
        ("obj.json", '{"a": 1, "b": 2}', "must be an array of objects"),
        ("none.json", "[{}, {}]", "has no columns"),
        ("empty.json", "[]", "has no columns"),
        ("bad.ndjson", '{"a": 1}\n{"a": \n', "line 2 is not valid JSON"),
        ("list.ndjson", '{"a": 1}\n[1]\n', "line 2 is a JSON list"),
    ],
)
def test_bad_json(tmp_path, name, text, message):
    path = make_text(tmp_path / name, text)
    with pytest.raises(InputError, match=message) as info:
        read_file(path)
    assert str(path) in str(info.value)


def test_corrupt_parquet(tmp_path):
    good = make_parquet(tmp_path / "g.parquet", {"a": list(range(1000))})
    cut = make_truncated(tmp_path / "cut.parquet", good, 0.5)
    with pytest.raises(InputError, match=r"cut\.parquet: cannot be read as Parquet"):
        read_file(cut)
    empty = tmp_path / "e.parquet"
    pl.DataFrame({"a": []}, schema={"a": pl.String}).write_parquet(empty)
    with pytest.raises(InputError, match="has no rows"):
        read_file(empty)
