"""Command line: click commands only.  Each parses options, calls :mod:`pipeline.run` or a
stage, prints, and maps :class:`~pipeline.errors.PipelineError` to a message and an exit code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from pipeline import __version__
from pipeline.errors import EXIT_THRESHOLD, PipelineError, UsageError

EXIT_CODES = """\b
Exit codes (shared by every command):
  0  the run completed
  2  unusable input or usage (file unreadable, no phone column, bad option)
  3  the rejected share is above --max-error-rate
  4  the remote side aborted the run (credentials refused, quota used up,
     target unreachable after retries); the report lists what was not sent
  130  interrupted (Ctrl-C) during a load; the report lists what was not sent"""


def _redact(text: str) -> str:
    """Mask the value of every credential variable (``*_KEY``, ``*_TOKEN``) in ``text``: a
    last line of defence, should a message ever quote one."""
    for var, value in os.environ.items():
        if _is_secret(var) and len(value) >= 8:
            text = text.replace(value, f"<{var}>")
    return text


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """PipelineError -> one clear line and its exit code; anything else -> exit 1."""
    try:
        yield
    except PipelineError as exc:
        click.echo(_redact(f"Error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:
            raise
        click.echo(_redact(f"Unexpected error ({type(exc).__name__}): {exc}"), err=True)
        click.echo("Run again with --debug to see the traceback.", err=True)
        sys.exit(1)


def _progress(quiet: bool, log_format: str = "text") -> Any:
    from pipeline.report.progress import (
        JsonLogFormatter,
        LogProgress,
        NullProgress,
        TerminalProgress,
    )

    if quiet:
        return NullProgress()
    if sys.stderr.isatty() and log_format == "text":
        return TerminalProgress(Console(stderr=True))
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("contactpipe")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return LogProgress()


def transform_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that reads files (validate, import, delete...)."""
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
            "--legacy-numbers",
            type=click.Choice(["migrate", "reject"]),
            default="migrate",
            show_default=True,
            help="Numbers of a superseded national plan (Benin 2024, Côte d'Ivoire 2021).",
        ),
        click.option(
            "--default-name",
            help="Name for rows without one ('{phone}' is replaced by the number); "
            "without it such rows are rejected (MISSING_NAME).",
        ),
        click.option(
            "--max-error-rate",
            type=click.FloatRange(0, 1),
            help="Exit 3 when rejected / non-empty rows is above this (e.g. 0.05).",
        ),
        click.option(
            "--report-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where the report goes (default: contactpipe-reports/<command>-<time>).",
        ),
        click.option("--xlsx-errors", is_flag=True, help="Also write errors.xlsx."),
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


def _run_options(opts: dict[str, Any]) -> Any:
    from pipeline.run import RunOptions

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


@main.command(epilog=EXIT_CODES)
@transform_options
def validate(files: tuple[str, ...], **opts: Any) -> None:
    """Read FILES (CSV, TSV, XLSX, XLS, ODS, Parquet, JSON; globs and folders too), map their
    columns, normalise phones to E.164, validate and dedupe, and write a per-row report.

    The report directory holds errors.csv (every rejected or duplicate row with its source
    file, sheet and row), warnings.csv, contacts.csv, contacts.parquet and summary.json.
    """
    from pipeline.run import validate_files

    with _errors(opts["debug"]):
        options = _run_options(opts)
        report_dir = opts["report_dir"] or _default_report_dir("validate")
        progress = _progress(opts["quiet"], opts["log_format"])
        result = validate_files(list(files), options, report_dir, progress)
        _finish(result, opts, options)


def _finish(result: Any, opts: dict[str, Any], options: Any) -> None:
    """Print the summary; exit 4/130 when the remote side or the user stopped the run, 3 when
    too many rows were rejected."""
    from pipeline.report.summary import print_summary

    if opts["json_out"]:
        click.echo(json.dumps(result.summary, indent=2, ensure_ascii=False))
    else:
        print_summary(result.summary, Console())
    if result.aborted is not None:
        click.echo(_redact(f"Error: run aborted: {result.aborted}"), err=True)
        click.echo(
            f"The report lists every row not sent: {result.report_files['errors_csv']}. "
            "Re-running the same import is safe.",
            err=True,
        )
        sys.exit(result.aborted.exit_code)
    if result.threshold_exceeded:
        click.echo(
            f"Error: {result.summary['error_rate']:.1%} of rows rejected, above "
            f"--max-error-rate {options.max_error_rate:.1%}",
            err=True,
        )
        sys.exit(EXIT_THRESHOLD)


@main.command("import", epilog=EXIT_CODES)
@click.option(
    "--target",
    required=True,
    type=click.Choice(["msgflash", "waapi", "vobiz"]),
    help="The API to load into.",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="The API's base URL as its doc defines it (default: $MSGFLASH_BASE_URL, "
    "$WAAPI_BASE_URL, $VOBIZ_BASE_URL, else the public host; WAAPI has none). "
    "http:// only for loopback hosts.",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="NAME",
    help="Add every contact to this group (repeatable; created when missing; not Vobiz).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 50_000),
    default=10_000,
    show_default=True,
    help="Items per bulk request (never above an endpoint's documented maximum).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Send nothing: write each request body to <report-dir>/dry-run and print the plan "
    "(requests per endpoint, least time under the rate limits).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.05, 60),
    default=2.0,
    show_default=True,
    help="Seconds between polls of an asynchronous job (MsgFlash).",
)
@transform_options
def import_(
    files: tuple[str, ...],
    target: str,
    base_url: str | None,
    groups: tuple[str, ...],
    batch_size: int,
    dry_run: bool,
    poll_interval: float,
    **opts: Any,
) -> None:
    """Validate FILES like `validate`, then load the valid contacts into --target through its
    bulk endpoints, within its rate limit, with retries; every row ends loaded or in
    errors.csv with its source row and a reason.  Re-running the same import is safe.

    \b
    Credentials come from the environment only:
      MsgFlash  MSGFLASH_API_KEY (+ MSGFLASH_TEAM_ID for msgf_team_ keys)
      WAAPI     WAAPI_TOKEN, WAAPI_PHONE_ID (raw or base64), WAAPI_BASE_URL
      Vobiz     VOBIZ_AUTH_ID, VOBIZ_AUTH_TOKEN
    """
    from pipeline.load.base import LoadOptions
    from pipeline.run import ImportOptions, import_files

    with _errors(opts["debug"]):
        options = dataclasses.replace(_run_options(opts), extra_groups=groups)
        imp = ImportOptions(
            target=target,
            base_url=base_url,
            load=LoadOptions(batch_size=batch_size, dry_run=dry_run, poll_interval_s=poll_interval),
        )
        report_dir = opts["report_dir"] or _default_report_dir("import")
        progress = _progress(opts["quiet"], opts["log_format"])
        result = import_files(list(files), options, imp, report_dir, progress)
        _finish(result, opts, options)


@main.command(epilog=EXIT_CODES)
@transform_options
def demo(files: tuple[str, ...], **opts: Any) -> None:
    """Import FILES into each of the three APIs of a built-in sandbox started for the demo
    (on a free port of 127.0.0.1, stopped at the end), and print each import's summary and
    report.  `make demo` runs it on sample_data/."""
    from pipeline.demo import run_demo
    from pipeline.report.summary import print_summary

    with _errors(opts["debug"]):
        options = _run_options(opts)
        root = opts["report_dir"] or _default_report_dir("demo")
        console = Console()

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
            click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        else:
            console.print(f"Reports: {root}/<target>/ (errors.csv, contacts.csv, summary.json)")


@main.command(epilog=EXIT_CODES)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8900, show_default=True, type=click.IntRange(1, 65535))
def sandbox(host: str, port: int) -> None:
    """Serve local sandboxes of MsgFlash, WAAPI and Vobiz on one port, to rehearse imports
    offline.  Credentials come from the same environment variables the importer reads
    (MSGFLASH_API_KEY, MSGFLASH_TEAM_ID, WAAPI_TOKEN, WAAPI_PHONE_ID, VOBIZ_AUTH_ID,
    VOBIZ_AUTH_TOKEN), with documented defaults when unset."""
    from pipeline.sandbox import SandboxSettings, describe, run_forever

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
