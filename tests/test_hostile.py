"""The hostile corpus: broken or malicious inputs, each run through the real CLI in its own
process under an address-space limit (``RLIMIT_AS``), with the exit code and message it must
give.  A regression that starts allocating the grid of a bomb fails here (the process hits
its ceiling) instead of taking the machine down.

The files are written at test time by :mod:`tests.hostile` (bombs are megabytes on disk,
gigabytes inflated).  Every crash fuzzing ever finds becomes a case here.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hostile
import pytest
from filemakers import make_csv, make_json, make_text

MIB = 1 << 20
BASELINE_MIB = 1536
"""Address space the CLI needs on a small file (Python, polars' and calamine's arenas and
threads, reserved but mostly untouched); every ceiling is this plus what the case may use."""

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    args: list[str],
    cwd: Path,
    ceiling_mib: int,
    env: dict[str, str] | None = None,
    shell: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``contactpipe ARGS`` in a subprocess limited to ``ceiling_mib`` of address space."""
    limit = ceiling_mib * MIB

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    base = {k: v for k, v in os.environ.items() if not k.endswith(("_KEY", "_TOKEN"))}
    full_env = {**base, "POLARS_MAX_THREADS": "2", "PYTHONPATH": str(ROOT), **(env or {})}
    if shell:  # process substitution needs bash
        command: list[str] | str = ["bash", "-c", f"{sys.executable} -m contactpipe.cli {args[0]}"]
    else:
        command = [sys.executable, "-m", "contactpipe.cli", *args]
    return subprocess.run(
        command,
        cwd=cwd,
        env=full_env,
        preexec_fn=limit_memory,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@dataclass
class Case:
    """One hostile input: how to make it, the arguments, what must come out."""

    id: str
    make: Callable[[Path], list[str]]
    """Writes the input under the folder it gets; returns the CLI arguments after the command."""
    exit: int
    message: str
    """A substring of stdout + stderr."""
    ceiling_mib: int = BASELINE_MIB + 512
    command: str = "validate"
    check: Callable[[Path], None] | None = None
    """Extra assertions on the report folder ``out``."""
    env: dict[str, str] = field(default_factory=dict)
    shell: bool = False


def one(maker: Callable[..., Path], name: str, *extra: str, **kwargs: object) -> Callable:
    def make(tmp: Path) -> list[str]:
        return [str(maker(tmp / name, **kwargs)), *extra]

    return make


def _symlink_to_urandom(tmp: Path) -> list[str]:
    link = tmp / "contacts.csv"
    link.symlink_to("/dev/urandom")
    return [str(link)]


def _bom_with_bad_byte(tmp: Path) -> list[str]:
    body = "Name,Phone\nJosé,+33612345678\nBéa,+33612345679\nCléo,+33612345670\n".encode()
    body = body.replace("Béa".encode(), b"B\xe9a")  # one cp1252 byte in a UTF-8 file
    path = tmp / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body)
    return [str(path)]


def _bom_check(out: Path) -> None:
    contacts = (out / "contacts.csv").read_text("utf-8")
    assert "José" in contacts and "Cléo" in contacts  # not mojibake
    warnings = list(csv.DictReader((out / "warnings.csv").open(encoding="utf-8")))
    assert [(w["row"], w["code"]) for w in warnings] == [("3", "ENCODING_REPAIRED")]


def _nul_bytes(tmp: Path) -> list[str]:
    path = tmp / "nul.csv"
    path.write_bytes(b"Name,Phone\nAna\x00\x00,+33612345678\nBob,+33612345679\n")
    return [str(path)]


def _nul_check(out: Path) -> None:
    rows = list(csv.DictReader((out / "contacts.csv").open(encoding="utf-8")))
    assert [r["name"] for r in rows] == ["Ana", "Bob"]
    warnings = list(csv.DictReader((out / "warnings.csv").open(encoding="utf-8")))
    assert [(w["row"], w["code"]) for w in warnings] == [("2", "CONTROL_CHARS_REMOVED")]


def _formula_header(tmp: Path) -> list[str]:
    rows = [["Name", "Phone", '=HYPERLINK("http://x","y")'], ["Ana", "+33612345678", "a"]]
    rows.append(["Bob", "12", "b"])  # rejected: errors.csv carries the original columns
    return [str(make_csv(tmp / "f.csv", rows)), "--keep-extra-columns"]


def _formula_check(out: Path) -> None:
    for name in ("errors.csv", "warnings.csv"):
        header = (out / name).read_text("utf-8").splitlines()[0]
        assert "'=HYPERLINK" in header, header
        assert ",=HYPERLINK" not in header


def _input_named_contacts(tmp: Path) -> list[str]:
    path = make_csv(tmp / "contacts.csv", [["Name", "Phone"], ["Ana", "+33612345678"]])
    return [str(path), "--report-dir", str(tmp)]


def _unwritable_report_dir(tmp: Path) -> list[str]:
    src = make_csv(tmp / "in.csv", [["Name", "Phone"], ["Ana", "+33612345678"]])
    (tmp / "afile").write_text("x")
    return [str(src), "--report-dir", str(tmp / "afile" / "report")]


def _fifo(tmp: Path) -> list[str]:
    fifo = tmp / "pipe.csv"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as sink:
            sink.write("Name,Phone\nAna,+33612345678\nBob,+33612345679\n")

    threading.Thread(target=feed, daemon=True).start()
    return [str(fifo)]


def _two_contacts(out: Path) -> None:
    assert json.loads((out / "summary.json").read_text("utf-8"))["valid"] == 2


def _process_substitution(tmp: Path) -> list[str]:
    make_csv(tmp / "src.csv", [["Name", "Phone"], ["Ana", "+33612345678"], ["Bob", "+3361234567"]])
    return [f"validate <(cat {tmp / 'src.csv'}) --region FR -q --report-dir {tmp / 'out'}"]


def _big_pipe(tmp: Path) -> list[str]:
    return [
        f"validate <(yes 'Ana,+33612345678' | head -c 3000000) --max-file-size 1M -q "
        f"--report-dir {tmp / 'out'}"
    ]


def _control_header(tmp: Path) -> list[str]:
    path = make_csv(tmp / "esc.csv", [["\x1b[31mName", "\x1b]0;owned\x07City"], ["Ana", "Paris"]])
    return [str(path)]


def _control_file_name(tmp: Path) -> list[str]:
    path = make_csv(tmp / "x\x1b[2Jy.csv", [["Name", "City"], ["Ana", "Paris"]])
    return [str(path)]


CASES = [
    Case(
        "xlsx-far-cell",
        one(hostile.make_far_cell_xlsx, "far.xlsx"),
        2,
        "used range of 17,179,869,184 cells, above the limit of 20,000,000",
    ),
    Case(
        "xlsx-absurd-dimension",  # the declared dimension lies; the cells are few: read it
        one(hostile.make_dimension_xlsx, "dim.xlsx", "--region", "FR"),
        0,
        "contacts",
    ),
    Case(
        "xlsx-sheet-bomb",
        one(hostile.make_sheet_bomb_xlsx, "sheet.xlsx", inflated=1200 * MIB),
        2,
        "decompresses to more than 1.2 GiB, above the limit of 1.0 GiB",
    ),
    Case(
        "xlsx-string-bomb",
        one(hostile.make_string_bomb_xlsx, "string.xlsx", length=1100 * MIB),
        2,
        "--max-uncompressed",
    ),
    Case(
        "xlsx-many-shared-strings",
        one(hostile.make_many_strings_xlsx, "many.xlsx", "--max-cells", "1000000", count=2_000_000),
        2,
        "shared-string table of 2,000,000 cells, above the limit of 1,000,000",
    ),
    Case(
        "xlsx-cells-without-references",  # placed one after the other: rows x widest row
        one(hostile.make_unreferenced_xlsx, "noref.xlsx"),
        2,
        "has a used range of 3,276,849,152 cells",
    ),
    *[
        Case(
            f"xlsx-far-cell-{form}",
            one(hostile.make_far_reference_xlsx, "far.xlsx", form=form),
            2,
            "used range of 14,745,600,000 cells, above the limit of 20,000,000",
        )
        for form in hostile.REFERENCE_FORMS
    ],
    Case(
        "xlsx-prefixed-reference-is-no-reference",  # calamine ignores x:r: cells line up
        one(hostile.make_decoy_reference_xlsx, "decoy.xlsx", "--max-cells", "100000"),
        2,
        "used range of 300,000 cells, above the limit of 100,000",
    ),
    Case(
        "xlsx-empty-reference",  # r="": calamine's row and column wrap past u32
        lambda tmp: [
            str(
                hostile.make_raw_xlsx(
                    tmp / "e.xlsx",
                    hostile.sheet_xml(
                        [
                            *hostile.header_rows(),
                            '<row r="3"><c r="" t="inlineStr"><is><t>x</t></is></c></row>',
                        ]
                    ),
                )
            )
        ],
        2,
        "columns, above the limit of 16,384",
    ),
    Case(
        "xlsx-far-row-of-cells-without-references",
        one(hostile.make_far_row_xlsx, "farrow.xlsx"),
        2,
        "used range of 27,000,000 cells, above the limit of 20,000,000",
    ),
    *[
        Case(
            f"xlsx-far-row-of-{name}-cells",  # quick-xml: any prefix, even an empty one
            one(
                hostile.make_far_row_xlsx,
                "odd.xlsx",
                "--max-cells",
                "100000",
                row="10000",
                tag=tag,
            ),
            2,
            "used range of 300,000 cells, above the limit of 100,000",
        )
        for name, tag in (("empty-prefix", ":c"), ("accented-prefix", "é:c"), ("slash", "x/:c"))
    ],
    Case(
        "xlsx-row-zero-wraps",  # <row r="0">: a cell without reference lands on row 2^32
        one(hostile.make_far_row_xlsx, "zero.xlsx", row="0", width=1),
        2,
        "above the limit of 20,000,000",
    ),
    Case(
        "xlsx-odd-but-genuine-references",
        one(hostile.make_odd_genuine_xlsx, "odd.xlsx", "--region", "FR"),
        0,
        "contacts",
        check=_two_contacts,
    ),
    Case(
        "xlsx-lying-directory",  # calamine trusts the data, not the directory: refuse
        one(hostile.make_lying_xlsx, "lying.xlsx", inflated=100 * MIB),
        2,
        "larger than its directory says",
    ),
    *[
        Case(
            f"ods-repeat-bomb-{form}",  # 16,000 x 2,000: only the --max-cells limit stops it
            one(hostile.make_ods_repeat_bomb, "rep.ods", columns=16_000, rows=2000, form=form),
            2,
            "used range of 32,032,000 cells, above the limit of 20,000,000",
        )
        for form in hostile.ODS_REPEAT_FORMS
    ],
    Case(
        "ods-column-repeat-bomb",
        one(hostile.make_ods_repeat_bomb, "rep.ods"),
        2,
        "100,000 columns, above the limit of 16,384",
    ),
    Case(
        "parquet-run-length-bomb",
        one(hostile.make_parquet_bomb, "bomb.parquet"),
        2,
        "has 25,000,000 cells, above the limit of 20,000,000",
    ),
    Case(
        "json-above-its-share-of-the-size-limit",
        lambda tmp: [
            str(make_json(tmp / "big.json", [{"phone": "+33612345678"}] * 40_000)),
            "--max-file-size",
            "4M",
        ],
        2,
        "is larger than 512.0 KiB, the most JSON read at once",
    ),
    Case(
        "csv-one-line-of-commas",  # 20 M empty fields on one line: refused before parsing
        lambda tmp: [str(make_text(tmp / "commas.csv", "Name,Phone\n" + "," * 20_000_000))],
        2,
        "above the limit of 16,384",
    ),
    Case(
        "csv-many-lines-of-commas",
        lambda tmp: [
            str(make_text(tmp / "rows.csv", "Name,Phone" + "," * 98 + "\n" + "," * 99_999_999))
        ],
        2,
        "fields, above the limit of 80,000,000 for a text file",
    ),
    Case(
        "csv-too-wide",
        one(hostile.make_wide_csv, "wide.csv", columns=20_000),
        2,
        "has 20,000 columns, above the limit of 16,384; refused to protect memory",
    ),
    Case(
        "csv-excel-width-is-read",
        one(hostile.make_wide_csv, "wide.csv", "--region", "FR", columns=16_384),
        0,
        "contacts",
        ceiling_mib=BASELINE_MIB + 1024,
    ),
    Case(
        "json-deep",
        lambda tmp: [str(make_text(tmp / "deep.json", "[" * 200_000))],
        2,
        "deep.json: JSON nested too deeply to read",
    ),
    Case(
        "json-huge-integer",
        lambda tmp: [str(make_text(tmp / "int.json", '[{"phone": %s}]' % ("9" * 5000)))],
        2,
        "int.json: unreadable JSON (Exceeds the limit (4300 digits)",
    ),
    Case(
        "json-too-many-keys",
        lambda tmp: [str(make_json(tmp / "k.json", [{f"k{i}": 1 for i in range(20_000)}]))],
        2,
        "k.json: has 20,000 columns, above the limit of 16,384",
    ),
    Case("symlink-to-urandom", _symlink_to_urandom, 2, "is a character device"),
    Case(
        "file-above-max-size",
        lambda tmp: [
            str(make_text(tmp / "big.csv", "Name,Phone\n" + "Ana,+33612345678\n" * 100_000)),
            "--max-file-size",
            "1M",
        ],
        2,
        "is larger than 1.0 MiB; refused to protect memory",
    ),
    Case("fifo", _fifo, 0, "contacts", check=_two_contacts),
    Case("process-substitution", _process_substitution, 0, "contacts", shell=True),
    Case("pipe-above-max-size", _big_pipe, 2, "is larger than 1.0 MiB", shell=True),
    Case("utf8-bom-bad-byte", _bom_with_bad_byte, 0, "contacts", check=_bom_check),
    Case("nul-bytes", _nul_bytes, 0, "contacts", check=_nul_check),
    Case("formula-header", _formula_header, 0, "contacts", check=_formula_check),
    Case(
        "report-dir-over-input",
        _input_named_contacts,
        2,
        "would overwrite the input file",
    ),
    Case("report-dir-unwritable", _unwritable_report_dir, 2, "is a file, not a folder"),
    Case("control-chars-in-header", _control_header, 2, "Headers seen: '[31mName'"),
    # found by test_fuzz.py
    Case(
        "xlsx-bad-deflate-stream",
        one(hostile.make_corrupt_xlsx, "deflate.xlsx", kind="deflate"),
        2,
        "is a corrupt or truncated ZIP/Excel file",
    ),
    Case(
        "xlsx-unknown-zip-version",
        one(hostile.make_corrupt_xlsx, "version.xlsx", kind="version"),
        2,
        "is a corrupt or truncated ZIP/Excel file",
    ),
    Case(
        "header-star-and-regex",
        lambda tmp: [
            str(make_text(tmp / "star.csv", "Name,*,^Phone$,Phone\nAna,x,y,+33612345678\n")),
            "--keep-extra-columns",
        ],
        0,
        "contacts",
    ),
    Case("control-chars-in-file-name", _control_file_name, 2, "x\\x1b[2Jy.csv"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    args = case.make(tmp_path)
    out = tmp_path / "out"
    if not case.shell:
        args = [case.command, *args, "-q"]
        if "--report-dir" not in args:
            args += ["--report-dir", str(out)]
    result = run_cli(args, tmp_path, case.ceiling_mib, case.env, case.shell)
    output = result.stdout + result.stderr
    assert result.returncode == case.exit, output[-2000:]
    assert case.message in output, output[-2000:]
    assert "Traceback" not in output and "Unexpected error" not in output
    assert "\x1b" not in output  # the terminal never gets an escape sequence from a file
    if case.check is not None:
        case.check(out)


def test_ceiling_catches_an_unbounded_reader(tmp_path: Path) -> None:
    """The harness itself: a process that allocates past its ceiling fails, it does not pass."""
    probe = subprocess.run(
        [sys.executable, "-c", "b = bytearray(3 << 30)"],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)),
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0 and b"MemoryError" in probe.stderr
