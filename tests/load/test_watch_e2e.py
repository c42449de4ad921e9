"""``contactpipe watch`` end to end: the real command in its own process watches a drop folder
and imports into the sandbox on 127.0.0.1 over HTTP; files move inbox/ -> processing/ ->
done/ or failed/ with their reports, the same content is imported once, a killed run's file
is finished at the next start, SIGTERM stops the watcher with 143."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filemakers import make_xlsx
from load_helpers import sandbox_env
from test_import_e2e import WRITE, phones_in

from contactpipe.drops import content_digest
from contactpipe.sandbox import SandboxServer


def french(i: int) -> str:
    return f"+3361234{i // 100:02d}{i % 100:02d}"


def write_csv(path: Path, start: int, n: int, *, bad: int = 0) -> set[str]:
    """``n`` valid contacts from ``start`` (and ``bad`` rows with a bad phone); their phones."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Name", "Phone"])
        for i in range(start, start + n):
            w.writerow([f"Client {i}", f"06 12 34 {i // 100:02d} {i % 100:02d}"])
        for k in range(bad):
            w.writerow([f"Bad {k}", "12"])
    return {french(i) for i in range(start, start + n)}


def drop(folder: Path, path: Path) -> Path:
    """Move a finished file into the inbox, as a user or a transfer tool does."""
    dest = folder / "inbox" / path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(path, dest)
    return dest


def command(folder: Path, target: str, *extra: str) -> list[str]:
    state = folder.parent / "state.db"
    args = [sys.executable, "-m", "contactpipe.cli", "watch", str(folder), "--target", target]
    return [*args, "--state", str(state), "--region", "FR", "--poll-interval", "0.05", *extra]


def env_for(server: SandboxServer, **more: str) -> dict[str, str]:
    return {**os.environ, **sandbox_env(server), **more}


def run_once(server: SandboxServer, folder: Path, target: str, *extra: str, **env: str) -> Any:
    args = command(folder, target, "--once", "--stable-for", "0.2", *extra)
    return subprocess.run(
        args, env=env_for(server, **env), capture_output=True, text=True, timeout=120
    )


def entries(folder: Path, sub: str) -> list[Path]:
    return sorted(p for p in (folder / sub).iterdir() if p.is_dir())


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def summary_of(entry: Path) -> dict[str, Any]:
    return json.loads((entry / "report" / "summary.json").read_text("utf-8"))


def watch_state(entry: Path) -> dict[str, Any]:
    return json.loads((entry / "watch.json").read_text("utf-8"))


def start(server: SandboxServer, folder: Path, target: str, *extra: str) -> subprocess.Popen[str]:
    args = command(folder, target, "--stable-for", "0.3", *extra)
    proc = subprocess.Popen(
        args, env=env_for(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: (folder / "failed").is_dir() or proc.poll() is not None, what="start")
    time.sleep(0.3)  # past its first scan
    return proc


@pytest.mark.parametrize("target", ["waapi", "msgflash", "vobiz"])
def test_once_imports_a_csv_and_an_xlsx_and_fails_the_bad_file(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    expected = write_csv(tmp_path / "list.csv", 0, 20, bad=2)
    rows = [["Nom", "Mobile"]] + [[f"Sheet {i}", french(i)] for i in range(100, 110)]
    make_xlsx(tmp_path / "book.xlsx", {"Contacts": rows})
    expected |= {french(i) for i in range(100, 110)}
    (tmp_path / "bad.csv").write_text("nothing,useful\nhere,either\n", encoding="utf-8")
    for name in ("list.csv", "book.xlsx", "bad.csv"):
        drop(folder, tmp_path / name)

    done = run_once(server, folder, target)
    assert done.returncode == 2, done.stdout + done.stderr  # the worst file: unusable input
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, lines  # one line per file
    assert sum(" done " in line for line in lines) == 2
    assert any(" failed " in line and "bad.csv" in line and "exit 2" in line for line in lines)

    assert sorted(phones_in(server, target)) == sorted(expected)
    assert list((folder / "inbox").iterdir()) == [] and entries(folder, "processing") == []
    by_name = {watch_state(e)["file"]: e for e in entries(folder, "done")}
    assert set(by_name) == {"list.csv", "book.xlsx"}
    listed = summary_of(by_name["list.csv"])
    assert (listed["rows_read"], listed["rejected"], listed["load"]["loaded"]) == (22, 2, 20)
    assert summary_of(by_name["book.xlsx"])["load"]["created"] == 10
    for entry in by_name.values():
        assert (entry / watch_state(entry)["file"]).is_file()
        assert (entry / "report" / "errors.csv").is_file()
        assert watch_state(entry)["ok"] is True
    [failed] = entries(folder, "failed")
    assert (failed / "bad.csv").is_file()
    state = watch_state(failed)
    assert state["ok"] is False and "no phone column" in state["note"]
    assert str(folder / "processing") not in state["note"]  # names the file as dropped
    ledger = [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]
    assert {r["file"] for r in ledger} == {"list.csv", "book.xlsx"}


def test_the_same_content_dropped_again_is_imported_once(
    server: SandboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    write_csv(tmp_path / "a.csv", 0, 15)
    first_digest = content_digest(tmp_path / "a.csv")
    data = (tmp_path / "a.csv").read_bytes()
    drop(folder, tmp_path / "a.csv")
    assert run_once(server, folder, "waapi").returncode == 0
    writes = len(server.app.journal)
    [first] = entries(folder, "done")

    (tmp_path / "a-again.csv").write_bytes(data)  # same content, another name
    drop(folder, tmp_path / "a-again.csv")
    (tmp_path / "a.csv").write_bytes(data)  # and under the same name
    drop(folder, tmp_path / "a.csv")
    again = run_once(server, folder, "waapi")
    assert again.returncode == 0, again.stderr
    assert len(server.app.journal) == writes  # not one request: not imported again
    assert again.stdout.count("duplicate") == 2
    assert f"already imported on {watch_state(first)['finished_at']} in done/{first.name}" in (
        again.stdout
    )
    # not [1:] of the sorted names: within one second, "<stamp>-2-a.csv" sorts first
    notes = [watch_state(e).get("note", "") for e in entries(folder, "done") if e != first]
    assert len(notes) == 2
    assert all(n.startswith("already imported on ") and first.name in n for n in notes)
    ledger = (folder / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["sha256"] for line in ledger] == [first_digest]
    assert len(phones_in(server, "waapi")) == 15


def test_a_file_written_slowly_is_imported_only_once_complete(
    server: SandboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    proc = start(server, folder, "waapi", "--stable-for", "3")
    try:
        slow = folder / "inbox" / "slow.csv"
        with slow.open("w", encoding="utf-8", newline="") as fh:
            fh.write("Name,Phone\n")
            for step in range(6):  # appended in steps, each sooner than --stable-for
                for i in range(step * 10, step * 10 + 10):
                    fh.write(f"Client {i},06 12 34 {i // 100:02d} {i % 100:02d}\n")
                fh.flush()
                time.sleep(0.3)  # far below --stable-for, even on a loaded machine
                assert slow.exists(), f"picked up after step {step}, while still written"
                assert entries(folder, "processing") == entries(folder, "done") == []
        [entry] = wait_for(lambda: entries(folder, "done"), what="the import")
        summary = summary_of(entry)
        assert (summary["rows_read"], summary["load"]["loaded"]) == (60, 60)
        assert len(phones_in(server, "waapi")) == 60
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, out + err
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize(
    "mode",
    [
        ("--scan-interval", "60"),  # noticed through the notifications, not a re-scan
        ("--poll", "--scan-interval", "0.2"),  # re-scans only (network shares)
    ],
    ids=["notifications", "poll"],
)
def test_the_long_running_watcher_imports_a_later_drop_and_stops_on_sigterm(
    server: SandboxServer, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    folder = tmp_path / "drop"
    proc = start(server, folder, "waapi", "--log-format", "json", *mode)
    try:
        assert proc.poll() is None
        expected = write_csv(tmp_path / "late.csv", 0, 25)
        drop(folder, tmp_path / "late.csv")
        wait_for(lambda: entries(folder, "done"), timeout=20, what="the import")
        wait_for(lambda: len(phones_in(server, "waapi")) == 25, what="the contacts")
        assert set(phones_in(server, "waapi")) == expected
        time.sleep(0.3)
        assert proc.poll() is None  # still watching
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err
    [line] = [json.loads(x) for x in out.splitlines()]
    assert line["event"] == "file" and line["status"] == "done" and line["file"] == "late.csv"
    assert (line["loaded"], line["created"], line["exit_code"]) == (25, 25, 0)
    assert line["entry"].startswith("done/")


def test_a_killed_watchers_file_is_finished_at_the_next_start(
    server: SandboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    method, path = WRITE["waapi"]
    fault = server.app.faults.add("waapi", method, path, delay_s=3.0)  # the first write hangs
    expected = write_csv(tmp_path / "big.csv", 0, 40)
    drop(folder, tmp_path / "big.csv")
    proc = start(server, folder, "waapi", "--batch-size", "10")
    wait_for(lambda: fault.hits == 1 or proc.poll() is not None, what="the first write")
    proc.kill()  # SIGKILL: no chance to settle or move anything
    proc.communicate(timeout=30)
    [left] = entries(folder, "processing")
    assert (left / "big.csv").is_file() and entries(folder, "done") == []

    again = run_once(server, folder, "waapi", "--batch-size", "10")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "left in processing/ by an earlier run" in again.stderr
    assert entries(folder, "processing") == []
    [entry] = entries(folder, "done")
    assert entry.name == left.name and summary_of(entry)["load"]["failed"] == 0
    time.sleep(3.2)  # the hung request lands after all: still no duplicate
    phones = phones_in(server, "waapi")
    assert len(phones) == len(set(phones)) == 40 and set(phones) == expected


def test_sigterm_during_an_import_writes_its_report_and_leaves_the_file_for_the_next_start(
    server: SandboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    method, path = WRITE["waapi"]
    fault = server.app.faults.add("waapi", method, path, delay_s=2.0)
    write_csv(tmp_path / "big.csv", 0, 30)
    drop(folder, tmp_path / "big.csv")
    proc = start(server, folder, "waapi", "--batch-size", "10")
    wait_for(lambda: fault.hits == 1 or proc.poll() is not None, what="the first write")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err
    [line] = out.splitlines()
    assert " left " in line and "terminated (SIGTERM)" in line and "exit 143" in line
    [left] = entries(folder, "processing")
    summary = summary_of(left)  # the interrupted load's whole report
    assert summary["load"]["loaded"] + summary["load"]["failed"] == 30
    assert summary["by_code"].get("NOT_SENT", 0) > 0

    again = run_once(server, folder, "waapi")
    assert again.returncode == 0, again.stdout + again.stderr
    [entry] = entries(folder, "done")
    assert (entry / "report.attempt-1" / "summary.json").is_file()  # the first attempt's
    time.sleep(2.2)
    phones = phones_in(server, "waapi")
    assert len(phones) == len(set(phones)) == 30


def test_refused_credentials_stop_the_watcher_and_the_files_wait_for_the_fix(
    server: SandboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    first = write_csv(tmp_path / "first.csv", 0, 5)
    drop(folder, tmp_path / "first.csv")
    second = write_csv(tmp_path / "second.csv", 10, 5)
    os.utime(tmp_path / "second.csv", (time.time() + 5, time.time() + 5))  # after first.csv
    drop(folder, tmp_path / "second.csv")
    secret = "waapi_wrong_token_0123456789abcdef"
    args = command(folder, "waapi", "--stable-for", "0.2")  # long-running mode
    proc = subprocess.run(
        args, env=env_for(server, WAAPI_TOKEN=secret), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert secret not in proc.stdout + proc.stderr
    [line] = proc.stdout.splitlines()
    assert "first.csv" in line and " left " in line
    assert "watcher stopped (every later file would be refused too)" in line
    [left] = entries(folder, "processing")
    assert (left / "first.csv").is_file() and (left / "report" / "summary.json").is_file()
    assert secret not in (left / "report" / "summary.json").read_text()
    assert entries(folder, "failed") == []  # not the files' fault
    assert [p.name for p in (folder / "inbox").iterdir()] == ["second.csv"]  # not tried
    assert phones_in(server, "waapi") == []

    fixed = run_once(server, folder, "waapi")  # the right token: both go through
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert [watch_state(e)["file"] for e in entries(folder, "done")] == [
        "first.csv",
        "second.csv",
    ]
    assert set(phones_in(server, "waapi")) == first | second


def test_a_file_above_the_error_threshold_fails_and_the_next_one_is_imported(
    server: SandboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    write_csv(tmp_path / "mostly-bad.csv", 0, 2, bad=8)
    drop(folder, tmp_path / "mostly-bad.csv")
    expected = write_csv(tmp_path / "good.csv", 50, 10)
    drop(folder, tmp_path / "good.csv")
    done = run_once(server, folder, "waapi", "--max-error-rate", "0.1")
    assert done.returncode == 3, done.stdout + done.stderr
    [failed] = entries(folder, "failed")
    assert watch_state(failed)["file"] == "mostly-bad.csv"
    assert "above --max-error-rate" in watch_state(failed)["note"]
    [entry] = entries(folder, "done")
    assert watch_state(entry)["file"] == "good.csv"
    assert set(phones_in(server, "waapi")) == expected  # the bad file sent nothing


def test_missing_credentials_stop_before_any_file_moves(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    write_csv(tmp_path / "a.csv", 0, 3)
    drop(folder, tmp_path / "a.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAAPI_")}
    args = command(folder, "waapi", "--once")
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "WAAPI_" in done.stderr and "Traceback" not in done.stderr
    assert [p.name for p in (folder / "inbox").iterdir()] == ["a.csv"]
