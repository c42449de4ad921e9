"""SIGTERM, as ``timeout``, systemd, Kubernetes and Airflow send it, against the real CLI in its
own process importing into the sandbox on 127.0.0.1: the run stops sending, settles, writes
the whole report and exits 143; the rows of the request in flight are ``OUTCOME_UNKNOWN``
(the server stores them after all), the others ``NOT_SENT``; a re-run completes the import
without a duplicate."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from load_helpers import sandbox_env
from test_import_e2e import WRITE, phones_in

from contactpipe import run as run_module
from contactpipe.cli import main
from contactpipe.load.base import LoadOptions
from contactpipe.run import ImportOptions, RunOptions, import_files
from contactpipe.sandbox import SandboxServer
from contactpipe.signals import Terminated, sigterm_as_interrupt

ROOT = Path(__file__).resolve().parents[2]
ROWS = 30


def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Name", "Phone"])
        for i in range(ROWS):
            w.writerow([f"Client {i}", f"+33 6 12 34 {i // 100:02d} {i % 100:02d}"])
    return path


@pytest.mark.parametrize("target", ["waapi", "vobiz", "msgflash"])
def test_sigterm_during_a_load_writes_the_report_and_exits_143(
    server: SandboxServer, target: str, tmp_path: Path
) -> None:
    method, path = WRITE[target]
    fault = server.app.faults.add(target, method, path, delay_s=2.0)  # the first write hangs
    src, out = contacts(tmp_path), tmp_path / "out"
    env = {**os.environ, **sandbox_env(server), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "contactpipe.cli", "import", str(src), "--target", target]
    args += ["--batch-size", "10", "--report-dir", str(out), "-q", "--region", "FR"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while fault.hits == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert fault.hits == 1, "the import never reached the delayed request"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    text = (stdout + stderr).decode()
    assert proc.returncode == 143, text
    assert "terminated (SIGTERM)" in text and "Traceback" not in text

    summary = json.loads((out / "summary.json").read_text("utf-8"))
    load = summary["load"]
    assert load["loaded"] + load["failed"] == ROWS
    codes = {}
    with (out / "errors.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            codes[int(r["row"])] = r["code"]
    assert len(codes) == load["failed"]
    if target == "msgflash":  # concurrent single creates: in-flight ones settle, none unknown
        assert set(codes.values()) <= {"NOT_SENT", "GROUP_NOT_ADDED"}
    else:  # the first batch (rows 2-11) was in flight: the server stores it after the delay
        assert [codes[r] for r in range(2, 12)] == ["OUTCOME_UNKNOWN"] * 10
        assert {codes[r] for r in range(12, ROWS + 2)} == {"NOT_SENT"}
        time.sleep(2.5)
        assert len(phones_in(server, target)) == 10
    assert summary["by_code"].get("OUTCOME_UNKNOWN", 0) == list(codes.values()).count(
        "OUTCOME_UNKNOWN"
    )

    again = import_files(
        [str(src)],
        RunOptions(region="FR"),
        ImportOptions(
            target=target, load=LoadOptions(poll_interval_s=0.02), env=sandbox_env(server)
        ),
        tmp_path / "again",
    )
    assert again.summary["load"]["failed"] == 0
    phones = phones_in(server, target)
    assert len(phones) == len(set(phones)) == ROWS


def test_sigterm_raises_terminated_once_then_is_ignored() -> None:
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs at the next bytecode boundary
    with sigterm_as_interrupt():
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # while settling: ignored
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_sigterm_before_any_load_exits_143(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)

    monkeypatch.setattr(run_module, "validate_files", killed)
    src = contacts(tmp_path)
    result = CliRunner().invoke(main, ["validate", str(src), "-q"])
    assert result.exit_code == 143
    assert "terminated (SIGTERM)" in result.output


def test_ctrl_c_before_any_load_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "validate_files", interrupted)
    result = CliRunner().invoke(main, ["validate", str(contacts(tmp_path)), "-q"])
    assert result.exit_code == 130
    assert "interrupted (Ctrl-C)" in result.output


def test_a_batch_still_waiting_for_the_rate_limit_is_not_sent_not_unknown() -> None:
    from contactpipe.load.base import LOADED, LoadResult
    from contactpipe.run import Interrupted

    waiting = LoadResult("waapi", 6)
    waiting.mark(range(2), LOADED)
    waiting.sending(range(2, 4), requests=1)
    waiting.interrupt(Interrupted("interrupted (Ctrl-C)"), requests=1)  # nothing went out
    assert {waiting.failures[i][0] for i in range(2, 6)} == {"NOT_SENT"}

    sent = LoadResult("waapi", 6)
    sent.mark(range(2), LOADED)
    sent.sending(range(2, 4), requests=1)
    sent.interrupt(Interrupted("terminated (SIGTERM)"), requests=2)  # the POST went out
    assert [sent.failures[i][0] for i in range(2, 6)] == ["OUTCOME_UNKNOWN"] * 2 + ["NOT_SENT"] * 2
    assert "outcome unknown: terminated (SIGTERM)" in sent.failures[2][1]
    assert sent.counts()["loaded"] == 2 and sent.counts()["failed"] == 4
