"""Command line: click commands only.  Each parses options, calls the Python API
(:mod:`contactpipe.api`), :mod:`contactpipe.run` or a stage, prints, and maps
:class:`~contactpipe.errors.PipelineError` to a message and an exit code (a finished run's code
is its outcome's: :meth:`contactpipe.api.Result.error`)."""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import functools
import gc
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import click

from contactpipe import __version__
from contactpipe.errors import PipelineError, UsageError
from contactpipe.load import registry

EXIT_CODES = """\b
Exit codes (shared by every command):
  0  the run completed
  2  unusable input or usage (file unreadable or above a size limit, no
     phone column, bad option, malformed credential, unwritable report dir)
  3  the rejected share (rows rejected here or refused by the API) is above
     --max-error-rate
  4  the remote side aborted the run (credentials refused, quota used up,
     target unreachable after retries); the report lists what was not sent
  5  incomplete load: rows did not reach the API for a system reason
     (LOAD_FAILED, NOT_SENT, GROUP_NOT_ADDED, OUTCOME_UNKNOWN); re-run the same command to finish
  75  deferred (import --defer-after): not done yet; the load stopped before a
     long wait, re-run with --resume after the time it prints
  130  interrupted (Ctrl-C); during a load the report lists what was not sent
  143  terminated (SIGTERM, e.g. by timeout or a scheduler): same as Ctrl-C"""


def _redact(text: str) -> str:
    """Mask the value of every credential variable (``*_KEY``, ``*_TOKEN``) in ``text``: a
    last line of defence, should a message ever quote one."""
    from contactpipe.report.safe import terminal_safe

    for var, value in os.environ.items():
        if _is_secret(var) and len(value) >= 8:
            text = text.replace(value, f"<{var}>")
    return terminal_safe(text)


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """PipelineError -> one clear line and its exit code; anything else -> exit 1.  SIGTERM is
    handled like Ctrl-C (:mod:`contactpipe.signals`); outside a load it ends the run with 143."""
    from contactpipe.signals import interrupt_reason, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt as stop:  # outside a load (a load settles and reports instead)
        reason, code = interrupt_reason(stop)
        click.echo(f"Error: {reason}; the run stopped", err=True)
        sys.exit(code)
    except PipelineError as exc:
        click.echo(_redact(f"Error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except (click.ClickException, click.exceptions.Exit, SystemExit):
        raise
    except Exception as exc:
        if debug:
            raise
        click.echo(_redact(f"Unexpected error ({type(exc).__name__}): {exc}"), err=True)
        click.echo("Run again with --debug to see the traceback.", err=True)
        sys.exit(1)


def _progress(quiet: bool, log_format: str = "text") -> Any:
    from contactpipe.report.progress import (
        JsonLogFormatter,
        LogProgress,
        NullProgress,
        TerminalProgress,
    )

    if quiet:
        return NullProgress()
    if sys.stderr.isatty() and log_format == "text":
        from rich.console import Console

        return TerminalProgress(Console(stderr=True))
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter(getattr(sys.stderr, "encoding", None)))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("contactpipe")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return LogProgress()


report_dir_option = click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the report goes (default: contactpipe-reports/<command>-<time>).",
)

no_html_option = click.option(
    "--no-html",
    is_flag=True,
    help="Do not write report.html (the page that shows the run) into the report directory.",
)


def transform_options(
    f: Callable[..., Any], *, files: bool = True, report_dir: bool = True
) -> Callable[..., Any]:
    """Options shared by every command that reads files (validate, import, delete...);
    ``watch`` has no FILES argument and no --report-dir (each file's report is beside it)."""
    decorators = [
        click.argument("files", nargs=-1, required=True),
        click.option(
            "--region",
            envvar="CONTACTPIPE_REGION",
            help="Default region (ISO 3166 alpha-2, e.g. FR) for numbers written without "
            "a country code. Env: CONTACTPIPE_REGION.",
        ),
        click.option(
            "--country-column",
            metavar="HEADER",
            help="Column holding each row's country (overrides --region for that row). "
            "Columns named Country, Pays, País, Land... are found without it.",
        ),
        click.option("--sheet", help="Sheet to read (default: first non-empty visible; '*' all)."),
        click.option(
            "--header-row",
            type=click.IntRange(min=1),
            help="Row number of the header (default: found automatically).",
        ),
        click.option(
            "--no-header",
            is_flag=True,
            help="The files have no header row: the first row is data (found automatically "
            "when the first row holds phone numbers).",
        ),
        click.option(
            "--mapping",
            "mapping_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help='JSON/TOML file: {"Source header": "phone" | "custom.key" | null}.',
        ),
        click.option(
            "--keep-extra-columns",
            is_flag=True,
            help="Keep unmapped columns as custom fields.",
        ),
        click.option(
            "--on-duplicate",
            type=click.Choice(["first", "last", "merge"]),
            default="first",
            show_default=True,
            help="Which row wins when several rows share a phone (merge: union of tags and "
            "groups, first non-empty value for the rest).",
        ),
        click.option("--mobile-only", is_flag=True, help="Reject numbers that cannot be mobiles."),
        click.option(
            "--strict",
            is_flag=True,
            help="Reject rows whose e-mail, notes, language or yes/no fields are bad (default: "
            "keep the contact, repair or empty the field, and warn).",
        ),
        click.option(
            "--legacy-numbers",
            type=click.Choice(["migrate", "reject"]),
            default="migrate",
            show_default=True,
            help="Numbers of a superseded national plan (Benin 2024, Côte d'Ivoire 2021, Brazil's "
            "ninth mobile digit 2012-2016, Mexico 2019).",
        ),
        click.option(
            "--default-name",
            help="Name for rows without one ('{phone}' is replaced by the number); "
            "without it the number itself is the name, with a MISSING_NAME warning "
            "(--strict rejects such rows).",
        ),
        click.option(
            "--max-error-rate",
            type=click.FloatRange(0, 1),
            help="Exit 3 when rejected rows (here, or refused by the API on a load) / non-empty "
            "rows is above this (e.g. 0.05).",
        ),
        report_dir_option,
        click.option("--xlsx-errors", is_flag=True, help="Also write errors.xlsx."),
        no_html_option,
        click.option(
            "--max-file-size",
            type=SIZE,
            metavar="SIZE",
            help="Refuse an input file (or pipe) larger than this (default 2G).",
        ),
        click.option(
            "--max-uncompressed",
            type=SIZE,
            metavar="SIZE",
            help="Refuse a workbook (XLSX, ODS) that decompresses to more (default 1G).",
        ),
        click.option(
            "--max-cells",
            type=click.IntRange(min=1),
            help="Refuse a sheet's used range, a workbook's shared strings or a Parquet "
            "file's rows x columns above this many cells; a text file may hold 4x as many "
            "fields (default 20000000).",
        ),
        click.option(
            "--max-columns",
            type=click.IntRange(min=1),
            help="Refuse an input with more columns (default 16384, Excel's own cap).",
        ),
    ]
    if not files:
        decorators = decorators[1:]
    if not report_dir:
        decorators = [d for d in decorators if d is not report_dir_option]
    for decorator in reversed(decorators):
        f = decorator(f)
    return output_options(f)


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--json, --quiet, --log-format and --debug: how a command reports."""
    decorators = [
        click.option("--json", "json_out", is_flag=True, help="Print the summary as JSON."),
        click.option("-q", "--quiet", is_flag=True, help="No progress display."),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="Progress as text (a bar on a terminal, log lines otherwise) or as one JSON "
            "object per line, for schedulers.",
        ),
        click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


poll_interval_option = click.option(
    "--poll-interval",
    type=click.FloatRange(0.05, 60),
    default=2.0,
    show_default=True,
    help=f"Seconds between polls of an asynchronous job ({registry.titles('async_jobs')}).",
)


class _Size(click.ParamType):
    """A byte count: ``500M``, ``2G``, ``1.5GiB``, ``1048576``."""

    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from contactpipe.extract.limits import parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SIZE = _Size()


def _limits(opts: dict[str, Any]) -> Any:
    from contactpipe.extract import DEFAULT_LIMITS

    given = {
        "max_bytes": opts.get("max_file_size"),
        "max_uncompressed": opts.get("max_uncompressed"),
        "max_cells": opts.get("max_cells"),
        "max_columns": opts.get("max_columns"),
    }
    return dataclasses.replace(DEFAULT_LIMITS, **{k: v for k, v in given.items() if v})


def _run_options(opts: dict[str, Any]) -> Any:
    from contactpipe.run import RunOptions

    return RunOptions(
        region=opts["region"],
        sheet=opts["sheet"],
        header_row=opts["header_row"],
        mapping_file=opts["mapping_file"],
        country_column=opts["country_column"],
        keep_extra_columns=opts["keep_extra_columns"],
        on_duplicate=opts["on_duplicate"],
        mobile_only=opts["mobile_only"],
        legacy_numbers=opts["legacy_numbers"],
        default_name=opts["default_name"],
        max_error_rate=opts["max_error_rate"],
        errors_xlsx=opts["xlsx_errors"],
        strict=opts["strict"],
        no_header=opts["no_header"],
        html=not opts["no_html"],
        limits=_limits(opts),
    )


def _is_secret(var: str) -> bool:
    return var.endswith(("_KEY", "_TOKEN"))


def _default_report_dir(command: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("contactpipe-reports") / f"{command}-{stamp}"


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(__version__, prog_name="contactpipe")
def main() -> None:
    """contactpipe: move contact lists between spreadsheets and WhatsApp contact APIs."""
    _no_final_collection()
    _tolerant_output()


def _tolerant_output() -> None:
    """Print what the output's encoding cannot hold (a file name in UTF-8 under
    ``PYTHONIOENCODING=ascii``, a Windows code page) as ``\\xe9`` escapes: the summary of a
    run that did its work must not fail it (exit 1) at the last line."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with suppress(Exception):  # a stream that cannot change: as it is
                reconfigure(errors="backslashreplace")


def _json(doc: Any, *, indent: int | None = 2, err: bool = False) -> str:
    """``doc`` as JSON for standard output (or error), escaped where its encoding needs."""
    from contactpipe.report.progress import json_for

    return json_for(doc, getattr(sys.stderr if err else sys.stdout, "encoding", None), indent)


@functools.cache
def _no_final_collection() -> None:
    """Spare the command's process the interpreter's last garbage collection.

    At exit, Python collects every module it imported (polars, phonenumbers' metadata, rich,
    jinja2...) object by object, only to hand back memory the OS reclaims anyway: 50-110 ms of
    a 0.5 s one-row validate (issue 16).  ``gc.freeze()`` in an exit handler moves them to the
    permanent generation, which that collection skips.  Nothing depends on it: every file is
    closed by the code that writes it, the interpreter still flushes stdout/stderr, and the
    other exit handlers (logging, worker pools) still run."""
    atexit.register(gc.freeze)


@contextmanager
def _importing(*, html: bool = True) -> Iterator[None]:
    """Import the pipeline (polars, phonenumbers, contactpipe.run...) with the collector
    paused, then freeze what was imported.  ``html``: jinja2 too (the run writes report.html).

    Then the regular expressions those imports compiled that the start-up cache lacks are
    stored (:func:`contactpipe.recache.remember`; the ``contactpipe`` command primed ``re``
    with the others before importing anything): patterns of modules only, never one built
    from a file's content, which the run has not read yet.

    The imports allocate ~50,000 objects that live as long as the process: the ~100 young
    collections they trigger found nothing to free and cost 20-35 ms of a one-row validate,
    and every later full collection (one in a 100k-row run) walked them again.  Frozen, they
    are out of every collection.  The few objects the imports left unreachable (~400) stay.
    Once the pipeline is imported (a second command in the same process: tests), a no-op."""
    if "contactpipe.run" in sys.modules:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if html:
            import jinja2  # noqa: F401  (imported here, its patterns are remembered)
    finally:
        if enabled:
            gc.enable()
    gc.freeze()
    from contactpipe import recache

    recache.remember()


@main.command(epilog=EXIT_CODES)
@transform_options
def validate(files: tuple[str, ...], **opts: Any) -> None:
    """Read FILES (CSV, TSV, XLSX, XLS, ODS, Parquet, JSON; globs and folders too), map their
    columns, normalise phones to E.164, validate and dedupe, and write a per-row report.

    The report directory holds errors.csv (every rejected or duplicate row with its source
    file, sheet and row), warnings.csv, contacts.csv, contacts.parquet, summary.json and
    report.html (the page of the run: open it in a browser).
    """
    with _importing(html=not opts["no_html"]):
        from contactpipe import api

    with _errors(opts["debug"]):
        options = _run_options(opts)
        report_dir = opts["report_dir"] or _default_report_dir("validate")
        progress = _progress(opts["quiet"], opts["log_format"])
        result = api.validate(list(files), options, report_dir=report_dir, progress=progress)
        _finish(result, opts)


def _finish(result: Any, opts: dict[str, Any], options: Any = None) -> None:
    """Print the summary of ``result`` (a :class:`contactpipe.api.Result`, or a
    :class:`contactpipe.run.RunResult` made one), then exit with the code of its outcome, decided
    by :meth:`contactpipe.api.Result.error` as for ``raise_for_outcome()``: 4/130/143 when the
    remote side or the user stopped the run, 3 when too many rows were rejected (here or by the
    API), 5 when rows did not reach the API.  ``options`` is not needed any more (the result
    carries ``max_error_rate``); callers still pass it."""
    from contactpipe.api import Result
    from contactpipe.report.summary import print_summary

    if not isinstance(result, Result):
        result = Result.from_run(result)
    summary = result.to_dict()
    if opts["json_out"]:
        click.echo(_json(summary))
    else:
        from contactpipe.report.summary import console_for
        from contactpipe.transform.mapping import headers_seen

        safe = _terminal_safe(summary)
        # rich on a terminal; plain text (without importing rich) in a log or a pipe
        print_summary(safe, console_for(sys.stdout))
        for skip in safe.get("skipped", []):
            where = skip["file"] + (f" [{skip['sheet']}]" if skip["sheet"] else "")
            headers = headers_seen(skip["headers"])
            click.echo(f"skipped {where}: {skip['reason']}; headers seen: {headers}", err=True)
        for note in safe.get("notes", []):
            click.echo(f"note: {note}", err=True)
    outcome = result.error()
    if outcome is None:
        return
    if outcome is result.aborted and result.deferred is not None:
        when = result.deferred.resume_at.isoformat()
        click.echo(_redact(f"Deferred: {result.deferred.reason}"), err=True)
        click.echo(
            f"Not done yet: re-run the same import with --resume after {when}; the rows not "
            f"sent yet are DEFERRED in {result.reports.errors_csv}.",
            err=True,
        )
    elif outcome is result.aborted:
        click.echo(_redact(f"Error: run aborted: {outcome}"), err=True)
        click.echo(
            f"The report lists every row not sent: {result.reports.errors_csv}. "
            "Re-running the same import is safe.",
            err=True,
        )
    else:
        click.echo(_redact(f"Error: {outcome}"), err=True)
    sys.exit(outcome.exit_code)


def _terminal_safe(doc: Any) -> Any:
    """``doc`` with control characters in every string escaped: file names, headers and sheet
    names come from the input and must not drive the terminal."""
    from contactpipe.report.safe import terminal_safe

    if isinstance(doc, str):
        return terminal_safe(doc)
    if isinstance(doc, dict):
        return {_terminal_safe(k): _terminal_safe(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_terminal_safe(v) for v in doc]
    return doc


TARGETS = registry.names()


def _base_url_help() -> str:
    infos = registry.infos()
    variables = ", ".join(f"${i.base_url_var}" for i in infos)
    none = [i.title for i in infos if i.default_base_url is None]
    return (
        f"The API's base URL as its doc defines it (default: {variables}, else the public "
        f"host{'; ' + ', '.join(none) + ' has none' if none else ''}). "
        "http:// only for loopback hosts."
    )


def _credentials_help() -> str:
    """The variables each target reads, one line per target (for ``import --help``)."""
    lines = ["\b", "Credentials come from the environment only:"]
    for i in registry.infos():
        names = i.credentials + i.optional + ((i.base_url_var,) if not i.default_base_url else ())
        note = f" ({i.credentials_note})" if i.credentials_note else ""
        lines.append(f"  {i.title:<9} {', '.join(names)}{note}")
    return "\n".join(lines)


def _set_rate_limit_store(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """--rate-limit-store, checked, handed to the run as $CONTACTPIPE_RATE_LIMIT_STORE (which
    every LoadOptions without its own store reads): one option for every command."""
    from contactpipe.load.ratestore import STORE_ENV, check_spec

    if value:
        try:
            check_spec(value)
        except UsageError as exc:
            raise click.BadParameter(f"{exc.message} ({exc.hint})") from None
        os.environ[STORE_ENV] = value


def rate_limit_store_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--rate-limit-store, for the commands that send requests."""
    return click.option(
        "--rate-limit-store",
        metavar="STORE",
        expose_value=False,
        callback=_set_rate_limit_store,
        help="Where each account's rate limit is kept, shared by the runs using it: `local` "
        "(default: the runs on this machine), `redis://[:password@]host[:port][/db]` or "
        "`rediss://...` (every machine's), `none` (this run alone).  Default: "
        "$CONTACTPIPE_RATE_LIMIT_STORE, else local.",
    )(f)


def target_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--target, --base-url and --rate-limit-store, shared by the commands that talk to one
    API."""
    f = rate_limit_store_option(f)
    f = click.option(
        "--base-url",
        metavar="URL",
        help=_base_url_help(),
    )(f)
    return click.option(
        "--target", required=True, type=click.Choice(TARGETS), help="The API to use."
    )(f)


def group_load_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--group`` and ``--batch-size``, as ``import`` and ``watch`` take them."""
    f = click.option(
        "--batch-size",
        type=click.IntRange(1, 50_000),
        default=10_000,
        show_default=True,
        help="Items per bulk request (never above an endpoint's documented maximum).",
    )(f)
    return click.option(
        "--group",
        "groups",
        multiple=True,
        metavar="NAME",
        help="Add every contact to this group (repeatable; created when missing; "
        f"{registry.titles('groups')}).",
    )(f)


@main.command("import", epilog=EXIT_CODES)
@target_options
@group_load_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Send nothing: write each request body to <report-dir>/dry-run and print the plan "
    "(requests per endpoint, least time under the rate limits).",
)
@click.option(
    "--state",
    "state",
    metavar="PATH|URL",
    help="The sync state: a SQLite file, or a postgresql:// URL shared by runs on several "
    "machines (default: $CONTACTPIPE_STATE, else the per-user file, see README 'Sync "
    "state'): rows the API already confirmed with the same content are not sent again.",
)
@click.option("--no-state", is_flag=True, help="Neither read nor write the sync state.")
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Ignore the sync state's answers: load every row as if for the first time (listing "
    "the account where the API needs it) and rebuild the state.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the last interrupted import into this account (killed, stopped, out of "
    "quota): the same files (checked by content), only what is left is sent, and the report "
    "covers the whole run.",
)
@click.option(
    "--mirror",
    type=click.Choice(["state", "all"]),
    is_flag=False,
    flag_value="state",
    default=None,
    help="After a complete import, delete the contacts that are not in FILES: those this tool "
    "loaded into the account earlier (--mirror, from the sync state) or every one "
    "(--mirror=all, from a full listing).  --max-delete and --yes as for `delete`.",
)
@click.option(
    "--max-delete",
    type=click.IntRange(0),
    default=100,
    show_default=True,
    help="With --mirror and without --yes, refuse to delete more contacts than this.",
)
@click.option("--yes", is_flag=True, help="With --mirror: delete even more than --max-delete.")
@click.option(
    "--defer-after",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop the load cleanly before any wait longer than this (a rate-limit window, a "
    "server Retry-After, a bulk job still running): the sync state is checkpointed, the rows "
    "not sent yet are DEFERRED, summary.json load.deferred says when to resume, exit 75; "
    "--resume continues it.  Needs the sync state.",
)
@click.option(
    "--yield-after",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Once the load has been sending this long, defer it as --defer-after does, to be "
    "resumed at once (exit 75, --resume continues): a scheduler gets the worker back between "
    "slices of a long load.  Needs the sync state.",
)
@poll_interval_option
@transform_options
def import_(
    files: tuple[str, ...],
    target: str,
    base_url: str | None,
    groups: tuple[str, ...],
    batch_size: int,
    dry_run: bool,
    state: str | None,
    no_state: bool,
    full_refresh: bool,
    resume: bool,
    mirror: str | None,
    max_delete: int,
    yes: bool,
    defer_after: float | None,
    yield_after: float | None,
    poll_interval: float,
    **opts: Any,
) -> None:
    """Validate FILES like `validate`, then load the valid contacts into --target through its
    bulk endpoints, within its rate limit, with retries; every row ends loaded or in
    errors.csv with its source row and a reason.  Re-running the same import is safe.
    """
    with _importing(html=not opts["no_html"]):
        from contactpipe.load.base import LoadOptions
        from contactpipe.run import ImportOptions, import_files

    with _errors(opts["debug"]):
        options = dataclasses.replace(_run_options(opts), extra_groups=groups)
        imp = ImportOptions(
            target=target,
            base_url=base_url,
            load=LoadOptions(batch_size=batch_size, dry_run=dry_run, poll_interval_s=poll_interval),
            state=_state_path(state, no_state),
            full_refresh=full_refresh,
            resume=resume,
            mirror=mirror,  # type: ignore[arg-type]
            max_delete=None if yes else max_delete,
            defer_after=defer_after,
            yield_after=yield_after,
        )
        report_dir = opts["report_dir"] or _default_report_dir("import")
        progress = _progress(opts["quiet"], opts["log_format"])
        result = import_files(
            list(files),
            options,
            imp,
            report_dir,
            progress,
            on_plan=None if opts["quiet"] else lambda plan: _print_plan(plan, target),
        )
        _finish(result, opts, options)


import_.help = f"{inspect.cleandoc(import_.help or '')}\n\n{_credentials_help()}"


def _drop_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The import's reading options, less FILES and --report-dir (each report is per file)."""
    return transform_options(f, files=False, report_dir=False)


@main.command(epilog=EXIT_CODES)
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@target_options
@group_load_options
@click.option(
    "--state",
    "state",
    metavar="PATH|URL",
    help="The sync state, as for `import`: a SQLite file or a postgresql:// URL (always on "
    "here: it makes a retried file safe).",
)
@click.option("--once", is_flag=True, help="Import the complete files there now, then exit (cron).")
@click.option(
    "--stable-for",
    type=click.FloatRange(0, 3600),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="A file is complete once its size and modification time stay the same this long.",
)
@click.option(
    "--poll",
    is_flag=True,
    help="Do not use file notifications, only re-scan (network shares: NFS, SMB/CIFS).",
)
@click.option(
    "--scan-interval",
    type=click.FloatRange(0.05, 3600),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between re-scans of the inbox: the safety net for missed notifications; "
    "with --poll, how soon a drop is noticed.",
)
@poll_interval_option
@_drop_options
def watch(
    folder: Path,
    target: str,
    base_url: str | None,
    groups: tuple[str, ...],
    batch_size: int,
    state: str | None,
    once: bool,
    stable_for: float,
    poll: bool,
    scan_interval: float,
    poll_interval: float,
    **opts: Any,
) -> None:
    """Import every complete file dropped into FOLDER/inbox into --target, one at a time:
    inbox/ -> processing/ -> done/ (or failed/), each file in its own <time>-<name>/ folder
    with its report, one log line per file.  Content already imported (same SHA-256) is not
    imported again; files a killed run left in processing/ are retried at start (safe: the
    sync state does not send confirmed rows again).  Without --once it runs until Ctrl-C or
    SIGTERM (which stop the current import like `import`'s, report written).  Credentials
    refused stop it (exit 4): every later file would be refused too.  Exit code: the highest
    of the files' (README, 'contactpipe watch')."""
    with _importing(html=not opts.get("no_html", False)):
        from contactpipe import api
    from contactpipe.drops import DropFolder
    from contactpipe.load.base import LoadOptions
    from contactpipe.report.progress import NullProgress
    from contactpipe.watcher import FileOutcome, Watcher, WatchSettings

    with _errors(opts["debug"]):
        options = dataclasses.replace(_run_options(opts), extra_groups=groups)
        registry.get(target).config_from_env(os.environ, base_url)  # refused before any move
        state_path = _state_path(state, False)
        load = LoadOptions(batch_size=batch_size, poll_interval_s=poll_interval)
        as_json = opts["json_out"] or opts["log_format"] == "json"
        try:
            drops = DropFolder(folder)
        except OSError as exc:
            raise UsageError(f"{folder}: cannot be used as a drop folder ({exc})") from None

        def importer(path: Path, report: Path) -> api.Result:
            return api.import_contacts(
                path,
                target,
                options,
                load=load,
                base_url=base_url,
                report_dir=report,
                progress=NullProgress(),
                state=state_path,
            )

        def log(outcome: FileOutcome) -> None:
            if as_json:
                line = _json(outcome.to_dict(drops.root), indent=None)
            else:
                line = outcome.line(drops.root)
            click.echo(_redact(line))

        def note(text: str) -> None:
            if opts["quiet"]:
                return
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            if as_json:
                doc = {"time": stamp, "event": "note", "message": text}
                click.echo(_redact(_json(doc, indent=None, err=True)), err=True)
            else:
                click.echo(_redact(f"{stamp} note      {text}"), err=True)

        settings = WatchSettings(
            stable_for=stable_for, scan_interval=scan_interval, poll=poll, once=once
        )
        if once:
            how = "one pass"
        else:
            how = ("" if poll else "file notifications, ") + f"re-scans every {scan_interval:g} s"
        note(
            f"watching {drops.inbox} ({how}; a file is complete after {stable_for:g} s "
            f"unchanged); importing into {target}" + ("" if once else "; Ctrl-C or SIGTERM stops")
        )
        code = Watcher(drops, importer, settings, log=log, note=note).run()
        if code:
            sys.exit(code)


def _state_path(option: str | None, off: bool) -> Path | str | None:
    from contactpipe.state import resolve_state_path

    if off and option:
        raise UsageError("--state and --no-state contradict each other")
    return None if off else resolve_state_path(option)


def _imp(target: str, base_url: str | None, **load: Any) -> Any:
    from contactpipe.load.base import LoadOptions
    from contactpipe.run import ImportOptions

    return ImportOptions(
        target=target, base_url=base_url, load=LoadOptions(**load), state=_state_path(None, False)
    )


def _print_plan(plan: list[dict[str, Any]], target: str) -> None:
    from contactpipe.report.summary import plan_lines

    for line in plan_lines({"target": target, "plan": plan}):
        click.echo(f"plan: {line}", err=True)


@main.command(epilog=EXIT_CODES)
@target_options
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write; the format comes from the extension: .csv .xlsx .parquet .json .ndjson",
)
@click.option("--search", help="Only contacts whose name or phone matches (every target).")
@click.option(
    "--tag", help=f"Only contacts with this tag ({registry.titles(export_filter='tag')})."
)
@click.option(
    "--group", help=f"Only the members of this group ({registry.titles(export_filter='group')})."
)
@click.option(
    "--opt-out/--no-opt-out",
    default=None,
    help="Only opted-out (or not opted-out) contacts "
    f"({registry.titles(export_filter='opt_out')}).",
)
@click.option(
    "--with-groups",
    is_flag=True,
    help="Add a groups column (extra requests; the plan says how many).",
)
@click.option("--excel", is_flag=True, help="CSV for Excel: UTF-8 BOM, formula-like cells quoted.")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where summary.json and report.html go (default: contactpipe-reports/export-<time>).",
)
@no_html_option
@output_options
def export(
    target: str,
    base_url: str | None,
    output: Path,
    search: str | None,
    tag: str | None,
    group: str | None,
    opt_out: bool | None,
    with_groups: bool,
    excel: bool,
    report_dir: Path | None,
    no_html: bool,
    json_out: bool,
    quiet: bool,
    log_format: str,
    debug: bool,
) -> None:
    """Write every contact of --target (optionally filtered) to --output, paging through the
    API at its rate limit with retries.  The file re-imports unchanged: phones in E.164,
    custom fields as custom.<key> columns, the API's id and timestamps alongside.  Written
    atomically: an interrupted export never leaves a half file.  The report directory holds
    summary.json and report.html (the page of the export: open it in a browser)."""
    with _importing(html=not no_html):
        from contactpipe import api
    from contactpipe.load.base import ExportFilters

    def show_plan(plan: tuple[Any, ...]) -> None:
        _print_plan([dataclasses.asdict(line) for line in plan], target)

    with _errors(debug):
        done = api.export_contacts(
            target,
            output,
            ExportFilters(search=search, tag=tag, group=group, opt_out=opt_out),
            with_groups=with_groups,
            excel=excel,
            base_url=base_url,
            progress=_progress(quiet, log_format),
            on_plan=None if quiet else show_plan,
            report_dir=report_dir or _default_report_dir("export"),
            html=not no_html,
        )
        if json_out:
            click.echo(_json(done.to_dict()))
        else:
            click.echo(
                f"{done.rows:,} contacts exported from {target} to {output} "
                f"({done.requests:,} requests, {done.retries:,} retries, "
                f"{done.rate_limited:,} rate limited, {done.seconds:.1f} s)"
            )
            if done.summary_json is not None:
                click.echo(f"report: {done.summary_json.parent}")
            if done.report_html is not None:  # last: the line to click
                click.echo(f"  page:     {done.report_html}")


@main.command(epilog=EXIT_CODES)
@target_options
@click.option("--dry-run", is_flag=True, help="Look the contacts up and list them; delete nothing.")
@click.option("--yes", is_flag=True, help="Delete even more than --max-delete contacts.")
@click.option(
    "--max-delete",
    type=click.IntRange(0),
    default=100,
    show_default=True,
    help="Without --yes, refuse to delete more contacts than this.",
)
@poll_interval_option
@transform_options
def delete(
    files: tuple[str, ...],
    target: str,
    base_url: str | None,
    dry_run: bool,
    yes: bool,
    max_delete: int,
    poll_interval: float,
    **opts: Any,
) -> None:
    """Delete from --target the contacts whose phones (or ids, from an `id` column) FILES
    list, after the same validation as import.  Rows not found are reported; the plan
    (requests, least time) is printed first.  APIs with bulk jobs delete in batches (Ctrl-C
    cancels the job and reports what was deleted), the others one by one at their rate
    limit."""
    with _importing(html=not opts["no_html"]):
        from contactpipe.run import delete_files

    with _errors(opts["debug"]):
        options = _run_options(opts)
        imp = _imp(target, base_url, dry_run=dry_run, poll_interval_s=poll_interval)
        report_dir = opts["report_dir"] or _default_report_dir("delete")
        progress = _progress(opts["quiet"], opts["log_format"])
        result = delete_files(
            list(files),
            options,
            imp,
            report_dir,
            progress,
            limit=None if yes else max_delete,
            on_plan=None if opts["quiet"] else lambda plan: _print_plan(plan, target),
        )
        _finish(result, opts, options)


@main.group(
    epilog=EXIT_CODES,
    help=f"List, create and fill contact groups ({registry.titles('groups')}; the other APIs "
    "have none).",
)
def groups() -> None:
    pass


@groups.command("list", epilog=EXIT_CODES)
@target_options
@click.option("--json", "json_out", is_flag=True, help="Print the groups as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
def groups_list(target: str, base_url: str | None, json_out: bool, debug: bool) -> None:
    """Every group of --target with its member count."""
    from rich.console import Console
    from rich.table import Table

    from contactpipe.run import open_target

    with _errors(debug):
        t = open_target(_imp(target, base_url))
        try:
            found = t.list_groups()
        finally:
            t.close()
        if json_out:
            click.echo(_json(found))
            return
        table = Table(title=f"groups of {target}", title_justify="left")
        for col in ("name", "members", "id", "description"):
            table.add_column(col)
        for g in found:
            members = g.get("members")
            table.add_row(
                str(g["name"]),
                "" if members is None else f"{members:,}",
                str(g["id"]),
                str(g.get("description") or ""),
            )
        Console().print(table)


@groups.command("create", epilog=EXIT_CODES)
@click.argument("name")
@target_options
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
def groups_create(name: str, target: str, base_url: str | None, debug: bool) -> None:
    """Create the group NAME in --target (nothing happens when it exists, any case)."""
    from contactpipe.run import open_target

    with _errors(debug):
        t = open_target(_imp(target, base_url))
        try:
            group, created = t.create_group(name)
        finally:
            t.close()
        what = "created" if created else "already exists"
        click.echo(f"group {group['name']!r} {what} (id {group['id']})")


def _members_command(add: bool) -> Callable[..., Any]:
    verb = "add" if add else "remove"

    @groups.command(verb, epilog=EXIT_CODES)
    @click.option("--group", "group_name", required=True, metavar="NAME", help="The group.")
    @target_options
    @poll_interval_option
    @transform_options
    def command(
        files: tuple[str, ...],
        group_name: str,
        target: str,
        base_url: str | None,
        poll_interval: float,
        **opts: Any,
    ) -> None:
        from contactpipe.run import change_group_files

        with _errors(opts["debug"]):
            options = _run_options(opts)
            imp = _imp(target, base_url, poll_interval_s=poll_interval)
            report_dir = opts["report_dir"] or _default_report_dir(f"groups-{verb}")
            progress = _progress(opts["quiet"], opts["log_format"])
            result = change_group_files(
                list(files),
                options,
                imp,
                report_dir,
                group_name,
                add=add,
                progress=progress,
                on_plan=None if opts["quiet"] else lambda plan: _print_plan(plan, target),
            )
            _finish(result, opts, options)

    command.__doc__ = (
        f"{'Add' if add else 'Remove'} the contacts FILES list (by phone, after the same "
        f"validation as import) {'to' if add else 'from'} the group --group of --target"
        + (" (created when missing)." if add else ".")
        + " Rows not found are reported."
    )
    return command


groups_add = _members_command(add=True)
groups_remove = _members_command(add=False)


@main.command(epilog=EXIT_CODES)
@click.option("--from", "source", required=True, type=click.Choice(TARGETS), help="Export from.")
@click.option("--to", "dest", required=True, type=click.Choice(TARGETS), help="Import into.")
@click.option("--from-base-url", metavar="URL", help="Base URL of --from (default: its variable).")
@click.option("--to-base-url", metavar="URL", help="Base URL of --to (default: its variable).")
@click.option("--search", help="Only contacts whose name or phone matches.")
@click.option(
    "--tag", help=f"Only contacts with this tag ({registry.titles(export_filter='tag')})."
)
@click.option(
    "--group", help=f"Only the members of this group ({registry.titles(export_filter='group')})."
)
@click.option(
    "--without-groups", is_flag=True, help="Do not carry group membership (saves requests)."
)
@click.option("--dry-run", is_flag=True, help="Export, then plan the import without sending.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 50_000),
    default=10_000,
    show_default=True,
    help="Items per bulk request of the import.",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the export file and the report go (default: contactpipe-reports/migrate-<time>).",
)
@no_html_option
@rate_limit_store_option
@output_options
def migrate(
    source: str,
    dest: str,
    from_base_url: str | None,
    to_base_url: str | None,
    search: str | None,
    tag: str | None,
    group: str | None,
    without_groups: bool,
    dry_run: bool,
    batch_size: int,
    report_dir: Path | None,
    no_html: bool,
    json_out: bool,
    quiet: bool,
    log_format: str,
    debug: bool,
) -> None:
    """Move contacts from one API to another in one run: export --from into the report
    directory, then import that file into --to through the canonical schema, with the import's
    report.  Fields the destination has no place for are listed, never dropped silently."""
    from contactpipe.load.base import ExportFilters

    with _importing(html=not no_html):
        from contactpipe.run import RunOptions
        from contactpipe.run import migrate as run_migrate

    with _errors(debug):
        from contactpipe.load.config import check_base_url

        for option, url in (("--from-base-url", from_base_url), ("--to-base-url", to_base_url)):
            if url:  # checked here so that the message names the option used
                check_base_url(url, option)
        root = report_dir or _default_report_dir("migrate")
        options = RunOptions(html=not no_html)
        result = run_migrate(
            _imp(source, from_base_url),
            _imp(dest, to_base_url, batch_size=batch_size, dry_run=dry_run),
            options,
            root,
            filters=ExportFilters(search=search, tag=tag, group=group),
            with_groups=not without_groups,
            progress=_progress(quiet, log_format),
            on_plan=None if quiet else lambda plan: _print_plan(plan, source),
            on_import_plan=None if quiet else lambda plan: _print_plan(plan, dest),
        )
        opts = {"json_out": json_out}
        if not json_out:
            moved = result.summary["migrate"]
            click.echo(
                f"{moved['exported']:,} contacts exported from {source}: {moved['export_file']}"
            )
            for col, n in moved["not_carried"].items():
                click.echo(f"not carried into {dest}: {col} ({n:,} contacts)")
        _finish(result, opts, options)


@main.command(epilog=EXIT_CODES)
@transform_options
def demo(files: tuple[str, ...], **opts: Any) -> None:
    """Import FILES into each of the three APIs of a built-in sandbox started for the demo
    (on a free port of 127.0.0.1, stopped at the end), and print each import's summary and
    report.  `make demo` runs it on sample_data/."""
    from contactpipe.demo import run_demo
    from contactpipe.report.summary import console_for, print_summary

    with _errors(opts["debug"]):
        options = _run_options(opts)
        root = opts["report_dir"] or _default_report_dir("demo")
        console = console_for(sys.stdout)

        def show(name: str, result: Any) -> None:
            console.rule(f"import into {name}")
            print_summary(result.summary, console)

        results = run_demo(
            list(files),
            options,
            root,
            progress=_progress(opts["quiet"], opts["log_format"]),
            on_result=None if opts["json_out"] else show,
        )
        if opts["json_out"]:
            doc = {name: r.summary for name, r in results.items()}
            click.echo(_json(doc))
        else:
            console.print(
                f"Reports: {root}/<target>/ (report.html, errors.csv, contacts.csv, summary.json)"
            )


@main.command(epilog=EXIT_CODES)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8900, show_default=True, type=click.IntRange(1, 65535))
def sandbox(host: str, port: int) -> None:
    """Serve local sandboxes of MsgFlash, WAAPI and Vobiz on one port, to rehearse imports
    offline.  Credentials come from the same environment variables the importer reads
    (MSGFLASH_API_KEY, MSGFLASH_TEAM_ID, WAAPI_TOKEN, WAAPI_PHONE_ID, VOBIZ_AUTH_ID,
    VOBIZ_AUTH_TOKEN), with documented defaults when unset."""
    from contactpipe.sandbox import SandboxSettings, describe, run_forever

    with _errors(False):
        settings = SandboxSettings.from_env()
        url = f"http://{host}:{port}"
        for api in describe(settings, url):
            click.echo(f"{api['name']}: {api['base_url']}  ({api['note']})")
            if api["env"]:
                click.echo(f"  export {api['api'].upper()}_BASE_URL={api['base_url']}")
            for var, value in api["env"].items():
                if _is_secret(var) and os.environ.get(var) == value:
                    # the user's own value, maybe a real one: never echo it to a terminal/log
                    click.echo(f"  {var}: taken from your environment (not shown)")
                else:
                    click.echo(f"  export {var}={value}")
        click.echo("Ctrl-C stops the sandbox.")
        try:
            run_forever(settings, host, port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


if __name__ == "__main__":  # pragma: no cover
    main()
