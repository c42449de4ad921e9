"""Several phone columns per row: the first *valid* number wins, the others are listed.

A row of a CRM export often has its number in one of several columns (``Mobile Phone``,
``Phone``, ``WhatsApp``...), and the preferred one may hold junk (``null``, ``-``, a
half-typed number) while the next holds a valid number.  :func:`stack_candidates` turns the
candidate columns into one long frame (one line per non-empty cell, the first candidate
always present so that every row has a line); each line is then decided like a single cell.
:func:`choose` keeps one line per row:

1. the first candidate (in the caller's order: mobile and WhatsApp columns first) whose
   number is accepted;
2. else the first non-empty candidate: its error is the row's error;
3. else the (empty) first candidate: MISSING_PHONE.

The other candidates of the row that hold a valid number different from the kept one are
appended to the row's EXTRA_NUMBERS message; the same number written again in another
column is not listed.  ``pick`` is the index of the kept candidate (null when all are empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

OI = "oi"  # position of the input row
J = "j"  # index of the candidate column


def stack_candidates(
    df: pl.DataFrame,
    cols: Sequence[str],
    regions: pl.DataFrame,
    numeric_cols: Mapping[str, str],
) -> pl.DataFrame:
    """Long frame ``raw, num, oi, j`` + the region columns: one line per non-empty candidate
    cell, and the first candidate of every row (empty or not)."""
    base = regions.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias(OI))
    parts = []
    for j, col in enumerate(cols):
        num = numeric_cols.get(col)
        part = base.with_columns(
            raw=df.get_column(col).cast(pl.String),
            num=df.get_column(num).fill_null(False) if num else pl.lit(False),
            j=pl.lit(j, pl.UInt8),
        )
        if j:
            part = part.filter(pl.col("raw").str.strip_chars() != "")
        parts.append(part.select("raw", "num", OI, J, *regions.columns))
    return pl.concat(parts)


def choose(rows: pl.DataFrame, ok: pl.Expr, listed: pl.Expr) -> pl.DataFrame:
    """One line per ``oi`` (in ``oi`` order) from decided lines; see the module docstring.

    ``ok``: the line's number is accepted; ``listed``: the line holds a valid number worth
    naming as an extra one.  Needs columns ``oi, j, c_missing, p_e164, m_extra``; returns
    them with ``m_extra`` extended and ``pick`` added.
    """
    rank = pl.when(ok).then(0).when(~pl.col("c_missing")).then(1).otherwise(2).cast(pl.UInt8)
    narrow = rows.select(
        OI, J, "p_e164", _rank=rank, _listed=listed.fill_null(False), _pos=pl.int_range(pl.len())
    )
    best = (
        narrow.sort(OI, "_rank", J)  # narrow: a few integer columns
        .unique(OI, keep="first", maintain_order=True)
        .select(OI, "_pos", "_rank", _kept_j=J, _kept="p_e164")
    )
    kept = rows.select(pl.all().gather(best.get_column("_pos")))
    # other valid numbers of rows that had several candidates and kept one
    several = narrow.group_by(OI).len().filter(pl.col("len") > 1).select(OI)
    others = (
        narrow.filter("_listed")
        .join(several, on=OI, how="semi")
        .join(best.filter(pl.col("_rank") == 0), on=OI)
        .filter(pl.col(J) != pl.col("_kept_j"), pl.col("p_e164") != pl.col("_kept"))
        .sort(OI, J)
        .unique([OI, "p_e164"], keep="first", maintain_order=True)
        .group_by(OI, maintain_order=True)
        .agg(_others=pl.col("p_e164").str.join(", "))
    )
    column_msg = pl.concat_str(pl.lit("other phone columns: "), "_others")
    kept = kept.with_columns(_rank=best.get_column("_rank"))
    kept = kept.join(others, on=OI, how="left", maintain_order="left").with_columns(
        m_extra=pl.when(pl.col("_others").is_null())
        .then("m_extra")
        .when(pl.col("m_extra").is_null())
        .then(column_msg)
        .otherwise(pl.concat_str("m_extra", pl.lit("; "), column_msg)),
        pick=pl.when(pl.col("_rank") < 2).then(J),
    )
    return kept.drop("_rank", "_others")
