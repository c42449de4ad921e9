"""Orchestration: extract -> transform -> [load] -> report, returning the run's statistics.

The CLI parses options and calls :func:`validate_files` or :func:`import_files`; nothing here
prints.  Every input row ends up in exactly one place, which the summary states as an
invariant (``valid`` splits into ``load.loaded + load.failed`` after an import)::

    rows_read == empty_rows + valid + rejected + duplicates
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from contactpipe import __version__
from contactpipe.errors import (
    EXIT_INCOMPLETE,
    Deferred,
    InputError,
    Interrupted,
    PipelineError,
    RemoteError,
    UsageError,
    incomplete_rows,
)
from contactpipe.extract import DEFAULT_LIMITS, Extracted, Limits, expand_inputs, read_file
from contactpipe.extract.common import EXTRACT_CODES, READ_WARNING, READ_WARNING_MSG
from contactpipe.frames import SRC_FILE, SRC_ROW, SRC_SHEET
from contactpipe.load import registry
from contactpipe.report.html import REPORT_NAME, write_html
from contactpipe.report.progress import NullProgress, Progress
from contactpipe.report.writer import (
    contacts_frame,
    prepare_report_dir,
    problem_lines,
    write_json,
    write_report,
)
from contactpipe.signals import interrupt_reason
from contactpipe.transform.countries import resolve_countries
from contactpipe.transform.dedupe import dedupe
from contactpipe.transform.mapping import (
    PHONE_SOURCE,
    ColumnMapping,
    apply_mapping,
    headers_seen,
    infer_mapping,
    is_placeholder,
    load_mapping_file,
)
from contactpipe.transform.phones import PICK, normalize_phones
from contactpipe.transform.validate import BOOL_FIELDS, CODES, ValidateOptions, validate

if TYPE_CHECKING:
    # the load's modules and the sync state (sqlite3...) are imported by the runs that load,
    # not by a validate (issue 16: start-up)
    from contactpipe.load.base import (
        ExportFilters,
        LoadOptions,
        LoadResult,
        PlanLine,
        Target,
        TargetConfig,
    )
    from contactpipe.load.kit import state as sync
    from contactpipe.state import StateLocation, StateStore

RID = "__rid"


@dataclass(frozen=True)
class RunOptions:
    """Everything ``contactpipe validate`` can be told (``import`` adds its own on top)."""

    region: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    mapping_file: Path | None = None
    country_column: str | None = None
    keep_extra_columns: bool = False
    on_duplicate: Literal["first", "last", "merge"] = "first"
    mobile_only: bool = False
    legacy_numbers: Literal["migrate", "reject"] = "migrate"
    default_name: str | None = None
    max_error_rate: float | None = None
    errors_xlsx: bool = False
    extra_groups: tuple[str, ...] = ()
    strict: bool = False  # reject rows whose e-mail, notes, language or booleans are bad
    no_header: bool = False  # the first row is data (files without a header row)
    html: bool = True
    """Write ``report.html`` beside ``errors.csv`` (``--no-html``: don't)."""
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if self.no_header and self.header_row is not None:
            raise UsageError("--no-header and --header-row cannot be used together")
        if self.max_error_rate is not None and not 0 <= self.max_error_rate <= 1:
            raise UsageError("--max-error-rate must be between 0 and 1 (e.g. 0.05 for 5%)")
        if self.region is not None:
            import phonenumbers

            if self.region.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise UsageError(
                    f"--region {self.region!r} is not a region code",
                    hint="use an ISO 3166 alpha-2 code such as FR, BJ, US",
                )
            object.__setattr__(self, "region", self.region.upper())


@dataclass
class RunResult:
    """What a run produced: the summary (also in ``summary.json``), the kept contacts and the
    report files."""

    summary: dict[str, Any]
    contacts: pl.DataFrame | Path
    """The kept contacts, or the ``contacts.parquet`` that holds them (a validate in
    batches, :mod:`contactpipe.streamed`, does not keep them in memory)."""
    report_files: dict[str, str] = field(default_factory=dict)
    aborted: PipelineError | None = None
    """Set when the remote side (a RemoteError) or the user (Interrupted) stopped a load (the
    report is complete nonetheless).  What the outcome means (exit code, exception):
    :meth:`contactpipe.api.Result.error`."""


def code_meanings(by_code: Mapping[str, int]) -> dict[str, str]:
    """``summary.json``'s ``codes``: what each code seen means, sorted by code."""
    load_codes: Mapping[str, str] = {}
    if any(c not in CODES and c not in EXTRACT_CODES for c in by_code):
        # a load's codes (the three tables are disjoint), from the module a validate does not
        # import
        from contactpipe.load.base import LOAD_CODES

        load_codes = LOAD_CODES
    return {
        c: CODES[c][2] if c in CODES else load_codes.get(c) or EXTRACT_CODES[c]
        for c in sorted(by_code)
        if c in CODES or c in load_codes or c in EXTRACT_CODES
    }


def file_entry(e: Extracted, mapping: ColumnMapping) -> dict[str, Any]:
    """One input of ``summary.json``'s ``files``: how it was read and mapped."""
    return {
        "file": e.source_file,
        "sheet": e.sheet,
        "format": e.format,
        "encoding": e.encoding,
        "delimiter": e.delimiter,
        "header_row": e.header_row,
        "rows_read": e.rows_read,
        "empty_rows": e.empty_rows,
        "mapping": mapping.as_dict(),
    }


def options_dict(options: RunOptions) -> dict[str, Any]:
    """``summary.json``'s ``options`` (paths as text)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}


def run_summary(
    command: str,
    started: dt.datetime,
    options: RunOptions,
    mapped: Sequence[tuple[Extracted, ColumnMapping]],
    *,
    counts: Mapping[str, int],
    refused: int,
    by_code: Mapping[str, int],
    parts: Sequence[Extracted],
    skipped: Sequence[Skipped] = (),
) -> dict[str, Any]:
    """``summary.json`` of a run up to its options, for the whole-file and the batched runs
    alike: ``counts`` holds rows_read, empty_rows, valid, rejected, duplicates and warnings;
    ``refused``: rows the API refused (they count in ``error_rate`` with the rejected);
    ``parts``: every input read (those without data rows get a note)."""
    non_empty = counts["rows_read"] - counts["empty_rows"]
    return {
        "contactpipe_version": __version__,
        "command": command,
        "started_at": started.isoformat(timespec="seconds"),
        **{k: counts[k] for k in SUMMARY_COUNTS},
        "error_rate": round((counts["rejected"] + refused) / non_empty, 6) if non_empty else 0.0,
        "by_code": dict(sorted(by_code.items())),
        "codes": code_meanings(by_code),
        "files": [file_entry(e, m) for e, m in mapped],
        "skipped": [s.as_dict() for s in skipped],
        "notes": [f"{_label(e)}: no data rows (header only)" for e in parts if e.rows_read == 0],
        "options": options_dict(options),
    }


SUMMARY_COUNTS = ("rows_read", "empty_rows", "valid", "rejected", "duplicates", "warnings")


def _label(e: Extracted) -> str:
    return e.source_file if e.sheet is None else f"{e.source_file} [{e.sheet}]"


def extract_all(inputs: Sequence[str], options: RunOptions) -> list[Extracted]:
    """Read every input (files, globs, directories) into frames with source positions."""
    parts: list[Extracted] = []
    header_row = 0 if options.no_header else options.header_row
    for path in expand_inputs(inputs):
        parts.extend(
            read_file(path, sheet=options.sheet, header_row=header_row, limits=options.limits)
        )
    return parts


@dataclass(frozen=True)
class Skipped:
    """An input (file or sheet) left out of the run, and why."""

    file: str
    sheet: str | None
    reason: str
    headers: tuple[str, ...]
    rows: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``summary.json``."""
        return {**asdict(self), "headers": list(self.headers)}


def map_parts(
    parts: Sequence[Extracted], options: RunOptions, override: Mapping[str, str | None]
) -> tuple[list[tuple[Extracted, ColumnMapping]], list[Skipped]]:
    """Each part's column mapping.  With several parts (a folder, ``--sheet '*'``), a part
    without a phone column is skipped and listed; only when no part has one is it an error."""
    mapped: list[tuple[Extracted, ColumnMapping]] = []
    skipped: list[Skipped] = []
    first_error: InputError | None = None
    for e in parts:
        try:
            m = infer_mapping(
                e.columns,
                override=override,
                keep_extra_columns=options.keep_extra_columns,
                source=_label(e),
                sample=e.frame,
            )
        except InputError as exc:
            if len(parts) == 1:
                raise
            first_error = first_error or exc
            reason = "no phone column (by header or by content)"
            skipped.append(Skipped(e.source_file, e.sheet, reason, e.columns, e.rows_read))
            continue
        mapped.append((e, m))
    if not mapped and first_error is not None:
        seen = "; ".join(
            f"{s.file}{f' [{s.sheet}]' if s.sheet else ''}: " + headers_seen(s.headers)
            for s in skipped[:5]
        )
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise InputError(
            f"no input has a phone column. Headers seen: {seen}{more}",
            hint='name the column with --mapping FILE, e.g. {"Your header": "phone"}',
        )
    return mapped, skipped


def transform(
    parts: Sequence[Extracted],
    options: RunOptions,
    *,
    offset: int = 0,
    mappings: Sequence[ColumnMapping] | None = None,
    workers: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, list[tuple[Extracted, ColumnMapping]], list[Skipped]]:
    """Map, normalise, validate: return (canonical frame, originals frame, mappings, parts
    skipped for want of a phone column).  ``offset``: the ``__rid`` of the first row (a batch
    after the first); ``mappings``: one per part, already inferred (the first batch's);
    ``workers``: processes for phonenumbers calls (None: up to two)."""
    override = load_mapping_file(options.mapping_file) if options.mapping_file else {}
    if options.country_column:
        if not any(options.country_column in e.columns for e in parts):
            raise UsageError(f"--country-column {options.country_column!r}: no such column")
        override[options.country_column] = "country"
    mapped: list[tuple[Extracted, ColumnMapping]] = []
    canon_parts, original_parts = [], []
    if mappings is None:
        to_map, skipped = map_parts(parts, options, override)
    else:
        to_map, skipped = list(zip(parts, mappings, strict=True)), []
    for e, m in to_map:
        mapped.append((dataclasses.replace(e, frame=e.frame.clear()), m))  # data: in framed
        framed = (
            e.frame.lazy()  # one query
            .with_row_index(RID, offset=offset)
            .with_columns(
                pl.col(RID).cast(pl.Int64),
                pl.col(SRC_FILE).cast(pl.Categorical),  # a path per row would cost ~35 B a row
            )
            .collect(engine="in-memory")
        )
        offset += e.frame.height
        canon_part = apply_mapping(framed, m).with_columns(framed.get_column(RID))
        canon_parts.append(_with_phone_candidates(canon_part, framed, m, e.number_cells))
        original_parts.append(framed)
    canon = pl.concat(canon_parts, how="diagonal_relaxed", rechunk=False)
    originals = pl.concat(original_parts, how="diagonal_relaxed", rechunk=False)
    del canon_parts, original_parts
    has_country = any(m.fields.get("country") for _, m in mapped)
    if has_country:  # country names in any language, ISO alpha-3 -> alpha-2
        canon = resolve_countries(canon, country_col="country", phone_col="phone")
    canon = _phones(canon, options, "country" if has_country else None, workers)
    canon = validate(
        canon,
        ValidateOptions(
            default_name=options.default_name,
            extra_groups=options.extra_groups,
            strict=options.strict,
        ),
    )
    canon = _with_read_warnings(canon, originals)
    return canon.drop("phone", "country"), originals, mapped, skipped  # raw cells: originals


PHONE_CAND = "__phone_cand_"
PHONE_CAND_SRC = "__phone_src_"
PHONE_NUM = "__phone_num_"


def _phones(
    canon: pl.DataFrame, options: RunOptions, country_col: str | None, workers: int | None = None
) -> pl.DataFrame:
    """normalize_phones over the candidates of :func:`_with_phone_candidates`; with several,
    ``__phone_column`` becomes the column the kept number (or the error) came from."""
    n = sum(c.startswith(PHONE_CAND) for c in canon.columns)
    cands = [f"{PHONE_CAND}{i}" for i in range(n)]
    nums = {c: f"{PHONE_NUM}{i}" for i, c in enumerate(cands) if f"{PHONE_NUM}{i}" in canon.columns}
    canon = normalize_phones(
        canon,
        phone_col=cands if n > 1 else cands[0],
        region=options.region,
        country_col=country_col,
        mobile_only=options.mobile_only,
        legacy=options.legacy_numbers,
        numeric_cols=nums,
        workers=workers,
    )
    srcs = [s for i in range(n) if (s := f"{PHONE_CAND_SRC}{i}") in canon.columns]
    if n > 1:
        picked = [pl.when(pl.col(PICK) == int(s[len(PHONE_CAND_SRC) :])).then(s) for s in srcs]
        canon = canon.with_columns(
            pl.coalesce(*picked, PHONE_SOURCE).cast(pl.Categorical).alias(PHONE_SOURCE)
        ).drop(PICK)
    return canon.drop(*cands, *nums.values(), *srcs)


def _with_phone_candidates(
    canon: pl.DataFrame,
    framed: pl.DataFrame,
    m: ColumnMapping,
    number_cells: pl.DataFrame | None,
) -> pl.DataFrame:
    """``canon`` + the row's phone candidates, in the mapping's order (mobile and WhatsApp
    first), as ``__phone_cand_<i>`` + the source column's name ``__phone_src_<i>``.

    Files with several phone columns (a repeated header ``Phone``, ``Phone_2`` counts) get
    one candidate per column: the first valid number across them wins (:mod:`phone_pick`).
    When a preset labels its numbers, the mapping's own phone (mobile-labelled first) is the
    first candidate.  Other files: the phone itself (zero-copy), in case another file has
    several.  ``__phone_num_<i>``: the spreadsheet's number cells of that column, if any.
    """
    cols = list(m.phone_candidates)
    others = (*m.unmapped, *m.custom.values())  # Phone_2: custom with --keep-extra-columns
    cols += [c for c in others if any(re.fullmatch(rf"{re.escape(p)}_\d+", c) for p in cols)]
    numbers = number_cells.columns if number_cells is not None else []
    single = len(cols) < 2
    first = [canon.get_column("phone")] if m.phone_labels and not single else []
    nums = [
        number_cells[c].alias(f"{PHONE_NUM}{i + len(first)}")  # type: ignore[index]
        for i, c in enumerate(cols)
        if c in numbers
    ]
    if single:  # one query either way
        return canon.with_columns(*nums, pl.col("phone").alias(f"{PHONE_CAND}0"))
    canon = canon.with_columns(nums)
    exprs = []
    for c in cols:
        cell = pl.col(c).cast(pl.String).str.strip_chars()
        if m.multi_value_separator:
            cell = cell.str.replace_all(m.multi_value_separator.strip(), " ; ", literal=True)
        exprs.append(pl.when((cell != "") & ~is_placeholder(cell)).then(cell))
    found = [*first, *framed.select(exprs).get_columns()]
    names = [None] * len(first) + cols
    return canon.with_columns(
        *(s.alias(f"{PHONE_CAND}{i}") for i, s in enumerate(found)),
        *(pl.lit(n, pl.String).alias(f"{PHONE_CAND_SRC}{i}") for i, n in enumerate(names)),
    )


def _with_read_warnings(canon: pl.DataFrame, originals: pl.DataFrame) -> pl.DataFrame:
    """Add what the readers changed in a row (control characters removed, bytes repaired)
    to the row's warnings."""
    if READ_WARNING not in originals.columns:
        return canon
    found = originals.filter(pl.col(READ_WARNING).is_not_null()).select(
        RID, READ_WARNING, READ_WARNING_MSG
    )
    if found.is_empty():
        return canon
    canon = canon.join(found, on=RID, how="left", maintain_order="left")
    merged = {
        "__warning": (READ_WARNING, ";"),
        "__warning_msg": (READ_WARNING_MSG, "; "),
    }
    return canon.with_columns(
        pl.concat_str([pl.col(own).cast(pl.String), pl.col(read)], separator=sep, ignore_nulls=True)
        .pipe(lambda e: pl.when(e != "").then(e))
        .cast(canon.schema[own])
        .alias(own)
        for own, (read, sep) in merged.items()
    ).drop(READ_WARNING, READ_WARNING_MSG)


def _field_columns(mapped: Sequence[tuple[Extracted, ColumnMapping]]) -> pl.DataFrame:
    """(file, sheet, field) -> source column name(s), for the report's ``column``."""
    rows = []
    for e, m in mapped:
        names = dict(m.fields)
        if "name" not in names:
            names["name"] = names.get("first_name", ()) + names.get("last_name", ())
        for fld, cols in names.items():
            rows.append((e.source_file, e.sheet or "", fld, " + ".join(cols) or None))
    return pl.DataFrame(
        rows, schema=["__k_file", "__k_sheet", "__error_field", "column"], orient="row"
    )


def _problems(
    rejected: pl.DataFrame,
    duplicates: pl.DataFrame,
    kept: pl.DataFrame,
    mapped: Sequence[tuple[Extracted, ColumnMapping]],
) -> pl.DataFrame:
    src = [RID, SRC_FILE, SRC_SHEET, SRC_ROW]
    lookup = _field_columns(mapped)
    rej = (
        rejected.with_columns(
            pl.col(SRC_FILE).cast(pl.String).alias("__k_file"),
            pl.col(SRC_SHEET).fill_null("").alias("__k_sheet"),
            pl.col("__error_field").cast(pl.String),
        )
        .join(lookup, on=["__k_file", "__k_sheet", "__error_field"], how="left")
        .select(
            *src,
            pl.when(pl.col("__error_field") == "phone")
            .then(pl.col(PHONE_SOURCE).cast(pl.String))
            .otherwise(pl.col("column"))
            .alias("column"),
            pl.col("__error").cast(pl.String).alias("code"),
            pl.col("__error_msg").alias("message"),
        )
    )
    where = kept.select(
        pl.col(RID).alias("__dup_of"),
        pl.col(SRC_FILE).cast(pl.String).alias("__k_file"),
        pl.col(SRC_SHEET).alias("__k_sheet"),
        pl.col(SRC_ROW).alias("__k_row"),
    )
    sheet = pl.when(pl.col("__k_sheet").is_not_null()).then(
        pl.format(", sheet {}", pl.col("__k_sheet"))
    )
    dup = duplicates.join(where, on="__dup_of", how="left").select(
        *src,
        pl.col(PHONE_SOURCE).cast(pl.String).alias("column"),
        pl.lit("DUPLICATE").alias("code"),
        pl.format(
            "same phone {} as row {} of {}{} (that row is kept)",
            pl.col("__phone_e164"),
            pl.col("__k_row"),
            pl.col("__k_file"),
            sheet.fill_null(""),
        ).alias("message"),
    )
    return pl.concat([rej, dup], how="vertical_relaxed")


def _warning_rows(
    kept: pl.DataFrame, mapped: Sequence[tuple[Extracted, ColumnMapping]]
) -> pl.DataFrame:
    """Kept rows with a warning, as problem lines; ``column`` is the source column of the
    field the first warning concerns (the phone's column, the e-mail's...)."""
    fields = {code: fld for code, (fld, _, _) in CODES.items()}
    first = pl.col("__warning").cast(pl.String).str.split(";").list.first()
    return (
        kept.filter(pl.col("__warning").is_not_null())
        .with_columns(
            pl.col(SRC_FILE).cast(pl.String).alias("__k_file"),
            pl.col(SRC_SHEET).fill_null("").alias("__k_sheet"),
            first.replace_strict(fields, default="phone", return_dtype=pl.String).alias(
                "__error_field"
            ),
        )
        .join(_field_columns(mapped), on=["__k_file", "__k_sheet", "__error_field"], how="left")
        .select(
            RID,
            SRC_FILE,
            SRC_SHEET,
            SRC_ROW,
            pl.when(pl.col("__error_field") == "phone")
            .then(pl.col(PHONE_SOURCE).cast(pl.String))
            .otherwise(pl.col("column"))
            .alias("column"),
            pl.col("__warning").cast(pl.String).alias("code"),
            pl.col("__warning_msg").alias("message"),
        )
    )


LoadStep = Callable[[pl.DataFrame, Progress], tuple[dict[str, Any], pl.DataFrame, Any]]
"""(contacts, progress) -> (summary's ``load`` object, failures (position, code, message),
the abort error or None)."""


def _load_problems(kept: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """Rows the load settled as failed, as problem lines (``kept`` sorted as sent)."""
    src = [RID, SRC_FILE, SRC_SHEET, SRC_ROW]
    if failures.is_empty():
        return kept.clear().select(
            *src,
            pl.lit(None, pl.String).alias("column"),
            pl.lit(None, pl.String).alias("code"),
            pl.lit(None, pl.String).alias("message"),
        )
    return (
        kept.select(*src, pl.col(PHONE_SOURCE).cast(pl.String).alias("column"))
        .with_row_index("position")
        .join(failures.cast({"position": pl.UInt32}), on="position", how="inner")
        .select(*src, "column", "code", "message")
    )


def _counts(series: pl.Series) -> dict[str, int]:
    codes = series.drop_nulls().cast(pl.String).str.split(";").explode()
    return {k: int(v) for k, v in sorted(codes.value_counts().iter_rows())}


def validate_files(
    inputs: Sequence[str],
    options: RunOptions,
    report_dir: Path,
    progress: Progress | None = None,
    *,
    command: str = "validate",
    load: LoadStep | None = None,
    section: str = "load",
    carry: Sequence[str] = (),
    batch_bytes: int | None = None,
) -> RunResult:
    """Run extract -> transform -> [load] -> report and write the report directory.

    ``load`` (import, delete, group changes) gets the valid contacts and its summary goes under
    ``summary[section]``; ``carry`` names input columns passed along to it (e.g. ``id``).
    A validate of one large CSV runs in batches of about ``batch_bytes`` (None: files from
    48 MiB, 0: never), with the same outputs (:mod:`contactpipe.streamed`)."""
    progress = progress or NullProgress()
    if load is None and not carry:
        from contactpipe import streamed
        from contactpipe.extract import NotStreamable

        path = streamed.streamable(inputs, options, batch_bytes)
        if path is not None:
            try:
                return streamed.validate_streamed(
                    path, options, report_dir, progress, command=command, batch_bytes=batch_bytes
                )
            except NotStreamable:
                pass  # read it whole, from the start: every report file is written again
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    with progress.stage("extract", "reading files") as st_extract:
        parts = extract_all(inputs, options)
        rows_read = sum(e.rows_read for e in parts)
        empty_rows = sum(e.empty_rows for e in parts)
        st_extract.note(f"{rows_read:,} rows from {len(parts)} file(s)/sheet(s)")
        prepare_report_dir(report_dir, [e.source_file for e in parts])
    with progress.stage("transform", "mapping, phones, validation, dedupe") as st_transform:
        canon, originals, mapped, skipped = transform(parts, options)
        parts = [e for e, _ in mapped]  # the same files, without a second copy of their data
        rows_read = sum(e.rows_read for e in parts)  # skipped inputs are not part of the run
        empty_rows = sum(e.empty_rows for e in parts)
        failed = canon.get_column("__error").is_not_null()
        rejected = canon.filter(failed)
        kept, duplicates = dedupe(canon, options.on_duplicate, eligible=~failed)
        del canon, failed  # only the split frames are needed from here: keep the peak low
        st_transform.note(
            f"{kept.height:,} contacts, {rejected.height:,} rejected, "
            f"{duplicates.height:,} duplicates"
        )
    kept = kept.sort(RID)
    contacts = contacts_frame(kept)
    wanted = [c for c in carry if c in originals.columns and c not in contacts.columns]
    if wanted:
        extra = kept.select(RID).join(
            originals.select(RID, *wanted), on=RID, how="left", maintain_order="left"
        )
        contacts = contacts.with_columns(extra.drop(RID).cast(pl.String))
    load_summary: dict[str, Any] | None = None
    load_failures = pl.DataFrame(
        schema={"position": pl.UInt32, "code": pl.String, "message": pl.String}
    )
    aborted = None
    seconds_load = 0.0
    non_empty = rows_read - empty_rows
    limit = options.max_error_rate
    over_limit = limit is not None and non_empty > 0 and rejected.height / non_empty > limit
    if load is not None and over_limit:
        # too many rejects usually means a wrong mapping or region: load nothing
        reason = (
            f"not sent: {rejected.height / non_empty:.1%} of rows rejected, above "
            f"--max-error-rate {limit:.1%}"
        )
        load_failures = pl.DataFrame(
            {
                "position": pl.arange(0, kept.height, eager=True).cast(pl.UInt32),
                "code": pl.repeat("NOT_SENT", kept.height, eager=True),
                "message": pl.repeat(reason, kept.height, eager=True),
            }
        )
        load_summary = {"skipped": reason, "loaded": 0, "failed": kept.height}
    elif load is not None:
        t_load = time.perf_counter()
        load_summary, load_failures, aborted = load(contacts, progress)
        seconds_load = time.perf_counter() - t_load
    with progress.stage("report", str(report_dir)) as st_report:
        seen_cols: dict[str, None] = {}  # a dict, not a list: 16k columns stay linear
        for e in parts:
            seen_cols.update(dict.fromkeys(e.columns))
        user_cols = list(seen_cols)
        problems = pl.concat(
            [_problems(rejected, duplicates, kept, mapped), _load_problems(kept, load_failures)],
            how="vertical_relaxed",
        )
        errors = problem_lines(problems, originals, user_cols)
        warn_rows = _warning_rows(kept, mapped)
        warnings = problem_lines(warn_rows, originals, user_cols)
        # --max-error-rate counts the rows the API refused as well as the ones we rejected
        api_rejected = int(load_failures.get_column("code").eq("API_REJECTED").sum())
        by_code = _counts(rejected.get_column("__error"))
        if duplicates.height:
            by_code["DUPLICATE"] = duplicates.height
        by_code.update(_counts(kept.get_column("__warning")))
        if not load_failures.is_empty():
            by_code.update(_counts(load_failures.get_column("code")))
        counts = {
            "rows_read": rows_read,
            "empty_rows": empty_rows,
            "valid": kept.height,
            "rejected": rejected.height,
            "duplicates": duplicates.height,
            "warnings": warn_rows.height,
        }
        summary = run_summary(
            command, started, options, mapped, counts=counts, refused=api_rejected,
            by_code=by_code, parts=parts, skipped=skipped,
        )  # fmt: skip
        if load_summary is not None:
            summary[section] = load_summary
        files = write_report(
            report_dir,
            errors=errors,
            warnings=warnings,
            contacts=contacts,
            xlsx=options.errors_xlsx,
        )
        st_report.note(f"{errors.height:,} lines in errors.csv -> {report_dir}")
    summary["seconds"] = {
        "extract": round(st_extract.seconds, 3),
        "transform": round(st_transform.seconds, 3),
        **({"load": round(seconds_load, 3)} if load is not None else {}),
        "report": round(st_report.seconds, 3),
        "total": round(time.perf_counter() - t0, 3),
    }
    summary["files_written"] = files
    accounted = empty_rows + kept.height + rejected.height + duplicates.height
    if accounted != rows_read:  # a bug, never the user's input: say so rather than mislead
        raise RuntimeError(f"internal error: {rows_read} rows read but {accounted} accounted for")
    if load_summary is not None and not load_summary.get("dry_run"):
        settled = load_summary["loaded"] + load_summary["failed"]
        if settled != kept.height:
            raise RuntimeError(
                f"internal error: {kept.height} contacts to load but {settled} settled"
            )
    if options.html:
        files["report_html"] = str(write_html(report_dir, summary, errors, warnings))
    write_json(summary, Path(files["summary_json"]))
    return RunResult(summary=summary, contacts=contacts, report_files=files, aborted=aborted)


def _default_load() -> LoadOptions:
    """``LoadOptions()``, its module imported by the first import that needs it."""
    from contactpipe.load.base import LoadOptions

    return LoadOptions()


@dataclass(frozen=True)
class ImportOptions:
    """What ``contactpipe import`` adds to :class:`RunOptions`: where to load and how."""

    target: str
    base_url: str | None = None
    load: LoadOptions = field(default_factory=_default_load)
    env: Mapping[str, str] | None = None
    """Where credentials come from (default: ``os.environ``)."""
    state: StateLocation | None = field(default=None, repr=False)  # a URL may hold a password
    """The sync state (``--state``; the CLI defaults it to the per-user file): a SQLite file
    (a ``Path``) or a ``postgresql://`` URL (a ``str``, shared by runs on several machines).
    An import then sends only the rows whose payload changed since the API last confirmed
    them.  None: no state (every row is sent)."""
    full_refresh: bool = False
    """Ignore the state's answers, load every row the stateless way and rebuild the state."""
    resume: bool = False
    """Continue the account's last interrupted import (same input files, same run id)."""
    mirror: Literal["state", "all"] | None = None
    """After a complete import, delete the contacts not in the input: those the state says
    this tool loaded (``state``) or every one a full listing finds (``all``)."""
    max_delete: int | None = 100
    """``--mirror``'s safety limit (None: ``--yes``)."""
    defer_after: float | None = None
    """``--defer-after``: stop the load cleanly before a wait longer than this many seconds
    (a rate-limit window, a server pause, a bulk job still running), checkpoint it in the
    sync state (required) and report it deferred (exit 75); ``resume`` continues it.
    None: every wait is waited out."""
    yield_after: float | None = None
    """``--yield-after``: once the load has been sending for this many seconds, defer it the
    same way with no wait (resume at once): a long load (MsgFlash's one request per contact)
    hands its worker back in slices instead of holding it to the end.  Needs the state."""


def _target_config(cls: type[Target], imp: ImportOptions) -> TargetConfig:
    env = os.environ if imp.env is None else imp.env
    if not imp.load.dry_run:
        return cls.config_from_env(env, imp.base_url)
    try:  # a dry run sends nothing: it may plan without credentials
        return cls.config_from_env(env, imp.base_url)
    except UsageError:
        return cls.placeholder_config(imp.base_url)


def mask(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every credential value replaced by ``***`` (a last line of defence: the
    messages come from the APIs, which have no reason to quote a credential)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _failures_frame(result: LoadResult, secrets: Sequence[str] = ()) -> pl.DataFrame:
    items = sorted((i, (c, mask(m, secrets))) for i, (c, m) in result.failures.items())
    return pl.DataFrame(
        {
            "position": [i for i, _ in items],
            "code": [c for _, (c, _m) in items],
            "message": [m for _, (_c, m) in items],
        },
        schema={"position": pl.UInt32, "code": pl.String, "message": pl.String},
    )


if TYPE_CHECKING:
    Action = Callable[[Target, pl.DataFrame], LoadResult]
    Planner = Callable[[Target, pl.DataFrame], list[PlanLine]]
OnPlan = Callable[[list[dict[str, Any]]], None]


def _head(target: Target, imp: ImportOptions) -> dict[str, Any]:
    """What every target step's summary starts with."""
    return {
        "target": target.name,
        "base_url": target.config.base_url,
        "dry_run": imp.load.dry_run,
        "batch_size": imp.load.batch_size,
        "rate_limit_store": target.rate_limit_store,
    }


def _settle(target: Target, contacts: pl.DataFrame, act: Action) -> LoadResult:
    """``act(target, contacts)``; on Ctrl-C, SIGTERM or a remote failure no target code
    settled (the sync state's server going away mid-load), the target's ledger so far with
    the unsettled rows of the request in flight marked OUTCOME_UNKNOWN and every other row
    not settled NOT_SENT (so the report still says what was done; the exit code is the
    stop's: 130/143, or 4)."""
    from contactpipe.load.base import LoadResult

    try:
        return act(target, contacts)
    except Deferred as exc:  # a long wait met where no target code settles the rows
        result = target.result or LoadResult(target.name, contacts.height)
        result.aborted = exc
        result.defer(exc)
        return result
    except KeyboardInterrupt as stop:
        result = target.result or LoadResult(target.name, contacts.height)
        reason, code = interrupt_reason(stop)
        error = Interrupted(reason, exit_code=code)
        result.interrupt(error, target.stats.requests)
        return result
    except RemoteError as exc:  # one no target code settles: the sync state's server gone
        result = target.result or LoadResult(target.name, contacts.height)
        result.interrupt(exc, target.stats.requests)
        return result


def _outcome(aborted: PipelineError | None) -> PipelineError | None:
    """What stopped the load, as the run's outcome: a deferral is raised in the load as a
    terminal remote error (so that targets stop the way they do for a quota), but it is
    none: the outcome is a plain :class:`~contactpipe.errors.Deferred` (exit 75), which a
    caller sorting remote errors into retryable or not never mistakes for a refusal."""
    if isinstance(aborted, Deferred) and isinstance(aborted, RemoteError):
        return Deferred(
            aborted.message, resume_at=aborted.resume_at, reason=aborted.reason, hint=aborted.hint
        )
    return aborted


def _ledger(target: Target, result: LoadResult) -> dict[str, Any]:
    """The ledger's counts, the client's statistics, the abort reason (credentials masked),
    seconds per step and notes."""
    secrets = target.config.secrets
    deferred = result.aborted if isinstance(result.aborted, Deferred) else None
    out = {
        **result.counts(),
        **target.stats.as_dict(),
        "aborted": mask(result.aborted.message, secrets) if result.aborted else None,
        "seconds": result.seconds,
        "notes": result.notes,
    }
    if deferred is not None:  # not an abort: the load stopped on purpose, to resume later
        from contactpipe.load.kit import defer

        watch = defer.current()
        out["aborted"] = None
        out["deferred"] = {
            "resume_at": deferred.resume_at.isoformat(),
            "reason": mask(deferred.reason, secrets),
            "defer_after_s": watch.after_s if watch and watch.after_s != math.inf else None,
            "yield_after_s": watch.yield_after_s if watch is not None else None,
            "wait_s": round(getattr(deferred, "wait_s", 0.0), 1),
            "rows": sum(1 for c, _ in result.failures.values() if c == defer.DEFERRED),
            "jobs": list(getattr(deferred, "jobs", ())),
        }
    return out


def _run_with_target(
    inputs: Sequence[str],
    options: RunOptions,
    imp: ImportOptions,
    report_dir: Path,
    progress: Progress | None,
    *,
    command: str,
    section: str,
    act: Action,
    plan: Planner,
    on_plan: OnPlan | None,
    label: str,
    carry: Sequence[str] = (),
) -> RunResult:
    """validate_files with a step that plans (``on_plan`` sees the plan before anything is
    written), hands the valid contacts to ``act`` on the target and reports its ledger and
    plan under ``summary[section]``."""
    from contactpipe.load.kit import state as sync
    from contactpipe.state import open_store, state_exists

    cls = registry.get(imp.target)
    env = os.environ if imp.env is None else imp.env
    config = cls.config_from_env(env, imp.base_url)  # checked before any file is read
    target = cls(config, imp.load)
    store: StateStore | None = None
    target.rate_store()  # so is the rate limit store

    def step(contacts: pl.DataFrame, progress: Progress) -> tuple[dict[str, Any], Any, Any]:
        target.progress = progress
        lines: list[dict[str, Any]] = []
        with progress.stage(section, f"{label} {cls.title} at {config.base_url}") as st:
            try:
                lines = [dataclasses.asdict(line) for line in plan(target, contacts)]
            except RemoteError as exc:  # the plan's one request was refused: nothing is sent
                result = target.new_result(contacts.height)
                result.abort(exc)
            else:
                if on_plan is not None:
                    on_plan(lines)
                result = _settle(target, contacts, act)
            counts = result.counts()
            st.note(f"{counts['loaded']:,} done, {counts['failed']:,} failed")
        if store is not None:  # the next import re-sends what changed here
            sync.forget_contacts(store, target, contacts)
        codes = [c for c, _ in result.failures.values()]
        summary = {
            **_head(target, imp),
            **_ledger(target, result),
            "not_found": codes.count("NOT_FOUND"),
            "plan": lines,
        }
        return summary, _failures_frame(result, config.secrets), result.aborted

    try:
        if imp.state is not None and not imp.load.dry_run and state_exists(imp.state):
            store = open_store(imp.state)  # first: a state server out of reach stops the run
        return validate_files(  # before anything is written
            inputs,
            options,
            report_dir,
            progress,
            command=command,
            load=step,
            section=section,
            carry=carry,
        )
    finally:
        target.close()
        if store is not None:
            store.close()


def delete_files(
    inputs: Sequence[str],
    options: RunOptions,
    imp: ImportOptions,
    report_dir: Path,
    progress: Progress | None = None,
    *,
    limit: int | None = 100,
    on_plan: OnPlan | None = None,
) -> RunResult:
    """Delete from ``imp.target`` the contacts whose phones (or ``id``) the files list, after
    the same validation as import.  More than ``limit`` found -> UsageError, nothing deleted;
    with ``imp.load.dry_run`` only look them up.  ``summary["delete"]``: ``loaded`` = deleted
    (or that would be), ``not_found``, ``failed``."""

    def act(target: Target, contacts: pl.DataFrame) -> LoadResult:
        dry = imp.load.dry_run  # a dry run is how one sees the list before choosing --yes
        return target.delete(contacts, dry_run=dry, limit=None if dry else limit)

    return _run_with_target(
        inputs,
        options,
        imp,
        report_dir,
        progress,
        command="delete",
        section="delete",
        act=act,
        plan=lambda target, contacts: target.delete_plan(contacts),
        on_plan=on_plan,
        label="deleting from",
        carry=("id",),
    )


def change_group_files(
    inputs: Sequence[str],
    options: RunOptions,
    imp: ImportOptions,
    report_dir: Path,
    group: str,
    *,
    add: bool,
    progress: Progress | None = None,
    on_plan: OnPlan | None = None,
) -> RunResult:
    """Add (or remove) the contacts the files list to (from) ``group`` of ``imp.target``;
    ``summary["groups"]``: ``loaded`` = changed, ``not_found``, ``failed``."""

    def act(target: Target, contacts: pl.DataFrame) -> LoadResult:
        return target.change_members(group, contacts, add=add)

    return _run_with_target(
        inputs,
        options,
        imp,
        report_dir,
        progress,
        command="groups " + ("add" if add else "remove"),
        section="groups",
        act=act,
        plan=lambda target, contacts: target.members_plan(group, contacts, add=add),
        on_plan=on_plan,
        label=f"{'adding to' if add else 'removing from'} group {group!r} of",
    )


def open_target(imp: ImportOptions, progress: Progress | None = None) -> Target:
    """A target with credentials from the environment, for export and group listings."""
    cls = registry.get(imp.target)
    env = os.environ if imp.env is None else imp.env
    target = cls(cls.config_from_env(env, imp.base_url), imp.load, progress)
    target.rate_store()  # an unreachable rate limit store fails before any request
    return target


SEP = "\x1f"  # ASCII unit separator: never inside a tag or a group name


def export_frame(rows: Sequence[Mapping[str, Any]], with_groups: bool) -> pl.DataFrame:
    """Exported contacts (canonical dicts) as a frame: the canonical columns, ``groups`` with
    ``with_groups``, one ``custom.<key>`` column per custom field (how import reads them back),
    ``id, created_at, updated_at``, then the target's extras."""
    from contactpipe.load.base import EXPORT_FIELDS, EXPORT_META_COLUMNS

    custom_keys: dict[str, None] = {}
    extras: dict[str, None] = {}
    known = {*EXPORT_FIELDS, "groups", "custom_fields", *EXPORT_META_COLUMNS}
    for r in rows:
        for k in r.get("custom_fields") or {}:
            custom_keys.setdefault(k, None)
        for k in r:
            if k not in known:
                extras.setdefault(k, None)
    lists = ["tags", "groups"] if with_groups else ["tags"]  # built as text, split below
    schema: dict[str, Any] = {f: pl.String for f in EXPORT_FIELDS}
    schema.update(dict.fromkeys(BOOL_FIELDS, pl.Boolean))
    if with_groups:
        schema["groups"] = pl.String
    for k in sorted(custom_keys):
        schema[f"custom.{k}"] = pl.String
    for k in (*EXPORT_META_COLUMNS, *extras):
        schema[k] = pl.String

    data: dict[str, list[Any]] = {}
    customs = [r.get("custom_fields") or {} for r in rows]
    for col, dtype in schema.items():
        if col.startswith("custom."):
            values = [c.get(col[7:]) for c in customs]
        else:
            values = [r.get(col) for r in rows]
        if col in lists:  # joined here, split by polars: 20x faster than Python lists
            values = [SEP.join(map(str, v)) if v else None for v in values]
        elif dtype == pl.Boolean:
            values = [None if v is None else bool(v) for v in values]
        elif any(v is not None and not isinstance(v, str) for v in values):
            values = [v if v is None or isinstance(v, str) else json_text(v) for v in values]
        data[col] = values
    empty = pl.lit(pl.Series([[]], dtype=pl.List(pl.String)))
    frame = pl.DataFrame(data, schema=schema)
    return frame.with_columns(pl.col(c).str.split(SEP).fill_null(empty) for c in lists)


def json_text(value: Any) -> str:
    """A non-string API value as text: numbers as written, objects as compact JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value).lower() if isinstance(value, bool) else str(value)


def export_contacts(
    imp: ImportOptions,
    output: Path,
    filters: ExportFilters,
    *,
    with_groups: bool = False,
    excel: bool = False,
    progress: Progress | None = None,
    on_plan: Callable[[list[dict[str, Any]]], None] | None = None,
    report_dir: Path | None = None,
    html: bool = True,
) -> dict[str, Any]:
    """Page through ``imp.target``'s contacts (filtered) and write them to ``output`` in the
    format of its extension, atomically.  ``on_plan`` sees the plan before the first page.
    With ``report_dir``, the summary also goes there as summary.json, and (``html``) the page
    of the run as report.html.  Returns the export summary."""
    from contactpipe.report.writer import export_format, write_export

    export_format(output)  # a bad extension fails before any request
    started = dt.datetime.now(dt.UTC)
    if report_dir is not None:  # a folder that cannot hold the report fails before too
        _check_export_report_dir(report_dir, output)
    progress = progress or NullProgress()
    target = open_target(imp, progress)
    t0 = time.perf_counter()
    try:
        plan = [dataclasses.asdict(line) for line in target.export_plan(filters, with_groups)]
        if on_plan is not None:
            on_plan(plan)
        rows: list[Mapping[str, Any]] = []
        with progress.stage("export", f"{target.title} -> {output}") as st:
            for page in target.export(filters, with_groups):  # the target shows its progress
                rows.extend(page)
            t_fetch = time.perf_counter() - t0
            frame = export_frame(rows, with_groups)
            output.parent.mkdir(parents=True, exist_ok=True)
            write_export(frame, output, excel=excel)
            st.note(f"{frame.height:,} contacts -> {output}")
        stats = target.stats.as_dict()
    finally:
        target.close()
    summary: dict[str, Any] = {
        "contactpipe_version": __version__,
        "command": "export",
        "started_at": started.isoformat(timespec="seconds"),
        "target": target.name,
        "output": str(output),
        "rows": frame.height,
        "columns": frame.columns,
        "filled": {  # column -> contacts with a value (a non-empty list for tags, groups)
            name: int(((col.list.len() > 0) if col.dtype == pl.List else col.is_not_null()).sum())
            for name, col in frame.to_dict().items()
        },
        "total_reported": target.export_total,
        "filters": dataclasses.asdict(filters),
        "with_groups": with_groups,
        "rate_limit_store": target.rate_limit_store,
        **stats,
        "plan": plan,
        "excel": excel,
        "seconds": {"fetch": round(t_fetch, 3), "total": round(time.perf_counter() - t0, 3)},
    }
    if report_dir is not None:
        _write_export_report(summary, report_dir, html)
    return summary


def _check_export_report_dir(report_dir: Path, output: Path) -> None:
    prepare_report_dir(report_dir, [])
    for name in ("summary.json", REPORT_NAME):
        if output.resolve() == (report_dir / name).resolve():
            raise UsageError(
                f"--output {output}: the report directory writes its own {name} there",
                hint="choose another --output or --report-dir",
            )


def _write_export_report(summary: dict[str, Any], report_dir: Path, html: bool) -> None:
    """summary.json and report.html of an export: no input rows, so no errors.csv."""
    files = {"export": summary["output"], "summary_json": str(report_dir / "summary.json")}
    summary["files_written"] = files
    if html:
        files["report_html"] = str(write_html(report_dir, summary))
    write_json(summary, Path(files["summary_json"]))


def migrate(
    source: ImportOptions,
    dest: ImportOptions,
    options: RunOptions,
    report_dir: Path,
    *,
    filters: ExportFilters | None = None,
    with_groups: bool = True,
    progress: Progress | None = None,
    on_plan: Callable[[list[dict[str, Any]]], None] | None = None,
    on_import_plan: OnPlan | None = None,
) -> RunResult:
    """Export ``source.target`` to ``report_dir/export-<source>.csv``, then import that file
    into ``dest.target`` through the canonical schema, with the same report as import.
    ``summary["migrate"]`` lists the exported columns the destination has no place for."""
    from contactpipe.load.base import EXPORT_FIELDS, ExportFilters

    if source.target == dest.target and source.base_url == dest.base_url:
        raise UsageError("--from and --to are the same API", hint="give another --to")
    prepare_report_dir(report_dir, [])
    exported = report_dir / f"export-{source.target}.csv"
    can_group = with_groups and registry.info(source.target).can("groups")
    ex = export_contacts(
        source,
        exported,
        filters or ExportFilters(),
        with_groups=can_group,
        progress=progress,
        on_plan=on_plan,
    )
    result = import_files(
        [str(exported)], options, dest, report_dir, progress, on_plan=on_import_plan
    )
    load = result.summary.get("load", {})
    dropped = {  # columns the import has no field for: the source's ids, timestamps, extras
        c: n
        for c, n in ex["filled"].items()
        if c not in (*EXPORT_FIELDS, "groups") and not c.startswith("custom.")
    }
    dropped.update(load.get("not_carried", {}))
    result.summary["command"] = "migrate"
    result.summary["migrate"] = {
        "from": source.target,
        "to": dest.target,
        "exported": ex["rows"],
        "export_file": str(exported),
        "export": ex,
        "not_carried": {k: v for k, v in dropped.items() if v},
    }
    if options.html:  # again, now with the export's part
        write_html(report_dir, result.summary)
    write_json(result.summary, Path(result.report_files["summary_json"]))
    return result


def import_files(
    inputs: Sequence[str],
    options: RunOptions,
    imp: ImportOptions,
    report_dir: Path,
    progress: Progress | None = None,
    on_plan: OnPlan | None = None,
) -> RunResult:
    """Run extract -> transform -> load -> report: validate the files, send the valid contacts
    to ``imp.target`` (or, with ``dry_run``, write the exact request bodies and the plan), and
    write one report where every row is loaded, rejected, a duplicate or failed at load.
    ``on_plan`` sees the plan before the first request (a dry run's plan is in its summary)."""
    from contactpipe.load.base import LoadResult
    from contactpipe.load.kit import defer
    from contactpipe.load.kit import state as sync
    from contactpipe.state import content_digest, open_store

    cls = registry.get(imp.target)
    config = _target_config(cls, imp)  # credentials are checked before any file is read
    target = cls(config, imp.load)
    if not imp.load.dry_run:
        target.rate_store()  # so is the rate limit store (a dry run sends nothing)

    if imp.resume and (imp.state is None or imp.load.dry_run):
        raise UsageError("--resume needs the sync state (and no --no-state or --dry-run)")
    for name, value in (("--defer-after", imp.defer_after), ("--yield-after", imp.yield_after)):
        if value is None:
            continue
        if not value > 0:
            raise UsageError(f"{name} must be a positive number of seconds")
        if imp.state is None and not imp.load.dry_run:
            raise UsageError(
                f"{name} needs the sync state: a deferred import is checkpointed there "
                "and resumed with --resume",
                hint="give --state PATH (or CONTACTPIPE_STATE), not --no-state",
            )
    if imp.mirror and imp.state is None:
        raise UsageError("--mirror needs the sync state (no --no-state)")
    store = None
    if imp.state is not None and (not imp.load.dry_run or imp.mirror):
        store = open_store(imp.state)  # a dry run reads it for --mirror only

    def step(contacts: pl.DataFrame, progress: Progress) -> tuple[dict[str, Any], Any, Any]:
        target.progress = progress
        head = _head(target, imp)
        inc = None
        done["keep"] = {p for p in contacts.get_column("phone").to_list() if p}
        if store is not None and not imp.load.dry_run:
            inc = sync.prepare(
                store,
                target,
                contacts,
                full_refresh=imp.full_refresh,
                resume=imp.resume,
                inputs=content_digest(expand_inputs(inputs)),
            )
            inc.saved = sync.savings(target, contacts, inc)
            target.state_known = inc.known
        plan = [dataclasses.asdict(line) for line in target.plan(_sent(contacts, inc))]
        target.state_known = None
        if on_plan is not None and not imp.load.dry_run:
            on_plan(plan)
        if imp.load.dry_run:
            with progress.stage("dry-run", "writing request bodies") as st:
                bodies = report_dir / "dry-run"
                if bodies.is_dir():  # a previous plan's files must not pass for this one's
                    shutil.rmtree(bodies)
                files = target.dry_run(contacts, bodies)
                st.note(f"{len(files)} request file(s) -> {bodies}")
            empty = _failures_frame(LoadResult(cls.name, 0))
            return (
                {**head, "plan": plan, "request_files": [str(f) for f in files]},
                empty,
                None,
            )
        with progress.stage("load", f"{cls.title} at {config.base_url}") as st:

            def act(t: Target, c: pl.DataFrame) -> LoadResult:
                return t.load(c) if store is None or inc is None else sync.load(t, c, inc, store)

            with defer.watching(imp.defer_after, imp.yield_after):
                result = _settle(target, contacts, act)
                load_part = _ledger(target, result)
            counts = result.counts()
            st.note(
                f"{counts['loaded']:,} loaded ({counts['created']:,} created, "
                f"{counts['updated']:,} updated, {counts['unchanged']:,} unchanged), "
                f"{counts['failed']:,} failed"
            )
        summary = {
            **head,
            **load_part,
            "not_carried": result.not_carried,
            "plan": plan,
        }
        if store is not None and inc is not None:
            summary["state"] = sync.summary(inc, result, store)
            done["result"] = result
        return summary, _failures_frame(result, config.secrets), _outcome(result.aborted)

    done: dict[str, Any] = {}
    try:
        run = validate_files(inputs, options, report_dir, progress, command="import", load=step)
        if imp.mirror and store is not None and "keep" in done:
            _mirror(run, target, store, done["keep"], done.get("result"), imp, on_plan)
        return run
    finally:
        target.close()
        if store is not None:
            store.close()


def _mirror(
    run: RunResult,
    target: Target,
    store: StateStore,
    keep: set[str],
    result: LoadResult | None,
    imp: ImportOptions,
    on_plan: OnPlan | None,
) -> None:
    """``--mirror`` once the import is reported: only after a complete load (a row that did
    not reach the API must not look absent); the outcome joins ``summary.json``
    (``load.mirror``); above ``--max-delete``, nothing is deleted and UsageError (exit 2)."""
    from contactpipe.load.kit import state as sync

    refused = None
    outcome: dict[str, Any]
    mode = imp.mirror or "state"
    if imp.load.dry_run:
        outcome = sync.mirror(target, store, keep, mode, limit=None, dry_run=True)
    elif result is None or result.aborted is not None or incomplete_rows(run.summary["by_code"]):
        outcome = {"skipped": "the import did not complete: nothing deleted"}
    else:
        try:
            limit = imp.max_delete
            outcome = sync.mirror(target, store, keep, mode, limit=limit, on_plan=on_plan)
        except UsageError as exc:
            outcome, refused = {"refused": exc.message}, exc
    run.summary["load"]["mirror"] = outcome
    write_json(run.summary, Path(run.report_files["summary_json"]))
    if refused is not None:
        raise refused
    if outcome.get("aborted"):  # the deletes were stopped: exit 4 like any remote stop
        run.aborted = RemoteError(f"--mirror stopped: {outcome['aborted']}")
    elif outcome.get("failed"):  # some deletes refused: the account does not mirror the file
        run.aborted = RemoteError(
            f"--mirror: {outcome['failed']:,} delete(s) failed (summary.json load.mirror)"
        )
        run.aborted.exit_code = EXIT_INCOMPLETE


def _sent(contacts: pl.DataFrame, inc: sync.Incremental | None) -> pl.DataFrame:
    """The rows an import will send: all, or those the sync state could not skip."""
    return contacts if inc is None or not inc.skip else contacts[inc.send]
