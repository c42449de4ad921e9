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

from contactpipe.transform.validate import LIST_FIELDS

OnDuplicate = Literal["first", "last", "merge"]
KEY = "__phone_e164"
RID = "__rid"


def dedupe(
    valid: pl.DataFrame, on_duplicate: OnDuplicate = "first", *, eligible: pl.Series | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split the rows of ``valid`` (in ``__rid`` order) into (kept, duplicates).

    ``eligible``: optional mask of the rows to dedupe (e.g. those without an error); the other
    rows are in neither result.  Passing a mask instead of a filtered frame saves a copy.
    """
    if on_duplicate not in ("first", "last", "merge"):
        raise ValueError(f"on_duplicate must be first, last or merge, not {on_duplicate!r}")
    # E.164 is '+' and at most 15 digits, the first non-zero: as an Int64 it is the same key,
    # and hashing 8-byte integers costs far less time and memory than hashing strings.
    keys = valid.get_column(KEY).str.slice(1).cast(pl.Int64, strict=False)
    if eligible is not None:  # null keys never meet: rows outside the mask win or lose nothing
        keys = keys.zip_with(eligible, pl.Series([None], dtype=pl.Int64))
    else:
        eligible = keys.is_not_null()
    distinct = keys.is_last_distinct() if on_duplicate == "last" else keys.is_first_distinct()
    keep, drop = distinct & eligible, ~distinct & eligible
    kept = valid.filter(keep)
    duplicates = valid.filter(drop)
    if duplicates.height:
        # the kept row of each duplicate, found on the integer keys alone (joining the frames
        # themselves would gather a copy of every column of both)
        owners = pl.DataFrame({"k": keys.filter(keep), "__dup_of": kept.get_column(RID)})
        found = (
            keys.filter(drop).to_frame("k").join(owners, on="k", how="left", maintain_order="left")
        )
        duplicates = duplicates.with_columns(found.get_column("__dup_of"))
        del owners, found
        if on_duplicate == "merge":
            kept = _merge(pl.concat([kept, duplicates.drop("__dup_of")]).sort(RID), kept)
    else:
        duplicates = duplicates.with_columns(pl.lit(None, pl.Int64).alias("__dup_of"))
    del keys
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
    filled = kept.join(merged, on=KEY, how="left", suffix="__merged", maintain_order="left")
    return filled.with_columns(
        pl.coalesce(pl.col(f"{c}__merged"), pl.col(c)).alias(c) for c in names
    ).drop([f"{c}__merged" for c in names])
