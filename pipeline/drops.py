"""Drop folders: the pieces of a file-drop loop, shared by ``contactpipe watch`` and the Airflow
file-drop trigger.

A drop folder is a directory with four sub-folders::

    root/
      inbox/        files are dropped here (copied, saved, moved in)
      processing/   a file claimed for an import: <stamp>-<name>/<name> (+ report/)
      done/         imported: <stamp>-<name>/ holding the file, its report and watch.json
      failed/       refused (bad input, too many rejects, credentials): the same layout
      ledger.jsonl  one line per imported file: its SHA-256, so the same content dropped
                    again is not imported again

:func:`scan_ready` says which files of a folder are complete: present with the same size and
mtime for ``stable_for`` seconds (a file being copied, uploaded or saved keeps growing or
being touched).  It is pure, synchronous and cheap (one ``scandir``, no file opened, no
polars): the Airflow triggerer calls it in its event loop.  Hidden files, the partial or
temporary names that copy tools, browsers and office programs write first (``*.part``,
``*.tmp``, ``~$book.xlsx``...), and formats contactpipe does not read are never ready.

:class:`DropFolder` moves a file through the folder: :meth:`~DropFolder.claim` renames it
into ``processing/`` (atomic: two watchers never import one file), :meth:`~DropFolder.finish`
renames its whole entry into ``done/`` or ``failed/`` and records its digest in the ledger,
:meth:`~DropFolder.pending` lists what a killed run left in ``processing/`` (re-importing it is
safe with the sync state: rows the API confirmed are not sent again).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

READABLE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".csv",
        ".tsv",
        ".txt",
        ".xlsx",
        ".xlsm",
        ".xls",
        ".ods",
        ".parquet",
        ".json",
        ".ndjson",
        ".jsonl",
    }
)
"""The extensions contactpipe reads (``contactpipe.extract.SUPPORTED_EXTENSIONS``, repeated
here so that this module does not import the readers and polars; a test keeps them equal)."""

PARTIAL_PREFIXES: tuple[str, ...] = ("~$", ".~lock", "~lock.", ".#")
"""Names that office programs and editors write beside a document being edited."""

PARTIAL_SUFFIXES: tuple[str, ...] = (
    ".part",
    ".partial",
    ".tmp",
    ".temp",
    ".crdownload",
    ".download",
    ".filepart",
    ".opdownload",
    ".swp",
    ".swx",
    ".lock",
    "~",
)
"""Names of files still being written: browsers (``.crdownload``, ``.part``, ``.download``),
WinSCP (``.filepart``), curl/wget and most copy tools (``.part``, ``.partial``, ``.tmp``),
editors (``.swp``, ``~`` backups).  rsync's temporary names are hidden (``.name.XXXXXX``)."""

STATE_FILE = "watch.json"
"""In each entry of processing/, done/ and failed/: what happened to the file."""
REPORT_DIR = "report"
"""In each entry: the import's report directory."""
LEDGER = "ledger.jsonl"
SUBFOLDERS = ("inbox", "processing", "done", "failed")

Seen = dict[str, tuple[int, int, float]]
""":func:`scan_ready`'s memory: path -> (size, mtime in ns, first time seen so), JSON-ready."""


def candidate(name: str) -> bool:
    """Whether a file named ``name`` may become ready: not hidden, not a partial or temporary
    name, and in a format contactpipe reads."""
    lower = name.lower()
    if name.startswith(".") or lower.startswith(PARTIAL_PREFIXES):
        return False
    if lower.endswith(PARTIAL_SUFFIXES):
        return False
    return os.path.splitext(lower)[1] in READABLE_EXTENSIONS


def scan_ready(
    directory: str | os.PathLike[str],
    *,
    stable_for: float = 2.0,
    seen: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> tuple[list[Path], Seen]:
    """The complete files of ``directory`` and the memory to pass back next time.

    A file is ready when a previous call (whose ``seen`` is given back) saw it with the same
    size and modification time at least ``stable_for`` seconds ago (``stable_for=0``: ready
    at once).  A file's own mtime is not trusted alone: a network share's clock may differ
    from ours, and a moved file keeps its old mtime.  Only regular files directly in
    ``directory`` count (no sub-folders, no symlinks to folders); :func:`candidate` names only.
    A missing directory has no files.  Ready files are listed oldest first (mtime, then name).

    ``now`` is the wall clock in seconds (``time.time()``, the default); ``seen`` is JSON-ready,
    so a caller may keep it across processes (an Airflow trigger's serialised state)."""
    clock = time.time() if now is None else now
    before: Mapping[str, Any] = seen or {}
    after: Seen = {}
    ready: list[tuple[int, str, Path]] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return [], after
    for entry in entries:
        if not candidate(entry.name):
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except OSError:  # gone or unreadable between scandir and stat
            continue
        key = os.fspath(entry.path)
        size, mtime = st.st_size, st.st_mtime_ns
        since = clock
        previous = before.get(key)
        if previous is not None:
            old_size, old_mtime, old_since = previous
            if (old_size, old_mtime) == (size, mtime) and old_since <= clock:
                since = float(old_since)
        after[key] = (size, mtime, since)
        if clock - since >= stable_for:
            ready.append((mtime, entry.name, Path(entry.path)))
    ready.sort()
    return [path for _, _, path in ready], after


def content_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file's content (hex, as ``sha256sum`` prints it), read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Imported:
    """A ledger line: content imported before."""

    digest: str
    file: str
    """The name it was dropped under."""
    finished_at: str
    """ISO-8601, UTC."""
    entry: str
    """Where it went, relative to the drop folder (``done/<stamp>-<name>``)."""


class DropFolder:
    """A drop folder at ``root`` (its sub-folders are created)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        for name in SUBFOLDERS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.ledger = self.root / LEDGER
        self._ledger_cache: tuple[tuple[int, int], dict[str, Imported]] | None = None

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def processing(self) -> Path:
        return self.root / "processing"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    def ready(
        self, *, stable_for: float = 2.0, seen: Mapping[str, Any] | None = None
    ) -> tuple[list[Path], Seen]:
        """:func:`scan_ready` on the inbox."""
        return scan_ready(self.inbox, stable_for=stable_for, seen=seen)

    def claim(self, path: str | os.PathLike[str]) -> Path:
        """Move ``path`` (a file of the inbox) into its own entry of processing/ and return its
        new path, ``processing/<stamp>-<name>/<name>``.  The rename is atomic: when another
        process claimed the file first, this raises FileNotFoundError and moves nothing."""
        source = Path(path)
        entry = self._new_entry(self.processing, source.name)
        inner = f"input-{source.name}" if source.name == STATE_FILE else source.name
        claimed = entry / inner
        try:
            os.rename(source, claimed)
        except BaseException:
            entry.rmdir()
            raise
        self._write_state(
            entry, {"file": inner, "dropped_as": source.name, "claimed_at": _iso(_utc_now())}
        )
        return claimed

    def pending(self) -> list[Path]:
        """The files a killed or stopped run left in processing/, oldest claim first (empty
        entries, from a kill between the entry's creation and the rename, are removed)."""
        found: list[Path] = []
        for entry in sorted(p for p in self.processing.iterdir() if p.is_dir()):
            claimed = self._claimed_in(entry)
            if claimed is not None:
                found.append(claimed)
            elif not any(entry.iterdir()):
                entry.rmdir()
        return found

    def report_dir(self, claimed: Path) -> Path:
        """Where the import of ``claimed`` writes its report: ``report/`` beside it.  A report
        an earlier, stopped attempt left there is kept as ``report.attempt-N``."""
        report = claimed.parent / REPORT_DIR
        if report.exists():
            n = 1
            while (claimed.parent / f"{REPORT_DIR}.attempt-{n}").exists():
                n += 1
            report.rename(claimed.parent / f"{REPORT_DIR}.attempt-{n}")
        return report

    def finish(
        self,
        claimed: str | os.PathLike[str],
        ok: bool,
        summary: Mapping[str, Any],
        *,
        note: str | None = None,
    ) -> Path:
        """Move the entry of ``claimed`` (the file, its report) into done/ (``ok``) or
        failed/ and return the entry's new path.  ``summary`` (the import's summary or any
        small JSON-ready mapping) and ``note`` go into the entry's watch.json; an ``ok`` file's
        digest goes into the ledger (once), so :meth:`already_done` knows its content."""
        path = Path(claimed)
        entry = path.parent
        digest = content_digest(path)
        state = self._read_state(entry)
        finished = _utc_now()
        state.update(
            {
                "file": state.get("file", path.name),
                "sha256": digest,
                "ok": ok,
                "finished_at": _iso(finished),
                "summary": dict(summary),
            }
        )
        if note:
            state["note"] = note
        self._write_state(entry, state)
        dest = self._free_name(self.done if ok else self.failed, entry.name)
        os.rename(entry, dest)
        if ok and not self.already_done(digest):
            record = {
                "sha256": digest,
                "file": state.get("dropped_as", state["file"]),
                "finished_at": state["finished_at"],
                "entry": dest.relative_to(self.root).as_posix(),
            }
            line = json.dumps(record, ensure_ascii=False) + "\n"
            fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))  # one write: whole lines even when shared
            finally:
                os.close(fd)
        return dest

    def already_done(self, digest: str) -> bool:
        """Whether a file with this content (:func:`content_digest`) was imported here."""
        return self.imported(digest) is not None

    def imported(self, digest: str) -> Imported | None:
        """The ledger line of the first import of this content, None when never imported."""
        return self._ledger().get(digest)

    # -- internals ------------------------------------------------------------------------

    def _ledger(self) -> dict[str, Imported]:
        try:
            st = self.ledger.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_size, st.st_mtime_ns)
        if self._ledger_cache is not None and self._ledger_cache[0] == key:
            return self._ledger_cache[1]
        found: dict[str, Imported] = {}
        with self.ledger.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    doc = json.loads(line)
                    record = Imported(
                        digest=str(doc["sha256"]),
                        file=str(doc["file"]),
                        finished_at=str(doc["finished_at"]),
                        entry=str(doc["entry"]),
                    )
                except (ValueError, KeyError, TypeError):  # a line cut by a crash: skipped
                    continue
                found.setdefault(record.digest, record)
        self._ledger_cache = (key, found)
        return found

    def _new_entry(self, parent: Path, name: str) -> Path:
        stamp = _utc_now().strftime("%Y%m%dT%H%M%SZ")
        n = 1
        while True:
            entry = parent / (f"{stamp}-{name}" if n == 1 else f"{stamp}-{n}-{name}")
            try:
                entry.mkdir()
                return entry
            except FileExistsError:
                n += 1

    def _free_name(self, parent: Path, name: str) -> Path:
        dest, n = parent / name, 1
        while dest.exists():
            n += 1
            dest = parent / f"{name}.{n}"
        return dest

    def _claimed_in(self, entry: Path) -> Path | None:
        name = self._read_state(entry).get("file")
        if isinstance(name, str) and (entry / name).is_file():
            return entry / name
        # killed between the rename and watch.json: the entry's one input file
        files = [
            p for p in entry.iterdir() if p.is_file() and p.name != STATE_FILE and candidate(p.name)
        ]
        return files[0] if len(files) == 1 else None

    def _read_state(self, entry: Path) -> dict[str, Any]:
        try:
            doc = json.loads((entry / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _write_state(self, entry: Path, doc: Mapping[str, Any]) -> None:
        tmp = entry / f".{STATE_FILE}.tmp"
        tmp.write_text(
            json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        os.replace(tmp, entry / STATE_FILE)
