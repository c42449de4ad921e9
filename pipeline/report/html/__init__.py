"""``report.html``: the run report a person opens, beside ``errors.csv`` in the report directory.

One self-contained file: inline CSS, charts as inline SVG, no script, no font, no image and no
link that leaves the folder (a Content-Security-Policy forbids any other load), so it opens
from a file share or an Airflow log link and prints.  Pictures first, tables second:

- the outcome of every input row as a bar, overall and per file / sheet;
- rejects and warnings by code, each expandable (``<details>``) to its first rows with the
  original values, the column that failed and the message, and the count not shown;
- the column mapping per file with the detected encoding, delimiter and header row;
- for a load (delete, group change, migrate's export too): plan vs actual per endpoint, least
  vs real time, requests over time with 429s and retries marked, what the target could not
  carry;
- the run's options and versions, and links to the files beside it.

Built with Jinja2 with autoescaping on: every value from the user's files is text, never
markup.  The page stays small for any run: rows per code, files, columns and characters per
value are capped (:mod:`contactpipe.report.html.data`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import polars as pl

from contactpipe.report.html.data import (
    SAMPLE_ROWS,
    clip,
    code_groups,
    files_beside,
    load_part,
    mappings,
    outcomes,
    skipped_inputs,
)
from contactpipe.report.html.load import load_view

__all__ = ["REPORT_NAME", "render_html", "write_html"]

REPORT_NAME = "report.html"


def _bytecode_cache() -> Any:
    """jinja2's per-user cache of compiled templates (a 0700 directory in the temp dir):
    compiling report.html.j2 costs ~50 ms, a sixth of a small run.  Keyed by the template's
    checksum and jinja2's own version; any failure to read or write it only means
    compiling again."""
    import jinja2

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # unreadable or truncated: compile instead
                bucket.reset()

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            with contextlib.suppress(Exception):  # read-only or full temp dir: no cache
                super().dump_bytecode(bucket)

    try:
        return QuietCache(pattern="__contactpipe_%s.cache")
    except Exception:  # no safe temp directory
        return None


def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("contactpipe.report.html", ""),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,  # every {{ }} is escaped, in text and in attributes
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["n"] = lambda v: "" if v is None else f"{v:,}"
    env.filters["pct"] = lambda v: f"{v:.1%}"
    env.filters["bytes"] = _bytes
    return env


def _bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _versions(summary: Mapping[str, Any]) -> dict[str, str]:
    out = {"contactpipe": str(summary.get("contactpipe_version", ""))}
    out["python"] = platform.python_version()
    for dist in ("polars", "phonenumbers", "httpx"):
        module = sys.modules.get(dist)  # imported already: its own version, no metadata read
        if module is None:  # not used by this run (httpx in a validate): no metadata (~2 ms)
            continue
        try:
            out[dist] = str(getattr(module, "__version__", "") or version(dist))
        except PackageNotFoundError:  # pragma: no cover
            out[dist] = "?"
    out["platform"] = _platform()
    return out


@functools.cache
def _platform() -> str:
    """``platform.platform(terse=True)``.  On Linux that reads the C library's version from
    the Python executable itself (5-8 ms, a one-row run's 2%); glibc also says it directly."""
    u = platform.uname()
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        libc = ""
    name, _, ver = libc.partition(" ")
    quick = f"{u.system}-{u.release}-{u.machine}-with-glibc{ver}"
    # what platform.platform() would clean up (spaces, slashes, "--"...) is left to it
    if u.system == "Linux" and name == "glibc" and re.fullmatch(r"[\w.+]+(-[\w.+]+)*", quick):
        return quick
    return platform.platform(terse=True)


def _status(summary: Mapping[str, Any], section: str | None, part: Any) -> dict[str, str]:
    """The sentence at the top, and whether it is good news."""
    limit = (summary.get("options") or {}).get("max_error_rate")
    if part and part.get("aborted"):
        return {"level": "bad", "text": f"Aborted: {clip(part['aborted'], 300)}"}
    if part and part.get("deferred"):
        d = part["deferred"]
        return {
            "level": "bad",
            "text": f"Deferred, not done yet: {clip(d['reason'], 200)}; resume after "
            f"{d['resume_at']} (import --resume)",
        }
    if part and part.get("skipped"):
        return {"level": "bad", "text": f"Nothing sent: {clip(part['skipped'], 300)}"}
    if limit is not None and summary.get("error_rate", 0) > limit:
        return {
            "level": "bad",
            "text": f"{summary['error_rate']:.1%} of rows rejected, above --max-error-rate "
            f"{limit:.1%}",
        }
    if part and part.get("failed") and not part.get("dry_run"):
        return {"level": "warn", "text": f"{part['failed']:,} row(s) did not reach the API"}
    if summary.get("rejected") or summary.get("duplicates"):
        return {"level": "warn", "text": "Completed; some rows are in errors.csv"}
    return {"level": "ok", "text": "Completed; every row accounted for"}


MAX_COLUMNS = 200


def _export_run(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the page of ``contactpipe export`` shows instead of input rows: the file written,
    its rows, and how many contacts have a value in each column (first :data:`MAX_COLUMNS`)."""
    if summary.get("command") != "export" or "rows" not in summary:
        return None
    rows = int(summary.get("rows") or 0)
    filled = dict(summary.get("filled") or {})
    columns = [
        {"name": clip(name, 120), "filled": n, "share": n / rows if rows else 0.0}
        for name, n in list(filled.items())[:MAX_COLUMNS]
    ]
    reported = summary.get("total_reported")
    output = clip(str(summary.get("output", "")), 300)
    status = {"level": "ok", "text": f"{rows:,} contact(s) exported to {output}"}
    if isinstance(reported, int) and reported != rows:
        status = {
            "level": "warn",
            "text": f"{rows:,} contact(s) exported to {output}; the API reported "
            f"{reported:,} matching (contacts added or removed during the export?)",
        }
    options = {
        "target": summary.get("target"),
        "output": summary.get("output"),
        **dict(summary.get("filters") or {}),
        "with_groups": summary.get("with_groups"),
        "excel": summary.get("excel"),
    }
    return {
        "output": output,
        "rows": rows,
        "total_reported": reported,
        "columns": columns,
        "columns_not_shown": max(0, len(filled) - MAX_COLUMNS),
        "status": status,
        "options": options,
    }


def _read_lines(path: str | None) -> pl.DataFrame:
    """errors.csv / warnings.csv back as text (empty when the file is not there).

    Only what the page uses is read whole: file, sheet, row and code of every line (the
    counts); the other columns are filled for the lines :func:`code_groups` samples (the first
    :data:`SAMPLE_ROWS` of each code) and null elsewhere, so a file of millions of lines costs
    a few narrow columns, not a copy of every original value."""
    if not path or not Path(path).is_file():
        schema = dict.fromkeys(("source_file", "sheet", "column", "code", "message"), pl.String)
        return pl.DataFrame(schema={**schema, "row": pl.Int64})
    names = pl.read_csv(path, infer_schema=False, n_rows=0).columns
    lines = pl.scan_csv(path, infer_schema=False).with_row_index("__i")
    keys = [c for c in ("source_file", "sheet", "row", "code") if c in names]
    narrow = lines.select("__i", *keys).collect()
    if "code" in keys:
        codes = narrow.select("__i", pl.col("code").str.split(";").alias("__c")).explode("__c")
        picked = codes.group_by("__c", maintain_order=True).head(SAMPLE_ROWS).get_column("__i")
    else:
        picked = narrow.get_column("__i").head(SAMPLE_ROWS)
    rest = [c for c in names if c not in keys]
    if rest:
        full = lines.filter(pl.col("__i").is_in(picked.unique().implode())).select("__i", *rest)
        narrow = narrow.join(full.collect(), on="__i", how="left", maintain_order="left")
    frame = narrow.select(names)
    return frame.with_columns(pl.col("row").cast(pl.Int64, strict=False))


def render_html(
    summary: Mapping[str, Any],
    errors: pl.DataFrame,
    warnings: pl.DataFrame,
    report_dir: Path,
    *,
    guarded: bool = False,
) -> str:
    """The page for ``summary`` and the run's errors.csv / warnings.csv lines (``guarded``:
    read back from the CSV files, formula guards to take off)."""
    descriptions = dict(summary.get("codes") or {})
    section, part = load_part(summary)
    seconds = summary.get("seconds") or {}
    loads = []
    if part is not None:
        loads.append(load_view(section or "load", part, seconds.get("load")))
    migrate = summary.get("migrate")
    export = None
    if isinstance(migrate, dict) and isinstance(migrate.get("export"), dict):
        ex = migrate["export"]
        export = load_view("export", ex, (ex.get("seconds") or {}).get("total"))
    exported = _export_run(summary)  # an export's own page: no input rows
    if exported is not None:
        export = load_view("export", summary, seconds.get("total"))
    mapped = mappings(summary)
    context = {
        "s": summary,
        "title": f"contactpipe {summary.get('command', 'run')}",
        "status": _status(summary, section, part) if exported is None else exported["status"],
        "exported": exported,
        "outcomes": outcomes(summary, errors, warnings),
        "errors": code_groups(
            errors, descriptions, warning=False, csv_name="errors.csv", guarded=guarded
        ),
        "warnings": code_groups(
            warnings, descriptions, warning=True, csv_name="warnings.csv", guarded=guarded
        ),
        "sample_rows": SAMPLE_ROWS,
        "mappings": mapped,
        "files_not_shown": max(0, len(summary.get("files") or []) - len(mapped)),
        "skipped": skipped_inputs(summary),
        "notes": [clip(n, 300) for n in list(summary.get("notes") or [])[:20]],
        "loads": loads,
        "migrate": migrate if isinstance(migrate, dict) else None,
        "export": export,
        "options": {
            k: clip(v if isinstance(v, str) else json.dumps(v, default=str), 200)
            for k, v in (
                (summary.get("options") or {}) if exported is None else exported["options"]
            ).items()
        },
        "versions": _versions(summary),
        "seconds": {k: v for k, v in seconds.items() if isinstance(v, (int, float))},
        "beside": files_beside(summary, report_dir),
    }
    return _env().get_template("report.html.j2").render(context)


def write_html(
    report_dir: Path,
    summary: Mapping[str, Any],
    errors: pl.DataFrame | None = None,
    warnings: pl.DataFrame | None = None,
) -> Path:
    """Write ``report_dir/report.html`` atomically and return its path.  Without the frames,
    the lines are read back from the ``errors.csv`` / ``warnings.csv`` the summary lists."""
    from contactpipe.report.writer import atomic

    written = summary.get("files_written") or {}
    guarded = errors is None or warnings is None
    if errors is None or warnings is None:
        errors = _read_lines(written.get("errors_csv"))
        warnings = _read_lines(written.get("warnings_csv"))
    path = report_dir / REPORT_NAME
    page = render_html(summary, errors, warnings, report_dir, guarded=guarded)
    with atomic(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
