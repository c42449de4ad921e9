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
``__phone_warning`` EXCEL_FLOAT_FIXED, EXTRA_NUMBERS, LEGACY_MIGRATED; several are joined
                   with ";" in that order (messages joined with "; ")
``__phone_error_msg`` / ``__phone_warning_msg``  human messages
"""

from __future__ import annotations

import os
import time
from typing import Literal

import phonenumbers as pn
import polars as pl

from pipeline.errors import InputError, UsageError
from pipeline.transform.phone_clean import alternatives, canonical, clean_frame, is_number_part
from pipeline.transform.phone_regions import resolve_region
from pipeline.transform.phone_resolve import KEY, PhoneStats, pair_outcomes

E164 = "__phone_e164"
EXT = "__phone_ext"
ERROR = "__phone_error"
ERROR_MSG = "__phone_error_msg"
WARNING = "__phone_warning"
WARNING_MSG = "__phone_warning_msg"
OUTPUT_COLUMNS = (E164, EXT, ERROR, ERROR_MSG, WARNING, WARNING_MSG)

__all__ = ["OUTPUT_COLUMNS", "PhoneStats", "normalize_phones", "normalize_phones_with_stats"]


def normalize_phones(
    df: pl.DataFrame,
    *,
    phone_col: str,
    region: str | None,
    country_col: str | None = None,
    mobile_only: bool = False,
    legacy: Literal["migrate", "reject"] = "migrate",
    workers: int | None = None,
) -> pl.DataFrame:
    """Return ``df`` with the ``__phone_*`` columns added (see the module docstring).

    ``region``: ISO alpha-2 default region (None: only ``+`` international numbers pass).
    ``country_col``: per-row country (alpha-2, calling code or English/French name; blank
    -> ``region``).  ``workers``: processes for phonenumbers calls (default: up to 2).
    """
    out, _ = normalize_phones_with_stats(
        df,
        phone_col=phone_col,
        region=region,
        country_col=country_col,
        mobile_only=mobile_only,
        legacy=legacy,
        workers=workers,
    )
    return out


def _row_regions(df: pl.DataFrame, region: str | None, country_col: str | None) -> pl.DataFrame:
    """Columns rg (region or null), rg_bad (value not understood), rg_raw (the value)."""
    if country_col is None:
        return pl.DataFrame(
            {"rg": pl.repeat(region, df.height, dtype=pl.String, eager=True)}
        ).with_columns(rg_bad=pl.lit(False), rg_raw=pl.lit(None, pl.String))
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
    for pi, text, rg in rows.filter("c_multi").select("pi", "c_text", "rg").iter_rows():
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
    phone_col: str,
    region: str | None,
    country_col: str | None = None,
    mobile_only: bool = False,
    legacy: Literal["migrate", "reject"] = "migrate",
    workers: int | None = None,
) -> tuple[pl.DataFrame, PhoneStats]:
    """:func:`normalize_phones`, also returning what it did (counts and seconds per step)."""
    started = time.perf_counter()
    for col in (phone_col, country_col):
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
    raw = df.get_column(phone_col).cast(pl.String)
    rows = clean_frame(pl.DataFrame({"raw": raw}), "raw").with_columns(
        pi=pl.int_range(pl.len(), dtype=pl.UInt32)
    )
    rows = pl.concat([rows, _row_regions(df, region, country_col)], how="horizontal")
    long = _multi_alternatives(rows)
    stats.add_time("clean", t)

    parts = long.filter("keep").select("cand", "rg").rename({"cand": "c_cand"})
    pairs = pl.concat([rows.select("c_cand", "rg"), parts])
    pairs = pairs.filter(pl.col("c_cand").str.strip_chars() != "")  # blank: MISSING_PHONE
    pairs = pairs.unique().rename({"c_cand": "cand", "rg": "region"})
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
    slim = outcomes.select(*KEY, "p_e164", "p_mobile", "p_err", "p_warn")  # messages: later
    rows = rows.join(
        slim, left_on=["c_cand", "rg"], right_on=KEY, how="left", nulls_equal=True,
        maintain_order="left",
    )  # fmt: skip
    result = _row_outputs(rows, outcomes.select(*KEY, "p_err_msg", "p_warn_msg"), mobile_only)
    stats.add_time("assemble", t)
    stats.seconds["total"] = time.perf_counter() - started
    return df.with_columns(result.get_columns()), stats


def _row_outputs(rows: pl.DataFrame, messages: pl.DataFrame, mobile_only: bool) -> pl.DataFrame:
    """The output columns, in order.  Codes are computed for every row; messages (the pairs'
    ``messages`` included) only for the rows that have an error or a warning."""
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
    which: pl.Expr = pl.lit(None, pl.Int8)
    for i, (cond, _, _) in reversed(list(enumerate(cases))):
        which = pl.when(cond).then(pl.lit(i, pl.Int8)).otherwise(which)
    rows = rows.with_columns(_case=which)
    case = pl.col("_case")
    code: pl.Expr = pl.lit(None, pl.String)
    msg: pl.Expr = pl.lit(None, pl.String)
    for i, (_, c, m) in enumerate(cases):
        code = pl.when(case == i).then(pl.col("p_err") if c is None else pl.lit(c)).otherwise(code)
        msg = pl.when(case == i).then(pl.col("p_err_msg") if m is None else m).otherwise(msg)
    excel_msg = pl.concat_str(
        pl.lit("Excel number format repaired: '"), "raw", pl.lit("' read as "), "c_cand"
    )
    warn_parts = [
        (pl.col("c_excel"), "EXCEL_FLOAT_FIXED", excel_msg),
        (pl.col("m_extra").is_not_null(), "EXTRA_NUMBERS", pl.col("m_extra")),
        (pl.col("p_warn").is_not_null() & case.is_null(), "LEGACY_MIGRATED", pl.col("p_warn_msg")),
    ]
    warn = pl.concat_str(
        [pl.when(c).then(pl.lit(w)) for c, w, _ in warn_parts], separator=";", ignore_nulls=True
    )
    rows = rows.with_columns(
        pl.when(case.is_null()).then("p_e164").alias(E164),
        pl.col("c_ext").alias(EXT),
        code.alias(ERROR),
        pl.when(warn != "").then(warn).alias(WARNING),
    )
    flagged = rows.filter(case.is_not_null() | pl.col(WARNING).is_not_null()).join(
        messages, left_on=["c_cand", "rg"], right_on=KEY, how="left", nulls_equal=True
    )
    warn_msg = pl.concat_str(
        [pl.when(c).then(m) for c, _, m in warn_parts], separator="; ", ignore_nulls=True
    )
    msgs = flagged.select(
        "pi", msg.alias(ERROR_MSG), pl.when(warn_msg != "").then(warn_msg).alias(WARNING_MSG)
    )
    rows = rows.join(msgs, on="pi", how="left", maintain_order="left")
    return rows.select(OUTPUT_COLUMNS)
