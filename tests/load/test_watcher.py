"""The watch loop in this process (contactpipe.watcher.Watcher) with the real import into the
sandbox on 127.0.0.1: the cases the subprocess tests of test_watch_e2e.py leave out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from load_helpers import FAST_POLICY, sandbox_env
from test_import_e2e import WRITE, phones_in
from test_watch_e2e import drop, entries, watch_state, write_csv

import contactpipe
from contactpipe.drops import DropFolder
from contactpipe.load.base import LoadOptions
from contactpipe.run import RunOptions
from contactpipe.sandbox import SandboxServer
from contactpipe.watcher import FileOutcome, Watcher, WatchSettings


def watcher(server: SandboxServer, tmp_path: Path, **settings: object) -> tuple[Watcher, list]:
    folder = DropFolder(tmp_path / "drop")
    outcomes: list[FileOutcome] = []

    def importer(path: Path, report: Path) -> contactpipe.Result:
        return contactpipe.import_contacts(
            path,
            "waapi",
            RunOptions(region="FR"),
            load=LoadOptions(retry=FAST_POLICY, poll_interval_s=0.02, batch_size=10),
            credentials=sandbox_env(server),
            report_dir=report,
            state=tmp_path / "state.db",
        )

    w = Watcher(folder, importer, WatchSettings(**settings), log=outcomes.append)  # type: ignore[arg-type]
    return w, outcomes


def test_rows_that_did_not_reach_the_api_fail_the_file_and_a_new_drop_finishes_it(
    server: SandboxServer, tmp_path: Path
) -> None:
    method, path = WRITE["waapi"]
    server.app.faults.add("waapi", method, path, times=1, status=400)  # one batch refused
    expected = write_csv(tmp_path / "list.csv", 0, 20)
    data = (tmp_path / "list.csv").read_bytes()
    drop(tmp_path / "drop", tmp_path / "list.csv")
    w, outcomes = watcher(server, tmp_path, once=True, stable_for=0)
    assert w.run() == 5
    [failed] = outcomes
    assert failed.status == "failed" and failed.exit_code == 5
    assert "incomplete load" in failed.message and "drop the file again" in failed.message
    assert "report/errors.csv" in failed.message  # the path inside the entry, not processing/
    assert "processing" not in failed.message
    [entry] = entries(tmp_path / "drop", "failed")
    assert watch_state(entry)["summary"]["exit_code"] == 5
    assert len(phones_in(server, "waapi")) == 10

    writes = len(server.app.journal)
    (tmp_path / "list.csv").write_bytes(data)
    drop(tmp_path / "drop", tmp_path / "list.csv")  # not in the ledger: imported again
    w, outcomes = watcher(server, tmp_path, once=True, stable_for=0)
    assert w.run() == 0
    assert [o.status for o in outcomes] == ["done"]
    assert set(phones_in(server, "waapi")) == expected
    assert len(server.app.journal) == writes + 1  # the sync state sent the missing batch only


def test_an_api_down_after_the_retries_stops_the_watcher_and_keeps_the_file(
    server: SandboxServer, tmp_path: Path
) -> None:
    method, path = WRITE["waapi"]
    server.app.faults.add("waapi", method, path, times=None, status=503)
    write_csv(tmp_path / "a.csv", 0, 5)
    drop(tmp_path / "drop", tmp_path / "a.csv")
    write_csv(tmp_path / "b.csv", 10, 5)
    drop(tmp_path / "drop", tmp_path / "b.csv")
    w, outcomes = watcher(server, tmp_path, stable_for=0)  # long-running: stops by itself
    assert w.run() == 4
    [left] = outcomes
    assert left.status == "left" and left.exit_code == 4
    assert "watcher stopped (the API is unreachable)" in left.message
    assert left.entry.parent == tmp_path / "drop" / "processing"
    assert len(list((tmp_path / "drop" / "inbox").iterdir())) == 1  # the other one waits

    server.app.faults.clear()  # the API is back: the next start imports both
    w, outcomes = watcher(server, tmp_path, once=True, stable_for=0)
    assert w.run() == 0
    assert [o.status for o in outcomes] == ["done", "done"]
    assert len(phones_in(server, "waapi")) == 10


def test_once_leaves_a_file_still_being_written_for_the_next_run(
    server: SandboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    write_csv(tmp_path / "ready.csv", 0, 3)
    drop(folder, tmp_path / "ready.csv")
    growing = folder / "inbox" / "growing.csv"
    growing.write_text("Name,Phone\n", encoding="utf-8")
    w, outcomes = watcher(server, tmp_path, once=True, stable_for=1.0)
    notes: list[str] = []
    w.note = notes.append

    def append() -> None:
        for i in range(30):  # for 3 s, every 0.1 s: never still for 1 s
            time.sleep(0.1)
            with growing.open("a", encoding="utf-8") as fh:
                fh.write(f"C {i},06 12 34 99 {i:02d}\n")

    writer = threading.Thread(target=append)
    writer.start()
    assert w.run() == 0
    writer.join()
    assert [(o.file, o.status) for o in outcomes] == [("ready.csv", "done")]
    assert notes == ["growing.csv: still being written, left in inbox/ for the next run"]
    assert growing.exists()


def test_stop_from_another_thread_ends_the_long_running_loop(
    server: SandboxServer, tmp_path: Path
) -> None:
    w, outcomes = watcher(server, tmp_path, stable_for=0.2, scan_interval=30)
    folder = tmp_path / "drop"
    done = threading.Event()

    def drive() -> None:
        time.sleep(0.5)
        write_csv(tmp_path / "a.csv", 0, 4)
        drop(folder, tmp_path / "a.csv")
        deadline = time.monotonic() + 20
        while not entries(folder, "done") and time.monotonic() < deadline:
            time.sleep(0.05)
        done.set()
        w.stop()

    threading.Thread(target=drive).start()
    started = time.monotonic()
    assert w.run() == 0
    assert done.is_set() and time.monotonic() - started < 20
    assert [o.status for o in outcomes] == ["done"]


def test_when_notifications_cannot_start_the_watcher_says_so_and_rescans(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import watchfiles

    def no_inotify(*args: object, **kwargs: object) -> Iterator[object]:
        raise OSError(28, "inotify watch limit reached")
        yield  # a generator, as watchfiles.watch is

    monkeypatch.setattr(watchfiles, "watch", no_inotify)
    w, outcomes = watcher(server, tmp_path, stable_for=0.1, scan_interval=0.1)
    notes: list[str] = []
    w.note = notes.append
    folder = tmp_path / "drop"

    def drive() -> None:
        time.sleep(0.5)
        write_csv(tmp_path / "a.csv", 0, 3)
        drop(folder, tmp_path / "a.csv")
        deadline = time.monotonic() + 20
        while not entries(folder, "done") and time.monotonic() < deadline:
            time.sleep(0.05)
        w.stop()

    threading.Thread(target=drive).start()
    assert w.run() == 0
    assert [o.status for o in outcomes] == ["done"]
    assert any("file notifications stopped" in n and "inotify watch limit" in n for n in notes)
