"""Fixed costs of ``contactpipe validate``: start-up, and the cost of many countries.

    .venv/bin/python benchmarks/bench_fixed.py [--runs 7]

Three small files, each run ``--runs`` times as a whole ``contactpipe validate`` process
(interpreter start-up, imports, work, report.html), medians printed:

* ``one_row.csv``: one French mobile (the start-up goal: <= 0.3 s);
* ``countries_240.csv``: 1,000 rows spread over 240 regions, each row its region's example
  mobile number (or a neighbour of it) in national format, with a ``country`` column;
* ``countries_1.csv``: 1,000 French rows of the same shape (the 240-country file should take
  no more than 1.5x this one).

The runs share a cache of phonenumbers' compiled patterns (``CONTACTPIPE_PATTERN_CACHE``, a
fresh folder under ``--out-dir``, filled by one uncounted run of each file first), as every
scheduled run after the first does; the 240-country file is also run with that cache emptied
before each run ("first run"), the cost a new machine or a phonenumbers upgrade pays once.

``--instructions`` also counts, with valgrind's callgrind, the instructions of the one-row run
and of the imports every CLI validate needs whatever the file (interpreter, polars,
phonenumbers, click, jinja2): the start-up floor as a share of the run, counted as plain
imports and again with ``re``'s cache primed from the pattern cache as the command does.
Unlike wall time on a shared machine (30% apart from one minute to the next), the counts
repeat to ~0.5%, so they also tell whether a change to the start-up helped.

The files are written under ``benchmarks/data`` (git ignores it).  Figures, not tests: the
script exits 0 whatever it measures.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import phonenumbers as pn
from _bytecode import compile_package

HERE = Path(__file__).resolve().parent


def _rows_over(regions: list[str], n: int) -> list[tuple[str, str, str]]:
    """(name, phone, country) rows cycling over ``regions``: example mobile numbers with the
    last digit varied, in national format."""
    rows = []
    for i in range(n):
        region = regions[i % len(regions)]
        ex = pn.example_number_for_type(region, pn.PhoneNumberType.MOBILE) or pn.example_number(
            region
        )
        assert ex is not None
        natl = pn.national_significant_number(ex)
        varied = natl[:-1] + str((int(natl[-1]) + i // len(regions)) % 10)
        number = pn.parse(varied, region) if varied.isdigit() else ex
        text = pn.format_number(number, pn.PhoneNumberFormat.NATIONAL) or varied
        rows.append((f"Person {i}", text, region))
    return rows


def make_files(data: Path) -> dict[str, Path]:
    """Write the three files (every time: they are small) and return them by label."""
    data.mkdir(parents=True, exist_ok=True)
    regions = sorted(
        r
        for r in pn.SUPPORTED_REGIONS
        if pn.example_number_for_type(r, pn.PhoneNumberType.MOBILE) or pn.example_number(r)
    )[:240]
    files = {
        "one row": (data / "one_row.csv", [("Alice", "06 12 34 56 78", "FR")]),
        "1,000 rows, 240 countries": (data / "countries_240.csv", _rows_over(regions, 1000)),
        "1,000 rows, 1 country": (data / "countries_1.csv", _rows_over(["FR"], 1000)),
    }
    out = {}
    for label, (path, rows) in files.items():
        lines = ["name,phone,country"] + [f'"{a}","{b}",{c}' for a, b, c in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out[label] = path
    return out


FIRST = "240 countries, first run"


def run_once(path: Path, report: Path, cache: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one whole ``contactpipe validate``
    process, whose pattern cache is ``cache``."""
    exe = str(Path(sys.executable).with_name("contactpipe"))
    cmd = [exe, "validate", str(path), "--region", "FR", "--report-dir", str(report), "--quiet"]
    env = {**os.environ, "CONTACTPIPE_PATTERN_CACHE": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


# What every CLI validate imports whatever its input, in the CLI's order; the collector is
# paused as the CLI pauses it while importing the pipeline (contactpipe.cli._importing).
FLOOR = (
    ("interpreter", ""),
    ("polars", "import polars"),
    ("phonenumbers", "import phonenumbers"),
    ("click", "import click"),
    ("jinja2 (report.html)", "import jinja2"),
)


def instructions(cmd: list[str]) -> int:
    """The instructions one process runs, counted by callgrind (valgrind)."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr[-500:]}")
    return int(found.group(1))


def print_instructions(path: Path, report: Path, wall: float) -> None:
    """The one-row run's instructions: the imports no validate can skip, then the rest."""
    steps, code, before = [], "import gc; gc.disable()", 0
    for label, stmt in FLOOR:
        code = f"{code}; {stmt}" if stmt else code
        count = instructions([sys.executable, "-c", code])
        steps.append((label, count - before))
        before = count
    exe = str(Path(sys.executable).with_name("contactpipe"))
    args = ["validate", str(path), "--region", "FR", "--report-dir", str(report), "--quiet"]
    whole = instructions([sys.executable, exe, *args])
    print(f"\n  instructions of the one-row run (callgrind; time shares at its {wall:.3f} s)")
    for label, count in steps:
        print(f"    {label:<38}{count / 1e6:8,.0f} M")
    print(f"    {'= the floor: imports no validate skips':<38}{before / 1e6:8,.0f} M  "
          f"{before / whole:4.0%}  ~{wall * before / whole:.3f} s")  # fmt: skip
    rest = whole - before
    print(f"    {'contactpipe: its modules, work, exit':<38}{rest / 1e6:8,.0f} M  "
          f"{rest / whole:4.0%}  ~{wall * rest / whole:.3f} s")  # fmt: skip
    print(f"    {'whole process':<38}{whole / 1e6:8,.0f} M")
    # the `contactpipe` command primes re's cache first (contactpipe.recache): the same
    # imports then compile none of their patterns
    primed = instructions([sys.executable, "-c", f"from contactpipe import recache; "
                           f"recache.prime(); {code}"])  # fmt: skip
    print(f"    {'the floor, re primed as the command does':<38}{primed / 1e6:8,.0f} M  "
          f"{primed / whole:4.0%}  ~{wall * primed / whole:.3f} s")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--out-dir", type=Path, default=HERE / "out")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="also count the one-row run's instructions and its start-up floor (valgrind)",
    )
    args = ap.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        ap.error("--instructions needs valgrind (Debian: apt-get install valgrind)")
    files = make_files(args.data_dir)
    compile_package()  # as an installed wheel: no module compiled again in every run
    cache, cold = args.out_dir / "pattern-cache", args.out_dir / "pattern-cache-cold"
    shutil.rmtree(cache, ignore_errors=True)
    for path in files.values():  # fills the cache, as a job's first run does
        run_once(path, args.out_dir / f"fixed-{path.stem}", cache)
    runs = [(label, path, cache) for label, path in files.items()]
    runs.append((FIRST, files["1,000 rows, 240 countries"], cold))
    times: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    cpus: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    loads = [os.getloadavg()[0]]
    for _ in range(args.runs):  # interleaved: a burst of load hits every file alike
        for label, path, folder in runs:
            if folder == cold:
                shutil.rmtree(cold, ignore_errors=True)
            wall, cpu = run_once(path, args.out_dir / f"fixed-{path.stem}", folder)
            times[label].append(wall)
            cpus[label].append(cpu)
        loads.append(os.getloadavg()[0])
    print(
        f"contactpipe validate, median of {args.runs} runs "
        f"(load average {min(loads):.2f}-{max(loads):.2f})"
    )
    for label, ts in times.items():
        med = statistics.median(ts)
        print(
            f"  {label:<28}{med:7.3f} s   (min {min(ts):.3f}, max {max(ts):.3f}); "
            f"CPU {statistics.median(cpus[label]):.3f} s"
        )
    many = statistics.median(times["1,000 rows, 240 countries"])
    one = statistics.median(times["1,000 rows, 1 country"])
    first = statistics.median(times[FIRST])
    print(f"  240 countries / 1 country: {many / one:.2f}x (first run: {first / one:.2f}x)")
    if args.instructions:
        label = "one row"
        wall = statistics.median(times[label])
        os.environ["CONTACTPIPE_PATTERN_CACHE"] = str(cache)
        print_instructions(files[label], args.out_dir / "fixed-instructions", wall)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
