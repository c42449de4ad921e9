"""Public surface of contactpipe.extract: format detection, input expansion, path errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from filemakers import make_csv, make_json, make_ods, make_parquet, make_text, make_xlsx

import contactpipe.extract as extract
from contactpipe.errors import InputError
from contactpipe.extract import SUPPORTED_EXTENSIONS, detect_format, expand_inputs, read_file


def test_public_names_sorted():
    isort_style = sorted(extract.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert extract.__all__ == isort_style
    assert {".csv", ".tsv", ".txt", ".xlsx", ".xls", ".ods", ".parquet", ".json"} <= set(
        SUPPORTED_EXTENSIONS
    )


def test_detect_format_from_content_not_extension(tmp_path):
    sheet = {"S": [["a"], ["1"]]}
    assert detect_format(make_xlsx(tmp_path / "a.xlsx", sheet)) == "xlsx"
    assert detect_format(make_xlsx(tmp_path / "a.csv", sheet)) == "xlsx"
    assert detect_format(make_xlsx(tmp_path / "m.xlsm", sheet, macro=True)) == "xlsm"
    assert detect_format(make_ods(tmp_path / "a.txt", sheet)) == "ods"
    assert detect_format(make_parquet(tmp_path / "p.csv", {"a": [1]})) == "parquet"
    assert detect_format(make_json(tmp_path / "j.txt", [{"a": 1}])) == "json"
    assert detect_format(make_text(tmp_path / "n.data", '{"a":1}\n{"a":2}\n')) == "ndjson"
    assert detect_format(make_text(tmp_path / "one.json", '{"a":\n 1}\n')) == "json"
    assert detect_format(make_text(tmp_path / "n.jsonl", '{"a":1}\n')) == "ndjson"
    assert detect_format(make_csv(tmp_path / "c.xlsx", [["a", "b"], ["1", "2"]])) == "csv"
    assert detect_format(make_text(tmp_path / "br.csv", "[name],phone\nA,1\n")) == "csv"


def test_path_errors(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        read_file(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        read_file(tmp_path)
    with pytest.raises(InputError, match="is empty"):
        read_file(make_text(tmp_path / "e.xlsx", ""))


def test_source_file_is_the_path_as_given(tmp_path, monkeypatch):
    make_csv(tmp_path / "c.csv", [["phone"], ["1"]])
    monkeypatch.chdir(tmp_path)
    [result] = read_file("./c.csv")
    assert result.source_file == "./c.csv"
    assert result.frame.get_column("__source_file").to_list() == ["./c.csv"]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = Path("data")
    (data / "sub").mkdir(parents=True)
    for name in ["b.csv", "a.xlsx", "c.TSV", "notes.md", ".hidden.csv", "~$a.xlsx"]:
        (data / name).write_text("phone\n1\n")
    (data / "sub" / "d.csv").write_text("phone\n1\n")
    (data / "sub" / "e.json").write_text("[]")
    return data


def test_expand_directory_sorted_not_recursive(tree):
    assert expand_inputs(["data"]) == [Path("data/a.xlsx"), Path("data/b.csv"), Path("data/c.TSV")]


def test_expand_globs_files_dedup_in_order(tree):
    got = expand_inputs(["data/sub/d.csv", "data/*.csv", "**/*.csv", "data/b.csv"])
    assert got == [Path("data/sub/d.csv"), Path("data/b.csv")]
    assert expand_inputs(["data/sub/*"]) == [Path("data/sub/d.csv"), Path("data/sub/e.json")]


def test_expand_errors(tree):
    with pytest.raises(InputError, match=r"data/\*\.xls: no file matches"):
        expand_inputs(["data/*.xls"])
    with pytest.raises(InputError, match=r"missing\.csv: file not found"):
        expand_inputs(["data/b.csv", "missing.csv"])
    os.mkdir("empty")
    with pytest.raises(InputError, match="directory has no supported file"):
        expand_inputs(["empty"])
    with pytest.raises(InputError, match="no input file"):
        expand_inputs([])
