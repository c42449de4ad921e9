"""Many workers on one account, end to end: 2 and 4 ``contactpipe import`` processes at once
into one MsgFlash sandbox account (10 requests/s, counted by the server on arrival, with
30 ms of latency), each with its own share of the rows.

With a shared store (``local``, the default, or a real Redis) the server answers no 429 and
the account is busy for about the time one run of all the rows keeps it busy (from the first
request the server answered to the last: the processes' start-up is CPU, not rate limit, and
the test machine has two shared cores); with ``none`` (each process its own limiter, the
behaviour before the store) the server answers 429s."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from load_helpers import phone, sandbox_env
from redis_helpers import REDIS_PASSWORD, redis_server

from contactpipe.cli import main
from contactpipe.sandbox import SandboxServer

TOTAL = 60  # rows in all: ~6 s at 10 requests/s
_BASELINE: dict[str, float] = {}


@pytest.fixture
def limited(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The sandbox with MsgFlash's documented limit on and a little latency; the time of
    each answer is kept in ``ANSWERED``."""
    server.settings.msgflash_rate_limit = 10
    server.settings.msgflash_latency_ms = 30
    server.app.reset()
    journal = server.app.journal
    record = journal.record
    ANSWERED.clear()

    def timed(entry: Any) -> None:
        ANSWERED.append(time.monotonic())
        record(entry)

    monkeypatch.setattr(journal, "record", timed)
    return server


ANSWERED: list[float] = []


def busy() -> float:
    """Seconds from the first answer the server gave to the last (then forget them)."""
    span = max(ANSWERED) - min(ANSWERED)
    ANSWERED.clear()
    return span


def write_parts(folder: Path, parts: int, total: int = TOTAL) -> list[Path]:
    """``total`` distinct contacts split into ``parts`` CSV files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    size = total // parts
    for k in range(parts):
        path = folder / f"part-{k}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["Name", "Phone"])
            for i in range(k * size, (k + 1) * size):
                w.writerow([f"Client {i}", phone(i)])
        files.append(path)
    return files


def run_imports(
    server: SandboxServer, folder: Path, parts: int, store: str | None, total: int = TOTAL
) -> tuple[float, list[dict[str, Any]], list[str]]:
    """``parts`` CLI imports started together; (wall seconds, their summaries, their output)."""
    env = {**os.environ, **sandbox_env(server)}
    extra = ["--rate-limit-store", store] if store else []
    procs = []
    t0 = time.monotonic()
    for k, src in enumerate(write_parts(folder / "in", parts, total)):
        args = [sys.executable, "-m", "contactpipe.cli", "import", str(src), "--target"]
        args += ["msgflash", "--no-state", "-q", "--region", "FR"]
        args += ["--report-dir", str(folder / f"out-{k}"), *extra]
        procs.append(
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        outputs.append(out.decode() + err.decode())
        assert p.returncode == 0, outputs[-1]
    wall = time.monotonic() - t0
    summaries = [
        json.loads((folder / f"out-{k}" / "summary.json").read_text()) for k in range(parts)
    ]
    return wall, summaries, outputs


def server_counts(server: SandboxServer) -> tuple[int, int]:
    """(requests, 429 answers) the MsgFlash sandbox saw."""
    entries = server.app.journal.entries(api="msgflash")
    return len(entries), sum(1 for e in entries if e.status == 429)


def baseline(server: SandboxServer, folder: Path) -> float:
    """How long one import of all TOTAL rows keeps the account busy (measured once per test
    process)."""
    if "one" not in _BASELINE:
        run_imports(server, folder, 1, "none")
        assert server_counts(server)[1] == 0
        server.app.reset()
        _BASELINE["one"] = busy()
    return _BASELINE["one"]


def loaded_phones(server: SandboxServer) -> set[str]:
    return {c.phone for c in server.app.state.msgflash.contacts.values()}


@pytest.mark.slow
@pytest.mark.parametrize("parts", [2, 4])
@pytest.mark.parametrize("kind", ["local", "redis"])
def test_concurrent_imports_share_the_account_limit(
    limited: SandboxServer, tmp_path: Path, kind: str, parts: int, request: pytest.FixtureRequest
) -> None:
    one = baseline(limited, tmp_path / "baseline")
    store = None if kind == "local" else str(request.getfixturevalue("redis_url"))
    _, summaries, outputs = run_imports(limited, tmp_path, parts, store)
    took = busy()
    requests, throttled = server_counts(limited)
    load = f"load average {os.getloadavg()[0]:.1f}"  # on 2 cores, the jitter follows it
    assert throttled == 0, f"{throttled} x 429 out of {requests} requests ({load})"
    assert loaded_phones(limited) == {phone(i) for i in range(TOTAL)}
    assert requests <= TOTAL + 2 * parts  # the creates and each run's listing, no retry
    assert all(s["load"]["rate_limited"] == 0 for s in summaries)
    # as long as one run of all the rows (not `parts` runs' worth), and within the limit
    assert (requests - 10) / 10 <= took <= 1.2 * one + 1.0, (
        f"{took:.1f} s; one: {one:.1f} s; {load}"
    )
    shown = {s["load"]["rate_limit_store"] for s in summaries}
    if kind == "redis":
        assert shown == {str(store).replace(REDIS_PASSWORD, "***")}
        for k, text in enumerate(outputs):
            report = (tmp_path / f"out-{k}").rglob("*")
            blobs = [p.read_bytes() for p in report if p.is_file()]
            assert REDIS_PASSWORD not in text
            assert not any(REDIS_PASSWORD.encode() in b for b in blobs)
    else:
        assert shown == {os.environ["CONTACTPIPE_RATE_LIMIT_STORE"]}


@pytest.mark.slow
def test_without_a_shared_store_concurrent_imports_meet_429s(
    limited: SandboxServer, tmp_path: Path
) -> None:
    """The behaviour before the store (and with ``none``): each process sends 10/s, the
    account gets 20/s and the server refuses the excess.  (Twice the rows of the other tests:
    each run sends for 5 s, so the two overlap even when a busy machine starts one late.)"""
    _, summaries, _ = run_imports(limited, tmp_path, 2, "none", total=2 * TOTAL)
    requests, throttled = server_counts(limited)
    assert throttled > 0
    assert requests == 2 * TOTAL + 2 + throttled  # creates, listings, and each 429 resent
    assert sum(s["load"]["rate_limited"] for s in summaries) == throttled
    assert {s["load"]["rate_limit_store"] for s in summaries} == {"none"}
    assert loaded_phones(limited) == {phone(i) for i in range(2 * TOTAL)}  # retried, all in


def test_an_unreachable_store_stops_the_import_before_any_request(
    server: SandboxServer, tmp_path: Path
) -> None:
    (src,) = write_parts(tmp_path / "in", 1)
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:9/0"
    args = ["import", str(src), "--target", "msgflash", "--report-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--rate-limit-store", url], env=sandbox_env(server))
    assert result.exit_code == 4, result.output
    assert "rate limit store unreachable" in result.output
    assert "redis://:***@127.0.0.1:9/0" in result.output
    assert REDIS_PASSWORD not in result.output
    assert server_counts(server) == (0, 0)


def test_a_bad_store_is_a_usage_error(server: SandboxServer, tmp_path: Path) -> None:
    args = ["export", str(tmp_path / "x.csv"), "--target", "msgflash"]
    result = CliRunner().invoke(main, [*args, "--rate-limit-store", "memcached://h"])
    assert result.exit_code == 2
    assert "--rate-limit-store" in result.output and "redis://" in result.output


@pytest.mark.parametrize("command", ["export", "groups list", "delete", "migrate"])
def test_every_sending_command_takes_the_option(command: str) -> None:
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert "--rate-limit-store" in result.output


def test_redis_lost_mid_import_stops_the_run_and_reports_every_row(
    limited: SandboxServer, tmp_path: Path
) -> None:
    """Redis goes away after a few requests: nothing more is sent (that would break the
    account's limit for every other worker), every row is loaded or reported, the exit code
    says the load is not complete and no message shows the password."""
    import threading

    import contactpipe
    from contactpipe.load.base import LoadOptions

    (src,) = write_parts(tmp_path / "in", 1, 40)
    with redis_server(tmp_path) as (url, proc):

        def kill_after_a_few() -> None:
            while len(limited.app.journal.entries(api="msgflash")) < 6 and proc.poll() is None:
                time.sleep(0.01)
            proc.kill()

        killer = threading.Thread(target=kill_after_a_few)
        killer.start()
        result = contactpipe.import_contacts(
            src,
            "msgflash",
            contactpipe.RunOptions(region="FR"),
            load=LoadOptions(rate_limit_store=url),
            credentials=sandbox_env(limited),
            report_dir=tmp_path / "out",
        )
        killer.join()
    sent = len(limited.app.journal.entries(api="msgflash"))
    assert 6 <= sent < 41
    assert result.exit_code in (4, 5) and not result.ok
    by = {k: v for k, v in result.by_code.items() if v}
    assert result.load is not None and result.load.loaded + sum(by.values()) == 40
    assert set(by) <= {"NOT_SENT", "OUTCOME_UNKNOWN", "LOAD_FAILED"}, by
    text = json.dumps(result.to_dict()) + (tmp_path / "out" / "errors.csv").read_text()
    assert "rate limit store unreachable" in text
    assert REDIS_PASSWORD not in text
