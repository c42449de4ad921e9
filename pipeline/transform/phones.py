"""Phone normalisation: every phone cell to E.164, exactly as ``phonenumbers`` decides.

The answer for a cell is defined as: clean it into a canonical candidate
(:mod:`phone_clean`), then ``phonenumbers.parse(candidate, row_region)``, accepted iff
``is_valid_number``, written with ``format_number(n, E164)``.  How it is computed fast:

* cleaning is column-wise; phonenumbers is asked once per distinct (candidate, region);
* the vectorised fast path (:mod:`phone_fast`) claims the pairs it can prove VALID with
  exactly phonenumbers' answer; all others go to real phonenumbers calls (:mod:`phone_slow`),
  in ``workers`` processes when there are many.

Columns added (all ``pl.String``, null when not applicable), row order preserved:

``__phone_e164``   the E.164 number, null when the row is rejected
``__phone_ext``    extension removed from the cell ("12" for "... ext. 12")
``__phone_error``  MISSING_PHONE | PRECISION_LOST | INVALID_REGION | INVALID_NUMBER |
                   LEGACY_NUMBER | NOT_MOBILE (one code; first that applies, in this order)
``__phone_warning`` EXCEL_FLOAT_FIXED, PLUS_ADDED, EXTRA_NUMBERS, LEGACY_MIGRATED; several
                   are joined with ";" in that order (messages joined with "; ")
``__phone_error_msg`` / ``__phone_warning_msg``  human messages
``__phone_pick``   (``pl.UInt8``, only with several candidate columns) index of the column
                   the number (or the error) comes from; null when all were empty

Several candidate columns (:mod:`phone_pick`): the first valid number wins.  A number cell
(``numeric_cols``, or an Excel float repaired) whose digits are invalid but valid with a
``+`` in front is that number (PLUS_ADDED): a number cell cannot hold the ``+``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Literal

import phonenumbers as pn
import polars as pl

from contactpipe.errors import InputError, UsageError
from contactpipe.transform.phone_clean import alternatives, canonical, clean_frame, is_number_part
from contactpipe.transform.phone_pick import choose, stack_candidates
from contactpipe.transform.phone_regions import resolve_region
from contactpipe.transform.phone_resolve import KEY, PhoneStats, pair_outcomes, resolve_pairs

E164 = "__phone_e164"
EXT = "__phone_ext"
ERROR = "__phone_error"
ERROR_MSG = "__phone_error_msg"
WARNING = "__phone_warning"
WARNING_MSG = "__phone_warning_msg"
PICK = "__phone_pick"
OUTPUT_COLUMNS = (E164, EXT, ERROR, ERROR_MSG, WARNING, WARNING_MSG)

__all__ = [
    "OUTPUT_COLUMNS",
    "PICK",
    "PhoneStats",
    "normalize_phones",
    "normalize_phones_with_stats",
]


def normalize_phones(
    df: pl.DataFrame,
    *,
    phone_col: str | Sequence[str],
    region: str | None,
    country_col: str | None = None,
    mobile_only: bool = False,
    legacy: Literal["migrate", "reject"] = "migrate",
    workers: int | None = None,
    numeric_cols: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Return ``df`` with the ``__phone_*`` columns added (see the module docstring).

    ``phone_col``: the phone column, or several candidate columns in order of preference
    (the first valid number wins, see :mod:`phone_pick`; ``__phone_pick`` is added).
    ``region``: ISO alpha-2 default region (None: only ``+`` international numbers pass).
    ``country_col``: per-row country (alpha-2, calling code or English/French name; blank
    -> ``region``).  ``workers``: processes for phonenumbers calls (default: up to 2).
    ``numeric_cols``: phone column -> Boolean column, True where the source cell was a
    number (a spreadsheet number cell, a JSON number), which cannot hold a ``+``.
    """
    out, _ = normalize_phones_with_stats(
        df,
        phone_col=phone_col,
        region=region,
        country_col=country_col,
        mobile_only=mobile_only,
        legacy=legacy,
        workers=workers,
        numeric_cols=numeric_cols,
    )
    return out


def _row_regions(df: pl.DataFrame, region: str | None, country_col: str | None) -> pl.DataFrame:
    """Columns rg (region or null), rg_bad (value not understood), rg_raw (the value)."""
    if country_col is None:
        return pl.select(
            rg=pl.repeat(region, df.height, dtype=pl.String),
            rg_bad=pl.repeat(False, df.height, dtype=pl.Boolean),
            rg_raw=pl.repeat(None, df.height, dtype=pl.String),
        )
    raw = df.get_column(country_col).cast(pl.String).alias("rg_raw")
    values = raw.unique().to_list()
    mapped = [resolve_region(v, region) for v in values]
    table = pl.DataFrame(
        {"rg_raw": values, "rg": [m[0] for m in mapped], "rg_bad": [not m[1] for m in mapped]},
        schema={"rg_raw": pl.String, "rg": pl.String, "rg_bad": pl.Boolean},
    )
    return raw.to_frame().join(
        table, on="rg_raw", how="left", nulls_equal=True, maintain_order="left"
    )


def _multi_alternatives(rows: pl.DataFrame) -> pl.DataFrame:
    """Long frame (pi, alt, whole, text, ext, cand, rg) for cells holding several numbers."""
    recs = []
    multi = rows.lazy().filter("c_multi").select("pi", "c_text", "rg")  # narrow, then filtered
    for pi, text, rg in multi.collect(engine="in-memory").iter_rows():
        found = alternatives(text)
        if found is None:
            continue
        alts, whole_first = found
        for i, (t, e) in enumerate(alts):
            whole = whole_first and i == 0
            recs.append((pi, i, whole, whole or is_number_part(t), t, e, rg))
    schema = {"pi": pl.UInt32, "alt": pl.Int32, "whole": pl.Boolean, "keep": pl.Boolean}
    schema |= {"text": pl.String, "ext": pl.String, "rg": pl.String}
    long = pl.DataFrame(recs, schema=schema, orient="row")
    return long.with_columns(cand=canonical(pl.col("text")))


def _pick_alternatives(
    long: pl.DataFrame, outcomes: pl.DataFrame, mobile_only: bool
) -> pl.DataFrame:
    """Per multi cell: the first acceptable number (valid, and mobile if asked), else the
    first valid, else the first that may be a number (its error is the row's); the other
    parts are reported as EXTRA_NUMBERS, except those that are the kept number again."""
    joined = long.join(
        outcomes.select(*KEY, "p_e164", "p_mobile"),
        left_on=["cand", "rg"],
        right_on=KEY,
        how="left",
        nulls_equal=True,
    ).sort("pi", "alt")
    picks = []
    for (pi,), g in joined.group_by("pi", maintain_order=True):
        alts = g.to_dicts()
        valid = [a for a in alts if a["p_e164"] is not None and a["keep"]]
        good = [a for a in valid if a["p_mobile"] or not mobile_only]
        best = (good or valid or [a for a in alts if a["keep"]] or alts)[0]
        extra = None
        if best["p_e164"] is not None and not best["whole"]:
            seen, others = {best["p_e164"]}, []
            for a in alts:
                key = a["p_e164"] or a["text"]
                if a is not best and not a["whole"] and key not in seen:
                    seen.add(key)
                    others.append(a["text"])
            if others:
                extra = f"{len(others) + 1} numbers in the cell, used the first valid one; " + (
                    "also: " + ", ".join(others)
                )
        picks.append((pi, best["cand"], best["ext"], extra))
    schema = {"pi": pl.UInt32, "m_cand": pl.String, "m_ext": pl.String, "m_extra": pl.String}
    return pl.DataFrame(picks, schema=schema, orient="row")


def normalize_phones_with_stats(
    df: pl.DataFrame,
    *,
    phone_col: str | Sequence[str],
    region: str | None,
    country_col: str | None = None,
    mobile_only: bool = False,
    legacy: Literal["migrate", "reject"] = "migrate",
    workers: int | None = None,
    numeric_cols: Mapping[str, str] | None = None,
) -> tuple[pl.DataFrame, PhoneStats]:
    """:func:`normalize_phones`, also returning what it did (counts and seconds per step)."""
    started = time.perf_counter()
    cols = [phone_col] if isinstance(phone_col, str) else list(phone_col)
    numeric_cols = dict(numeric_cols or {})
    if not cols:
        raise UsageError("no phone column given")
    for col in (*cols, *numeric_cols.values(), country_col):
        if col is not None and col not in df.columns:
            raise InputError(f"column {col!r} not found; columns are: {', '.join(df.columns)}")
    if region is not None:
        region = region.strip().upper()
        if region not in pn.SUPPORTED_REGIONS:
            raise UsageError(f"unknown default region {region!r}", hint="use ISO codes like FR")
    if legacy not in ("migrate", "reject"):
        raise UsageError(f"legacy must be 'migrate' or 'reject', not {legacy!r}")
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    stats = PhoneStats(rows=df.height)

    t = time.perf_counter()
    regions = _row_regions(df, region, country_col)
    if len(cols) == 1:
        num = numeric_cols.get(cols[0])
        cells = regions.with_columns(
            raw=df.get_column(cols[0]).cast(pl.String),
            num=df.get_column(num).fill_null(False) if num else pl.lit(False),
        )
    else:
        cells = stack_candidates(df, cols, regions, numeric_cols)
    rows = clean_frame(cells.select("raw"), "raw").with_columns(
        pi=pl.int_range(pl.len(), dtype=pl.UInt32)
    )
    rows = pl.concat([rows, cells.drop("raw")], how="horizontal")
    del cells, regions
    long = _multi_alternatives(rows)
    rows = rows.drop("c_text", "c_multi")  # several numbers in a cell: now in ``long``
    stats.add_time("clean", t)

    # the distinct (candidate, region) pairs; blank: MISSING_PHONE.  One region for every
    # row (no country column): the candidates alone are made unique (a one-column string
    # hash), the region added after
    key = ["c_cand"] if country_col is None else ["c_cand", "rg"]
    parts = long.lazy().filter("keep").select(c_cand="cand", rg="rg").select(key)
    distinct = pl.concat([rows.lazy().select(key), parts]).unique()
    distinct = distinct.filter(pl.col("c_cand").str.strip_chars() != "")
    if country_col is None:
        distinct = distinct.with_columns(rg=pl.lit(region, pl.String))
    pairs = distinct.select(cand="c_cand", region="rg").collect(engine="in-memory")
    del distinct
    outcomes = pair_outcomes(pairs, legacy=legacy, workers=workers, stats=stats)

    t = time.perf_counter()
    if long.height:
        picks = _pick_alternatives(long, outcomes, mobile_only)
        rows = rows.join(picks, on="pi", how="left", maintain_order="left").with_columns(
            c_cand=pl.coalesce("m_cand", "c_cand"),
            c_ext=pl.when(pl.col("m_cand").is_not_null()).then("m_ext").otherwise("c_ext"),
        )
    else:
        rows = rows.with_columns(m_extra=pl.lit(None, pl.String))
    rows, outcomes = _plus_added(rows, outcomes, workers, stats)
    slim = outcomes.select(*KEY, "p_e164", "p_mobile", "p_err", "p_warn")  # messages: later
    found = _lookup(rows, slim, one_region=country_col is None).get_columns()
    del slim
    rows = (
        rows.lazy()
        .drop("m_cand", "m_ext", "num", strict=False)
        .with_columns(found)
        .with_columns(_case=_case_index(mobile_only))
        .collect(engine="in-memory")
    )
    del found
    out: tuple[str, ...] = OUTPUT_COLUMNS
    if len(cols) > 1:
        ok = pl.col("_case").is_null()
        listed = ok | (pl.col("_case") == len(_cases(mobile_only)) - 1)  # valid, not mobile
        rows = choose(rows, ok, listed).with_columns(pl.col("pick").alias(PICK))
        out = (*OUTPUT_COLUMNS, PICK)
    # the pairs with a message (the invalid ones, a few percent): the flagged rows' lookup
    # then hashes those, not every pair
    has_message = pl.col("p_err_msg").is_not_null() | pl.col("p_warn_msg").is_not_null()
    messages = (
        outcomes.lazy()
        .select(*KEY, "p_err_msg", "p_warn_msg")
        .filter(has_message)
        .collect(engine="in-memory")
    )
    result = _row_outputs(rows, messages, mobile_only, one_region=country_col is None)
    stats.add_time("assemble", t)
    stats.seconds["total"] = time.perf_counter() - started
    return df.with_columns(result.get_column(c) for c in out), stats


def _lookup(rows: pl.DataFrame, table: pl.DataFrame, *, one_region: bool) -> pl.DataFrame:
    """``table``'s columns (but the key) for each row's (``c_cand``, ``rg``), in row order.

    ``table`` has one line per key, so a left join keeps the rows' order and count: only the
    key columns go through it (a join of the whole frame would gather a copy of every row
    column) and the result is added beside the rows.  With one region for every row (no
    country column), the candidate alone is the key: a one-column string join hashes the
    strings directly, a two-column one first encodes both columns of both sides."""
    lazy = rows.lazy()  # one query: key columns, join, key columns dropped
    if one_region:
        found = lazy.select("c_cand").join(
            table.lazy().drop("region"), left_on="c_cand", right_on="cand", how="left",
            nulls_equal=True, maintain_order="left",
        )  # fmt: skip
        return found.drop("c_cand").collect(engine="in-memory")
    found = lazy.select("c_cand", "rg").join(
        table.lazy(), left_on=["c_cand", "rg"], right_on=KEY, how="left", nulls_equal=True,
        maintain_order="left",
    )  # fmt: skip
    return found.drop("c_cand", "rg").collect(engine="in-memory")


def _plus_added(
    rows: pl.DataFrame, outcomes: pl.DataFrame, workers: int, stats: PhoneStats
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Number cells (``num``, or an Excel float repaired) whose digits are invalid, but valid
    for phonenumbers with a ``+`` in front: that number, with PLUS_ADDED (``c_plus``).

    A number cell cannot hold a ``+``; a text cell could, so text keeps the rejection (whose
    message suggests the ``+``).  Legacy plans are not applied to the ``+`` form."""
    numeric = pl.col("num") | pl.col("c_excel")
    if not rows.select(numeric.any()).item():  # no number cell: nothing to try
        return rows.with_columns(c_plus=pl.lit(False)), outcomes
    invalid = outcomes.lazy().filter(pl.col("p_err") == "INVALID_NUMBER").select(KEY)
    todo = (
        rows.lazy()
        .filter(numeric & pl.col("c_cand").str.contains("^[0-9]+$"))
        .select(cand="c_cand", region="rg")
        .unique()
        .join(invalid, on=KEY, how="semi", nulls_equal=True)
        .collect(engine="in-memory")
    )
    if todo.is_empty():
        return rows.with_columns(c_plus=pl.lit(False)), outcomes
    plus_pairs = todo.select(cand="+" + pl.col("cand"), region="region")
    known = outcomes.join(plus_pairs, on=KEY, how="semi", nulls_equal=True)  # decided already
    fresh = resolve_pairs(
        plus_pairs.join(known, on=KEY, how="anti", nulls_equal=True), workers, stats
    ).filter(pl.col("e164").is_not_null())
    new = fresh.select(
        *KEY,
        p_e164="e164",
        p_mobile="mobile",
        p_err=pl.lit(None, pl.String),
        p_err_msg=pl.lit(None, pl.String),
        p_warn=pl.lit(None, pl.String),
        p_warn_msg=pl.lit(None, pl.String),
    )
    valid = known.filter(pl.col("p_e164").is_not_null(), pl.col("p_warn").is_null())  # as is
    plus = pl.concat([valid.select(KEY), new.select(KEY)]).select(
        pl.col("cand").str.slice(1).alias("c_cand"), pl.col("region").alias("rg"), c_plus=True
    )
    rows = rows.join(plus, on=["c_cand", "rg"], how="left", nulls_equal=True, maintain_order="left")
    rows = rows.with_columns(
        c_plus=(pl.col("c_plus").fill_null(False) & (pl.col("num") | pl.col("c_excel"))),
    ).with_columns(
        c_cand=pl.when("c_plus").then("+" + pl.col("c_cand")).otherwise("c_cand"),
    )
    return rows, pl.concat([outcomes, new])


def _cases(mobile_only: bool) -> list[tuple[pl.Expr, str | None, pl.Expr | None]]:
    """Row errors as (condition, code (None: the pair's), message (None: the pair's)), in
    order: the first that applies is the row's error (NOT_MOBILE is the last)."""
    cand = pl.col("c_cand")
    region_bad = pl.col("rg_bad") & ~cand.str.starts_with("+").fill_null(False)
    not_mobile = pl.lit(mobile_only) & pl.col("p_e164").is_not_null() & ~pl.col("p_mobile")
    cases = [  # (condition, code (None: the pair's), message (None: the pair's)); first wins
        (
            pl.col("c_missing") | (cand.str.strip_chars() == ""),
            "MISSING_PHONE",
            pl.lit("no phone number in the cell"),
        ),
        (
            pl.col("c_lost"),
            "PRECISION_LOST",
            pl.concat_str(
                pl.lit("digits lost to scientific notation ('"),
                "raw",
                pl.lit("'): the full number cannot be known; format the column as text"),
            ),
        ),
        (
            pl.col("c_decimal"),
            "INVALID_NUMBER",
            pl.lit("invalid phone number: not a number (a decimal value)"),
        ),
        (
            region_bad,
            "INVALID_REGION",
            pl.concat_str(
                pl.lit("country '"),
                "rg_raw",
                pl.lit("' not understood and the number has no '+' country code"),
            ),
        ),
        (pl.col("p_err").is_not_null(), None, None),
        (not_mobile, "NOT_MOBILE", pl.lit("not a mobile number (fixed line or other type)")),
    ]
    return cases


def _case_index(mobile_only: bool) -> pl.Expr:
    """Index in :func:`_cases` of the row's error, null when the row is accepted."""
    which: pl.Expr = pl.lit(None, pl.Int8)
    for i, (cond, _, _) in reversed(list(enumerate(_cases(mobile_only)))):
        which = pl.when(cond).then(pl.lit(i, pl.Int8)).otherwise(which)
    return which


def _row_outputs(
    rows: pl.DataFrame, messages: pl.DataFrame, mobile_only: bool, *, one_region: bool
) -> pl.DataFrame:
    """The output columns (and ``pi``), in order, from rows with ``_case``.  The number and
    extension are computed for every row; codes, warnings and messages (the pairs'
    ``messages`` included) only for the rows that have an error or a warning."""
    cases = _cases(mobile_only)
    case = pl.col("_case")
    # the code by lookup (a chain of when/then would build a string column per case)
    fixed = {i: c for i, (_, c, _) in enumerate(cases) if c is not None}
    pairs_own = [i for i, (_, c, _) in enumerate(cases) if c is None]
    code = (
        pl.when(case.is_in(pairs_own))
        .then("p_err")
        .otherwise(case.replace_strict(fixed, default=None, return_dtype=pl.String))
    )
    msg: pl.Expr = pl.lit(None, pl.String)
    for i, (_, _, m) in enumerate(cases):
        msg = pl.when(case == i).then(pl.col("p_err_msg") if m is None else m).otherwise(msg)
    excel_msg = pl.concat_str(
        pl.lit("Excel number format repaired: '"), "raw", pl.lit("' read as "), "c_cand"
    )
    plus_msg = pl.concat_str(
        pl.lit("number cell "),
        pl.col("c_cand").str.slice(1),
        pl.lit(" read as "),
        "c_cand",
        pl.lit(" (not valid without the '+', which a number cell cannot hold)"),
    )
    warn_parts = [
        (pl.col("c_excel"), "EXCEL_FLOAT_FIXED", excel_msg),
        (pl.col("c_plus"), "PLUS_ADDED", plus_msg),
        (pl.col("m_extra").is_not_null(), "EXTRA_NUMBERS", pl.col("m_extra")),
        (pl.col("p_warn").is_not_null() & case.is_null(), "LEGACY_MIGRATED", pl.col("p_warn_msg")),
    ]
    warn = pl.concat_str(
        [pl.when(c).then(pl.lit(w)) for c, w, _ in warn_parts], separator=";", ignore_nulls=True
    )
    # Codes, warnings and messages only for the rows with an error or a warning (a few
    # percent): over every row, each would build a string column (and several temporary ones)
    warned = pl.any_horizontal([c for c, _, _ in warn_parts])
    outputs = rows.select(
        "pi",
        pl.when(case.is_null()).then("p_e164").alias(E164),
        pl.col("c_ext").alias(EXT),
        *([PICK] if PICK in rows.columns else []),
        (case.is_not_null() | warned).alias("_flagged"),
    )
    mask = outputs.drop_in_place("_flagged")
    flagged = rows.filter(mask)
    flagged = flagged.with_columns(_lookup(flagged, messages, one_region=one_region).get_columns())
    warn_msg = pl.concat_str(
        [pl.when(c).then(m) for c, _, m in warn_parts], separator="; ", ignore_nulls=True
    )
    msgs = flagged.select(
        code.alias(ERROR),
        pl.when(warn != "").then(warn).alias(WARNING),
        msg.alias(ERROR_MSG),
        pl.when(warn_msg != "").then(warn_msg).alias(WARNING_MSG),
    )
    msgs.insert_column(0, mask.arg_true().alias("_at"))
    index = pl.int_range(rows.height, dtype=pl.UInt32, eager=True).alias("_at").to_frame()
    found = index.join(msgs, on="_at", how="left", maintain_order="left")  # integers: cheap
    return outputs.hstack(found.get_columns()[1:])
