"""Formula-injection guard for report files opened in Excel, LibreOffice or Google Sheets.

A CSV cell is neutralised (prefixed with ``'``) when it starts with ``=``, ``@``, a tab or a
carriage return, or with ``+``/``-`` followed by anything other than a plain number, so that a
spreadsheet never evaluates it.  A plain number such as the E.164 phone ``+2290197123456`` or
``-12.5`` is left exactly as it is.  XLSX files need no prefix: their cells are written as text
(never as formulas) by :mod:`contactpipe.report.writer`.  Header names get the same guard
(:func:`safe_header`): a column named ``=HYPERLINK(...)`` in the input is a header cell too.

:func:`terminal_safe` does the same for a terminal: control characters from a file (escape
sequences, NUL bytes, carriage returns) are shown escaped, never interpreted.
"""

from __future__ import annotations

import re

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


def _risky(text: str) -> bool:
    return bool(re.match(_RISKY_START, text)) or (
        text[:1] in "+-" and text[:1] != "" and not re.match(_PLAIN_NUMBER, text)
    )


def safe_header(names: list[str]) -> list[str]:
    """Column names neutralised like cells (``'=HYPERLINK(...)``), still unique."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        safe = "'" + name if _risky(name) else name
        base, n = safe, 1
        while safe in seen:
            n += 1
            safe = f"{base} ({n})"
        seen.add(safe)
        out.append(safe)
    return out


_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with control characters (ESC, NUL, CR, C1...) shown as ``\\xNN``; line feeds
    and tabs are kept."""
    return _TERMINAL_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
