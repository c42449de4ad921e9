"""The wheel installs one import package, `contactpipe`, with its data files: no generic
top-level `pipeline` or `schemas` that a `pipeline.py` in an Airflow DAG folder could shadow."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(["contactpipe", *d.relative_to(ROOT / "pipeline").parts]).rstrip(".")
        for d in [ROOT / "pipeline", *(ROOT / "pipeline").rglob("*")]
        if d.is_dir() and (d / "__init__.py").is_file()
    }
    assert folders | {"contactpipe.schemas"} == listed


def test_the_wheel_holds_one_top_level_package_and_its_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("contactpipe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"contactpipe"}
    for data in (
        "contactpipe/py.typed",
        "contactpipe/report/html/report.html.j2",
        "contactpipe/schemas/contact.schema.json",
        "contactpipe/schemas/apis/waapi.yaml",
    ):
        assert data in names
