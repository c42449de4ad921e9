"""Pair level: decide every distinct (candidate, region) once -- fast path, then phonenumbers.

``resolve_pairs`` gives phonenumbers' own answer for each pair (fast path where it claims,
slow path for the rest); ``pair_outcomes`` adds the legacy-plan step and the per-pair
codes and messages the row level copies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
from polars._typing import PolarsDataType

from contactpipe.transform.phone_fast import fast_resolve
from contactpipe.transform.phone_legacy import legacy_candidates
from contactpipe.transform.phone_slow import resolve_many

KEY = ["cand", "region"]
FAST_MIN_GROUP = 100
"""Groups (region, plan, country code) with fewer pairs are left to phonenumbers: a region costs
the fast path about 2.4-3 ms of CPU in all (its queries, compiling its patterns), phonenumbers
about 30 us a pair and the fast path about 5: break-even near 100 pairs (re-measured after the
fast path's fourth pass, benchmarks/README.md)."""
RESOLVED_SCHEMA: dict[str, PolarsDataType] = {
    "cand": pl.String,
    "region": pl.String,
    "e164": pl.String,
    "mobile": pl.Boolean,
    "msg": pl.String,
    "cc": pl.Int32,
    "nsn": pl.String,
}


@dataclass
class PhoneStats:
    """What one ``normalize_phones`` run did, for benchmarks and run summaries."""

    rows: int = 0
    pairs: int = 0  # distinct (candidate, region) pairs decided
    fast_claimed: int = 0  # of which the vectorised fast path claimed
    slow_calls: int = 0  # of which phonenumbers was called for
    seconds: dict[str, float] = field(default_factory=dict)  # clean, fast, slow, total

    def add_time(self, step: str, started: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started


def resolve_pairs(pairs: pl.DataFrame, workers: int, stats: PhoneStats) -> pl.DataFrame:
    """phonenumbers' answer for each distinct pair (columns ``RESOLVED_SCHEMA``)."""
    pairs = pairs.select(pl.col("cand").cast(pl.String), pl.col("region").cast(pl.String))
    t = time.perf_counter()
    fast = fast_resolve(pairs, FAST_MIN_GROUP)
    stats.add_time("fast", t)
    t = time.perf_counter()
    # one region for every pair (no country column): the candidate alone is the key, and a
    # one-column string join is cheaper than a two-column one
    if fast.is_empty():  # a small input (fewer pairs than FAST_MIN_GROUP) or none claimed
        rest = pairs
    else:
        key = ["cand"] if pairs.get_column("region").n_unique() == 1 else KEY
        rest = pairs.join(fast.select(key), on=key, how="anti", nulls_equal=True)
    outcomes = resolve_many(rest.rows(), workers)
    slow = pl.DataFrame(
        [(c, r, *o) for (c, r), o in zip(rest.rows(), outcomes, strict=True)],
        schema=RESOLVED_SCHEMA,
        orient="row",
    )
    stats.add_time("slow", t)
    stats.pairs += pairs.height
    stats.fast_claimed += fast.height
    stats.slow_calls += rest.height
    if fast.is_empty():
        return slow
    fast = fast.with_columns(
        msg=pl.lit(None, pl.String), cc=pl.lit(None, pl.Int32), nsn=pl.lit(None, pl.String)
    )
    # polars types cast()'s mapping with an invariant key (str | Selector | DataType)
    typed = fast.select(list(RESOLVED_SCHEMA)).cast(RESOLVED_SCHEMA)  # type: ignore[arg-type]
    return pl.concat([typed, slow])


def pair_outcomes(
    pairs: pl.DataFrame,
    *,
    legacy: Literal["migrate", "reject"],
    workers: int,
    stats: PhoneStats,
) -> pl.DataFrame:
    """Per pair: ``p_e164, p_mobile, p_err, p_err_msg, p_warn, p_warn_msg`` (+ cand, region).

    Legacy plans: an invalid number matching a verified old-plan rule is converted and the
    converted number decided again; ``migrate`` accepts it (LEGACY_MIGRATED), ``reject``
    refuses the row (LEGACY_NUMBER, naming the current number).  A match of an unverified
    rule is refused as LEGACY_NUMBER with the rule's note.
    """
    res = resolve_pairs(pairs, workers, stats)
    # Valid pairs (97% of a typical file) need no legacy step and carry no message: only the
    # others go through the join and the message expressions below.
    valid = res.filter(pl.col("e164").is_not_null())
    res = res.filter(pl.col("e164").is_null())
    old = legacy_candidates(res.filter(pl.col("cc").is_not_null()))
    if old.height:
        todo = old.filter("verified").select(cand="new_cand", region="region").unique()
        new = resolve_pairs(todo, workers, stats).select(
            new_cand="cand", region="region", new_e164="e164", new_mobile="mobile"
        )
        old = old.join(new, on=["new_cand", "region"], how="left", nulls_equal=True)
    else:
        old = old.with_columns(
            new_e164=pl.lit(None, pl.String), new_mobile=pl.lit(None, pl.Boolean)
        )
    res = res.join(old, on=KEY, how="left", nulls_equal=True)

    ok = pl.col("e164").is_not_null()
    converted = pl.col("verified").fill_null(False) & pl.col("new_e164").is_not_null()
    unverified = pl.col("verified").not_().fill_null(False)
    migrate = converted & pl.lit(legacy == "migrate")
    was = pl.concat_str(pl.lit("old "), "plan", pl.lit(" number "), "old")
    since = pl.concat_str(pl.lit(" (plan changed "), "effective", pl.lit(")"))
    err = (
        pl.when(ok | migrate)
        .then(None)
        .when(converted | unverified)
        .then(pl.lit("LEGACY_NUMBER"))
        .otherwise(pl.lit("INVALID_NUMBER"))
    )
    err_msg = (
        pl.when(ok | migrate)
        .then(None)
        .when(converted)
        .then(pl.concat_str(was, since, pl.lit("; today it is "), "new_e164"))
        .when(unverified)
        .then(pl.concat_str(was, since, pl.lit(": "), "note"))
        .otherwise(pl.concat_str(pl.lit("invalid phone number: "), "msg"))
    )
    no_text = pl.lit(None, pl.String)
    decided = valid.select(
        *KEY,
        p_e164="e164",
        p_mobile="mobile",
        p_err=no_text,
        p_err_msg=no_text,
        p_warn=no_text,
        p_warn_msg=no_text,
    )
    rest = res.select(
        *KEY,
        p_e164=pl.when(ok).then("e164").when(migrate).then("new_e164"),
        p_mobile=pl.when(ok).then("mobile").when(migrate).then("new_mobile"),
        p_err=err,
        p_err_msg=err_msg,
        p_warn=pl.when(~ok & migrate).then(pl.lit("LEGACY_MIGRATED")),
        p_warn_msg=pl.when(~ok & migrate).then(
            pl.concat_str(was, pl.lit(" -> "), "new_e164", since)
        ),
    )
    return pl.concat([decided, rest.cast(decided.schema)])
