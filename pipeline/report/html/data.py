"""What ``report.html`` shows, computed from the run's summary and its problem lines.

Everything here is small and capped, whatever the size of the run: at most
:data:`SAMPLE_ROWS` rows per code, :data:`MAX_FILES` files, :data:`VALUES_PER_ROW` original
values per row and :data:`CELL_CHARS` characters per value.  The counts stay exact; the page
says how many rows are not shown and where they are (``errors.csv``, ``warnings.csv``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from contactpipe.transform.validate import CODES

SAMPLE_ROWS = 20
CELL_CHARS = 160
MESSAGE_CHARS = 300
VALUES_PER_ROW = 12
MAX_FILES = 50
MAX_HEADERS = 200
FIXED = ("source_file", "sheet", "row", "column", "code", "message")
SECTIONS = ("load", "delete", "groups")

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def clip(value: Any, limit: int = CELL_CHARS) -> str:
    """``value`` as one short line of text: control and bidi-override characters shown as
    ``�``, at most ``limit`` characters, then ``… (+N chars)``."""
    if value is None:
        return ""
    text = _CONTROL.sub("\ufffd", str(value))
    if len(text) > limit:
        return f"{text[:limit]}… (+{len(text) - limit:,} chars)"
    return text


# outcome key -> colour; the labels depend on the command (see outcome_labels)
COLOURS = {
    "ok": "#2e7d32",
    "ok_warned": "#9ccc65",
    "failed": "#ef6c00",
    "rejected": "#c62828",
    "duplicate": "#7e57c2",
    "empty": "#b0bec5",
}


def load_part(summary: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(section, its summary) of the step that sent the contacts somewhere, if any."""
    for section in SECTIONS:
        part = summary.get(section)
        if isinstance(part, dict):
            return section, part
    return None, None


def outcome_labels(summary: Mapping[str, Any]) -> dict[str, str]:
    section, part = load_part(summary)
    if part is None or (part.get("dry_run") and section == "load"):
        dry = " (dry run: not sent)" if part else ""
        ok, failed = f"valid{dry}", "failed at load"
    else:
        verb = {"load": "loaded", "delete": "deleted", "groups": "changed"}[section or "load"]
        if part.get("dry_run"):
            verb = f"would be {verb}"
        ok = verb
        failed = "failed at load" if section == "load" else f"not {verb} (not found or failed)"
    labels = {
        "ok": ok,
        "ok_warned": f"{ok}, with a warning",
        "failed": failed,
        "rejected": "rejected",
        "duplicate": "duplicate",
        "empty": "empty (skipped)",
    }
    if part is None or (section == "load" and part.get("dry_run")):
        del labels["failed"]  # nothing was sent: no row can have failed there
    return labels


def _kinds(errors: pl.DataFrame) -> pl.DataFrame:
    """(file, sheet, row, kind) of each errors.csv line: rejected, duplicate or failed."""
    first = pl.col("code").cast(pl.String).str.split(";").list.first()
    return errors.select(
        pl.col("source_file").cast(pl.String).fill_null("").alias("file"),
        pl.col("sheet").cast(pl.String).fill_null("").alias("sheet"),
        pl.col("row").cast(pl.Int64),
        pl.when(first == "DUPLICATE")
        .then(pl.lit("duplicate"))
        .when(first.is_in(list(CODES)))
        .then(pl.lit("rejected"))
        .otherwise(pl.lit("failed"))
        .alias("kind"),
    )


def _segments(counts: Mapping[str, int], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    total = sum(counts.values())
    out, x = [], 0.0
    for key in labels:
        n = counts.get(key, 0)
        width = 1000 * n / total if total else 0.0
        out.append(
            {
                "key": key,
                "label": labels[key],
                "colour": COLOURS[key],
                "count": n,
                "share": n / total if total else 0.0,
                "x": round(x, 2),
                "width": round(width, 2),
            }
        )
        x += width
    return out


def outcomes(
    summary: Mapping[str, Any], errors: pl.DataFrame, warnings: pl.DataFrame
) -> dict[str, Any]:
    """The outcome bar of the whole run and of each file / sheet (first :data:`MAX_FILES`)."""
    labels = outcome_labels(summary)
    kinds = _kinds(errors)
    warned = warnings.select(
        pl.col("source_file").cast(pl.String).fill_null("").alias("file"),
        pl.col("sheet").cast(pl.String).fill_null("").alias("sheet"),
        pl.col("row").cast(pl.Int64),
    ).unique()
    failed = kinds.filter(pl.col("kind") == "failed").select("file", "sheet", "row")
    warned_failed = warned.join(failed, on=["file", "sheet", "row"], how="semi")
    per_kind = {
        (f, s, k): n for f, s, k, n in kinds.group_by("file", "sheet", "kind").len().iter_rows()
    }
    per_warned = {(f, s): n for f, s, n in warned.group_by("file", "sheet").len().iter_rows()}
    per_wf = {(f, s): n for f, s, n in warned_failed.group_by("file", "sheet").len().iter_rows()}

    def counts(key: tuple[str, str], rows_read: int, empty: int) -> dict[str, int]:
        rejected = per_kind.get((*key, "rejected"), 0)
        duplicate = per_kind.get((*key, "duplicate"), 0)
        fail = per_kind.get((*key, "failed"), 0)
        ok_warned = per_warned.get(key, 0) - per_wf.get(key, 0)
        ok = rows_read - empty - rejected - duplicate - fail - ok_warned
        return {
            "ok": ok,
            "ok_warned": ok_warned,
            "failed": fail,
            "rejected": rejected,
            "duplicate": duplicate,
            "empty": empty,
        }

    files = list(summary.get("files", []))
    bars = []
    for f in files[:MAX_FILES]:
        key = (f.get("file") or "", f.get("sheet") or "")
        c = counts(key, f.get("rows_read", 0), f.get("empty_rows", 0))
        bars.append(
            {
                "file": f.get("file") or "",
                "sheet": f.get("sheet"),
                "total": f.get("rows_read", 0),
                "segments": _segments(c, labels),
            }
        )
    total = {k: 0 for k in COLOURS}
    for f in files:
        key = (f.get("file") or "", f.get("sheet") or "")
        for k, v in counts(key, f.get("rows_read", 0), f.get("empty_rows", 0)).items():
            total[k] += v
    return {
        "overall": {"total": summary.get("rows_read", 0), "segments": _segments(total, labels)},
        "files": bars,
        "files_not_shown": max(0, len(files) - MAX_FILES),
        "labels": labels,
    }


def _sample_row(row: Mapping[str, Any], user_columns: Sequence[str]) -> dict[str, Any]:
    failing = {c.strip() for c in str(row.get("column") or "").split(" + ") if c.strip()}
    values = []
    for c in user_columns:
        v = row.get(c)
        if v is None or v == "":
            continue
        header = c.removesuffix(" (original)")
        values.append({"header": clip(header, 60), "value": clip(v), "failed": header in failing})
    shown = {v["header"] for v in values}
    known = {c.removesuffix(" (original)") for c in user_columns}
    for c in sorted(failing & known - shown):  # an empty cell is what failed: say so
        values.append({"header": clip(c, 60), "value": "(empty)", "failed": True})
    values.sort(key=lambda v: not v["failed"])  # the column that failed comes first
    return {
        "file": clip(row.get("source_file"), 120),
        "sheet": clip(row.get("sheet"), 60),
        "row": row.get("row"),
        "column": clip(row.get("column"), 80),
        "message": clip(row.get("message"), MESSAGE_CHARS),
        "cells": values[:VALUES_PER_ROW],
        "more_values": max(0, len(values) - VALUES_PER_ROW),
    }


def unguard(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells as they were before the CSV writer made them formula-safe (``'=x`` ->
    ``=x``): for lines read back from ``errors.csv`` / ``warnings.csv``."""
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(r"^'[=@\t\r+\-]"))
        .then(pl.col(c).str.slice(1))
        .otherwise(pl.col(c))
        for c, dtype in frame.schema.items()
        if dtype == pl.String
    )


def code_groups(
    frame: pl.DataFrame,
    descriptions: Mapping[str, str],
    *,
    warning: bool,
    csv_name: str,
    cap: int = SAMPLE_ROWS,
    guarded: bool = False,
) -> list[dict[str, Any]]:
    """One entry per code of ``frame`` (errors or warnings lines): its count, its kind and
    its first ``cap`` rows in input order.  A line with ``A;B`` counts under both codes.
    ``guarded``: the lines were read back from the CSV (see :func:`unguard`)."""
    if frame.is_empty():
        return []
    user_columns = [c for c in frame.columns if c not in FIXED]
    # codes and line numbers only: a wide file's lines are gathered for the samples alone
    index = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("__i"),
        pl.col("code").cast(pl.String).str.split(";").alias("__code"),
    ).explode("__code")
    counts = dict(index.group_by("__code", maintain_order=True).len().iter_rows())
    picked = index.group_by("__code", maintain_order=True).head(cap)
    samples = frame[picked.get_column("__i")]
    if guarded:
        samples = unguard(samples)
    rows: dict[str, list[dict[str, Any]]] = {}
    for code, row in zip(picked.get_column("__code"), samples.iter_rows(named=True), strict=True):
        rows.setdefault(code, []).append(_sample_row(row, user_columns))
    out = []
    for code, n in counts.items():
        if warning:
            kind = "warning"
        elif code == "DUPLICATE":
            kind = "duplicate"
        elif code in CODES:
            kind = "rejected"
        else:
            kind = "failed"
        out.append(
            {
                "code": clip(code, 60),
                "count": n,
                "kind": kind,
                "description": clip(descriptions.get(code, ""), 200),
                "rows": rows.get(code, []),
                "not_shown": n - len(rows.get(code, [])),
                "csv": csv_name,
            }
        )
    order = {"rejected": 0, "duplicate": 1, "failed": 2, "warning": 3}
    out.sort(key=lambda g: (order[g["kind"]], -g["count"], g["code"]))
    return out


def _delimiter(d: str | None) -> str:
    names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space"}
    if d is None:
        return ""
    return f"{d!r} ({names[d]})" if d in names else repr(d)


def mappings(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per file / sheet: how it was read and which source column feeds which field."""
    opts = summary.get("options", {})
    out = []
    for f in list(summary.get("files", []))[:MAX_FILES]:
        m = f.get("mapping") or {}
        detected = dict(m.get("detected") or {})  # header -> how, when the mapper records it
        for col in m.get("phone_by_content") or ():
            detected.setdefault(col, "content (most cells are phone numbers)")
        default_how = f"preset {m['preset']}" if m.get("preset") else "header name"
        if opts.get("mapping_file"):
            default_how += " or --mapping"
        rows = []
        for fld, cols in (m.get("fields") or {}).items():
            for i, col in enumerate(cols):
                rows.append(
                    {
                        "source": clip(col, 80),
                        "field": fld,
                        "how": clip(detected.get(col, default_how), 60),
                        "priority": i + 1 if len(cols) > 1 else None,
                    }
                )
        for key, col in (m.get("custom") or {}).items():
            how = detected.get(col, "--keep-extra-columns or --mapping")
            rows.append(
                {"source": clip(col, 80), "field": f"custom.{key}", "how": how, "priority": None}
            )
        unmapped = list(m.get("unmapped") or [])
        out.append(
            {
                "file": clip(f.get("file"), 200),
                "sheet": clip(f.get("sheet"), 80) if f.get("sheet") else None,
                "format": f.get("format"),
                "encoding": f.get("encoding"),
                "delimiter": _delimiter(f.get("delimiter")),
                "header_row": f.get("header_row"),
                "rows_read": f.get("rows_read", 0),
                "empty_rows": f.get("empty_rows", 0),
                "preset": m.get("preset"),
                "rows": rows[:MAX_HEADERS],
                "unmapped": [clip(u, 80) for u in unmapped[:MAX_HEADERS]],
                "unmapped_not_shown": max(0, len(unmapped) - MAX_HEADERS),
            }
        )
    return out


def skipped_inputs(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Inputs (files, sheets) left out of the run, with why and the headers seen."""
    out = []
    for sk in list(summary.get("skipped") or [])[:MAX_FILES]:
        headers = [str(h) for h in sk.get("headers") or []]
        out.append(
            {
                "file": clip(sk.get("file"), 200),
                "sheet": clip(sk.get("sheet"), 80) if sk.get("sheet") else None,
                "reason": clip(sk.get("reason"), 200),
                "rows": sk.get("rows", 0),
                "headers": ", ".join(clip(h, 40) for h in headers[:MAX_HEADERS])
                + (f" and {len(headers) - MAX_HEADERS} more" if len(headers) > MAX_HEADERS else ""),
            }
        )
    return out


def files_beside(summary: Mapping[str, Any], report_dir: Path) -> list[dict[str, Any]]:
    """Links (relative to the report) to the files the run wrote beside ``report.html``."""
    paths: list[tuple[str, str]] = []
    for key, p in (summary.get("files_written") or {}).items():
        if key != "report_html":
            paths.append((key, p))
    migrate = summary.get("migrate") or {}
    if migrate.get("export_file"):
        paths.append(("export", migrate["export_file"]))
    _, part = load_part(summary)
    requests = list((part or {}).get("request_files") or [])
    for p in requests[:20]:
        paths.append(("request body (dry run)", p))
    out = []
    root = report_dir.resolve()
    for key, p in paths:
        path = Path(p)
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = None  # not beside the report: shown, not linked
        size = path.stat().st_size if path.is_file() else None
        out.append(
            {
                "what": key.replace("_", " "),
                "name": clip(rel or str(path), 200),
                "href": quote(rel) if rel else None,
                "size": size,
            }
        )
    if len(requests) > 20:
        out.append(
            {
                "what": "request bodies",
                "name": f"{len(requests) - 20} more in dry-run/",
                "href": "dry-run/",
                "size": None,
            }
        )
    return out
