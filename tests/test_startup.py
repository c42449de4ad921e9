"""Start-up: ``contactpipe validate`` does not pay for what only a load needs (issue 16).

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
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
names = ("httpx", "httpcore", "h11", "contactpipe.load.client", "pygments")
print(json.dumps({"code": code, "loaded": [m for m in names if m in sys.modules]}))
"""


def _probe(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    doc: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return doc


def test_validate_of_one_row_does_not_import_httpx(tmp_path: Path) -> None:
    src = tmp_path / "one.csv"
    src.write_text("phone,name\n06 12 34 56 78,Ana\n", encoding="utf-8")
    report = tmp_path / "report"
    doc = _probe("validate", str(src), "--region", "FR", "--report-dir", str(report), "-q")
    assert doc["code"] in (0, None)
    assert doc["loaded"] == [], f"validate imported {doc['loaded']}"
    # the run did its work: the contact is in the report
    assert "+33612345678" in (report / "contacts.csv").read_text(encoding="utf-8")


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
