"""``contactpipe watch``: import each complete file dropped into a folder, without Airflow.

The loop over a :class:`~contactpipe.drops.DropFolder`:

1. at start, files a killed or stopped run left in ``processing/`` are imported again (safe:
   with the sync state, rows the API confirmed are not sent again);
2. files of ``inbox/`` that :func:`~contactpipe.drops.scan_ready` finds complete (unchanged
   for ``stable_for`` seconds) are claimed into ``processing/``, oldest first;
3. content already imported (same SHA-256 in the ledger) goes to ``done/`` with a note and
   is not imported again; anything else goes through the importer (the CLI passes
   :func:`contactpipe.import_contacts` with the sync state on), then to ``done/`` or
   ``failed/`` with its report, and one :class:`FileOutcome` is logged.

Where a file goes, by the import's exit code (:mod:`contactpipe.errors`):

- 0: ``done/``;
- 2 (unreadable, no phone column...), 3 (rejected share above ``--max-error-rate``), 5 (rows
  did not reach the API; dropping the file again finishes them): ``failed/``: the file's own
  problem; the watcher goes on with the next file, which may well be fine;
- 4, the API refused the credentials, the quota is used up, or the API stayed unreachable
  after the client's retries: not the file's fault, so it stays in ``processing/`` (the next
  start retries it, once the credentials are fixed or the API is back) and the watcher stops
  (exit 4): every later file would fail too, and they wait in ``inbox/`` instead of being
  failed one by one (a restarting service or the next cron run costs one refused request);
- 130/143, Ctrl-C or SIGTERM during an import: the load stops and settles and its report is
  written (:mod:`contactpipe.signals`); the file stays in ``processing/`` (the next start
  finishes it) and the watcher exits 130/143.  Between files, the signal just ends the wait.

Waiting uses ``watchfiles`` (OS notifications: inotify, FSEvents, ReadDirectoryChangesW,
through the Rust ``notify`` crate) in a thread: a drop wakes the loop at once.  The loop also
wakes when a file being written could have become complete (``stable_for`` after its last
change) and re-scans every ``scan_interval`` seconds, which catches what notifications miss:
network shares (NFS, SMB) do not notify, so ``poll=True`` skips notifications there; a
failure to start them (the inotify limit) falls back to re-scans with a note.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

from contactpipe.drops import DropFolder, content_digest
from contactpipe.errors import (
    IncompleteLoadError,
    InputError,
    Interrupted,
    PipelineError,
    RemoteError,
    TerminalRemoteError,
)
from contactpipe.signals import Terminated, interrupt_reason

if TYPE_CHECKING:
    from contactpipe.api import Result

Importer = Callable[[Path, Path], "Result"]
"""(the claimed file, its report directory) -> the import's result."""

Status = Literal["done", "duplicate", "failed", "left"]


@dataclass(frozen=True)
class WatchSettings:
    stable_for: float = 2.0
    """Seconds a file's size and mtime must stay the same before it is imported."""
    scan_interval: float = 2.0
    """Seconds between re-scans of the inbox when nothing is being written: the safety net
    for missed notifications, and the only way a drop is noticed with ``poll``."""
    poll: bool = False
    """Scan only, no OS notifications (network shares: NFS, SMB/CIFS do not notify)."""
    once: bool = False
    """Import what is complete now, then return (cron)."""


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one dropped file: one log line."""

    file: str
    """The name it was dropped under."""
    status: Status
    """done, duplicate (already imported: done/ with a note), failed, or left in processing/."""
    exit_code: int
    """The import's exit code (0 for done and duplicate)."""
    entry: Path
    """Its folder under done/, failed/ or processing/ (file, report/, watch.json)."""
    message: str
    """The result in words: counts, or why it failed or was left."""
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def to_dict(self, root: Path | None = None) -> dict[str, Any]:
        entry = self.entry
        if root is not None and entry.is_relative_to(root):
            entry = entry.relative_to(root)
        return {
            "time": self.at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "event": "file",
            "status": self.status,
            "file": self.file,
            "exit_code": self.exit_code,
            "entry": entry.as_posix(),
            "seconds": round(self.seconds, 3),
            "message": self.message,
            **self.counts,
        }

    def line(self, root: Path | None = None) -> str:
        d = self.to_dict(root)
        return (
            f"{d['time']} {self.status:<9} {self.file}: {self.message} -> {d['entry']} "
            f"(exit {self.exit_code}, {self.seconds:.1f} s)"
        )


COUNT_KEYS = ("rows_read", "valid", "rejected", "duplicates")
LOAD_KEYS = ("loaded", "failed", "created", "updated", "unchanged")


def _counts(summary: dict[str, Any]) -> dict[str, int]:
    out = {k: int(summary.get(k) or 0) for k in COUNT_KEYS}
    load = summary.get("load") or {}
    out.update({k: int(load.get(k) or 0) for k in LOAD_KEYS})
    return out


def _words(c: dict[str, int]) -> str:
    return (
        f"{c['loaded']:,} loaded ({c['created']:,} created, {c['updated']:,} updated, "
        f"{c['unchanged']:,} unchanged), {c['rejected']:,} rejected, "
        f"{c['duplicates']:,} duplicates, {c['failed']:,} failed at load"
    )


def _local(text: str, claimed: Path, dropped_as: str) -> str:
    """The first line of an error message, the claimed file named as dropped and paths in its
    entry made relative to it (the entry moves to done/ or failed/)."""
    line = text.strip().splitlines()[0] if text.strip() else text
    return line.replace(str(claimed), dropped_as).replace(f"{claimed.parent}{os.sep}", "")


class _Stop:
    """SIGINT/SIGTERM during the watch: between files, end the wait (``event``); during an
    import (``busy``), raise :class:`~contactpipe.signals.Terminated` or KeyboardInterrupt in
    the main thread so that the load stops, settles and writes its report, as in the other
    commands.  A second SIGTERM is ignored (settling); a second Ctrl-C interrupts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.wake = threading.Event()
        """Set with ``event``: the loop's wait ends at once."""
        self.code = 0
        self.reason = ""
        self.busy = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.event.is_set()
        if first:
            stop: KeyboardInterrupt = (
                Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
            )
            self.reason, self.code = interrupt_reason(stop)
            self.event.set()
            self.wake.set()
            if self.busy:
                raise stop
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt()

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, self.handle)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextmanager
    def importing(self) -> Iterator[None]:
        self.busy = True
        try:
            yield
        finally:
            self.busy = False


class Watcher:
    """The loop over ``folder``; :meth:`run` returns the exit code (the highest of the files'
    codes, 0 when every file was imported; 130/143 when stopped by a signal)."""

    def __init__(
        self,
        folder: DropFolder,
        importer: Importer,
        settings: WatchSettings | None = None,
        *,
        log: Callable[[FileOutcome], None] = lambda outcome: None,
        note: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.folder = folder
        self.importer = importer
        self.settings = settings or WatchSettings()
        self.log = log
        self.note = note
        self.exit_code = 0
        self._stop = _Stop()
        self._halt = False
        """A file's outcome stops the watcher (credentials refused, API unreachable)."""
        self._notify_error: str | None = None

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> int:
        with self._stop.installed():
            if self._recover() or self._stopping():
                return self._end()
            if self.settings.once:
                self._once()
            else:
                self._forever()
        return self._end()

    def stop(self) -> None:
        """Ask the loop to end after the current file (from another thread, or a test)."""
        self._stop.event.set()
        self._stop.wake.set()

    def _end(self) -> int:
        if self._stop.code:
            self.exit_code = max(self.exit_code, self._stop.code)
        return self.exit_code

    def _stopping(self) -> bool:
        return self._halt or self._stop.event.is_set()

    def _recover(self) -> bool:
        for claimed in self.folder.pending():
            self.note(f"retrying {claimed.parent.name}, left in processing/ by an earlier run")
            self._handle(claimed)
            if self._stopping():
                return True
        return False

    def _pass(self, seen: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Claim and import every ready file; True when the watcher must stop."""
        ready, seen = self.folder.ready(stable_for=self.settings.stable_for, seen=seen)
        for path in ready:
            if self._stopping():
                return True, seen
            seen.pop(str(path), None)
            try:
                claimed = self.folder.claim(path)
            except FileNotFoundError:  # another watcher claimed it, or it was taken back
                continue
            self._handle(claimed)
            if self._stopping():
                return True, seen
        return False, seen

    def _once(self) -> None:
        _, seen = self.folder.ready(stable_for=self.settings.stable_for, seen={})
        wait = self.settings.stable_for + 0.05 if seen and self.settings.stable_for > 0 else 0
        if wait and self._stop.event.wait(wait):  # what is there proves complete, or a signal
            return
        stop, seen = self._pass(seen)
        if stop:
            return
        for name in sorted(Path(k).name for k in seen):
            self.note(f"{name}: still being written, left in inbox/ for the next run")

    def _forever(self) -> None:
        wake = self._stop.wake
        notifier = None if self.settings.poll else self._notifications(wake)
        try:
            self._loop(wake, notifier)
        finally:
            self._stop.event.set()  # ends the notifications thread too
            if notifier is not None:
                notifier.join(timeout=5)

    def _loop(self, wake: threading.Event, notifier: threading.Thread | None) -> None:
        seen: dict[str, Any] = {}
        while True:
            wake.clear()
            stop, seen = self._pass(seen)
            if stop or self._stop.event.is_set():
                return
            if notifier is not None and not notifier.is_alive() and self._notify_error:
                self.note(f"file notifications stopped ({self._notify_error}); re-scanning only")
                notifier, self._notify_error = None, None
            # until a change, the time a file being written could be complete, or a re-scan
            wait = self.settings.scan_interval
            if seen:
                due = min(since for _, _, since in seen.values()) + self.settings.stable_for
                wait = min(wait, max(0.02, due - time.time()))
            wake.wait(wait)

    def _notifications(self, wake: threading.Event) -> threading.Thread:
        """A thread that sets ``wake`` at every change of the inbox (watchfiles, the Rust
        ``notify`` crate), until the stop event; on failure (the inotify limit...) it records
        the error, sets ``wake`` and ends: the loop goes on re-scanning."""

        def run() -> None:
            try:
                import watchfiles

                for _ in watchfiles.watch(
                    self.folder.inbox,
                    watch_filter=None,
                    debounce=1_600,
                    step=50,
                    stop_event=self._stop.event,
                    rust_timeout=0,
                    raise_interrupt=False,
                    recursive=False,
                ):
                    wake.set()
            except Exception as exc:
                self._notify_error = f"{type(exc).__name__}: {exc}"
                wake.set()

        thread = threading.Thread(target=run, name="contactpipe-watch-notify", daemon=True)
        thread.start()
        return thread

    # -- one file -------------------------------------------------------------------------

    def _handle(self, claimed: Path) -> FileOutcome:
        started = time.monotonic()
        dropped_as = self._dropped_as(claimed)
        digest = content_digest(claimed)
        previous = self.folder.imported(digest)
        if previous is not None:
            note = f"already imported on {previous.finished_at} in {previous.entry}"
            entry = self.folder.finish(claimed, True, {"duplicate_of": previous.entry}, note=note)
            return self._done(
                FileOutcome(dropped_as, "duplicate", 0, entry, note, time.monotonic() - started)
            )
        if self._stop.event.is_set():  # a signal between the claim and the import
            msg = "stopped before its import; left in processing/, imported at the next start"
            return self._done(
                FileOutcome(dropped_as, "left", self._stop.code, claimed.parent, msg, 0.0)
            )
        report = self.folder.report_dir(claimed)
        try:
            with self._stop.importing():
                result = self.importer(claimed, report)
        except KeyboardInterrupt as stop:  # before the load started: nothing sent
            reason, code = interrupt_reason(stop)
            msg = f"{reason} before the load; left in processing/, retried at the next start"
            return self._done(
                FileOutcome(
                    dropped_as, "left", code, claimed.parent, msg, time.monotonic() - started
                )
            )
        except PipelineError as exc:  # unusable file (2), or the API before any row (4)
            return self._failed_early(claimed, dropped_as, exc, started)
        except Exception as exc:  # a bug: the file is kept in failed/ with the message
            err = PipelineError(f"unexpected error ({type(exc).__name__}): {exc}")
            return self._failed_early(claimed, dropped_as, err, started)
        return self._after(claimed, dropped_as, result, started)

    def _after(self, claimed: Path, dropped_as: str, result: Result, started: float) -> FileOutcome:
        summary = result.to_dict()
        counts = _counts(summary)
        error = result.error()
        code = result.exit_code
        took = time.monotonic() - started
        if error is None:
            entry = self.folder.finish(claimed, True, _small(summary, 0))
            return self._done(
                FileOutcome(dropped_as, "done", 0, entry, _words(counts), took, counts)
            )
        message = f"{_local(str(error), claimed, dropped_as)}; {_words(counts)}"
        if isinstance(error, Interrupted):
            message += "; left in processing/, finished at the next start"
            self._halt = True
            return self._done(
                FileOutcome(dropped_as, "left", code, claimed.parent, message, took, counts)
            )
        if isinstance(error, RemoteError):
            message += _remote_stop(error)
            self._halt = True
            return self._done(
                FileOutcome(dropped_as, "left", code, claimed.parent, message, took, counts)
            )
        if isinstance(error, IncompleteLoadError):
            message += "; drop the file again to finish it (confirmed rows are not sent again)"
        entry = self.folder.finish(claimed, False, _small(summary, code), note=message)
        return self._done(FileOutcome(dropped_as, "failed", code, entry, message, took, counts))

    def _failed_early(
        self, claimed: Path, dropped_as: str, exc: PipelineError, started: float
    ) -> FileOutcome:
        message = _local(str(exc), claimed, dropped_as)
        report = claimed.parent / "report"
        if report.is_dir() and not any(report.iterdir()):
            report.rmdir()
        code = exc.exit_code
        if isinstance(exc, RemoteError):
            self._halt = True
            message += _remote_stop(exc)
            return self._done(
                FileOutcome(dropped_as, "left", code, claimed.parent, message, _since(started))
            )
        elif not isinstance(exc, InputError):
            code = max(code, 1)
        entry = self.folder.finish(
            claimed, False, {"error": message, "exit_code": code}, note=message
        )
        return self._done(FileOutcome(dropped_as, "failed", code, entry, message, _since(started)))

    def _done(self, outcome: FileOutcome) -> FileOutcome:
        self.exit_code = max(self.exit_code, outcome.exit_code)
        self.log(outcome)
        return outcome

    def _dropped_as(self, claimed: Path) -> str:
        import json

        try:
            doc = json.loads((claimed.parent / "watch.json").read_text(encoding="utf-8"))
            return str(doc.get("dropped_as") or claimed.name)
        except (OSError, ValueError, AttributeError):
            return claimed.name


def _remote_stop(error: RemoteError) -> str:
    """Why the watcher stops after a refusal or an outage: not the file's fault, so the file
    stays in processing/ for the next start (once the credentials are fixed, the quota renewed
    or the API back), and later files stay in inbox/ instead of failing one by one."""
    if isinstance(error, TerminalRemoteError):
        why = "every later file would be refused too"
    else:
        why = "the API is unreachable"
    return f"; watcher stopped ({why}); left in processing/, retried at the next start"


def _since(started: float) -> float:
    return time.monotonic() - started


def _small(summary: dict[str, Any], exit_code: int) -> dict[str, Any]:
    """What watch.json keeps of an import's summary (summary.json, beside it, has it all)."""
    keep = {k: summary[k] for k in (*COUNT_KEYS, "empty_rows", "by_code") if k in summary}
    load = summary.get("load") or {}
    keep["load"] = {k: load[k] for k in (*LOAD_KEYS, "target", "requests", "aborted") if k in load}
    keep["exit_code"] = exit_code
    return keep
