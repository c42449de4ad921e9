"""The load stage end to end: ``import_files`` into the sandbox over real HTTP, with the
documented rate limits on.

    .venv/bin/python benchmarks/bench_load.py [--targets waapi,vobiz,msgflash] [--n 100000]
                                              [--msgflash-n 1000] [--group Bench]
                                              [--one-client]

The sandbox runs in a **separate process** (``multiprocessing``, spawn context), as a real API
would: the client and the server do not share one GIL, so the figures are the client's.  Its
request journal and object counts are read over HTTP from the admin endpoints
(``/__sandbox__/journal``, ``/__sandbox__/counts``).  Each target gets a fresh sandbox and a
fresh client process (peak RSS from scratch); ``--one-client`` runs every target in this
process instead, one after the other.

The input is a CSV of N valid, distinct French mobile numbers (a third ``+336XXXXXXXX``, the
rest national ``06 ...`` read with ``--region FR``) with a name, a tags cell and a city (kept as
a custom field), generated once per N under ``benchmarks/data/`` (git ignores it).

* **WAAPI, Vobiz** (bulk upsert / CSV import, 10,000 contacts a request): import N contacts,
  then the same file again.  Reported: the load stage's and the whole run's wall time, bulk
  requests made (must be exactly ``ceil(N / batch)``), all requests, 429s, bytes sent, the
  client's peak RSS (``VmHWM``, reset before each import), contacts/s; the re-run must report
  every contact ``unchanged``.
* **MsgFlash** (one ``POST /api/v1/contacts`` per contact, 10 req/s per key, 100 ms added
  latency per request): import ``--msgflash-n`` contacts, all in group ``--group`` so the
  members endpoint and its async bulk job run too.  100,000 contacts would take about 2.8 h
  at 10 req/s, hence the smaller default.  Reported: create requests, the sustained create
  rate (accepted creates / the create stage's seconds) against 10 req/s, 429s, retries, the
  whole time, and the time extrapolated to 100,000 contacts.

Goals (exit 1 when one fails): every bulk request count exact, every first import loads all
rows and every re-run leaves them unchanged; MsgFlash creates at >= 95% of 10 req/s with no
429 at all.  Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import (
    DATA,
    HERE,
    MSGFLASH_LIMIT,
    RATE_GOAL,
    Sandbox,
    hms,
    in_client_process,
    mib,
    national,
    parse_targets,
    people,
    print_checks,
    print_table,
    reset_hwm,
    vm_mib,
)

from contactpipe.sandbox import SandboxSettings

# contactpipe.run (and polars with it) is imported inside the client-side functions only: the
# spawned processes re-import this module, and the sandbox's should not carry polars.

OUT = HERE / "out" / "load"
HEAD = ["target", "run", "contacts", "load", "whole run", "contacts/s", "bulk/expected",
        "requests", "429s", "sent", "client RSS"]  # fmt: skip

BATCH = 10_000  # LoadOptions' default batch size (WAAPI and Vobiz)
MSGFLASH_LATENCY_MS = 100.0
EXTRAPOLATE_TO = 100_000


# -- input ---------------------------------------------------------------------------------
def make_csv(n: int) -> Path:
    """``benchmarks/data/load_<n>.csv`` (generated once): name, phone, tags, city."""
    path = DATA / f"load_{n}.csv"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "phone", "tags", "city"])
        for i, (e164, name, tags, city) in enumerate(people(n)):
            d = national(i)
            if i % 3 == 0:
                phone = e164
            elif i % 3 == 1:
                phone = f"0{d[0]} {d[1:3]} {d[3:5]} {d[5:7]} {d[7:9]}"
            else:
                phone = f"0{d}"
            w.writerow([name, phone, ";".join(tags), city])
    tmp.replace(path)
    return path


# -- the client side -----------------------------------------------------------------------
def run_import(
    sb: Sandbox, target: str, src: Path, out: Path, groups: tuple[str, ...] = ()
) -> tuple[dict[str, Any], float, float]:
    """One ``import_files`` run: (summary, wall seconds, client peak RSS MiB)."""
    from contactpipe.load.base import LoadOptions
    from contactpipe.report.progress import NullProgress
    from contactpipe.run import ImportOptions, RunOptions, import_files

    shutil.rmtree(out, ignore_errors=True)
    options = RunOptions(region="FR", keep_extra_columns=True, extra_groups=groups)
    imp = ImportOptions(target=target, load=LoadOptions(batch_size=BATCH), env=sb.env())
    reset_hwm()
    t = time.perf_counter()
    result = import_files([str(src)], options, imp, out, NullProgress())
    wall = time.perf_counter() - t
    return result.summary, wall, vm_mib()


def import_figures(summary: dict[str, Any], wall: float, rss: float) -> dict[str, Any]:
    load = summary["load"]
    seconds = summary["seconds"]
    return {
        "load_s": seconds.get("load", 0.0),
        "wall_s": wall,
        "rss_mib": rss,
        "created": load["created"],
        "updated": load["updated"],
        "unchanged": load["unchanged"],
        "failed": load["failed"],
        "loaded": load["loaded"],
        "requests": load["requests"],
        "retries": load["retries"],
        "rate_limited": load["rate_limited"],
        "bytes_sent": load["bytes_sent"],
        "by_endpoint": load["requests_by_endpoint"],
        "stages": load.get("seconds") or {},
        "aborted": load.get("aborted"),
    }


def bulk_path(target: str, settings: SandboxSettings) -> str:
    if target == "waapi":
        return f"/api/external/contacts/{settings.waapi_encoded_phone_id}/bulk"
    return "/api/v1/messaging/contacts/import"


def bench_bulk(target: str, n: int, settings: SandboxSettings) -> dict[str, Any]:
    """WAAPI or Vobiz: N contacts, then the same N again."""
    src = make_csv(n)
    with Sandbox(settings) as sb:
        first = import_figures(*run_import(sb, target, src, OUT / target / "first"))
        journal = sb.journal(target)
        path = bulk_path(target, settings)
        first["bulk_server"] = sum(
            1 for e in journal if e["method"] == "POST" and e["path"] == path
        )
        first["server_requests"] = len(journal)
        first["server_429"] = sum(1 for e in journal if e["status"] == 429)
        first["in_sandbox"] = sb.counts()[target]["contacts"]
        sb.clear_journal()
        again = import_figures(*run_import(sb, target, src, OUT / target / "again"))
        journal = sb.journal(target)
        again["bulk_server"] = sum(
            1 for e in journal if e["method"] == "POST" and e["path"] == path
        )
        again["server_requests"] = len(journal)
        again["server_429"] = sum(1 for e in journal if e["status"] == 429)
        again["in_sandbox"] = sb.counts()[target]["contacts"]
    return {
        "target": target,
        "n": n,
        "expected_bulk": math.ceil(n / BATCH),
        "first": first,
        "again": again,
        "server_rss_mib": sb.server_rss_mib,
    }


def bench_msgflash(n: int, group: str, settings: SandboxSettings) -> dict[str, Any]:
    """MsgFlash: N creates at 10 req/s (+100 ms a request), all in one group; then again."""
    src = make_csv(n)
    groups = (group,) if group else ()
    with Sandbox(settings) as sb:
        first = import_figures(*run_import(sb, "msgflash", src, OUT / "msgflash" / "first", groups))
        journal = sb.journal("msgflash")
        creates = [e for e in journal if e["method"] == "POST" and e["path"] == "/api/v1/contacts"]
        first["create_requests"] = len(creates)
        first["creates_accepted"] = sum(1 for e in creates if e["status"] == 201)
        first["server_requests"] = len(journal)
        first["server_429"] = sum(1 for e in journal if e["status"] == 429)
        first["in_sandbox"] = sb.counts()["msgflash"]["contacts"]
        sb.clear_journal()
        again = import_figures(*run_import(sb, "msgflash", src, OUT / "msgflash" / "again", groups))
        journal = sb.journal("msgflash")
        again["server_requests"] = len(journal)
        again["server_429"] = sum(1 for e in journal if e["status"] == 429)
        again["in_sandbox"] = sb.counts()["msgflash"]["contacts"]
    create_s = float(first["stages"].get("create") or 0.0)
    rate = first["creates_accepted"] / create_s if create_s else 0.0
    other_s = first["load_s"] - create_s  # list + groups (job pending + processing + polls)
    return {
        "target": "msgflash",
        "n": n,
        "first": first,
        "again": again,
        "create_s": create_s,
        "rate": rate,
        "extrapolated_s": (
            EXTRAPOLATE_TO / rate + extrapolated_groups_s(settings) if rate else float("inf")
        ),
        "other_s": other_s,
        "server_rss_mib": sb.server_rss_mib,
    }


def extrapolated_groups_s(settings: SandboxSettings) -> float:
    """The group stage for 100,000 contacts: 10 member batches of 10,000 ids, whose jobs run
    side by side in the sandbox (pending, then 10,000 ids at items/s), plus one 2 s poll."""
    return settings.msgflash_job_pending_s + 10_000 / settings.msgflash_job_items_per_s + 2.0


# -- output --------------------------------------------------------------------------------
def report_bulk(r: dict[str, Any], checks: list[tuple[str, bool]]) -> list[list[str]]:
    t, n, f, a = r["target"], r["n"], r["first"], r["again"]
    bulk_client = f["by_endpoint"].get("POST bulk" if t == "waapi" else "POST /contacts/import", 0)
    bulk_ok = f["bulk_server"] == bulk_client == r["expected_bulk"]
    first_ok = f["loaded"] == f["created"] == f["in_sandbox"] == n and f["failed"] == 0
    again_ok = a["unchanged"] == a["loaded"] == n and a["failed"] == 0 and a["in_sandbox"] == n
    checks += [
        (
            f"{t}: bulk requests {f['bulk_server']} == ceil({n:,}/{BATCH:,}) = "
            f"{r['expected_bulk']}",
            bulk_ok,
        ),
        (
            f"{t}: first import created all {n:,} ({f['created']:,} created, "
            f"{f['failed']:,} failed, {f['in_sandbox']:,} in the sandbox)",
            first_ok,
        ),
        (
            f"{t}: re-run all unchanged ({a['unchanged']:,} unchanged, {a['created']:,} created, "
            f"{a['updated']:,} updated; {a['bulk_server']} bulk requests)",
            again_ok,
        ),
    ]
    print(f"\n{t.upper()}: {n:,} contacts, batch {BATCH:,}")
    for label, x in (("first import", f), ("re-run", a)):
        print(
            f"  {label:13s} load {x['load_s']:6.2f} s  run {x['wall_s']:6.2f} s  "
            f"{n / x['load_s'] if x['load_s'] else 0:9,.0f} contacts/s  "
            f"requests {x['requests']:,} (server {x['server_requests']:,})  "
            f"429s {x['rate_limited']}  retries {x['retries']}  sent {mib(x['bytes_sent'])}  "
            f"peak RSS {x['rss_mib']:,.0f} MiB"
        )
        print(f"  {'':13s} stages {x['stages']}  endpoints {x['by_endpoint']}")
    print(f"  sandbox process peak RSS {r['server_rss_mib']:,.0f} MiB")
    return [
        [t, "first import", f"{n:,}", f"{f['load_s']:.2f} s", f"{f['wall_s']:.2f} s",
         f"{n / f['load_s'] if f['load_s'] else 0:,.0f}",
         f"{f['bulk_server']}/{r['expected_bulk']}", f"{f['requests']:,}",
         str(f["rate_limited"]), mib(f["bytes_sent"]), f"{f['rss_mib']:,.0f} MiB"],
        [t, "re-run", f"{n:,}", f"{a['load_s']:.2f} s", f"{a['wall_s']:.2f} s",
         f"{a['unchanged']:,} unchanged", f"{a['bulk_server']}/0", f"{a['requests']:,}",
         str(a["rate_limited"]), mib(a["bytes_sent"]), f"{a['rss_mib']:,.0f} MiB"],
    ]  # fmt: skip


def report_msgflash(r: dict[str, Any], checks: list[tuple[str, bool]]) -> list[list[str]]:
    n, f, a, rate = r["n"], r["first"], r["again"], r["rate"]
    share = rate / MSGFLASH_LIMIT
    first_ok = f["loaded"] == f["created"] == f["in_sandbox"] == n and f["failed"] == 0
    again_ok = a["unchanged"] == a["loaded"] == n and a["failed"] == 0 and a["in_sandbox"] == n
    checks += [
        (f"msgflash: create rate {rate:.2f} req/s = {share:.1%} of 10 req/s (goal >= "
         f"{RATE_GOAL:.0%})", share >= RATE_GOAL),
        (f"msgflash: 429s {f['rate_limited']} (server {f['server_429']}), goal 0",
         f["rate_limited"] == 0 and f["server_429"] == 0),
        (f"msgflash: first import created all {n:,} ({f['created']:,} created, "
         f"{f['failed']:,} failed, {f['in_sandbox']:,} in the sandbox)", first_ok),
        (f"msgflash: re-run all unchanged ({a['unchanged']:,} unchanged, {a['created']:,} "
         f"created, {a['updated']:,} updated)", again_ok),
    ]  # fmt: skip
    print(f"\nMSGFLASH: {n:,} contacts, 10 req/s, {MSGFLASH_LATENCY_MS:g} ms latency per request")
    print(
        f"  create requests {f['create_requests']:,} ({f['creates_accepted']:,} accepted) in "
        f"{r['create_s']:.2f} s = {rate:.2f} req/s ({share:.1%} of 10 req/s)"
    )
    print(
        f"  first import  load {f['load_s']:.2f} s (list + groups {r['other_s']:.2f} s)  "
        f"run {f['wall_s']:.2f} s  requests {f['requests']:,}  429s {f['rate_limited']} "
        f"(server {f['server_429']})  retries {f['retries']}  peak RSS {f['rss_mib']:,.0f} MiB"
    )
    print(f"  {'':13s} stages {f['stages']}  endpoints {f['by_endpoint']}")
    print(
        f"  re-run        load {a['load_s']:.2f} s  run {a['wall_s']:.2f} s  "
        f"requests {a['requests']:,}  429s {a['rate_limited']}  stages {a['stages']}"
    )
    print(
        f"  extrapolated to {EXTRAPOLATE_TO:,} contacts: {hms(r['extrapolated_s'])} "
        f"(creates at {rate:.2f} req/s + the group jobs)"
    )
    print(f"  sandbox process peak RSS {r['server_rss_mib']:,.0f} MiB")
    return [
        ["msgflash", "first import", f"{n:,}", f"{f['load_s']:.2f} s", f"{f['wall_s']:.2f} s",
         f"{n / f['load_s'] if f['load_s'] else 0:,.1f}", f"{f['create_requests']:,} creates",
         f"{f['requests']:,}", str(f["rate_limited"]), mib(f["bytes_sent"]),
         f"{f['rss_mib']:,.0f} MiB"],
        ["msgflash", "re-run", f"{n:,}", f"{a['load_s']:.2f} s", f"{a['wall_s']:.2f} s",
         f"{a['unchanged']:,} unchanged", "-", f"{a['requests']:,}", str(a["rate_limited"]),
         mib(a["bytes_sent"]), f"{a['rss_mib']:,.0f} MiB"],
        ["msgflash", f"-> {EXTRAPOLATE_TO:,}", f"{EXTRAPOLATE_TO:,}", hms(r["extrapolated_s"]),
         "", f"{rate:.2f} req/s ({share:.1%})", "", "", "", "", ""],
    ]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="waapi,vobiz,msgflash")
    ap.add_argument("--n", type=int, default=100_000, help="contacts for WAAPI and Vobiz")
    ap.add_argument("--msgflash-n", type=int, default=1_000, help="contacts for MsgFlash")
    ap.add_argument("--group", default="Bench", help="group of every MsgFlash row ('' for none)")
    ap.add_argument(
        "--one-client",
        action="store_true",
        help="run every target in this process, one after the other: MsgFlash then runs with "
        "the heap the 100,000-contact imports left (30-50 ms gen-2 collections)",
    )
    args = ap.parse_args()
    targets = parse_targets(ap, args.targets)
    # Documented limits everywhere (MsgFlash 10/s, WAAPI 100 / 15 min, Vobiz 100/s), default
    # job timing (pending 1 s, 500 ids/s), 100 ms of latency on every MsgFlash request.
    settings = SandboxSettings(msgflash_latency_ms=MSGFLASH_LATENCY_MS)

    checks: list[tuple[str, bool]] = []
    rows: list[list[str]] = []
    run = (lambda fn, *a: fn(*a)) if args.one_client else in_client_process
    for target in targets:
        print(f"running {target} ...", flush=True)
        if target == "msgflash":
            rows += report_msgflash(
                run(bench_msgflash, args.msgflash_n, args.group, settings), checks
            )
        else:
            rows += report_bulk(run(bench_bulk, target, args.n, settings), checks)
    print_table(HEAD, rows)
    print()
    return print_checks(checks)


if __name__ == "__main__":
    sys.exit(main())
