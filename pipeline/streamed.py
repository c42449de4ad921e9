"""``contactpipe validate`` of one large CSV in batches: memory bounded by the batch, not the
file (issue 16).

The file is read a slice of records at a time (:func:`contactpipe.extract.read_file_batches`);
each batch goes through the same transform as a whole file (mapping inferred once, on the
first batch, which holds the mapping's whole content sample), is deduplicated against itself
and against the phones kept by the earlier batches (``--on-duplicate first``: the first row of
a phone wins, whichever batch it is in), and its report lines are appended to ``errors.csv``,
``warnings.csv`` and ``contacts.csv`` as it goes.  Batches preserve row order, so every file
is in input order as the whole-file run writes it; ``contacts.parquet`` is written per batch
(by polars, to a hidden ``.contacts.parquet.parts-PID`` folder beside it) and joined at the
end by polars' streaming engine.  The outputs are the whole-file run's, byte for byte for the
CSV files, the same rows and types for the Parquet file (``tests/test_streamed.py``).

Only what can stream takes this path (:func:`streamable`): a validate (no load) of one
regular CSV/TSV/TXT file, ``--on-duplicate first``, no ``errors.xlsx``.  A file that turns
out to need whole reading (:class:`~contactpipe.extract.NotStreamable`: not UTF-8 throughout,
batches that disagree on the columns) is read whole instead, from the start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import polars as pl

from contactpipe.extract import Extracted, expand_inputs, read_file_batches
from contactpipe.frames import SRC_FILE, SRC_ROW, SRC_SHEET
from contactpipe.report.html import write_html
from contactpipe.report.progress import NullProgress, Progress
from contactpipe.report.safe import excel_safe_frame, safe_header
from contactpipe.report.writer import (
    _flat_for_csv,
    atomic,
    contacts_frame,
    prepare_report_dir,
    problem_lines,
    start_report,
    write_json,
)
from contactpipe.transform.dedupe import KEY, dedupe

STREAM_MIN_BYTES = 32 << 20
"""Files at least this large are validated in batches (about 450,000 rows of the benchmark's
contact list, 73 bytes a row); smaller ones are read whole, which is quicker when memory is
not the limit."""
BATCH_BYTES = 4 << 20
"""Bytes of records per batch (about 57,000 rows of the benchmark's contact list).  With
:data:`PARALLEL` batches in flight, a 1M-row run peaks at ~290 MiB (370-410 MiB while
pyarrow wrote contacts.parquet; 8 MiB batches then: 510-575 MiB; benchmarks/README.md)."""
PARALLEL = 2
"""Batches transformed at once, in worker threads (polars releases the GIL, so one batch's
column work runs while another's Python work -- phonenumbers, building expressions -- does)."""
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")


def streamable(inputs: Sequence[str], options: Any, batch_bytes: int | None) -> Path | None:
    """The one file to validate in batches, or None when the run must read its input whole.
    ``batch_bytes``: None decides by size (:data:`STREAM_MIN_BYTES`), 0 never streams, any
    other value streams a text file of any size in batches of that many bytes."""
    if batch_bytes == 0 or options.on_duplicate != "first" or options.errors_xlsx:
        return None
    try:
        paths = expand_inputs(inputs)
    except Exception:  # the whole-file path reports the same problem in its own words
        return None
    if len(paths) != 1 or paths[0].suffix.lower() not in TEXT_SUFFIXES:
        return None
    try:
        size = paths[0].stat().st_size
    except OSError:
        return None
    if batch_bytes is None and size < STREAM_MIN_BYTES:
        return None
    return paths[0]


class _Appender:
    """One CSV report file written batch after batch, as :func:`write_csv` writes it whole
    (Excel-safe cells and header), under a temporary name until :meth:`close`."""

    def __init__(self, stack: contextlib.ExitStack, path: Path) -> None:
        self.tmp = stack.enter_context(atomic(path))
        self.handle: IO[bytes] = stack.enter_context(self.tmp.open("wb"))
        self.header = True
        self.names: list[str] | None = None

    def write(self, df: pl.DataFrame) -> None:
        safe = excel_safe_frame(_flat_for_csv(df))
        if self.names is None:
            self.names = safe_header(safe.columns)
        if self.names != safe.columns:
            safe = safe.rename(dict(zip(safe.columns, self.names, strict=True)))
        safe.write_csv(self.handle, include_header=self.header)
        self.header = False


def validate_streamed(
    path: Path,
    options: Any,
    report_dir: Path,
    progress: Progress | None = None,
    *,
    command: str = "validate",
    batch_bytes: int | None = None,
) -> Any:
    """:func:`contactpipe.run.validate_files` of one CSV file, in batches (module docstring).
    Raises :class:`~contactpipe.extract.NotStreamable` when the file must be read whole; the
    report directory then holds no ``summary.json`` (the caller runs the whole-file path)."""
    from contactpipe import run  # run imports this module lazily: no cycle at import time

    progress = progress or NullProgress()
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    shown = str(path)
    prepare_report_dir(report_dir, [shown])
    paths = start_report(report_dir)
    header_row = 0 if options.no_header else options.header_row
    batches = read_file_batches(
        path, header_row=header_row, limits=options.limits, batch_bytes=batch_bytes or BATCH_BYTES
    )
    sec = {"extract": 0.0, "transform": 0.0, "report": 0.0}
    first: Extracted | None = None
    mapping: Any = None
    user_cols: list[str] = []
    seen = _Seen()  # the phones kept by earlier batches
    rows_read = empty_rows = kept_n = rejected_n = duplicates_n = warnings_n = 0
    by_code: Counter[str] = Counter()
    offset = 0
    no_failures = pl.DataFrame(
        schema={"position": pl.UInt32, "code": pl.String, "message": pl.String}
    )
    # what was imported and built so far is never garbage: the collection after each batch
    # then scans the batch's objects only (53 ms -> a few ms)
    gc.freeze()
    with contextlib.ExitStack() as stack:
        stack.callback(gc.unfreeze)
        errors_out = _Appender(stack, paths["errors_csv"])
        warnings_out = _Appender(stack, paths["warnings_csv"])
        contacts_out = _Appender(stack, paths["contacts_csv"])
        parquet_tmp = stack.enter_context(atomic(paths["contacts_parquet"]))
        # one Parquet file per batch, joined at the end: pyarrow's incremental writer cost a
        # 1M-row run ~90 MiB of its ~400 MiB peak (its libraries and memory pool)
        parts_dir = paths["contacts_parquet"].with_name(
            f".{paths['contacts_parquet'].name}.parts-{os.getpid()}"
        )
        parts_dir.mkdir(exist_ok=True)
        stack.callback(shutil.rmtree, parts_dir, ignore_errors=True)
        parts: list[Path] = []
        part_schema: pl.Schema | None = None
        pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="contactpipe-batch")
        # on an error or an interrupt: no batch is started, the running ones are waited for
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        pending: deque[Future[_Batch]] = deque()
        page_errors, page_warnings = _PageLines(), _PageLines()

        def read() -> Extracted | None:
            nonlocal rows_read, empty_rows
            t = time.perf_counter()
            e = next(batches, None)
            sec["extract"] += time.perf_counter() - t
            if e is not None:
                rows_read += e.rows_read
                empty_rows += e.empty_rows
            return e

        def write(b: _Batch) -> None:
            nonlocal part_schema, kept_n, rejected_n, duplicates_n, warnings_n
            t = time.perf_counter()
            kept, duplicates, owners = _across_batches(b.kept, b.duplicates, seen, b.e)
            kept = kept.sort(run.RID)
            problems = pl.concat(
                [
                    run._problems(b.rejected, duplicates, owners, b.mapped),
                    run._load_problems(kept, no_failures),
                ],
                how="vertical_relaxed",
            )
            lines = problem_lines(problems, b.originals, user_cols)
            errors_out.write(lines)
            page_errors.add(lines)
            warn_rows = run._warning_rows(kept, b.mapped)
            lines = problem_lines(warn_rows, b.originals, user_cols)
            warnings_out.write(lines)
            page_warnings.add(lines)
            del lines
            contacts = contacts_frame(kept)
            contacts_out.write(contacts)
            if part_schema is None:  # every part has the first batch's types
                part_schema = contacts.schema
            elif contacts.schema != part_schema:
                contacts = contacts.cast(part_schema)
            parts.append(parts_dir / f"{len(parts):06d}.parquet")
            contacts.write_parquet(parts[-1], compression="lz4", statistics=False)
            del contacts
            by_code.update(run._counts(b.rejected.get_column("__error")))
            if duplicates.height:
                by_code["DUPLICATE"] += duplicates.height
            by_code.update(run._counts(kept.get_column("__warning")))
            kept_n += kept.height
            rejected_n += b.rejected.height
            duplicates_n += duplicates.height
            warnings_n += warn_rows.height
            sec["report"] += time.perf_counter() - t

        with progress.stage("transform", "reading, mapping, phones, validation, dedupe"):
            # the first batch alone: its rows decide the mapping every batch then uses
            e = read()
            assert e is not None  # read_file_batches yields at least one batch or raises
            t = time.perf_counter()
            batch = _transform(e, options, 0, None, None)
            sec["transform"] += time.perf_counter() - t
            first, mapping = batch.mapped[0]  # the batch without its rows: not held
            user_cols = list(dict.fromkeys(e.columns))
            offset = e.frame.height
            del e
            done = False
            while True:
                # the next batches are transformed in worker threads while this one is
                # written; at most PARALLEL at once, so memory holds PARALLEL + 1 batches
                while not done and len(pending) < PARALLEL:
                    nxt = read()
                    if nxt is None:
                        done = True
                        break
                    pending.append(pool.submit(_transform, nxt, options, offset, mapping, 1))
                    offset += nxt.frame.height
                    del nxt
                write(batch)
                del batch
                # phonenumbers leaves reference cycles (exceptions it catches inside parse)
                # whose frames pin their callers' frames, and so a batch's frames, until the
                # collector runs: without this, memory grows ~90 MiB a batch
                gc.collect()
                if not pending:
                    break
                t = time.perf_counter()
                batch = pending.popleft().result()
                sec["transform"] += time.perf_counter() - t
        with progress.stage("report", str(report_dir)) as st_report:
            t = time.perf_counter()
            pl.scan_parquet(parts).sink_parquet(parquet_tmp, compression="zstd")
            st_report.note(f"{rejected_n + duplicates_n:,} lines in errors.csv -> {report_dir}")
            sec["report"] += time.perf_counter() - t
    assert first is not None
    e_all = replace(first, rows_read=rows_read, empty_rows=empty_rows)
    counts = {
        "rows_read": rows_read,
        "empty_rows": empty_rows,
        "valid": kept_n,
        "rejected": rejected_n,
        "duplicates": duplicates_n,
        "warnings": warnings_n,
    }
    summary = run.run_summary(
        command, started, options, [(e_all, mapping)], counts=counts, refused=0,
        by_code=by_code, parts=[e_all],
    )  # fmt: skip
    files = {k: str(v) for k, v in paths.items()}
    files["summary_json"] = str(report_dir / "summary.json")
    summary["seconds"] = {
        "extract": round(sec["extract"], 3),
        "transform": round(sec["transform"], 3),
        "report": round(sec["report"], 3),
        "total": round(time.perf_counter() - t0, 3),
    }
    summary["files_written"] = files
    accounted = empty_rows + kept_n + rejected_n + duplicates_n
    if accounted != rows_read:  # a bug, never the user's input: say so rather than mislead
        raise RuntimeError(f"internal error: {rows_read} rows read but {accounted} accounted for")
    if options.html:
        page = write_html(report_dir, summary, page_errors.frame(), page_warnings.frame())
        files["report_html"] = str(page)
    write_json(summary, Path(files["summary_json"]))
    return run.RunResult(summary=summary, contacts=paths["contacts_parquet"], report_files=files)


class _PageLines:
    """What ``report.html`` needs of the errors.csv (or warnings.csv) lines, gathered batch by
    batch as :func:`contactpipe.report.html._read_lines` would read them back: file, sheet,
    row and code of every line (file, sheet and code held as categoricals: a 10M-row file's
    2.3M error lines take ~30 MB), every column of the lines the page samples (the first
    ``SAMPLE_ROWS`` of each code) and nulls elsewhere.  Reading errors.csv back instead
    costs a pass over the whole file (0.3 s at 1M rows, seconds at 10M)."""

    KEYS = ("source_file", "sheet", "row", "code")

    def __init__(self) -> None:
        self.schema: pl.Schema | None = None
        self.narrow: list[pl.DataFrame] = []
        self.samples: list[pl.DataFrame] = []
        self.taken: Counter[str] = Counter()
        self.lines = 0

    def add(self, lines: pl.DataFrame) -> None:
        from contactpipe.report.html import SAMPLE_ROWS

        if self.schema is None:
            self.schema = lines.schema
        index = (pl.int_range(pl.len(), dtype=pl.Int64) + self.lines).alias("__i")
        full = [c for c, n in self.taken.items() if n >= SAMPLE_ROWS]
        codes = (
            lines.lazy()
            .select(index, pl.col("code").cast(pl.String).str.split(";").alias("__c"))
            .explode("__c")
            .filter(~pl.col("__c").is_in(pl.lit(full, pl.List(pl.String)).first()))
            .collect()
        )  # the lines of codes still short of samples (most batches: none)
        if codes.height:
            codes = codes.with_columns(__n=pl.int_range(pl.len(), dtype=pl.UInt32).over("__c"))
            left = pl.DataFrame(
                {"__c": list(self.taken), "__left": [SAMPLE_ROWS - n for n in self.taken.values()]},
                schema={"__c": pl.String, "__left": pl.Int64},
            )
            picked = codes.join(left, on="__c", how="left").filter(
                pl.col("__n") < pl.col("__left").fill_null(SAMPLE_ROWS)
            )
            self.taken.update(dict(picked.group_by("__c").len().iter_rows()))
            at = picked.get_column("__i").unique().sort()
            self.samples.append(lines[at - self.lines].with_columns(at.alias("__i")))
        self.narrow.append(
            lines.select(
                index,
                *(
                    pl.col(c).cast(pl.Categorical) if lines.schema[c] == pl.String else pl.col(c)
                    for c in self.KEYS
                ),
            )
        )
        self.lines += lines.height

    def frame(self) -> pl.DataFrame:
        """The lines, in order (every column; null where the page does not need it)."""
        if self.schema is None:
            return pl.DataFrame(schema={c: pl.String for c in self.KEYS})
        if not self.samples:  # no line at all (the first batch with lines samples some)
            return pl.DataFrame(schema=self.schema)
        narrow = pl.concat(self.narrow)
        samples = pl.concat(self.samples).drop(*self.KEYS)
        whole = narrow.join(samples, on="__i", how="left", maintain_order="left")
        return whole.select(pl.col(c).cast(t) for c, t in self.schema.items())


@dataclass
class _Batch:
    """One batch after the transform and its own dedupe, waiting to be written."""

    e: Extracted
    originals: pl.DataFrame
    mapped: list[tuple[Extracted, Any]]
    rejected: pl.DataFrame
    kept: pl.DataFrame
    duplicates: pl.DataFrame


def _transform(
    e: Extracted, options: Any, offset: int, mapping: Any, workers: int | None
) -> _Batch:
    """Transform one batch and dedupe it within itself (thread-safe: polars, phonenumbers
    and this project's caches; ``workers=1`` keeps phonenumbers in this thread, as two
    batches run at once)."""
    from contactpipe import run

    canon, originals, mapped, _ = run.transform(
        [e], options, offset=offset, mappings=None if mapping is None else [mapping],
        workers=workers,
    )  # fmt: skip
    failed = canon.get_column("__error").is_not_null()
    rejected = canon.filter(failed)
    kept, duplicates = dedupe(canon, "first", eligible=~failed)
    return _Batch(e, originals, mapped, rejected, kept, duplicates)


class _Seen:
    """The phones kept by earlier batches: frames ``k`` (E.164 digits as Int64), ``__rid``,
    ``row``, each sorted by ``k``, in runs of decreasing size (a log-structured merge: a run
    is merged into the one before it once it is at least half that size, so each key is
    merged about log2(batches) times).  A batch's keys, sorted too, are looked up in each run
    by a merge join (both sides flagged sorted), where a hash join against every earlier key
    rehashes them all at each batch (10M rows, 7.6M keys: ~0.15-0.3 s a batch)."""

    def __init__(self) -> None:
        self.runs: list[pl.DataFrame] = []

    def find(self, keys: pl.Series) -> pl.DataFrame:
        """``__i`` (position in ``keys``), ``__rid`` and ``row`` of each key seen before, in
        ``keys`` order."""
        probe = keys.to_frame("k").with_row_index("__i").sort("k")
        found = [probe.join(run, on="k", how="inner") for run in self.runs]
        if not found:
            return probe.clear().select("__i", __rid=pl.lit(0), row=pl.lit(0))
        return pl.concat(found).sort("__i").select("__i", pl.col("__rid", "row").cast(pl.Int64))

    def add(self, keys: pl.Series, rids: pl.Series, rows: pl.Series) -> None:
        new = pl.DataFrame({"k": keys, "__rid": rids, "row": rows}).cast(_SEEN_SCHEMA)  # type: ignore[arg-type]
        self.runs.append(_sorted(new.drop_nulls("k")))  # a null key never matches
        while len(self.runs) > 1 and 2 * self.runs[-1].height >= self.runs[-2].height:
            last = self.runs.pop()
            self.runs[-1] = _sorted(self.runs[-1].merge_sorted(last, key="k"))


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by ``k``, the column flagged so (joins on it then merge, not hash)."""
    if not frame.get_column("k").flags["SORTED_ASC"]:
        frame = frame.sort("k")
    return frame.with_columns(pl.col("k").set_sorted())


# 16 bytes a phone (a 10M-row file keeps 7.6M): row numbers and ids fit in 32 bits long before
# a file reaches the reader's limits, and a cast that would not fit raises
_SEEN_SCHEMA = {"k": pl.Int64, "__rid": pl.UInt32, "row": pl.UInt32}


def _across_batches(
    kept: pl.DataFrame, duplicates: pl.DataFrame, seen: _Seen, e: Extracted
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Dedupe a batch's kept rows against the phones kept by earlier batches (the earlier row
    wins, as in a whole-file run); record the batch's own kept phones in ``seen``.

    Returns (kept, duplicates with ``__dup_of``, the rows duplicates point at: ``__rid`` and
    source position, for their messages)."""
    rid = "__rid"
    keys = kept.get_column(KEY).str.slice(1).cast(pl.Int64, strict=False)
    src = [rid, SRC_FILE, SRC_SHEET, SRC_ROW]
    owners = kept.select(
        pl.col(rid), pl.col(SRC_FILE).cast(pl.String), pl.col(SRC_SHEET), pl.col(SRC_ROW)
    )
    found = seen.find(keys)
    if found.height:
        hit = pl.Series(pl.repeat(False, keys.len(), eager=True)).scatter(
            found.get_column("__i"), True
        )
        moved = kept.filter(hit).with_columns(found.get_column(rid).alias("__dup_of"))
        # duplicates of a moved row within the batch point at the earlier row too
        remap = pl.DataFrame({"__dup_of": moved.get_column(rid), "__to": found.get_column(rid)})
        duplicates = (
            duplicates.join(remap, on="__dup_of", how="left", maintain_order="left")
            .with_columns(pl.coalesce("__to", "__dup_of").alias("__dup_of"))
            .drop("__to")
        )
        duplicates = pl.concat([duplicates, moved], how="vertical_relaxed").sort(rid)
        kept = kept.filter(~hit)
        keys = keys.filter(~hit)
        sheet = e.sheet
        owners = pl.concat(
            [
                owners,
                pl.DataFrame(
                    {
                        rid: found.get_column(rid),
                        SRC_FILE: pl.repeat(e.source_file, found.height, eager=True),
                        SRC_SHEET: pl.repeat(sheet, found.height, dtype=pl.String, eager=True),
                        SRC_ROW: found.get_column("row"),
                    }
                ).unique(rid, maintain_order=True),
            ],
            how="vertical_relaxed",
        ).select(src)
    seen.add(keys, kept.get_column(rid), kept.get_column(SRC_ROW))
    return kept, duplicates, owners
