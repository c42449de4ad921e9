"""Benchmark phone normalisation on make_bench data and check it against the ground truth.

    python benchmarks/bench_phones.py --csv /tmp/bench/bench_1000000_s1.csv
    python benchmarks/bench_phones.py --rows 100000 [--region-column]   # generates the data

The generator is ``../shared/bench/make_bench.py`` (``--make-bench`` to point elsewhere);
the ground truth is read from the files it writes beside the CSV.  Prints the share of
distinct candidates the fast path claimed, fast / slow / total seconds, and whether the
output equals the truth: the sorted distinct E.164 numbers of accepted rows, and the
rejected rows (row = index + 2; missing_phone <-> MISSING_PHONE, invalid_phone <-> any
other error code).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from contactpipe.transform.phones import ERROR, WARNING, normalize_phones_with_stats

MAKE_BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench" / "make_bench.py"


def _generate(rows: int, region_column: bool, make_bench: Path, out: Path) -> Path:
    cmd = [sys.executable, str(make_bench), "--rows", str(rows), "--out", str(out)]
    if region_column:
        cmd.append("--region-column")
    subprocess.run(cmd, check=True)
    return out / f"bench_{rows}_s1{'_rc' if region_column else ''}.csv"


def _truth_matches(out: pl.DataFrame, csv: Path) -> tuple[bool, bool, int]:
    """(E.164 set equal, rejected rows equal, rows migrated from a legacy plan).

    The truth is plain phonenumbers, which knows no legacy plans: rows accepted only through
    a legacy-plan conversion (LEGACY_MIGRATED) count as rejected invalid_phone here.
    """
    stem = csv.with_suffix("")
    migrated = out.get_column(WARNING).str.contains("LEGACY_MIGRATED").fill_null(False)
    out = out.with_columns(
        pl.when(migrated).then(pl.lit("LEGACY_MIGRATED")).otherwise(ERROR).alias(ERROR),
        pl.when(migrated).then(None).otherwise("__phone_e164").alias("__phone_e164"),
    )
    expected = Path(f"{stem}.expected_e164.txt").read_text().split()
    got = out.get_column("__phone_e164").drop_nulls().unique().sort().to_list()
    truth = pl.read_csv(f"{stem}.rejected_rows.csv", schema={"row": pl.Int64, "reason": pl.String})
    rejected = (
        out.with_row_index("i")
        .filter(pl.col(ERROR).is_not_null())
        .select(
            row=pl.col("i").cast(pl.Int64) + 2,
            reason=pl.when(pl.col(ERROR) == "MISSING_PHONE")
            .then(pl.lit("missing_phone"))
            .otherwise(pl.lit("invalid_phone")),
        )
    )
    return got == expected, rejected.equals(truth), int(migrated.sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--csv", type=Path, help="make_bench CSV (truth files beside it)")
    ap.add_argument("--rows", type=int, default=100_000, help="rows to generate without --csv")
    ap.add_argument("--region-column", action="store_true", help="generate with default_region")
    ap.add_argument("--region", default="FR", help="default region (default FR)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--make-bench", type=Path, default=MAKE_BENCH)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        csv = a.csv or _generate(a.rows, a.region_column, a.make_bench, Path(tmp))
        t = time.perf_counter()
        df = pl.read_csv(csv, infer_schema=False)
        t_read = time.perf_counter() - t
        country = "default_region" if "default_region" in df.columns else None
        out, st = normalize_phones_with_stats(
            df, phone_col="phone", region=a.region, country_col=country, workers=a.workers
        )
        e164_ok, rejected_ok, migrated = _truth_matches(out, csv)
    s = st.seconds
    print(f"file: {csv.name}  rows: {st.rows:,}  read: {t_read:.2f}s  country column: {country}")
    print(f"distinct (candidate, region) pairs: {st.pairs:,}")
    print(f"fast path claimed: {st.fast_claimed:,} ({st.fast_claimed / max(st.pairs, 1):.1%})")
    print(f"phonenumbers calls (slow path): {st.slow_calls:,}")
    print(
        f"seconds: clean {s.get('clean', 0):.2f}  fast {s.get('fast', 0):.2f}  "
        f"slow {s.get('slow', 0):.2f}  assemble {s.get('assemble', 0):.2f}  "
        f"total normalize_phones {s['total']:.2f}"
    )
    print(f"rows accepted through a legacy-plan conversion (LEGACY_MIGRATED): {migrated:,}")
    print(f"ground truth: expected E.164 equal: {e164_ok}; rejected rows equal: {rejected_ok}")
    return 0 if e164_ok and rejected_ok else 1


if __name__ == "__main__":
    sys.exit(main())
