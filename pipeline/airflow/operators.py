"""Operators over the public API (:mod:`contactpipe.api`): validate, import, export, delete.

Each one runs one contactpipe command and returns (pushes as its XCom) a small,
JSON-serialisable summary: counts, rows per code, exit code, report directory, load figures
(:func:`xcom_summary`).  The outcome becomes the task's state the way a scheduler needs it:

===================================================  ===========================================
outcome (CLI exit code)                              task
===================================================  ===========================================
bad input or options (2), too many rows rejected     ``AirflowFailException``: failed, no retry
(3), credentials or permission refused (4)
network failures after every retry, a quota used     ``AirflowException``: retried (the re-run
up, rows that did not reach the API (5), SIGTERM     is idempotent: the sync state skips what
                                                     the API confirmed)
===================================================  ===========================================

The summary is also pushed under the XCom key ``summary`` before a failure is raised, so a
downstream task with ``trigger_rule="all_done"`` can tell why (e.g. to archive the file to
``failed/``).  Messages come from contactpipe's errors: they name files and variables, never a
credential.

The import emits an asset event on ``contactpipe://<target>/<account key>`` (see
:func:`account_asset`) through the asset alias :func:`account_alias` declared in its outlets,
with the counts in the event's ``extra``: a DAG scheduled on the alias (or on the asset) runs
after each import into that account.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import Asset, AssetAlias, BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from contactpipe import api
from contactpipe.airflow.hooks import ContactpipeHook, hook_for, rate_limit_store
from contactpipe.api import Account, Deferral, ExportResult, Result
from contactpipe.errors import (
    Deferred,
    InputError,
    PipelineError,
    TerminalRemoteError,
    ThresholdError,
)
from contactpipe.load.base import ExportFilters, LoadOptions
from contactpipe.load.client import QuotaExceeded, RetryPolicy
from contactpipe.run import RunOptions

SUMMARY_KEY = "summary"
LOAD_KEYS = (
    "target",
    "dry_run",
    "loaded",
    "failed",
    "created",
    "updated",
    "unchanged",
    "not_found",
    "requests",
    "retries",
    "rate_limited",
    "rate_limit_store",
    "aborted",
    "skipped",
)


def account_asset(found: Account) -> Asset:
    """The asset an import into ``found`` emits an event on."""
    return Asset(
        name=f"contactpipe-{found.target}-{found.key[:16]}",
        uri=f"contactpipe://{found.target}/{found.key}",
        group="contactpipe",
    )


def account_alias(conn_id: str) -> AssetAlias:
    """The alias an import through connection ``conn_id`` declares in its outlets; its events
    land on the :func:`account_asset` of the account the connection writes to."""
    return AssetAlias(name=f"contactpipe-{conn_id}", group="contactpipe")


def _with_alias(outlets: Any, conn_id: Any) -> list[Any]:
    found = list(outlets or [])
    if isinstance(conn_id, str) and account_alias(conn_id) not in found:
        found.append(account_alias(conn_id))
    return found


def is_final(error: BaseException) -> bool:
    """True when running the task again cannot help (exit codes 2, 3 and 4 but a quota)."""
    if isinstance(error, QuotaExceeded):
        return False
    return isinstance(error, (InputError, ThresholdError, TerminalRemoteError))


def airflow_error(error: PipelineError) -> AirflowException:
    """``AirflowFailException`` (no retry) or a retryable ``AirflowException`` for ``error``,
    with contactpipe's message and exit code."""
    message = f"{error} (contactpipe exit code {error.exit_code})"
    if is_final(error):
        return AirflowFailException(message)
    return AirflowException(message)


def xcom_summary(result: Result) -> dict[str, Any]:
    """The small, JSON-ready summary of a run: what the operators return."""
    doc = result.to_dict()
    error = result.error()
    out: dict[str, Any] = {
        "command": result.command,
        "ok": error is None,
        "exit_code": 0 if error is None else error.exit_code,
        "error": None if error is None else error.message,
        "rows_read": result.rows_read,
        "empty_rows": result.empty_rows,
        "valid": result.valid,
        "rejected": result.rejected,
        "duplicates": result.duplicates,
        "warnings": result.warnings,
        "error_rate": result.error_rate,
        "by_code": dict(result.by_code),
        "report_dir": str(result.reports.directory),
    }
    section = next((k for k in ("load", "delete", "groups") if k in doc), None)
    if section is not None:
        figures = doc[section]
        load = {k: figures.get(k) for k in LOAD_KEYS if k in figures}
        state = figures.get("state")
        if isinstance(state, Mapping):
            load["state"] = {
                "mode": state.get("mode"),
                "account": state.get("account"),
                "decided": state.get("decided"),
                "confirmed_this_run": state.get("confirmed_this_run"),
            }
        if figures.get("deferred"):
            load["deferred"] = figures["deferred"]
        out[section] = load
    return out


def export_summary(result: ExportResult) -> dict[str, Any]:
    """The small summary of an export (the operator's return value)."""
    return {
        "command": "export",
        "ok": True,
        "exit_code": 0,
        "target": result.target,
        "output": str(result.output),
        "rows": result.rows,
        "columns": list(result.columns),
        "total_reported": result.total_reported,
        "requests": result.requests,
        "retries": result.retries,
        "rate_limited": result.rate_limited,
        "seconds": round(result.seconds, 3),
        "report_dir": None if result.summary_json is None else str(result.summary_json.parent),
    }


def _paths(value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


class _Contactpipe(BaseOperator):
    """What the operators share: run options, the report directory, the outcome mapping."""

    template_fields: Sequence[str] = ("inputs", "report_dir", "options")
    template_fields_renderers: ClassVar[dict[str, str]] = {"options": "json"}
    ui_color = "#d8f3dc"

    def __init__(
        self,
        *,
        inputs: str | Sequence[str] = (),
        report_dir: str | None = None,
        options: Mapping[str, Any] | None = None,
        max_error_rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.inputs = inputs
        self.report_dir = report_dir
        self.options = dict(options or {})
        self.max_error_rate = max_error_rate

    def run_options(self) -> RunOptions:
        """:class:`~contactpipe.run.RunOptions` from ``options`` (its field names) and
        ``max_error_rate``; an unknown name fails the task without retry."""
        values = dict(self.options)
        if self.max_error_rate is not None:
            values["max_error_rate"] = self.max_error_rate
        if "extra_groups" in values:
            values["extra_groups"] = tuple(values["extra_groups"])
        if values.get("mapping_file") is not None:
            values["mapping_file"] = Path(values["mapping_file"])
        try:
            return RunOptions(**values)
        except TypeError as exc:
            raise AirflowFailException(f"{self.task_id}: options: {exc}") from None
        except PipelineError as exc:
            raise airflow_error(exc) from None

    def input_paths(self) -> list[str]:
        paths = _paths(self.inputs)
        if not paths:
            raise AirflowFailException(f"{self.task_id}: no input file given")
        return paths

    def finish(self, context: Any, result: Result) -> dict[str, Any]:
        """Push the summary, raise what the outcome calls for, else return the summary."""
        summary = xcom_summary(result)
        error = result.error()
        if error is not None:
            context["ti"].xcom_push(key=SUMMARY_KEY, value=summary)
            raise airflow_error(error)
        return summary

    def guarded(self, context: Any, call: Any) -> Any:
        """``call()``, with contactpipe's exceptions (raised before or instead of a result)
        turned into Airflow's; the failure's summary is pushed when there is none."""
        try:
            return call()
        except PipelineError as exc:
            context["ti"].xcom_push(
                key=SUMMARY_KEY,
                value={
                    "command": self.command,
                    "ok": False,
                    "exit_code": exc.exit_code,
                    "error": exc.message,
                    "report_dir": self.report_dir,
                },
            )
            raise airflow_error(exc) from None

    command: ClassVar[str] = ""


class _Remote(_Contactpipe):
    """An operator that talks to a target through a connection.

    :param conn_id: a connection of type ``msgflash``, ``waapi`` or ``vobiz`` (any target of
        the registry); its type picks the target unless ``target`` is given.
    :param base_url: overrides the connection's host.
    :param batch_size: :class:`~contactpipe.load.base.LoadOptions` ``batch_size``.
    :param concurrency: requests in flight at once.
    :param rate_limit_store: where the API's rate limit is shared (``redis://...``,
        ``local``, ``none``; default ``local``: the runs of this machine).
    :param rate_limit_conn_id: a connection of type ``redis`` holding the shared store
        (instead of a URL with its password in ``rate_limit_store``): workers on several
        machines then share each account's limit.
    :param retry: :class:`~contactpipe.load.client.RetryPolicy` fields
        (``{"attempts": 3}``): the retries inside one try of the task.
    :param dry_run: plan and write the request bodies; send nothing.
    """

    template_fields: Sequence[str] = (*_Contactpipe.template_fields, "conn_id", "target")

    def __init__(
        self,
        *,
        conn_id: str,
        target: str | None = None,
        base_url: str | None = None,
        batch_size: int | None = None,
        concurrency: int | None = None,
        rate_limit_store: str | None = None,
        rate_limit_conn_id: str | None = None,
        retry: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.retry = dict(retry or {})
        self.conn_id = conn_id
        self.target = target
        self.base_url = base_url
        self.batch_size = batch_size
        self.concurrency = concurrency
        if rate_limit_store is not None and rate_limit_conn_id is not None:
            raise ValueError("give rate_limit_store or rate_limit_conn_id, not both")
        self.rate_limit_store = rate_limit_store
        self.rate_limit_conn_id = rate_limit_conn_id
        self.dry_run = dry_run

    def hook(self) -> ContactpipeHook:
        """The target's hook: ``target`` when given, else the connection's type."""
        name = self.target or BaseHook.get_connection(self.conn_id).conn_type
        if not name:
            raise AirflowFailException(f"connection {self.conn_id!r} has no type")
        try:
            return hook_for(name)(conn_id=self.conn_id)
        except PipelineError as exc:  # an unknown target
            raise airflow_error(exc) from None

    def load_options(self) -> LoadOptions:
        """:class:`~contactpipe.load.base.LoadOptions` from the operator's parameters
        (``rate_limit_store``: the shared limiter, where this contactpipe has it)."""
        values: dict[str, Any] = {"dry_run": self.dry_run}
        if self.batch_size is not None:
            values["batch_size"] = self.batch_size
        if self.concurrency is not None:
            values["concurrency"] = self.concurrency
        if self.rate_limit_store is not None:
            values["rate_limit_store"] = self.rate_limit_store
        try:
            if self.rate_limit_conn_id is not None:
                values["rate_limit_store"] = rate_limit_store(self.rate_limit_conn_id)
            if self.retry:
                values["retry"] = RetryPolicy(**self.retry)
            return LoadOptions(**values)
        except TypeError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        except PipelineError as exc:
            raise airflow_error(exc) from None


class ContactpipeValidateOperator(_Contactpipe):
    """``contactpipe validate``: read, normalise, validate and dedupe ``inputs``; write the
    report to ``report_dir`` (templated: ``/data/reports/{{ ds }}``).  Nothing is sent.

    :param inputs: a file, glob or folder, or several (templated).
    :param report_dir: where the report goes (templated; default: a new temporary folder).
    :param options: :class:`~contactpipe.run.RunOptions` fields (``{"region": "FR"}``).
    :param max_error_rate: fail (no retry) when more rows than this share are rejected.
    """

    command = "validate"

    def execute(self, context: Any) -> dict[str, Any]:
        result = self.guarded(
            context,
            lambda: api.validate(
                self.input_paths(), self.run_options(), report_dir=self.report_dir
            ),
        )
        return self.finish(context, result)


class ContactpipeImportOperator(_Remote):
    """``contactpipe import``: validate ``inputs`` and load the valid contacts through the
    connection ``conn_id`` (its type is the target).

    :param state: the sync state (a path, or what this contactpipe's ``--state`` accepts):
        only changed rows are sent, a retry resumes; required by ``defer_after``.
    :param defer_after: seconds: when the load would have to wait longer than this (a rate
        limit window, a job still running), it checkpoints, the task defers until the API
        says it can go on, and resumes on a free worker slot.
    :param yield_after: seconds: once the load has been sending this long, it checkpoints and
        defers with no wait, so the task goes back to the queue and resumes on the next free
        slot (a 2-hour MsgFlash load then holds a slot in slices, not for 2 hours).
    :param rate_limit_store: share the API's rate limit with other runs (``redis://...``).
    :param full_refresh: ignore the state's answers and rebuild it.
    :param dry_run: write the request bodies and the plan instead of sending.
    """

    command = "import"
    template_fields: Sequence[str] = (*_Remote.template_fields, "state")

    def __init__(
        self,
        *,
        state: str | None = None,
        defer_after: float | None = None,
        yield_after: float | None = None,
        full_refresh: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs["outlets"] = _with_alias(kwargs.get("outlets"), kwargs.get("conn_id"))
        super().__init__(**kwargs)
        self.state = state
        self.defer_after = defer_after
        self.yield_after = yield_after
        self.full_refresh = full_refresh

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``.partial(...).expand(...)``: the alias goes into the mapped task's outlets too
        (Airflow reads a mapped task's outlets from its partial arguments)."""
        kwargs["outlets"] = _with_alias(kwargs.get("outlets"), kwargs.get("conn_id"))
        return super().partial(**kwargs)

    def execute(self, context: Any) -> dict[str, Any] | None:
        return self._run(context, resume=False)

    def execute_resume(self, context: Any, event: Any = None) -> dict[str, Any] | None:
        """Called on a worker when the deferral's moment came: the same import, resumed."""
        return self._run(context, resume=True)

    def _run(self, context: Any, *, resume: bool) -> dict[str, Any] | None:
        for name in ("defer_after", "yield_after"):
            if getattr(self, name) is not None and not self.state:
                raise AirflowFailException(
                    f"{self.task_id}: {name} needs a sync state (the state parameter) to "
                    "checkpoint the load and resume it"
                )
        hook = self.hook()
        result = self.guarded(
            context,
            lambda: api.import_contacts(
                self.input_paths(),
                hook.target,
                self.run_options(),
                load=self.load_options(),
                credentials=hook.get_conn(),
                base_url=self.base_url,
                report_dir=self.report_dir,
                state=self.state or None,
                full_refresh=self.full_refresh and not resume,
                resume=resume,
                defer_after=None if self.defer_after is None else float(self.defer_after),
                yield_after=None if self.yield_after is None else float(self.yield_after),
            ),
        )
        if result.deferred is not None and isinstance(result.error(), Deferred):
            self._defer(context, result, result.deferred)
        summary = self.finish(context, result)
        if not self.dry_run:
            self._emit(context, hook, summary)
        return summary

    def _defer(self, context: Any, result: Result, deferred: Deferral) -> None:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        moment: dt.datetime = deferred.resume_at
        summary = xcom_summary(result)
        context["ti"].xcom_push(key=SUMMARY_KEY, value=summary)
        self.log.info(
            "contactpipe: the load waits until %s (%s): deferring; sent so far: %s",
            moment.isoformat(),
            deferred.reason,
            summary.get("load"),
        )
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_resume")

    def _emit(self, context: Any, hook: ContactpipeHook, summary: Mapping[str, Any]) -> None:
        """The asset event of the account, with the counts in its extra."""
        found = hook.account()
        load = summary.get("load") or {}
        extra = {
            "account": found.label,
            "conn_id": self.conn_id,
            "rows_read": summary["rows_read"],
            "valid": summary["valid"],
            "rejected": summary["rejected"],
            "duplicates": summary["duplicates"],
            **{k: load.get(k) for k in ("loaded", "failed", "created", "updated", "unchanged")},
            "report_dir": summary["report_dir"],
        }
        context["outlet_events"][account_alias(self.conn_id)].add(account_asset(found), extra=extra)


class ContactpipeDeleteOperator(_Remote):
    """``contactpipe delete``: delete from the connection's target the contacts whose phones
    (or ``id`` column) ``inputs`` list; more than ``max_delete`` found fails before any
    delete (no retry)."""

    command = "delete"

    def __init__(self, *, max_delete: int | None = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_delete = max_delete

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.hook()
        result = self.guarded(
            context,
            lambda: api.delete_contacts(
                self.input_paths(),
                hook.target,
                self.run_options(),
                max_delete=self.max_delete,
                load=self.load_options(),
                credentials=hook.get_conn(),
                base_url=self.base_url,
                report_dir=self.report_dir,
            ),
        )
        return self.finish(context, result)


class ContactpipeExportOperator(_Remote):
    """``contactpipe export``: write every contact of the connection's target to
    ``output_file`` (templated; its extension picks the format: .parquet .csv .xlsx .json .ndjson),
    atomically.  ``filters``: :class:`~contactpipe.load.base.ExportFilters` fields."""

    command = "export"
    template_fields: Sequence[str] = ("output_file", "report_dir", "conn_id", "target", "filters")

    def __init__(
        self,
        *,
        output_file: str,
        filters: Mapping[str, Any] | None = None,
        with_groups: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_file = output_file
        self.filters = dict(filters or {})
        self.with_groups = with_groups

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.hook()
        try:
            filters = ExportFilters(**self.filters)
        except TypeError as exc:
            raise AirflowFailException(f"{self.task_id}: filters: {exc}") from None
        Path(self.output_file).parent.mkdir(parents=True, exist_ok=True)
        result: ExportResult = self.guarded(
            context,
            lambda: api.export_contacts(
                hook.target,
                self.output_file,
                filters,
                with_groups=self.with_groups,
                load=self.load_options(),
                credentials=hook.get_conn(),
                base_url=self.base_url,
                report_dir=self.report_dir,
            ),
        )
        return export_summary(result)
