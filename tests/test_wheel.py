"""The wheel installs one import package, `contactpipe`, with its data files: no generic
top-level `pipeline` or `schemas` that a `pipeline.py` in an Airflow DAG folder could shadow."""

from __future__ import annotations

import os
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


def test_the_installed_command_runs_outside_the_repository(tmp_path: Path) -> None:
    """The console script, started away from the checkout (no repository folder on sys.path,
    as a user or a scheduler runs it), finds its package data: the demo reads the contracts,
    runs the sandbox, imports into each API and writes each report page."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = str(Path(sys.executable).with_name("contactpipe"))
    args = ["demo", str(ROOT / "sample_data"), "--region", "FR"]
    done = subprocess.run(
        [command, *args, "--report-dir", str(tmp_path / "r"), "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for target in ("msgflash", "waapi", "vobiz"):
        assert (tmp_path / "r" / target / "report.html").is_file()
        assert (tmp_path / "r" / target / "summary.json").is_file()
