"""Drop-to-imported latency of ``contactpipe watch``: a file moved into the inbox -> its contacts
in the API.

    .venv/bin/python benchmarks/bench_watch.py [--rows 1000] [--repeat 5] [--stable-for 2]

The sandbox runs in its own process with the documented rate limits on (WAAPI: 100 requests per
15 minutes, so a few runs fit); ``contactpipe watch DIR --target waapi`` runs as a user starts
it, in its own process, long-running, with the sync state in a temporary folder.  Each repeat
writes a CSV of ``--rows`` new contacts (national French numbers, ``--region FR``) outside the
drop folder, then renames it into ``inbox/`` (as a transfer tool finishes a drop) and polls the
sandbox's contact count every 10 ms until the file's contacts are all there, then waits for the
file's ``done/`` entry (report written).  Two modes: file notifications (the default), and
``--poll`` (re-scans every ``--scan-interval`` seconds, for network shares).

Reported per mode: median, min and max of drop -> contacts in the API, and drop -> done/.
The floor is ``--stable-for`` (a file must stay unchanged that long before it is imported).
Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import Sandbox, national, people, print_table

from contactpipe.sandbox import SandboxSettings


def write_csv(path: Path, start: int, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Name", "Phone", "Tags", "City"])
        rows = people(start + n)[start:]
        for i, (_, name, tags, city) in enumerate(rows, start):
            w.writerow([name, "0" + national(i), ", ".join(tags), city])


def wait(condition: object, timeout: float, step: float = 0.01) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():  # type: ignore[operator]
            return time.perf_counter()
        time.sleep(step)
    raise RuntimeError("timed out")


def run_mode(
    sb: Sandbox, work: Path, mode: list[str], rows: int, repeat: int, first: int
) -> list[tuple[float, float]]:
    folder = work / "drop"
    shutil.rmtree(folder, ignore_errors=True)
    args = [sys.executable, "-m", "contactpipe.cli", "watch", str(folder), "--target", "waapi"]
    args += ["--region", "FR", "--state", str(work / "state.db"), *mode]
    env = {**os.environ, **sb.env()}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: list[tuple[float, float]] = []
    try:
        wait(lambda: (folder / "failed").is_dir(), 60)
        time.sleep(1.0)  # started and past its first scan
        for k in range(repeat):
            staged = work / f"drop-{first + k}.csv"
            write_csv(staged, (first + k) * rows, rows)
            before = sb.counts()["waapi"]["contacts"]
            t0 = time.perf_counter()
            os.rename(staged, folder / "inbox" / staged.name)
            t1 = wait(lambda b=before: sb.counts()["waapi"]["contacts"] >= b + rows, 120)
            t2 = wait(lambda n=k + 1: len(list((folder / "done").iterdir())) >= n, 120)
            out.append((t1 - t0, t2 - t0))
            print(f"  {' '.join(mode) or 'notifications'}: {t1 - t0:.2f} s / {t2 - t0:.2f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    if proc.returncode != 143 or stdout.decode().count(" done ") != repeat:
        raise RuntimeError(f"watcher: exit {proc.returncode}\n{stdout.decode()}{stderr.decode()}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--stable-for", type=float, default=2.0)
    ap.add_argument("--scan-interval", type=float, default=2.0)
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    modes = {
        "notifications": ["--stable-for", str(a.stable_for)],
        "--poll": ["--stable-for", str(a.stable_for), "--poll"],
    }
    for m in modes.values():
        m += ["--scan-interval", str(a.scan_interval)]
    table = []
    with Sandbox(SandboxSettings()) as sb, tempfile.TemporaryDirectory() as tmp:
        for i, (name, mode) in enumerate(modes.items()):
            runs = run_mode(sb, Path(tmp), mode, a.rows, a.repeat, i * a.repeat)
            api = [r[0] for r in runs]
            done = [r[1] for r in runs]
            table.append(
                [
                    name,
                    f"{a.rows:,}",
                    f"{statistics.median(api):.2f} s ({min(api):.2f}-{max(api):.2f})",
                    f"{statistics.median(done):.2f} s ({min(done):.2f}-{max(done):.2f})",
                ]
            )
    head = ["mode", "rows", "drop -> in the API: median (min-max)", "drop -> done/"]
    print_table(head, table)
    print(f"load average after: {os.getloadavg()[0]:.1f}; --stable-for {a.stable_for:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
