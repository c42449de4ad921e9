"""The public Python API: what ``import contactpipe`` gives a notebook or an Airflow task.

A thin, typed facade over :mod:`contactpipe.run`; the CLI decides its exit code with the same
:meth:`Result.error`.  Each function runs one command, writes the same report directory as the
CLI and returns a typed result whose :meth:`~Result.to_dict` is ``summary.json``.  Nothing
prints and nothing calls ``sys.exit``:

- unusable input or options raise :class:`~contactpipe.errors.InputError` /
  :class:`~contactpipe.errors.UsageError` (exit 2 in the CLI) before anything is sent;
- a run that finished returns its result even when its outcome is bad: too many rows rejected,
  the API refused the credentials, rows not loaded, Ctrl-C.  ``result.raise_for_outcome()`` (or
  ``check=True``) raises the exception whose ``exit_code`` the CLI exits with:
  :class:`~contactpipe.errors.RemoteError` (4) or
  :class:`~contactpipe.errors.Interrupted` (130, 143)
  first, then :class:`~contactpipe.errors.ThresholdError` (3), then
  :class:`~contactpipe.errors.IncompleteLoadError` (5).

Credentials are the variables the CLI reads (``MSGFLASH_API_KEY``, ``WAAPI_TOKEN``...): from
``os.environ`` by default, or from the ``credentials`` mapping when one is given (then the
environment is not read at all; ``base_url=`` or the target's ``*_BASE_URL`` in the mapping
says where).  Retries and the httpx transport are :class:`~contactpipe.load.base.LoadOptions`
fields (``retry=``, ``transport=``).

Without ``report_dir``, the report goes to a new temporary folder
(``tempfile.mkdtemp(prefix="contactpipe-<command>-")``) that is never deleted: its path is in
``result.reports.directory``; pass ``report_dir`` where reports must be kept or cleaned up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import polars as pl

from contactpipe import run
from contactpipe.errors import (
    INCOMPLETE_CODES,
    IncompleteLoadError,
    PipelineError,
    ThresholdError,
    incomplete_rows,
)
from contactpipe.report.progress import Progress
from contactpipe.run import ImportOptions, RunOptions

if TYPE_CHECKING:  # imported where used: a validate does not import the load's modules
    from contactpipe.load.base import ExportFilters, LoadOptions, PlanLine

Inputs = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""A file, glob or folder, or several."""

ReportDir = str | os.PathLike[str] | None


class Credentials(Mapping[str, str]):
    """The variables a target reads (``WAAPI_TOKEN``, ``WAAPI_PHONE_ID``, ``WAAPI_BASE_URL``...),
    given explicitly, e.g. from an Airflow connection.  Its ``repr`` never shows a value, so
    options that hold it can be logged."""

    def __init__(self, values: Mapping[str, str] | None = None, /, **more: str) -> None:
        self._values: dict[str, str] = {**(values or {}), **more}

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Credentials({', '.join(f'{k}=***' for k in sorted(self._values))})"


@dataclass(frozen=True)
class ReportFiles:
    """The files of a report directory (``summary.json``'s ``files_written``)."""

    directory: Path
    errors_csv: Path
    warnings_csv: Path
    contacts_csv: Path
    contacts_parquet: Path
    summary_json: Path
    report_html: Path | None = None
    errors_xlsx: Path | None = None

    @classmethod
    def from_files(cls, files: Mapping[str, str]) -> ReportFiles:
        def opt(key: str) -> Path | None:
            return Path(files[key]) if key in files else None

        summary_json = Path(files["summary_json"])
        return cls(
            directory=summary_json.parent,
            errors_csv=Path(files["errors_csv"]),
            warnings_csv=Path(files["warnings_csv"]),
            contacts_csv=Path(files["contacts_csv"]),
            contacts_parquet=Path(files["contacts_parquet"]),
            summary_json=summary_json,
            report_html=opt("report_html"),
            errors_xlsx=opt("errors_xlsx"),
        )


def _json_ready(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` as it reads back from the JSON the report writes (tuples become lists, paths
    strings: ``default=str`` as in :func:`contactpipe.report.writer.write_json`)."""
    out: dict[str, Any] = json.loads(json.dumps(doc, ensure_ascii=False, default=str))
    return out


def _plan(doc: Mapping[str, Any]) -> tuple[PlanLine, ...]:
    from contactpipe.load.base import PlanLine

    fields = {f.name for f in dataclasses.fields(PlanLine)}
    return tuple(
        PlanLine(**{k: v for k, v in line.items() if k in fields}) for line in doc.get("plan", [])
    )


@dataclass(frozen=True)
class LoadFigures:
    """What the step that talked to the API did: ``summary.json``'s ``load`` (import,
    migrate), ``delete`` or ``groups`` object.  ``loaded`` is what the command did to a row
    (loaded, deleted, added to or removed from the group)."""

    section: str
    """The key in ``summary.json``: ``load``, ``delete`` or ``groups``."""
    target: str | None
    dry_run: bool
    loaded: int
    failed: int
    created: int
    updated: int
    unchanged: int
    not_found: int
    requests: int
    retries: int
    rate_limited: int
    aborted: str | None
    """Why the remote side or the user stopped the step (credentials masked)."""
    skipped: str | None
    """Why nothing was sent (the rejected share was above ``max_error_rate``)."""
    plan: tuple[PlanLine, ...]
    request_files: tuple[Path, ...]
    """A dry-run import's request bodies."""

    @classmethod
    def from_summary(cls, section: str, doc: Mapping[str, Any]) -> LoadFigures:
        def n(key: str) -> int:
            return int(doc.get(key) or 0)

        return cls(
            section=section,
            target=doc.get("target"),
            dry_run=bool(doc.get("dry_run")),
            loaded=n("loaded"),
            failed=n("failed"),
            created=n("created"),
            updated=n("updated"),
            unchanged=n("unchanged"),
            not_found=n("not_found"),
            requests=n("requests"),
            retries=n("retries"),
            rate_limited=n("rate_limited"),
            aborted=doc.get("aborted"),
            skipped=doc.get("skipped"),
            plan=_plan(doc),
            request_files=tuple(Path(p) for p in doc.get("request_files", [])),
        )


@dataclass(frozen=True)
class MigrateFigures:
    """``summary.json``'s ``migrate`` object: what was exported and what the destination has
    no place for."""

    source: str
    dest: str
    exported: int
    export_file: Path
    not_carried: Mapping[str, int]

    @classmethod
    def from_summary(cls, doc: Mapping[str, Any]) -> MigrateFigures:
        return cls(
            source=doc["from"],
            dest=doc["to"],
            exported=int(doc["exported"]),
            export_file=Path(doc["export_file"]),
            not_carried=dict(doc["not_carried"]),
        )


@dataclass(frozen=True)
class Deferral:
    """A load that stopped before a wait longer than ``defer_after`` (``summary.json``'s
    ``load.deferred``): run the same import with ``resume=True`` at or after ``resume_at``."""

    resume_at: dt.datetime
    """When the wait ends (UTC, timezone-aware)."""
    reason: str
    """What the load would have waited for (a rate-limit window, a server pause, a job)."""

    @classmethod
    def from_summary(cls, doc: Mapping[str, Any] | None) -> Deferral | None:
        if not doc:
            return None
        return cls(resume_at=dt.datetime.fromisoformat(doc["resume_at"]), reason=doc["reason"])


@dataclass(frozen=True)
class Result:
    """What ``validate``, ``import_contacts``, ``delete_contacts``, ``change_group`` and
    ``migrate`` return.  Every input row is in exactly one place::

        rows_read == empty_rows + valid + rejected + duplicates

    and, after a load, ``valid == load.loaded + load.failed``."""

    command: str
    rows_read: int
    empty_rows: int
    valid: int
    rejected: int
    duplicates: int
    warnings: int
    error_rate: float
    """(rejected + refused by the API) / non-empty rows."""
    max_error_rate: float | None
    by_code: Mapping[str, int]
    """Rows per code: rejections, warnings, duplicates and load failures."""
    load: LoadFigures | None
    """The step that talked to the API (None for ``validate``)."""
    migrate: MigrateFigures | None
    reports: ReportFiles
    contacts_data: pl.DataFrame | Path = field(repr=False, compare=False)
    """The contacts frame, or the ``contacts.parquet`` to read it from on first use of
    :attr:`contacts` (a validate in batches does not hold them all in memory)."""
    aborted: PipelineError | None = None
    """What stopped the load: a :class:`~contactpipe.errors.RemoteError` or
    :class:`~contactpipe.errors.Interrupted`."""
    summary: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    deferred: Deferral | None = None
    """Set when the load stopped before a wait longer than ``defer_after``: rows not sent
    yet are ``DEFERRED``, the sync state holds the rest; :meth:`error` is a
    :class:`~contactpipe.errors.Deferred` (exit 75)."""

    @classmethod
    def from_run(cls, result: run.RunResult) -> Result:
        """The typed view of :class:`contactpipe.run.RunResult`."""
        s = result.summary
        section = next((k for k in ("load", "delete", "groups") if k in s), None)
        return cls(
            command=s["command"],
            rows_read=s["rows_read"],
            empty_rows=s["empty_rows"],
            valid=s["valid"],
            rejected=s["rejected"],
            duplicates=s["duplicates"],
            warnings=s["warnings"],
            error_rate=s["error_rate"],
            max_error_rate=s["options"].get("max_error_rate"),
            by_code=dict(s["by_code"]),
            load=LoadFigures.from_summary(section, s[section]) if section else None,
            migrate=MigrateFigures.from_summary(s["migrate"]) if "migrate" in s else None,
            reports=ReportFiles.from_files(result.report_files),
            contacts_data=result.contacts,
            aborted=result.aborted,
            summary=s,
            deferred=Deferral.from_summary(s[section].get("deferred")) if section else None,
        )

    @property
    def contacts(self) -> pl.DataFrame:
        """The valid contacts, deduplicated (``contacts.parquet``)."""
        data = self.contacts_data
        if isinstance(data, Path):
            data = pl.read_parquet(data)
            object.__setattr__(self, "contacts_data", data)
        return data

    def to_dict(self) -> dict[str, Any]:
        """The summary as ``summary.json`` holds it (JSON types: lists, strings)."""
        return _json_ready(self.summary)

    @property
    def threshold_exceeded(self) -> bool:
        """The rejected share is above ``max_error_rate``."""
        return self.max_error_rate is not None and self.error_rate > self.max_error_rate

    @property
    def incomplete(self) -> int:
        """Rows that did not reach the API for a system reason (``INCOMPLETE_CODES``):
        re-running the same command finishes them."""
        return incomplete_rows(self.by_code)

    def error(self) -> PipelineError | None:
        """The exception the outcome calls for, None when the run is done: what stopped the
        load (RemoteError 4, Interrupted 130/143, Deferred 75), else ThresholdError (3), else
        IncompleteLoadError (5).  The CLI exits with its ``exit_code``."""
        if self.aborted is not None:
            return self.aborted
        if self.threshold_exceeded:
            return ThresholdError(
                f"{self.error_rate:.1%} of rows rejected, above --max-error-rate "
                f"{self.max_error_rate:.1%}"
            )
        if self.incomplete:
            return IncompleteLoadError(
                f"incomplete load: {self.incomplete:,} rows did not reach the API "
                f"({', '.join(INCOMPLETE_CODES)}). Re-running the same command finishes "
                f"them; the report lists each one: {self.reports.errors_csv}",
                rows=self.incomplete,
            )
        return None

    @property
    def ok(self) -> bool:
        """True when :meth:`raise_for_outcome` would not raise."""
        return self.error() is None

    @property
    def exit_code(self) -> int:
        """What the CLI exits with after this run (0 when done)."""
        err = self.error()
        return 0 if err is None else err.exit_code

    def raise_for_outcome(self) -> Self:
        """Raise :meth:`error` when there is one; else return the result (chainable)."""
        err = self.error()
        if err is not None:
            raise err
        return self


@dataclass(frozen=True)
class ExportResult:
    """What ``export_contacts`` returns (a failed export raises instead: it writes no file)."""

    target: str
    output: Path
    rows: int
    columns: tuple[str, ...]
    filled: Mapping[str, int]
    """Column -> contacts with a value."""
    total_reported: int | None
    """How many contacts the API said match (None: it did not say)."""
    requests: int
    retries: int
    rate_limited: int
    plan: tuple[PlanLine, ...]
    seconds: float
    """From the plan to the file written."""
    summary: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    summary_json: Path | None = None
    """The report directory's summary.json (None: no ``report_dir`` given)."""
    report_html: Path | None = None
    """The page of the export (None: no ``report_dir``, or ``html=False``)."""

    @classmethod
    def from_summary(cls, doc: Mapping[str, Any]) -> ExportResult:
        written = doc.get("files_written") or {}
        return cls(
            target=doc["target"],
            output=Path(doc["output"]),
            rows=int(doc["rows"]),
            columns=tuple(doc["columns"]),
            filled=dict(doc["filled"]),
            total_reported=doc.get("total_reported"),
            requests=int(doc["requests"]),
            retries=int(doc["retries"]),
            rate_limited=int(doc["rate_limited"]),
            plan=_plan(doc),
            seconds=float(doc["seconds"]["total"]),
            summary=doc,
            summary_json=Path(written["summary_json"]) if "summary_json" in written else None,
            report_html=Path(written["report_html"]) if "report_html" in written else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The export summary, as ``contactpipe export --json`` prints it."""
        return _json_ready(self.summary)


def _inputs(inputs: Inputs) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(i) for i in inputs]


def _report_dir(report_dir: ReportDir, command: str) -> Path:
    if report_dir is not None:
        return Path(report_dir)
    return Path(tempfile.mkdtemp(prefix=f"contactpipe-{command}-"))


def _target(
    target: str,
    credentials: Mapping[str, str] | None,
    base_url: str | None,
    load: LoadOptions | None,
) -> ImportOptions:
    from contactpipe.load.base import LoadOptions

    env = None if credentials is None else Credentials(credentials)
    return ImportOptions(target=target, base_url=base_url, load=load or LoadOptions(), env=env)


@dataclass(frozen=True)
class Account:
    """The account a target's credentials write to, as the sync state keys it: ``key`` is a
    digest (base URL and account / workspace / phone id, or a one-way digest of the
    credentials when they alone name the account), ``label`` names it without any secret."""

    target: str
    key: str
    label: str


def account(
    target: str, *, credentials: Mapping[str, str] | None = None, base_url: str | None = None
) -> Account:
    """Which account of ``target`` the credentials write to (checked like an import's; no
    request is sent).  An Airflow asset is named after it."""
    from contactpipe.load import registry
    from contactpipe.load.kit.state import config_fingerprint

    imp = _target(target, credentials, base_url, None)
    config = run._target_config(registry.get(target), imp)
    key, label = config_fingerprint(target, config)
    return Account(target=target, key=key, label=label)


def _done(result: run.RunResult, check: bool) -> Result:
    typed = Result.from_run(result)
    return typed.raise_for_outcome() if check else typed


def validate(
    inputs: Inputs,
    options: RunOptions | None = None,
    *,
    report_dir: ReportDir = None,
    progress: Progress | None = None,
    check: bool = False,
) -> Result:
    """Read, map, normalise, validate and dedupe ``inputs``; write the report.  Nothing is
    sent anywhere."""
    found = run.validate_files(
        _inputs(inputs), options or RunOptions(), _report_dir(report_dir, "validate"), progress
    )
    return _done(found, check)


def import_contacts(
    inputs: Inputs,
    target: str,
    options: RunOptions | None = None,
    *,
    load: LoadOptions | None = None,
    credentials: Mapping[str, str] | None = None,
    base_url: str | None = None,
    report_dir: ReportDir = None,
    progress: Progress | None = None,
    state: str | os.PathLike[str] | None = None,
    full_refresh: bool = False,
    resume: bool = False,
    mirror: Literal["state", "all"] | None = None,
    max_delete: int | None = 100,
    defer_after: float | None = None,
    yield_after: float | None = None,
    check: bool = False,
) -> Result:
    """Validate ``inputs`` like :func:`validate`, then load the valid contacts into ``target``
    (``load.dry_run``: write the request bodies and the plan instead).  Groups every contact
    joins: ``options.extra_groups``.

    ``state``: the sync state, a SQLite file path or a ``postgresql://`` URL shared by runs
    on several machines (none by default here; the CLI uses the per-user file): only rows
    whose payload changed since the API confirmed them are sent.  ``full_refresh``,
    ``resume``, ``mirror`` and ``max_delete`` are the CLI's ``--full-refresh``, ``--resume``,
    ``--mirror`` and ``--max-delete`` (README, "Sync state").

    ``defer_after`` (seconds, needs ``state``): when the load would have to wait longer than
    that before its next request (a rate-limit window, a server ``Retry-After``, a bulk job
    still running), it stops cleanly instead -- every request sent answered, the state
    checkpointed, the rows not sent ``DEFERRED`` in the report -- and the result's
    :attr:`~Result.deferred` says when to resume (``resume=True``, same inputs and state).
    ``yield_after`` (seconds, needs ``state``): once the load has been sending that long it
    defers the same way with ``resume_at`` = now, so a scheduler gets the worker back."""
    from contactpipe.state import state_location  # not imported by a validate

    imp = dataclasses.replace(
        _target(target, credentials, base_url, load),
        state=None if state is None else state_location(state),
        full_refresh=full_refresh,
        resume=resume,
        mirror=mirror,
        max_delete=max_delete,
        defer_after=defer_after,
        yield_after=yield_after,
    )
    found = run.import_files(
        _inputs(inputs), options or RunOptions(), imp, _report_dir(report_dir, "import"), progress
    )
    return _done(found, check)


def delete_contacts(
    inputs: Inputs,
    target: str,
    options: RunOptions | None = None,
    *,
    max_delete: int | None = 100,
    load: LoadOptions | None = None,
    credentials: Mapping[str, str] | None = None,
    base_url: str | None = None,
    report_dir: ReportDir = None,
    progress: Progress | None = None,
    check: bool = False,
) -> Result:
    """Delete from ``target`` the contacts whose phones (or ``id`` column) ``inputs`` list.
    More than ``max_delete`` found (None: no limit) raises UsageError before any delete;
    ``load.dry_run`` only looks them up."""
    found = run.delete_files(
        _inputs(inputs),
        options or RunOptions(),
        _target(target, credentials, base_url, load),
        _report_dir(report_dir, "delete"),
        progress,
        limit=max_delete,
    )
    return _done(found, check)


def change_group(
    inputs: Inputs,
    target: str,
    group: str,
    options: RunOptions | None = None,
    *,
    add: bool = True,
    load: LoadOptions | None = None,
    credentials: Mapping[str, str] | None = None,
    base_url: str | None = None,
    report_dir: ReportDir = None,
    progress: Progress | None = None,
    check: bool = False,
) -> Result:
    """Add (``add=False``: remove) the contacts ``inputs`` list to (from) ``group`` of
    ``target``; the group is created on add when missing."""
    found = run.change_group_files(
        _inputs(inputs),
        options or RunOptions(),
        _target(target, credentials, base_url, load),
        _report_dir(report_dir, "groups-add" if add else "groups-remove"),
        group,
        add=add,
        progress=progress,
    )
    return _done(found, check)


def export_contacts(
    target: str,
    output: str | os.PathLike[str],
    filters: ExportFilters | None = None,
    *,
    with_groups: bool = False,
    excel: bool = False,
    load: LoadOptions | None = None,
    credentials: Mapping[str, str] | None = None,
    base_url: str | None = None,
    progress: Progress | None = None,
    on_plan: Callable[[tuple[PlanLine, ...]], None] | None = None,
    report_dir: ReportDir = None,
    html: bool = True,
) -> ExportResult:
    """Write every contact of ``target`` (filtered) to ``output``, in the format of its
    extension (.csv .xlsx .parquet .json .ndjson), atomically.  ``on_plan`` sees the requests
    and least time before the first page is asked for (raise in it to stop).  A failure raises
    (RemoteError, UsageError for a filter the API lacks) and leaves no file.

    With ``report_dir``, summary.json and (``html``) report.html go there too, as
    ``contactpipe export`` writes them; without it, no report directory: the export's
    report is ``result.summary`` (unlike the other functions, whose rows need a report)."""
    from contactpipe.load.base import ExportFilters

    seen = None if on_plan is None else lambda lines: on_plan(_plan({"plan": lines}))
    summary = run.export_contacts(
        _target(target, credentials, base_url, load),
        Path(output),
        filters or ExportFilters(),
        with_groups=with_groups,
        excel=excel,
        progress=progress,
        on_plan=seen,
        report_dir=None if report_dir is None else Path(report_dir),
        html=html,
    )
    return ExportResult.from_summary(summary)


def migrate(
    source: str,
    dest: str,
    options: RunOptions | None = None,
    *,
    filters: ExportFilters | None = None,
    with_groups: bool = True,
    load: LoadOptions | None = None,
    credentials: Mapping[str, str] | None = None,
    source_base_url: str | None = None,
    dest_base_url: str | None = None,
    report_dir: ReportDir = None,
    progress: Progress | None = None,
    check: bool = False,
) -> Result:
    """Export ``source`` into the report directory, then import that file into ``dest``.
    ``load`` is the import's (its ``retry``, ``transport``, ``concurrency``,
    ``poll_interval_s`` and ``rate_limit_store`` serve the export too); ``credentials``
    holds both APIs' variables."""
    from contactpipe.load.base import LoadOptions

    load = load or LoadOptions()
    reading = LoadOptions(
        retry=load.retry,
        transport=load.transport,
        concurrency=load.concurrency,
        poll_interval_s=load.poll_interval_s,
        rate_limit_store=load.rate_limit_store,
    )
    found = run.migrate(
        _target(source, credentials, source_base_url, reading),
        _target(dest, credentials, dest_base_url, load),
        options or RunOptions(),
        _report_dir(report_dir, "migrate"),
        filters=filters,
        with_groups=with_groups,
        progress=progress,
    )
    return _done(found, check)
