"""The sync state: a re-import of 100,000 contacts, unchanged and with 1% changed, per target,
with the state and without it (today's behaviour), against the sandbox with its documented
rate limits; then the store's own overhead for 1,000,000 contacts.

    .venv/bin/python benchmarks/bench_state.py [--targets waapi,vobiz,msgflash] [--n 100000]
                                               [--store-n 1000000] [--pg-url URL|auto]

The sandbox runs in its own process (``benchlib.Sandbox``) with the default settings: MsgFlash
10 requests/s, WAAPI 100 per 15 minutes, Vobiz 100/s.  The input is ``bench_load``'s CSV of N
contacts; the 1% file renames every 100th contact.

Per target, in one sandbox, in this order:

1. **first**: the account is filled (WAAPI and Vobiz: an import with the state; MsgFlash: the
   N contacts are seeded in the sandbox process, since creating 100,000 at 10/s takes 2 h 47
   min, then an import with the state lists them and records them);
2. **unchanged, no state** / **unchanged, state**: the same file again;
3. **1% changed, no state**, then **1% changed, state** (the state's hashes are still the old
   ones, so it sends the changed rows although the no-state run already wrote them: the
   requests are those a real 1% day makes).

Reported: requests by endpoint (from the sandbox journal), the load stage's seconds, and the
state's decisions.  Goals (exit 1 when one fails): no request at all on an unchanged re-import
with the state; with 1% changed, requests = changed rows for MsgFlash, one batch for WAAPI
and Vobiz; every contact loaded, none failed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_load import make_csv
from benchlib import DATA, HERE, Sandbox, parse_targets, people, print_checks, print_table

from contactpipe.sandbox import SandboxSettings

OUT = HERE / "out" / "state"
HEAD = ["target", "run", "requests", "by endpoint", "load s", "sent", "skipped", "failed"]


def changed_csv(n: int) -> Path:
    """The bench_load CSV with every 100th contact renamed (1%)."""
    path = DATA / f"state_{n}_changed.csv"
    if path.exists():
        return path
    src = make_csv(n)
    tmp = path.with_suffix(".tmp")
    with src.open(encoding="utf-8") as fin, tmp.open("w", newline="", encoding="utf-8") as fout:
        r, w = csv.reader(fin), csv.writer(fout)
        w.writerow(next(r))
        for i, row in enumerate(r):
            if i % 100 == 0:
                row[0] += " (renamed)"
            w.writerow(row)
    tmp.replace(path)
    return path


def seed_msgflash(app: Any, n: int) -> int:
    """N contacts in the MsgFlash store, as bench_load's CSV would have created them."""
    with app.lock:
        store = app.msgflash.store
        for ph, nm, tg, city in people(n):
            store.create_contact(nm, ph, tg, {"city": city})
    return n


def endpoint(entry: dict[str, Any]) -> str:
    """``PUT contacts/{id}``: the journal entry's method and last path segments, ids folded."""
    parts = entry["path"].rstrip("/").split("/")
    if parts[-1].startswith("cnt_"):
        parts[-1] = "{id}"
    return f"{entry['method']} {'/'.join(parts[-2:])}"


def run_import(
    sb: Sandbox, target: str, src: Path, out: Path, state: Path | None, resume: bool = False
) -> dict:
    from contactpipe.load.base import LoadOptions
    from contactpipe.report.progress import NullProgress
    from contactpipe.run import ImportOptions, RunOptions, import_files

    shutil.rmtree(out, ignore_errors=True)
    time.sleep(1.1)  # the server's rate window forgets the previous run (a fresh client can't)
    sb.clear_journal()
    imp = ImportOptions(target=target, load=LoadOptions(), env=sb.env(), state=state, resume=resume)
    options = RunOptions(region="FR", keep_extra_columns=True)
    t = time.perf_counter()
    summary = import_files([str(src)], options, imp, out, NullProgress()).summary
    wall = time.perf_counter() - t
    journal = sb.journal(target)
    load = summary["load"]
    decided = (load.get("state") or {}).get("decided") or {"sent": load["loaded"] + load["failed"]}
    return {
        "requests": len(journal),
        "by_endpoint": Counter(endpoint(e) for e in journal),
        "load_s": summary["seconds"].get("load", 0.0),
        "wall_s": wall,
        "loaded": load["loaded"],
        "failed": load["failed"],
        "sent": decided.get("sent", 0),
        "skipped": decided.get("skipped_by_state", 0),
        "resumed": decided.get("resumed", 0),
        "saved": (load.get("state") or {}).get("saved"),
    }


def bench_target(target: str, n: int, workdir: Path) -> dict[str, Any]:
    src, changed = make_csv(n), changed_csv(n)
    state = workdir / f"{target}.sqlite"
    seed = functools.partial(seed_msgflash, n=n) if target == "msgflash" else None
    runs: dict[str, dict] = {}
    with Sandbox(SandboxSettings(), seed, start_timeout_s=600) as sb:
        out = OUT / target
        runs["first"] = run_import(sb, target, src, out / "first", state)
        runs["unchanged, no state"] = run_import(sb, target, src, out / "u0", None)
        runs["unchanged, state"] = run_import(sb, target, src, out / "u1", state)
        runs["1% changed, no state"] = run_import(sb, target, changed, out / "c0", None)
        runs["1% changed, state"] = run_import(sb, target, changed, out / "c1", state)
    return {"target": target, "n": n, "runs": runs}


def bench_kill(target: str, n: int, workdir: Path, seed: int = 13) -> dict[str, Any]:
    """``kill -9`` of the CLI after a random number of bulk writes, then ``--resume``."""
    import random
    import signal
    import subprocess

    src = make_csv(n)
    state = workdir / f"kill-{target}.sqlite"
    method = "POST"
    with Sandbox(SandboxSettings(), start_timeout_s=600) as sb:
        full = -(-n // 10_000)
        stop_after = random.Random(seed).randint(1, full - 1)
        env = {**os.environ, **sb.env()}
        args = [sys.executable, "-m", "contactpipe.cli", "import", str(src), "--target", target]
        args += ["--region", "FR", "--keep-extra-columns", "-q", "--state", str(state)]
        args += ["--report-dir", str(OUT / target / "killed")]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while proc.poll() is None:
            writes = [e for e in sb.journal(target, method) if e["status"] in (200, 201)]
            if len(writes) >= stop_after:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = len(sb.journal(target, method))
        resumed = run_import(sb, target, src, OUT / target / "resumed", state, resume=True)
        after = resumed["by_endpoint"]
        in_sandbox = sb.counts()[target]["contacts"]
    writes_resume = sum(v for k, v in after.items() if k.startswith("POST"))
    return {
        "target": target,
        "killed_after": before,
        "resume_writes": writes_resume,
        "total_writes": before + writes_resume,
        "full_run_writes": full,
        "resumed_rows": resumed["resumed"],
        "loaded": resumed["loaded"],
        "in_sandbox": in_sandbox,
    }


def bench_store(n: int, workdir: Path, location: str | None = None) -> dict[str, float]:
    """Confirm, look up and hash N contacts with the embedded store (or the store at
    ``location``, a PostgreSQL URL)."""
    import polars as pl

    from contactpipe.load import registry
    from contactpipe.load.base import LoadOptions
    from contactpipe.load.kit import state as sync
    from contactpipe.state import Confirmed, open_store

    path = workdir / "store.sqlite"
    phones = [f"+336{i:08d}" for i in range(n)]
    cls = registry.get("waapi")
    env = {"WAAPI_TOKEN": "t", "WAAPI_PHONE_ID": "1", "WAAPI_BASE_URL": "http://127.0.0.1:1/api"}
    target = cls(cls.config_from_env(env, None), LoadOptions())
    frame = pl.DataFrame(
        {
            "phone": phones,
            "name": [f"Contact {i}" for i in range(n)],
            "tags": [["vip"]] * n,
            "row": list(range(2, n + 2)),
        }
    )
    t = time.perf_counter()
    hashes = sync.row_hashes(target, frame)
    hash_s = time.perf_counter() - t
    with open_store(location or path) as store:
        store.forget("waapi", "acc")
        t = time.perf_counter()
        store.confirm("waapi", "acc", "run1", map(Confirmed, phones, hashes))
        confirm_s = time.perf_counter() - t
        t = time.perf_counter()
        found = store.lookup("waapi", "acc")
        lookup_s = time.perf_counter() - t
        assert len(found) == n
        t = time.perf_counter()
        store.confirm("waapi", "acc", "run2", map(Confirmed, phones[: n // 100], hashes))
        update_s = time.perf_counter() - t
    if location:
        size = store_size(location)
    else:
        size = sum(os.path.getsize(p) for p in workdir.glob("store.sqlite*"))
    return {
        "n": n,
        "hash_s": hash_s,
        "confirm_s": confirm_s,
        "lookup_s": lookup_s,
        "update_1pct_s": update_s,
        "size_mib": size / 2**20,
    }


def store_size(url: str) -> int:
    """Bytes of the PostgreSQL store's contacts table, its indexes and TOAST included."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_total_relation_size('contactpipe_contacts')").fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def postgres_url(option: str | None) -> Iterator[str | None]:
    """``--pg-url``: a server's URL as given, ``auto``: a throwaway server of the machine's
    PostgreSQL binaries with its default (durable) settings, as the tests start one."""
    if option != "auto":
        yield option
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    import pgserver

    with pgserver.running(durable=True) as server:
        yield server.url()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="waapi,vobiz,msgflash")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--store-n", type=int, default=1_000_000)
    ap.add_argument("--kill", default="waapi,vobiz", help="targets of the kill -9 + --resume run")
    ap.add_argument(
        "--pg-url",
        help="also measure the store on this PostgreSQL database (its contactpipe_* tables; "
        "'auto': start a throwaway server from the machine's PostgreSQL binaries)",
    )
    args = ap.parse_args()
    targets = parse_targets(ap, args.targets) if args.targets else []
    checks: list[tuple[str, bool]] = []
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for target in targets:
            r = bench_target(target, args.n, work)
            for name, run in r["runs"].items():
                ends = ", ".join(f"{k} {v:,}" for k, v in sorted(run["by_endpoint"].items()))
                counts = [f"{run[k]:,}" for k in ("sent", "skipped", "failed")]
                load_s = f"{run['load_s']:.1f}"
                rows.append([target, name, f"{run['requests']:,}", ends or "-", load_s, *counts])
                checks.append((f"{target} {name}: all loaded", run["loaded"] == args.n))
            runs = r["runs"]
            checks.append((f"{target}: unchanged + state = 0 requests",
                           runs["unchanged, state"]["requests"] == 0))  # fmt: skip
            want = args.n // 100 if target == "msgflash" else 1
            checks.append((f"{target}: 1% + state = {want} requests",
                           runs["1% changed, state"]["requests"] == want))  # fmt: skip
            print(f"{target}: saved (plan) {runs['1% changed, state']['saved']}", flush=True)
        print_table(HEAD, rows)
        for target in parse_targets(ap, args.kill) if args.kill else []:
            k = bench_kill(target, args.n, work)
            print(f"\nkill -9 + --resume, {target}: {k}", flush=True)
            checks.append((f"{target}: kill -9 + resume exact, no duplicate",
                           k["loaded"] == k["in_sandbox"] == args.n))  # fmt: skip
            checks.append((f"{target}: kill -9 + resume <= full run + 1 batch",
                           k["total_writes"] <= k["full_run_writes"] + 1))  # fmt: skip
        if args.store_n:
            with postgres_url(args.pg_url) as url:
                for name, location in (("SQLite", None), ("PostgreSQL", url)):
                    if name == "PostgreSQL" and not url:
                        continue
                    s = bench_store(args.store_n, work, location)
                    print(
                        f"\nstore ({name}), {s['n']:,} contacts: hash {s['hash_s']:.2f} s, "
                        f"confirm {s['confirm_s']:.2f} s, lookup {s['lookup_s']:.2f} s, confirm "
                        f"1% again {s['update_1pct_s']:.2f} s, size {s['size_mib']:.0f} MiB",
                        flush=True,
                    )
    return print_checks(checks)


if __name__ == "__main__":
    sys.exit(main())
