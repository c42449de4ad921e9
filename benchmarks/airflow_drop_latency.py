"""Drop-to-imported latency under ``airflow standalone`` (README, "Apache Airflow").

Starts the sandbox (``contactpipe sandbox``) and ``airflow standalone`` (scheduler, triggerer,
DAG processor, API server; SQLite metadata in a temporary AIRFLOW_HOME) with the example DAG
``contactpipe_drop_import`` in its DAGs folder, waits until the drop folder's AssetWatcher
trigger runs, then drops CSV files one after the other into ``inbox/`` and times each from
the moment the file is complete to the moment it is in ``done/``.

Run with the Airflow venv: ``.venv-airflow/bin/python benchmarks/airflow_drop_latency.py``
(``--drops N``, ``--rows N``).  Everything listens on 127.0.0.1 only and is stopped at the end.

Measured 2026-12-02 (benchmarks/README.md): median 30.1 s for a 200-row drop, load about 2.
A first attempt on the loaded machine timed out in the task supervisor's calls to the execution
API against SQLite metadata; point ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` at PostgreSQL (the
setting is passed through) when the machine is busy.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG = ROOT / "examples" / "airflow" / "dags" / "contactpipe_drop_import.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def write_drop(path: Path, rows: int, start: int) -> None:
    tmp = path.with_name(path.name + ".part")  # skipped by the trigger until renamed
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "phone"])
        for i in range(start, start + rows):
            w.writerow([f"Contact {i}", f"+336{i:08d}"])
    os.rename(tmp, path)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)  # the finally below stops what this started
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--stable-for", type=float, default=5.0, help="the example DAG's value")
    args = parser.parse_args()

    from contactpipe.load import registry
    from contactpipe.sandbox import SandboxSettings, describe

    home = Path(tempfile.mkdtemp(prefix="contactpipe-airflow-standalone-"))
    drops = home / "drops"
    (home / "dags").mkdir()
    shutil.copy(DAG, home / "dags")
    sandbox_port, api_port = free_port(), free_port()
    url = f"http://127.0.0.1:{sandbox_port}"
    msgflash = next(a for a in describe(SandboxSettings(), url) if a["api"] == "msgflash")
    meta = registry.info("msgflash")
    conn = {"conn_type": "msgflash", "host": msgflash["base_url"]}
    conn["password"] = msgflash["env"][meta.secret]
    if meta.account in msgflash["env"]:
        conn["login"] = msgflash["env"][meta.account]
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        # standalone starts its components as `airflow ...`: this venv's command first
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW_CONN_MSGFLASH_DEFAULT": json.dumps(conn),
        "CONTACTPIPE_DROPS": str(drops),
        "CONTACTPIPE_STATE_DB": str(home / "state.sqlite"),
    }
    bindir = Path(sys.executable).parent
    procs = [
        subprocess.Popen(
            [str(bindir / "contactpipe"), "sandbox", "--port", str(sandbox_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    log = (home / "standalone.log").open("w")
    try:
        started = time.monotonic()
        procs.append(
            subprocess.Popen(
                [str(bindir / "airflow"), "standalone"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        db = home / "airflow.db"

        def watcher_running() -> bool:
            if not db.exists():
                return False
            try:
                with sqlite3.connect(db, timeout=1) as c:
                    n = c.execute(
                        "select count(*) from trigger where classpath like "
                        "'contactpipe.airflow.triggers.%' and triggerer_id is not null"
                    ).fetchone()[0]
                    return bool(n)
            except sqlite3.Error:
                return False

        ready = wait_for("the drop folder's trigger in the triggerer", watcher_running, 600)
        print(f"airflow standalone up, DAG parsed and trigger running after {ready:.1f} s")
        (drops / "inbox").mkdir(parents=True, exist_ok=True)
        latencies = []
        for n in range(args.drops):
            name = f"drop-{n}.csv"
            write_drop(drops / "inbox" / name, args.rows, start=n * args.rows)
            t0 = time.monotonic()

            def done(name: str = name) -> bool:
                return any(p.is_file() for p in (drops / "done").rglob(name))

            def failed(name: str = name) -> bool:
                return any(p.is_file() for p in (drops / "failed").rglob(name))

            wait_for(f"{name} in done/", lambda: done() or failed(), 600)
            if failed():
                raise SystemExit(f"{name} went to failed/: see {home}")
            latencies.append(time.monotonic() - t0)
            took = latencies[-1]
            print(f"{name}: {args.rows} rows imported and archived {took:.1f} s after the drop")
        print(
            f"drop-to-imported: median {statistics.median(latencies):.1f} s, "
            f"min {min(latencies):.1f} s, max {max(latencies):.1f} s "
            f"(stable_for {args.stable_for:g} s, poll 5 s; "
            f"whole run {time.monotonic() - started:.0f} s)"
        )
    finally:
        if len(procs) > 1:  # airflow standalone and the processes it started (its session)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(procs[1].pid, signal.SIGTERM)
        procs[0].terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
