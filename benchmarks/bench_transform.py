"""Time ``contactpipe.run.transform`` in process: on one captured batch, or on a whole file.

    python benchmarks/bench_transform.py --csv benchmarks/data/bench_1000000_s1.csv --mode batch
    python benchmarks/bench_transform.py --csv ... --mode small --repeat 21   # a 200-row batch
    python benchmarks/bench_transform.py --csv ... --mode whole --repeat 5
    python benchmarks/bench_transform.py --code-root /tmp/old ...   # another checkout's code

``batch`` is the second batch of 4 MiB of the file, transformed as the batched validate does
(the first batch's mapping, ``workers=1``, an offset); ``small`` its first 200 rows (the fixed
cost per call); ``whole`` the whole file read at once.  Prints the median wall and CPU
seconds (``time.process_time``: every thread of this process) of ``--repeat`` calls after
one warm-up call, with the load average.  ``--code-root DIR``: a folder holding a
``contactpipe`` package (e.g. a link to another checkout's ``pipeline/``), imported instead
of the installed one, to compare two versions in the same session (alternate the runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--csv", type=Path, required=True, help="a benchmark CSV (make_bench)")
    ap.add_argument("--mode", choices=("small", "batch", "whole"), default="batch")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--region", default="FR")
    ap.add_argument("--code-root", type=Path, help="folder holding the contactpipe to time")
    a = ap.parse_args(argv)
    if a.code_root:
        sys.path.insert(0, str(a.code_root))
    from contactpipe import run
    from contactpipe.extract import read_file, read_file_batches

    options = run.RunOptions(region=a.region, legacy_numbers="reject")
    kwargs: dict[str, Any] = {}
    if a.mode == "whole":
        parts = read_file(a.csv, limits=options.limits)
    else:
        batches = read_file_batches(a.csv, limits=options.limits, batch_bytes=4 << 20)
        first, batch = next(batches), next(batches)
        if a.mode == "small":
            batch = dataclasses.replace(batch, frame=batch.frame.head(200))
        _, _, mapped, _ = run.transform([first], options, workers=1)
        kwargs = {"offset": first.frame.height, "mappings": [mapped[0][1]], "workers": 1}
        parts = [batch]
    run.transform(parts, options, **kwargs)  # warm-up: caches, compiled patterns
    walls, cpus = [], []
    for _ in range(a.repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        run.transform(parts, options, **kwargs)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    rows = sum(p.frame.height for p in parts)
    print(
        f"{run.__file__}: {a.mode}, {rows:,} rows: wall {statistics.median(walls) * 1000:.1f} ms,"
        f" CPU {statistics.median(cpus) * 1000:.1f} ms (median of {a.repeat}),"
        f" load {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
