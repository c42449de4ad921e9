"""The report directory: a public contract that scripts and schedulers read.

=================  ==========================================================================
``errors.csv``     one line per rejected or duplicate row: ``source_file, sheet, row, column,
                   code, message``, then the row's original values (UTF-8, no BOM)
``warnings.csv``   same layout, one line per kept row that carries a warning
``errors.xlsx``    ``errors.csv`` as a workbook, on request (cells written as text)
``contacts.csv``   the clean contacts: canonical columns, ``phone`` in E.164, then
                   ``source_file, sheet, row``
``contacts.parquet`` the same with typed columns (lists, booleans)
``summary.json``   counts, codes, files, mapping and seconds per stage
=================  ==========================================================================

Every file is written to a temporary name and renamed, so a reader never sees half a file, and
``summary.json`` comes last: a folder without it holds an unfinished (killed) run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from contactpipe import schemas
from contactpipe.errors import UsageError
from contactpipe.frames import PUBLIC_SOURCE_COLUMNS, SRC_FILE, SRC_ROW, SRC_SHEET
from contactpipe.report.safe import excel_safe_frame, safe_header

ERROR_COLUMNS = ("source_file", "sheet", "row", "column", "code", "message")
# contacts.csv / contacts.parquet: the canonical schema's fields (``country`` is input only)
CONTACT_COLUMNS = tuple(f for f in schemas.contact_fields() if f != "country")
XLSX_MAX_ROWS = 1_048_575  # data rows per sheet under one header row


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; rename it over ``path`` only on success.

    An exception (Ctrl-C included) removes the temporary file; only a hard kill can leave a
    hidden ``.NAME.tmp-PID`` behind, never a half-written file under the final name.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def contacts_frame(kept: pl.DataFrame) -> pl.DataFrame:
    """Canonical contacts with public column names, typed (lists, booleans)."""
    custom = sorted(c for c in kept.columns if c.startswith("custom."))
    if custom:
        fields = [pl.col(c).alias(c.removeprefix("custom.")) for c in custom]
        custom_expr = pl.struct(fields).struct.json_encode()
    else:
        custom_expr = pl.lit(None, dtype=pl.String)
    special = {
        "phone": pl.col("__phone_e164"),
        "phone_ext": pl.col("__phone_ext"),
        "custom_fields": custom_expr,
    }
    return kept.select(
        *(special.get(c, pl.col(c)).alias(c) for c in CONTACT_COLUMNS),
        *(
            pl.col(src).cast(pl.String if src != SRC_ROW else pl.Int64).alias(pub)
            for src, pub in PUBLIC_SOURCE_COLUMNS.items()
        ),
    )


def _flat_for_csv(df: pl.DataFrame) -> pl.DataFrame:
    """Lists joined with ', ', booleans as true/false: text a person and Excel can read."""
    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List):
            exprs.append(pl.col(name).list.join(", ").alias(name))
        elif dtype == pl.Boolean:
            exprs.append(pl.col(name).cast(pl.String))  # "true" / "false"
    return df.with_columns(exprs) if exprs else df


def write_csv(df: pl.DataFrame, path: Path, *, bom: bool = False) -> None:
    """Excel-safe UTF-8 CSV (cells and header names), written atomically."""
    safe = excel_safe_frame(_flat_for_csv(df))
    names = safe_header(safe.columns)
    if names != safe.columns:
        safe = safe.rename(dict(zip(safe.columns, names, strict=True)))
    with atomic(path) as tmp:
        safe.write_csv(tmp, include_bom=bom)


EXPORT_FORMATS = (".csv", ".xlsx", ".parquet", ".json", ".ndjson", ".jsonl")


def export_format(path: Path) -> str:
    """The export format of ``path`` from its extension, or UsageError listing the choices."""
    from contactpipe.errors import UsageError

    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UsageError(
            f"{path.name}: cannot tell the format from the extension {suffix or '(none)'!r}",
            hint="use one of " + ", ".join(EXPORT_FORMATS),
        )
    return suffix


def write_export(df: pl.DataFrame, path: Path, *, excel: bool = False) -> None:
    """Write an export atomically in the format of ``path``'s extension.

    CSV is plain UTF-8 (lists joined with ``", "``) so that it re-imports exactly; ``excel``
    adds the BOM Excel needs and neutralises formula-like cells.  XLSX cells are text (phones
    stay text).  Parquet keeps types (lists, booleans); JSON is an array of objects, NDJSON one
    object per line."""
    fmt = export_format(path)
    if fmt == ".csv":
        flat = _flat_for_csv(df)
        with atomic(path) as tmp:
            (excel_safe_frame(flat) if excel else flat).write_csv(tmp, include_bom=excel)
    elif fmt == ".xlsx":
        write_xlsx(df, path, sheet="contacts")
    elif fmt == ".parquet":
        write_parquet(df, path)
    elif fmt == ".json":
        with atomic(path) as tmp:
            df.write_json(tmp)
    else:
        with atomic(path) as tmp:
            df.write_ndjson(tmp)


def write_parquet(df: pl.DataFrame, path: Path) -> None:
    """Parquet, written atomically."""
    with atomic(path) as tmp:
        df.write_parquet(tmp)


def write_json(doc: Any, path: Path) -> None:
    """Pretty JSON, written atomically."""
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", "utf-8")


def write_xlsx(df: pl.DataFrame, path: Path, *, sheet: str = "errors") -> None:
    """Every cell written as text (never a formula, URL or number); header row frozen.

    More rows than a worksheet holds continue on ``errors (2)``, ``errors (3)``...
    """
    import xlsxwriter

    options = {
        "constant_memory": True,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }
    flat = _flat_for_csv(df).with_columns(pl.all().cast(pl.String))
    header = flat.columns
    with atomic(path) as tmp, xlsxwriter.Workbook(str(tmp), options) as wb:
        bold = wb.add_format({"bold": True})
        n_sheets = max(1, -(-flat.height // XLSX_MAX_ROWS))
        for i in range(n_sheets):
            ws = wb.add_worksheet(sheet if i == 0 else f"{sheet} ({i + 1})")
            ws.freeze_panes(1, 0)
            for c, name in enumerate(header):
                ws.write_string(0, c, name, bold)
            part = flat.slice(i * XLSX_MAX_ROWS, XLSX_MAX_ROWS)
            for r, row in enumerate(part.iter_rows(), start=1):
                for c, value in enumerate(row):
                    if value is not None:
                        ws.write_string(r, c, value)


def problem_lines(
    problems: pl.DataFrame, originals: pl.DataFrame, user_columns: Iterable[str]
) -> pl.DataFrame:
    """``errors.csv`` lines: ``problems`` (``__rid``, ``column``, ``code``, ``message`` and the
    source columns) joined to the original values of the same rows, in input order."""
    fixed = set(ERROR_COLUMNS)
    present = set(originals.columns)  # a set: a 16k-column file stays linear
    user = [c for c in user_columns if c in present]
    renamed = {c: (f"{c} (original)" if c in fixed else c) for c in user}
    values = originals.select("__rid", *(pl.col(c).alias(renamed[c]) for c in user))
    lines = problems.sort("__rid").join(values, on="__rid", how="left", maintain_order="left")
    return lines.select(
        pl.col(SRC_FILE).cast(pl.String).alias("source_file"),
        pl.col(SRC_SHEET).alias("sheet"),
        pl.col(SRC_ROW).alias("row"),
        pl.col("column"),
        pl.col("code"),
        pl.col("message"),
        *(pl.col(renamed[c]) for c in user),
    )


REPORT_FILES = (
    "errors.csv",
    "warnings.csv",
    "errors.xlsx",
    "contacts.csv",
    "contacts.parquet",
    "summary.json",
    "report.html",
)
"""Names a run writes into its report directory (never over one of the run's inputs)."""


def prepare_report_dir(report_dir: Path, inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Create ``report_dir`` and make sure the report can be written there, before anything is
    sent: UsageError when it cannot be created or written, or when one of its report files
    would overwrite an input of the run (``--report-dir`` set to the input's folder)."""
    where = f"--report-dir {report_dir}"
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise UsageError(f"{where}: is a file, not a folder") from exc
    except OSError as exc:
        raise UsageError(f"{where}: cannot be created ({exc.strerror})") from exc
    probe = report_dir / f".contactpipe-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"{where}: cannot be written ({exc.strerror})",
            hint="choose a folder you can write to with --report-dir",
        ) from exc
    folder = report_dir.resolve()
    for item in inputs:
        source = Path(item)
        if source.name in REPORT_FILES and _same_file(source, report_dir / source.name, folder):
            raise UsageError(
                f"{where}: writing the report there would overwrite the input file {source}",
                hint="choose another --report-dir (or rename the input)",
            )


def _same_file(source: Path, report_file: Path, folder: Path) -> bool:
    try:
        return source.resolve().parent == folder or os.path.samefile(source, report_file)
    except OSError:
        return False


def start_report(report_dir: Path) -> dict[str, Path]:
    """The row-level report files of ``report_dir`` by name, after removing a previous run's
    ``summary.json``: the caller writes it last, so a run killed half-way never leaves new row
    files beside an old summary that vouches for them."""
    (report_dir / "summary.json").unlink(missing_ok=True)
    return {
        "errors_csv": report_dir / "errors.csv",
        "warnings_csv": report_dir / "warnings.csv",
        "contacts_csv": report_dir / "contacts.csv",
        "contacts_parquet": report_dir / "contacts.parquet",
    }


def write_report(
    report_dir: Path,
    *,
    errors: pl.DataFrame,
    warnings: pl.DataFrame,
    contacts: pl.DataFrame,
    xlsx: bool = False,
) -> dict[str, str]:
    """Write the row-level report files into ``report_dir``; return {name: path}.

    The map includes where ``summary.json`` goes: the caller writes it last, with
    :func:`write_json`, once every timing is known."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = start_report(report_dir)
    write_csv(errors, paths["errors_csv"])
    write_csv(warnings, paths["warnings_csv"])
    if xlsx:
        paths["errors_xlsx"] = report_dir / "errors.xlsx"
        write_xlsx(errors, paths["errors_xlsx"])
    write_csv(contacts, paths["contacts_csv"])
    write_parquet(contacts, paths["contacts_parquet"])
    paths["summary_json"] = report_dir / "summary.json"
    return {k: str(v) for k, v in paths.items()}
