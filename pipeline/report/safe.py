"""Formula-injection guard for report files opened in Excel, LibreOffice or Google Sheets.

A CSV cell is neutralised (prefixed with ``'``) when it starts with ``=``, ``@``, a tab or a
carriage return, or with ``+``/``-`` followed by anything other than a plain number, so that a
spreadsheet never evaluates it.  A plain number such as the E.164 phone ``+2290197123456`` or
``-12.5`` is left exactly as it is.  XLSX files need no prefix: their cells are written as text
(never as formulas) by :mod:`pipeline.report.writer`.
"""

from __future__ import annotations

import polars as pl

_PLAIN_NUMBER = r"^[+-]?[0-9]+(?:[.,][0-9]+)?$"
_RISKY_START = r"^[=@\t\r]"


def excel_safe(expr: pl.Expr) -> pl.Expr:
    """Neutralise a String expression's cells that a spreadsheet would evaluate."""
    risky = expr.str.contains(_RISKY_START) | (
        expr.str.contains(r"^[+-]") & ~expr.str.contains(_PLAIN_NUMBER)
    )
    return pl.when(risky.fill_null(False)).then(pl.lit("'") + expr).otherwise(expr)


def excel_safe_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Apply :func:`excel_safe` to every String column of ``df`` that has a cell starting
    with one of the characters it looks at (the others are left as they are, unscanned)."""
    names = [name for name, dtype in df.schema.items() if dtype == pl.String]
    if not names or df.is_empty():
        return df
    starts = df.select(pl.col(n).str.contains(r"^[=@\t\r+-]").any().alias(n) for n in names)
    return df.with_columns(excel_safe(pl.col(n)).alias(n) for n in names if starts[n].item())
