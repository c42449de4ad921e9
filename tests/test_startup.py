"""Start-up: ``contactpipe validate`` does not pay for what only a load needs, nor for garbage
collections of what it imported (issue 16).

The probes run in a fresh interpreter so that ``sys.modules`` shows what the command itself
imported, not what other tests loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs the CLI in this process, then prints which of the load-only modules it imported.
PROBE = """
import json, sys
from contactpipe.cli import main
try:
    main(sys.argv[1:-1])
except SystemExit as exc:
    code = exc.code
names = sys.argv[-1].split(",")
print(json.dumps({"code": code, "loaded": [m for m in names if m in sys.modules]}))
"""

# What a validate of a CSV file must not import: the HTTP client and what only a load, the sync
# state, a workbook, a process pool or a TOML mapping file need (issue 16: start-up).
NOT_FOR_VALIDATE = (
    "httpx",
    "httpcore",
    "h11",
    "pygments",
    "contactpipe.load.client",
    "contactpipe.load.base",
    "contactpipe.load.kit.state",
    "contactpipe.state",
    "contactpipe.state.store",
    "sqlite3",
    "fastexcel",
    "multiprocessing",
    "concurrent.futures.process",
    "tomllib",
    "rich._emoji_codes",
)


def _probe(*args: str, names: tuple[str, ...] = NOT_FOR_VALIDATE) -> dict[str, object]:
    """Run the CLI with ``args`` in a fresh interpreter; which of ``names`` it imported."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args, ",".join(names)],
        capture_output=True,
        text=True,
        check=True,
    )
    doc: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return doc


def test_validate_of_a_csv_imports_nothing_only_a_load_or_a_workbook_needs(tmp_path: Path) -> None:
    src = tmp_path / "one.csv"
    src.write_text("phone,name\n06 12 34 56 78,Ana\n", encoding="utf-8")
    report = tmp_path / "report"
    doc = _probe("validate", str(src), "--region", "FR", "--report-dir", str(report), "-q")
    assert doc["code"] in (0, None)
    assert doc["loaded"] == [], f"validate imported {doc['loaded']}"
    # the run did its work: the contact is in the report
    assert "+33612345678" in (report / "contacts.csv").read_text(encoding="utf-8")


def test_validate_json_prints_without_rich(tmp_path: Path) -> None:
    """``--json`` (schedulers, the benchmarks) prints the summary without rich's console."""
    src = tmp_path / "one.csv"
    src.write_text("phone,name\n06 12 34 56 78,Ana\n", encoding="utf-8")
    args = ["validate", str(src), "--region", "FR", "--report-dir", str(tmp_path / "r")]
    doc = _probe(*args, "-q", "--json", names=("rich.console", "rich.table"))
    assert doc["code"] in (0, None)
    assert doc["loaded"] == [], f"validate --json imported {doc['loaded']}"


def test_load_options_build_without_httpx_and_stay_where_they_were() -> None:
    probe = (
        "import sys\n"
        "from contactpipe.load.base import LoadOptions, LoadResult, Target\n"
        "from contactpipe.load.policy import ClientStats, RetryPolicy\n"
        "o = LoadOptions(retry=RetryPolicy(attempts=2))\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
        "import contactpipe.load.client as client\n"
        "assert client.RetryPolicy is RetryPolicy and client.ClientStats is ClientStats\n"
        "import contactpipe\n"
        "assert contactpipe.LoadOptions is LoadOptions and contactpipe.RetryPolicy is RetryPolicy\n"
        "print(o.retry.attempts)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


def test_validate_through_the_api_imports_no_terminal_code(tmp_path: Path) -> None:
    """``contactpipe.validate`` (Airflow tasks, scripts) imports neither the CLI's click and
    rich nor what only a load needs."""
    src = tmp_path / "one.csv"
    src.write_text("phone,name\n06 12 34 56 78,Ana\n", encoding="utf-8")
    probe = (
        "import json, sys\n"
        "import contactpipe\n"
        "r = contactpipe.validate(sys.argv[1], contactpipe.RunOptions(region='FR'),"
        " report_dir=sys.argv[2])\n"
        "names = sys.argv[3].split(',')\n"
        "print(json.dumps([r.valid, [m for m in names if m in sys.modules]]))\n"
    )
    names = ",".join(("click", "rich", *NOT_FOR_VALIDATE))
    out = subprocess.run(
        [sys.executable, "-c", probe, str(src), str(tmp_path / "report"), names],
        capture_output=True,
        text=True,
        check=True,
    )
    valid, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert valid == 1
    assert loaded == [], f"validate imported {loaded}"


def test_the_probe_sees_what_a_run_imports(tmp_path: Path) -> None:
    """The same probe on a workbook: fastexcel is imported when a run reads one."""
    import xlsxwriter

    src = tmp_path / "one.xlsx"
    book = xlsxwriter.Workbook(str(src))
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["phone", "name"])
    sheet.write_row(1, 0, ["06 12 34 56 78", "Ana"])
    book.close()
    report = tmp_path / "report"
    doc = _probe(
        "validate",
        str(src),
        "--region",
        "FR",
        "--report-dir",
        str(report),
        "-q",
        names=("fastexcel", "sqlite3"),
    )
    assert doc["code"] in (0, None)
    assert doc["loaded"] == ["fastexcel"]


def test_the_command_freezes_its_imports_and_skips_the_final_collection(tmp_path: Path) -> None:
    """The CLI imports the pipeline with the collector paused and freezes what it imported
    (``gc.freeze``), leaves the collector on for the run, and freezes the rest in an exit
    handler so that the interpreter's last collection has nothing to walk."""
    src = tmp_path / "one.csv"
    src.write_text("phone,name\n06 12 34 56 78,Ana\n", encoding="utf-8")
    report = tmp_path / "report"
    probe = (
        "import atexit, gc, sys\n"
        "from contactpipe.cli import main\n"
        "assert gc.isenabled() and gc.get_freeze_count() == 0\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "run, enabled = gc.get_freeze_count(), gc.isenabled()\n"
        "atexit._run_exitfuncs()\n"
        "print(run, enabled, gc.get_freeze_count())\n"
    )
    args = ["validate", str(src), "--region", "FR", "--report-dir", str(report), "-q"]
    out = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True
    )
    run, enabled, at_exit = out.stdout.strip().splitlines()[-1].split()
    assert int(run) > 10_000, "the pipeline's imports were not frozen"
    assert enabled == "True", "the collector stayed off for the run"
    assert int(at_exit) > int(run), "what the run made was not frozen at exit"
    assert "+33612345678" in (report / "contacts.csv").read_text(encoding="utf-8")
    assert (report / "report.html").stat().st_size > 0


def test_importing_is_a_no_op_once_the_pipeline_is_imported() -> None:
    """In a process that has imported the pipeline already (these tests, a second command),
    ``_importing`` neither pauses the collector nor freezes anything."""
    import gc

    import contactpipe.run  # noqa: F401
    from contactpipe.cli import _importing

    frozen = gc.get_freeze_count()
    with _importing():
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_code_tables_are_disjoint() -> None:
    """``run.code_meanings`` imports the load's codes only for a code that is neither a
    transform's nor an extract's: that is only right while no code is in two tables."""
    from contactpipe.extract.common import EXTRACT_CODES
    from contactpipe.load.base import LOAD_CODES
    from contactpipe.run import code_meanings
    from contactpipe.transform.validate import CODES

    assert not set(CODES) & set(EXTRACT_CODES)
    assert not set(CODES) & set(LOAD_CODES)
    assert not set(EXTRACT_CODES) & set(LOAD_CODES)
    load_code, extract_code, code = next(iter(LOAD_CODES)), next(iter(EXTRACT_CODES)), "DUPLICATE"
    seen = code_meanings({load_code: 1, extract_code: 2, code: 3})
    assert seen == {
        load_code: LOAD_CODES[load_code],
        extract_code: EXTRACT_CODES[extract_code],
        code: CODES[code][2],
    }


def test_validate_printing_to_a_pipe_does_not_import_rich(tmp_path: Path) -> None:
    """Standard output that is not a terminal (a log, cron's mail, a pipe) gets the summary as
    plain text: rich, ~30 ms of a one-row run, is for terminals."""
    src = tmp_path / "one.csv"
    src.write_text("phone,name\n06 12 34 56 78,Ana\n", encoding="utf-8")
    args = ["validate", str(src), "--region", "FR", "--report-dir", str(tmp_path / "r"), "-q"]
    doc = _probe(*args, names=("rich", "rich.console", "rich.table"))
    assert doc["code"] in (0, None)
    assert doc["loaded"] == [], f"validate imported {doc['loaded']}"
