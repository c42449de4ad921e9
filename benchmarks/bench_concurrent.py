"""Many workers on one account: 2 and 4 ``contactpipe import`` processes at once into one
MsgFlash account (10 requests/s per key, 100 ms added latency), each with its share of N
contacts, under each rate limit store.

    .venv/bin/python benchmarks/bench_concurrent.py [--n 300] [--parts 2,4]
                                                    [--stores none,local,redis]

The sandbox runs in its own process (:class:`benchlib.Sandbox`); the imports are the real CLI,
each in its own process, started together; Redis is Debian's ``redis-server`` (``make redis``)
started here on a free port.  First one import of all N contacts (the yardstick), then for
each store and each number of processes: requests the server answered, its 429s, the wall
time from the start of the processes to the end of the last, that time against the
yardstick, and the longest load stage of the processes (their start-up, CPU on a shared
machine, left out).  ``none`` is the behaviour before the shared store (each process its
own limiter).

Goals (exit 1 when one fails): with ``local`` and ``redis``, no 429 and a wall time within
25% (+ 3 s of start-up) of the yardstick.  Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import HERE, Sandbox, hms, people, print_checks, print_table

from contactpipe.sandbox import SandboxSettings

OUT = HERE / "out" / "concurrent"
LATENCY_MS = 100.0
HEAD = ["store", "processes", "contacts", "requests", "429s", "wall", "vs one run", "load stage"]


def write_parts(folder: Path, n: int, parts: int) -> list[Path]:
    rows = people(n)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(parts):
        path = folder / f"part-{k}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["Name", "Phone", "Tags", "City"])
            for phone, name, tags, city in rows[k::parts]:
                w.writerow([name, phone, ",".join(tags), city])
        files.append(path)
    return files


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    proc = subprocess.Popen([*args, "no"], stdout=subprocess.DEVNULL)
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def run(n: int, parts: int, store: str) -> dict[str, Any]:
    """``parts`` imports of N/parts contacts each, at once, into a fresh sandbox."""
    settings = SandboxSettings(msgflash_rate_limit=10, msgflash_latency_ms=LATENCY_MS)
    folder = OUT / f"{store.split(':')[0]}-{parts}"
    shutil.rmtree(folder, ignore_errors=True)
    files = write_parts(folder / "in", n, parts)
    with Sandbox(settings) as sb, tempfile.TemporaryDirectory() as state:
        env = {**os.environ, **sb.env(), "CONTACTPIPE_RATE_LIMIT_STORE": store}
        if store == "local":
            env["CONTACTPIPE_RATE_LIMIT_STORE"] = f"local:{state}/ratelimit"
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "contactpipe.cli",
                    "import",
                    str(src),
                    "--target",
                    "msgflash",
                    "--no-state",
                    "-q",
                    "--region",
                    "FR",
                    "--report-dir",
                    str(folder / f"out-{k}"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for k, src in enumerate(files)
        ]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - t0
        journal = sb.journal("msgflash")
    summaries = [
        json.loads((folder / f"out-{k}" / "summary.json").read_text()) for k in range(parts)
    ]
    loaded = sum(s["load"]["loaded"] for s in summaries)
    return {
        "store": store.split("://")[0] if "://" in store else store,
        "parts": parts,
        "n": n,
        "codes": codes,
        "loaded": loaded,
        "requests": len(journal),
        "throttled": sum(1 for e in journal if e["status"] == 429),
        "wall": wall,
        "load": max(s["seconds"]["load"] for s in summaries),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="contacts in all (default 300)")
    ap.add_argument("--parts", default="2,4", help="numbers of processes (default 2,4)")
    ap.add_argument("--stores", default="none,local,redis", help="stores (default all three)")
    args = ap.parse_args()
    parts = [int(p) for p in args.parts.split(",")]
    stores = args.stores.split(",")
    redis_proc = None
    urls = {"none": "none", "local": "local"}
    if "redis" in stores:
        redis_proc, urls["redis"] = start_redis()
    try:
        one = run(args.n, 1, "none")
        results = [run(args.n, k, urls[s]) for s in stores for k in parts]
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
    rows = []
    checks: list[tuple[str, bool]] = []
    for r in [one, *results]:
        ratio = r["wall"] / one["wall"]
        label = "one run" if r is one else r["store"]
        counts = [str(r["parts"]), f"{r['n']:,}", f"{r['requests']:,}", str(r["throttled"])]
        rows.append([label, *counts, hms(r["wall"]), f"{ratio:.2f}x", hms(r["load"])])
        done = r["codes"] == [0] * r["parts"] and r["loaded"] == r["n"]
        checks.append((f"{label} x{r['parts']}: every import exits 0, all loaded", done))
        if r is not one and r["store"] != "none":
            checks.append((f"{label} x{r['parts']}: no 429", r["throttled"] == 0))
            checks.append((
                f"{label} x{r['parts']}: wall <= 1.25 x one run + 3 s",
                r["wall"] <= 1.25 * one["wall"] + 3.0,
            ))  # fmt: skip
    print(f"MsgFlash, 10 req/s per key, {LATENCY_MS:.0f} ms latency; load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    print_table(HEAD, rows)
    return print_checks(checks)


if __name__ == "__main__":
    sys.exit(main())
