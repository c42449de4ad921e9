"""Time ``contactpipe validate`` against the naive pandas baseline, same files, same run.

    .venv/bin/python benchmarks/bench_validate.py                 # 1M-row CSV + 100k-row XLSX
    .venv/bin/python benchmarks/bench_validate.py --rows 100000 --xlsx-rows 0
    make bench

Data and ground truth come from ``../shared/bench/make_bench.py`` (cached under
``benchmarks/data``).  Each tool runs in its own child process; the figures are wall time and the
child's peak RSS.  The product's output is checked against the ground truth: the distinct E.164
numbers of ``contacts.csv`` must equal ``*.expected_e164.txt`` and the rejected rows of
``errors.csv`` must equal ``*.rejected_rows.csv`` (row numbers and reasons).  Nothing here is a
pass/fail test: it prints figures (and exits 1 only if the output is not exact).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _bytecode import compile_package

from contactpipe.transform import mapping

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "bench"
REASONS = {"MISSING_PHONE": "missing_phone"}  # every other rejection code is "invalid_phone"

# Runs a command and prints its own children's peak RSS (KiB) on stderr's last line.
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "wall = time.perf_counter() - t\n"
    "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(f'{rc} {wall:.3f} {ru.ru_maxrss} {ru.ru_utime + ru.ru_stime:.3f}', file=sys.stderr)\n"
)


def measure(cmd: list[str]) -> tuple[int, float, float, float]:
    """(exit code, wall seconds, peak RSS MiB, CPU seconds: user + system of the whole
    process tree) of ``cmd`` run in a fresh child.  CPU time says less about the machine's
    load than wall time does (both cores shared by other work)."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=False
    )
    last = proc.stderr.strip().splitlines()[-1]
    rc, wall, rss, cpu = last.split()
    if int(rc) != 0:
        sys.stderr.write(proc.stderr)
    return int(rc), float(wall), int(rss) / 1024, float(cpu)


def make_data(rows: int, xlsx: bool, data_dir: Path, make_bench: Path) -> Path:
    """Generate (once) the bench file; return its path."""
    name = f"bench_{rows}_s1"
    target = data_dir / f"{name}.{'xlsx' if xlsx else 'csv'}"
    if not target.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(make_bench), "--rows", str(rows), "--out", str(data_dir)]
        if xlsx:
            cmd += ["--xlsx", "--no-csv", "--name", name]
        print(f"generating {target.name} ...", flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return target


def check_truth(data: Path, report: Path) -> dict[str, object]:
    """Compare the product's report with the generator's ground truth."""
    stem = data.with_suffix("")
    expected = set(Path(f"{stem}.expected_e164.txt").read_text("ascii").split())
    with Path(f"{stem}.rejected_rows.csv").open(encoding="ascii") as fh:
        truth_rejected = {(int(r["row"]), r["reason"]) for r in csv.DictReader(fh)}
    with (report / "contacts.csv").open(encoding="utf-8") as fh:
        got = {r["phone"] for r in csv.DictReader(fh)}
    got_rejected = set()
    placeholders = set(mapping.placeholders())  # contactpipe reads them as empty cells
    with (report / "errors.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["code"] != "DUPLICATE":
                reason = REASONS.get(r["code"], "invalid_phone")
                cell = (r.get(r["column"]) or "").strip().lstrip("'").casefold()
                if reason == "missing_phone" and cell in placeholders:
                    reason = "invalid_phone"  # the truth counts 'N/A', '-', '?' as invalid
                got_rejected.add((int(r["row"]), reason))
    return {
        "e164_exact": got == expected,
        "e164_missing": len(expected - got),
        "e164_extra": len(got - expected),
        "rejected_exact": got_rejected == truth_rejected,
        "rejected_missing": len(truth_rejected - got_rejected),
        "rejected_extra": len(got_rejected - truth_rejected),
    }


def bench_file(data: Path, args: argparse.Namespace, out_dir: Path) -> dict[str, object]:
    """Run product then baseline on ``data``, ``--repeat`` times in turn; return the medians
    (and every run's figures, with the load average before each)."""
    runs = []
    for _ in range(args.repeat):
        load = round(os.getloadavg()[0], 2)
        runs.append({"load": load, **bench_once(data, args, out_dir)})
    result = dict(runs[-1])  # truth, rows and stages: the last run's
    for tool in ("product", "baseline"):
        if tool in result:
            result[tool] = {
                **result[tool],  # type: ignore[dict-item]
                "seconds": statistics.median(r[tool]["seconds"] for r in runs),
                "peak_mib": statistics.median(r[tool]["peak_mib"] for r in runs),
                "cpu_s": statistics.median(r[tool]["cpu_s"] for r in runs),
            }
    if "speedup" in result:
        result["speedup"] = round(
            result["baseline"]["seconds"] / result["product"]["seconds"],
            1,  # type: ignore[index]
        )
    result["runs"] = runs
    return result


def bench_once(data: Path, args: argparse.Namespace, out_dir: Path) -> dict[str, object]:
    """Run product then baseline on ``data`` once; return the figures."""
    report = out_dir / f"{data.stem}-{data.suffix[1:]}-report"
    product_cmd = [
        str(Path(sys.executable).with_name("contactpipe")),
        "validate",
        str(data),
        "--region",
        "FR",
        "--report-dir",
        str(report),
        "--legacy-numbers",
        args.legacy_numbers,
        "--quiet",
        "--json",
        *(["--max-cells", str(args.max_cells)] if args.max_cells else []),
    ]
    rc, wall, rss, cpu = measure(product_cmd)
    result: dict[str, object] = {
        "file": data.name,
        "product": {
            "exit": rc,
            "seconds": round(wall, 2),
            "peak_mib": round(rss),
            "cpu_s": round(cpu, 2),
        },
    }
    if rc == 0:
        summary = json.loads((report / "summary.json").read_text("utf-8"))
        result["rows"] = summary["rows_read"]
        result["product"]["stages"] = summary["seconds"]  # type: ignore[index]
        result["truth"] = check_truth(data, report)
    if not args.skip_baseline:
        base_out = out_dir / f"{data.stem}-{data.suffix[1:]}-baseline"
        brc, bwall, brss, bcpu = measure(
            [sys.executable, str(args.baseline), str(data), "FR", str(base_out)]
        )
        result["baseline"] = {
            "exit": brc,
            "seconds": round(bwall, 2),
            "peak_mib": round(brss),
            "cpu_s": round(bcpu, 2),
        }
        if brc == 0 and rc == 0:
            result["speedup"] = round(bwall / wall, 1)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="CSV rows (0: skip)")
    ap.add_argument("--xlsx-rows", type=int, default=100_000, help="XLSX rows (0: skip)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--out-dir", type=Path, default=HERE / "out")
    ap.add_argument("--baseline", type=Path, default=SHARED / "baseline_pandas.py")
    ap.add_argument("--make-bench", type=Path, default=SHARED / "make_bench.py")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--max-cells",
        type=int,
        default=0,
        help="passed to contactpipe (a 10M-row CSV has more fields than the default allows)",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of each tool, in turn; medians are printed"
    )
    ap.add_argument(
        "--legacy-numbers",
        choices=["reject", "migrate"],
        default="reject",
        help="the ground truth knows only today's numbering plans (as does the baseline), so "
        "'reject' is the comparable mode; with 'migrate' (the product's default) the old "
        "8-digit Benin/Côte d'Ivoire numbers are converted and the truth check differs by "
        "exactly those rows, each flagged LEGACY_MIGRATED",
    )
    args = ap.parse_args()
    if not args.make_bench.exists():
        print(f"make_bench.py not found at {args.make_bench}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    compile_package()  # as an installed wheel: no module compiled again in every run
    results = []
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    for rows, xlsx in ((args.rows, False), (args.xlsx_rows, True)):
        if rows:
            data = make_data(rows, xlsx, args.data_dir, args.make_bench)
            print(f"running {data.name} ...", flush=True)
            results.append(bench_file(data, args, args.out_dir))
    print(
        f"\ncontactpipe validate (--legacy-numbers {args.legacy_numbers}) vs baseline_pandas.py"
        f"  ({started}, {os.cpu_count()} cores, median of {args.repeat} run(s) each)"
    )
    print(f"{'file':<26}{'tool':<13}{'seconds':>9}{'peak MiB':>10}{'ratio':>8}  exact")
    exact = True
    for r in results:
        p, b, truth = r["product"], r.get("baseline"), r.get("truth", {})
        ok = bool(truth.get("e164_exact") and truth.get("rejected_exact"))
        exact &= ok
        ratio = f"{r['speedup']}x" if "speedup" in r else "-"
        print(
            f"{r['file']:<26}{'contactpipe':<13}{p['seconds']:>9}{p['peak_mib']:>10}"
            f"{ratio:>8}  {ok}"
        )
        if b:
            print(f"{'':<26}{'baseline':<13}{b['seconds']:>9}{b['peak_mib']:>10}")
        cpu = f"{p['cpu_s']} s" + (f", baseline {b['cpu_s']} s" if b else "")
        print(f"{'':<26}CPU (user + system, median): contactpipe {cpu}")
        loads = ", ".join(str(x["load"]) for x in r["runs"])
        print(f"{'':<26}load average before each run: {loads}")
        if not ok:
            print(f"  truth check: {truth}")
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=2), "utf-8")
    print(f"\nfull figures: {args.out_dir / 'results.json'}")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
