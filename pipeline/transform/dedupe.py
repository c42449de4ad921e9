"""Dedupe valid rows by E.164 phone across every input file.

``on_duplicate``:

* ``first`` keeps the first row of each phone (input order: files as given, then rows);
* ``last`` keeps the last one;
* ``merge`` keeps the first row's position and fills each field with the first non-empty value
  among the rows of that phone; tags and groups are the union of all rows' values, in order.

Every dropped row comes back in the ``duplicates`` frame with ``__dup_of`` (the kept row's
``__rid``) so the report can say which row it duplicates.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from pipeline.transform.validate import LIST_FIELDS

OnDuplicate = Literal["first", "last", "merge"]
KEY = "__phone_e164"
RID = "__rid"


def dedupe(
    valid: pl.DataFrame, on_duplicate: OnDuplicate = "first"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``valid`` (rows without error, ordered by ``__rid``) into (kept, duplicates)."""
    if on_duplicate not in ("first", "last", "merge"):
        raise ValueError(f"on_duplicate must be first, last or merge, not {on_duplicate!r}")
    pick = pl.col(RID).last() if on_duplicate == "last" else pl.col(RID).first()
    marked = valid.with_columns(pick.over(KEY).alias("__dup_of"))
    is_kept = pl.col(RID) == pl.col("__dup_of")
    duplicates = marked.filter(~is_kept)
    kept = marked.filter(is_kept).drop("__dup_of")
    if on_duplicate == "merge" and duplicates.height:
        kept = _merge(valid, kept)
    return kept, duplicates


def _merge(valid: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
    """Fill kept rows from their duplicates: first non-empty value, union of list fields."""
    dup_keys = valid.group_by(KEY).len().filter(pl.col("len") > 1).select(KEY)
    group = valid.join(dup_keys, on=KEY, how="semi").sort(RID)
    # bookkeeping columns (``__*``: source position, phone details) stay those of the kept row
    names = [c for c in valid.columns if not c.startswith("__")]
    aggs = [
        pl.col(c).list.explode(keep_nulls=False, empty_as_null=False).unique(maintain_order=True)
        if c in LIST_FIELDS
        else pl.col(c).drop_nulls().first()
        for c in names
    ]
    merged = group.group_by(KEY, maintain_order=True).agg(aggs)
    filled = kept.join(merged, on=KEY, how="left", suffix="__merged")
    return filled.with_columns(
        pl.coalesce(pl.col(f"{c}__merged"), pl.col(c)).alias(c) for c in names
    ).drop([f"{c}__merged" for c in names])
