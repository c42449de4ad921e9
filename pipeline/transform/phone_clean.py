"""Cleaning a phone cell into a canonical candidate (vectorised polars string expressions).

The candidate is what phonenumbers is asked about; for ordinary cells it is ``^\\+?[0-9]+$``.
Steps, in order:

1. Trim (Unicode spaces), drop a leading Excel apostrophe and surrounding quotes; map
   full-width and Arabic-Indic digits and the full-width plus to ASCII (phonenumbers
   normalises those the same way).
2. Excel damage: ``^\\+?\\d+\\.0+$`` loses its ``.0...`` (EXCEL_FLOAT_FIXED).  Scientific
   notation ``M[.,F]E[+]X``: digits = M+F, shift = X - len(F).  shift == 0 -> exact integer,
   accepted (EXCEL_FLOAT_FIXED); shift > 0 -> trailing digits were dropped and cannot be
   known (PRECISION_LOST, never guessed); shift < 0 -> exact only if the dropped fraction
   digits are all zeros, otherwise the cell is a decimal, not a phone number.
3. A trailing label in brackets, with letters and no digit (``06 12 34 56 78 (mobile)``,
   ``[work]``), is dropped: phonenumbers would read its letters as a vanity number.
   Then an extension at the end of the cell is kept in ``__phone_ext`` (see ``EXT_MARKERS``);
   failing that, ``~`` / ``～`` + digits at the end is one too, as phonenumbers reads it
   (``TILDE_EXT``: ``+82 1544-1643~12`` is +8215441643 extension 12, ``500~2345678`` in US
   is the invalid ``500``).
4. Several numbers in one cell (``MULTI_HINT``): split in Python by :func:`alternatives`.
5. Separators removed: Unicode spaces (NBSP, thin, narrow, zero-width...), dots, dashes,
   slashes, parentheses, brackets, tildes not taken as an extension marker (step 3).
   These are all punctuation phonenumbers itself ignores, so
   ``parse(clean(s), r) == parse(s, r)`` for the formats it prints and the usual human
   variants.  ``(0)`` after a country code therefore becomes a plain ``0`` that
   phonenumbers' national-prefix rule removes where it is a trunk prefix (+33 (0)6 ->
   +336...) and keeps where it belongs to the number (Italy) -- same answer as the raw cell.
   ``00`` is left to the IDD rule of the row's region, exactly as phonenumbers does.

A cell that is not digit-only after this (letters, vanity numbers, ``tel:`` URIs...) is
passed on as trimmed text: phonenumbers decides it.
"""

from __future__ import annotations

import re

import polars as pl

_QUOTES = "'\"‘’‚‛“”„«»`´"
_EDGE_QUOTES = f"^[\\s{_QUOTES}]+|[\\s{_QUOTES}]+$"
_DIGIT_MAP_FROM = [chr(0xFF10 + i) for i in range(10)] + [chr(0x0660 + i) for i in range(10)]
_DIGIT_MAP_FROM += [chr(0x06F0 + i) for i in range(10)] + ["\uff0b"]
_DIGIT_MAP_TO = [str(i) for i in range(10)] * 3 + ["+"]

EXCEL_FLOAT = r"^(\+?[0-9]+)\.0+$"
SCI = r"^([0-9]+)(?:[.,]([0-9]+))?[eE]\+?([0-9]{1,2})$"
#: Extension markers recognised at the end of a cell, followed by 1-10 digits:
#: ext, ext., extn, extension, x, #, poste, p., Durchwahl, DW, ramal, int., interno,
#: anexo, доб, and RFC 3966 ``;ext=``.  Case-insensitive.
EXT_MARKERS = r"ext(?:ension|n)?\.?|x|#|poste|p\.|durchwahl|dw\.?|ramal|int\.|interno|anexo|доб\.?"
EXT = (
    rf"(?i)(?:\s*,?\s*[(\[]?\s*(?:{EXT_MARKERS})\s*[:=.]?\s*|;ext=)"
    rf"([0-9]{{1,10}})\s*[)\]]?\s*#?$"
)  # also in brackets: "... (poste 12)"
SEPARATORS = (
    r"[\s\u00a0\u00ad\u2000-\u200b\u202f\u205f\u2060\u3000.\-\u2010-\u2015\u2212\u30fc"
    r"\uff0d/\uff0f()\uff08\uff09\[\]\uff3b\uff3d~\u2053\u223c\uff5e]"
)
#: phonenumbers reads ``~`` / ``～`` followed by digits at the end of a cell as an extension
#: marker (its "ambiguous" extension pattern, up to 9 digits), not as a separator.  The same
#: pattern, on a cell without a plain extension.  Elsewhere a tilde is punctuation to it.
TILDE_EXT = r"[ \u00a0\t,]*[~\uff5e][:.\uff0e]?[ \u00a0\t,\-]*([0-9]{1,9})#?$"
#: A trailing "(mobile)" / "[work]": brackets holding at least one letter and no digit.
LABEL = r"\s*[(\[][^0-9()\[\]]*\p{L}[^0-9()\[\]]*[)\]]$"
CANONICAL = r"^\+?[0-9]+$"
SIMPLE = r"^[ +0-9.()-]*$"
#: Cells that may hold several numbers: strong separators (; | newline & " or " " ou "
#: " and " " et ") or a comma/slash between two runs of >= 6 digits.
MULTI_HINT = r"(?i)[;|\n\r&]|\s(?:or|ou|and|et)\s|[0-9][^,/]*[,/]"
MIN_PIECE_DIGITS = 6

#: What :func:`clean_frame` adds, in order.
CLEAN_COLUMNS = (
    "c_text",
    "c_missing",
    "c_excel",
    "c_lost",
    "c_decimal",
    "c_ext",
    "c_multi",
    "c_cand",
)

_STRONG_RE = re.compile(r"\s*(?:[;|\n\r&]+|\s(?:or|ou|and|et)\s)\s*", re.IGNORECASE)
_WEAK_RE = re.compile(r"\s*[,/]\s*")
_EXT_RE = re.compile(EXT)
_TILDE_RE = re.compile(TILDE_EXT)
_SEP_RE = re.compile(SEPARATORS)


def _ndigits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def _viable_head(head: pl.Expr) -> pl.Expr:
    """What phonenumbers needs before a ``~`` extension: at least 3 digits, or exactly two
    bare digits (``_is_viable_phone_number``); and only separators besides, so that the
    head's candidate is what phonenumbers itself is left with."""
    bare = head.str.strip_chars().str.replace_all(SEPARATORS, "")
    return bare.str.contains(CANONICAL) & (
        (bare.str.count_matches("[0-9]") >= 3) | head.str.strip_chars().str.contains("^[0-9]{2}$")
    )


def split_extension(text: str) -> tuple[str, str | None]:
    """(number text, extension) -- the same rules as the vectorised step, for one piece."""
    m = _EXT_RE.search(text)
    if m is not None and _ndigits(text[: m.start()]) >= 3:
        return text[: m.start()], m.group(1)
    m = _TILDE_RE.search(text)
    if m is not None:
        head = text[: m.start()].strip()
        bare = _SEP_RE.sub("", head)
        viable = _ndigits(bare) >= 3 or re.fullmatch("[0-9]{2}", head)
        if re.fullmatch(CANONICAL, bare) and viable:
            return text[: m.start()], m.group(1)
    return text, None


def alternatives(text: str) -> tuple[list[tuple[str, str | None]], bool] | None:
    """(numbers to try in order as (text, extension), whole cell first?) or None for one number.

    Strong separators always split, when at least one part has ``MIN_PIECE_DIGITS`` digits
    (``92011 ; +919895270723``: the junk part is tried, and fails, before the number).  A comma
    or slash splits when at least one part has that many digits, and then the whole cell is
    tried first: a valid whole wins over its parts (``030/1234567`` stays one number).  Parts
    without any digit are dropped.  The caller keeps only the whole cell or a part with
    ``MIN_PIECE_DIGITS`` digits (:func:`is_number_part`): ``12`` in ``12 / 06 20 30 40 51``
    is never taken for a phone number.
    """
    pieces = [p for p in _STRONG_RE.split(text) if _ndigits(p)]
    strong = len(pieces) > 1 and any(is_number_part(p) for p in pieces)
    out: list[str] = []
    for p in pieces if strong else [text]:
        sub = [s for s in _WEAK_RE.split(p) if _ndigits(s)]
        if len(sub) > 1 and any(is_number_part(s) for s in sub):
            out.extend(sub)
        else:
            out.append(p)
    if len(out) < 2:
        return None
    alts = out if strong else [text, *out]
    return [split_extension(a.strip()) for a in alts], not strong


def is_number_part(text: str) -> bool:
    """A part of a cell that may be kept as its phone number (enough digits)."""
    return _ndigits(text) >= MIN_PIECE_DIGITS


def canonical(text: pl.Expr) -> pl.Expr:
    """Separators removed if that leaves ``^\\+?[0-9]+$``; else the text as it is."""
    bare = text.str.replace_all(SEPARATORS, "")
    return pl.when(bare.str.contains(CANONICAL)).then(bare).otherwise(text)


def clean_frame(frame: pl.DataFrame, raw: str) -> pl.DataFrame:
    """``frame`` with the cleaning columns of cell column ``raw`` (prefixed ``c_``).

    ``c_missing``, ``c_excel`` (EXCEL_FLOAT_FIXED), ``c_lost`` (PRECISION_LOST),
    ``c_decimal`` (a non-integer number), ``c_ext``, ``c_text`` (cell without extension),
    ``c_multi`` (may hold several numbers) and ``c_cand`` (canonical candidate).

    Plain cells (``SIMPLE``: digits, spaces, ``+ . ( ) -`` only, and not an Excel float)
    need only step 5; every step before it is the identity on them, so only the other cells
    go through them.
    Row order is kept.
    """
    cell = pl.col(raw)
    plain = (cell.str.contains(SIMPLE) & ~cell.str.contains(r"^ *\+?[0-9]+\.0+ *$")).fill_null(
        False
    )
    # Step 5 over every row (cheap), then the other rows' results put in their places: no
    # filter, concatenation and sort of the whole frame for the few cells that are not plain.
    # A plain cell's only separators are " . ( ) -": removed as literals (a regex of every
    # separator costs twice as much); the other rows' values are replaced below.
    text = pl.col("c_text")
    bare = text.str.replace_all(" ", "", literal=True).str.replace_many(
        [".", "(", ")", "-"], [""] * 4
    )
    out = (
        frame.lazy()
        .with_columns(c_text=cell.str.strip_chars(), _plain=plain)
        .with_columns(
            c_missing=text == "",
            c_excel=pl.lit(False),
            c_lost=pl.lit(False),
            c_decimal=pl.lit(False),
            c_ext=pl.lit(None, pl.String),
            c_multi=pl.lit(False),
            c_bare=bare,
        )
        .with_columns(
            c_cand=pl.when(pl.col("c_bare").str.contains(CANONICAL)).then("c_bare").otherwise(text)
        )
        .drop("c_bare")
        .collect(engine="in-memory")
    )
    others = out.drop_in_place("_plain").not_().arg_true()
    if others.is_empty():
        return out
    full = _clean_full(frame[others], raw)
    return out.with_columns(
        out.get_column(c).scatter(others, full.get_column(c)) for c in CLEAN_COLUMNS
    )


def _clean_full(frame: pl.DataFrame, raw: str) -> pl.DataFrame:
    """Steps 1-5 for cells that are not plain; each string operation runs once per cell."""
    t = pl.col("c_t")
    lazy = frame.lazy()  # one query, collected once
    lazy = lazy.with_columns(
        c_t=pl.col(raw)
        .str.strip_chars()
        .str.replace_many(_DIGIT_MAP_FROM, _DIGIT_MAP_TO)
        .str.replace_all(_EDGE_QUOTES, "")
    )
    lazy = lazy.with_columns(
        c_xl=t.str.extract(EXCEL_FLOAT, 1), c_sci=t.str.extract_groups(SCI)
    ).with_columns(
        c_mant=pl.col("c_sci").struct[0] + pl.col("c_sci").struct[1].fill_null(""),
        c_shift=pl.col("c_sci").struct[2].cast(pl.Int32)
        - pl.col("c_sci").struct[1].fill_null("").str.len_chars().cast(pl.Int32),
    )
    mant, shift = pl.col("c_mant"), pl.col("c_shift")
    keep = mant.str.len_chars().cast(pl.Int32) + pl.min_horizontal(shift, pl.lit(0, pl.Int32))
    exact = (shift == 0) | ((shift < 0) & mant.str.slice(keep).str.contains("^0*$"))
    lazy = lazy.with_columns(c_exact=exact, c_kept=mant.str.slice(0, keep))
    fixed = pl.coalesce(
        "c_xl", pl.when("c_exact").then(pl.col("c_kept").str.strip_chars_start("0"))
    )
    lazy = lazy.with_columns(c_fixed=fixed).with_columns(
        c_t2=pl.coalesce("c_fixed", t.str.replace(LABEL, ""))
    )
    t2 = pl.col("c_t2")
    lazy = lazy.with_columns(c_ext=t2.str.extract(EXT, 1), c_head=t2.str.replace(EXT, ""))
    ext_ok = pl.col("c_ext").is_not_null() & (pl.col("c_head").str.count_matches("[0-9]") >= 3)
    lazy = lazy.with_columns(
        c_ext=pl.when(ext_ok).then("c_ext"),
        c_head=pl.when(ext_ok).then("c_head"),
        c_tx=t2.str.extract(TILDE_EXT, 1),
        c_th=t2.str.replace(TILDE_EXT, ""),
    )
    tilde_ok = ~ext_ok & pl.col("c_tx").is_not_null() & _viable_head(pl.col("c_th"))
    lazy = lazy.with_columns(
        c_ext=pl.coalesce("c_ext", pl.when(tilde_ok).then("c_tx")),
        c_text=pl.coalesce("c_head", pl.when(tilde_ok).then("c_th"), t2).str.strip_chars(),
    ).drop("c_tx", "c_th")
    text = pl.col("c_text")
    lazy = lazy.with_columns(c_bare=text.str.replace_all(SEPARATORS, ""))
    return (
        lazy.with_columns(
            c_missing=(t == "").fill_null(True),
            c_excel=pl.col("c_fixed").is_not_null(),
            c_lost=(shift > 0).fill_null(False),
            c_decimal=((shift < 0) & ~pl.col("c_exact")).fill_null(False),
            c_multi=text.str.contains(MULTI_HINT).fill_null(False),
            c_cand=pl.when(pl.col("c_bare").str.contains(CANONICAL)).then("c_bare").otherwise(text),
        )
        .drop(
            "c_t",
            "c_xl",
            "c_sci",
            "c_mant",
            "c_shift",
            "c_exact",
            "c_kept",
            "c_fixed",
            "c_t2",
            "c_head",
            "c_bare",
        )
        .collect(engine="in-memory")
    )
