"""Validation of every canonical field but the phone, column-wise.

Input: the canonical raw frame of :func:`contactpipe.transform.mapping.apply_mapping` after
:func:`contactpipe.transform.phones.normalize_phones`.  Output: typed canonical columns plus

* ``__error`` / ``__error_msg`` / ``__error_field``: the row's rejection (the first problem by
  priority; further problems are appended to the message), or null;
* ``__warning`` / ``__warning_msg``: codes joined with ``;`` for rows kept with a remark.

The rule: a row is rejected only for its phone.  A problem in another field (name, e-mail,
notes, language, booleans) is a warning on that field, which is repaired when it can be
(``x@hot mail.com`` -> ``x@hotmail.com``, notes cut to 2,000 characters, the first valid
address of ``a@x.com ::: b@y.com``, a missing name replaced by the number itself, since every
API requires one) and left empty otherwise.  ``strict=True`` rejects
those rows instead (the codes are the same).

Codes are a public contract (scripts filter ``errors.csv`` on them); see :data:`CODES`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
from polars._typing import PolarsDataType

from contactpipe import schemas

PHONE_ELSEWHERE = "__phone_elsewhere"  # see contactpipe.transform.mapping

# code -> (canonical field it concerns, severity, one-line description for --help and README)
CODES: dict[str, tuple[str, str, str]] = {
    "MISSING_PHONE": ("phone", "error", "no phone number in the row"),
    "PRECISION_LOST": ("phone", "error", "digits lost to scientific notation (2.2997E+10)"),
    "INVALID_REGION": ("phone", "error", "the row's country cannot be understood"),
    "INVALID_NUMBER": ("phone", "error", "not a valid phone number"),
    "LEGACY_NUMBER": ("phone", "error", "number of a superseded national plan"),
    "NOT_MOBILE": ("phone", "error", "not a mobile number (--mobile-only)"),
    "MISSING_NAME": (
        "name",
        "warning",
        "no name: the number is the name (see --default-name; rejected with --strict)",
    ),
    "INVALID_EMAIL": (
        "email",
        "warning",
        "not an e-mail address: repaired or left empty (rejected with --strict)",
    ),
    "NOTES_TOO_LONG": (
        "notes",
        "warning",
        "notes longer than 2,000 characters: cut (rejected with --strict)",
    ),
    "INVALID_LANGUAGE": (
        "language_code",
        "warning",
        "not a language code (en, pt-BR): left empty (rejected with --strict)",
    ),
    "INVALID_BOOLEAN": (
        "opt_out",
        "warning",
        "not a yes/no value: left empty (rejected with --strict)",
    ),
    "EXTRA_EMAILS": ("email", "warning", "several e-mail addresses: first valid one kept"),
    "DUPLICATE": ("phone", "duplicate", "same phone as a kept row"),
    "LEGACY_MIGRATED": ("phone", "warning", "converted to the current national plan"),
    "EXTRA_NUMBERS": ("phone", "warning", "several numbers (cell or columns): first valid kept"),
    "EXCEL_FLOAT_FIXED": ("phone", "warning", "number repaired from an Excel float"),
    "PLUS_ADDED": ("phone", "warning", "number cell valid only with a '+': '+' added"),
    "FORMULA_TEXT": ("name", "warning", "cell looks like a spreadsheet formula; kept as text"),
}

NOTES_MAX = 2000
_TRUE = ("true", "yes", "y", "1", "x", "oui", "o", "vrai", "si", "sí", "sim", "ja", "wahr", "on")
_FALSE = ("false", "no", "n", "0", "non", "faux", "nao", "não", "nein", "falso", "off", "-")
_BOOL_MAP = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}
_LANGUAGE_NAMES = {
    "english": "en",
    "anglais": "en",
    "ingles": "en",
    "inglés": "en",
    "inglês": "en",
    "englisch": "en",
    "french": "fr",
    "français": "fr",
    "francais": "fr",
    "francés": "fr",
    "francês": "fr",
    "französisch": "fr",
    "spanish": "es",
    "espagnol": "es",
    "español": "es",
    "espanol": "es",
    "espanhol": "es",
    "spanisch": "es",
    "portuguese": "pt",
    "portugais": "pt",
    "portugués": "pt",
    "português": "pt",
    "portugiesisch": "pt",
    "german": "de",
    "allemand": "de",
    "alemán": "de",
    "alemão": "de",
    "deutsch": "de",
    "arabic": "ar",
    "arabe": "ar",
    "hindi": "hi",
}
_NOT_EMAIL_CHAR = r"\s@<>(),;:\x22\[\]\\"  # whitespace, @ and the specials of RFC 5322
_EMAIL = (
    rf"^[^{_NOT_EMAIL_CHAR}]+@[^{_NOT_EMAIL_CHAR}.]+(\.[^{_NOT_EMAIL_CHAR}.]+)*"
    rf"\.[^{_NOT_EMAIL_CHAR}.\d]{{2,}}$"
)
_LANGUAGE = r"^[a-z]{2,3}([_-]([a-z]{2}|[0-9]{3}))?$"
# phones' own columns, merged into __error/__warning here
_PHONE_DETAILS = ("__phone_error", "__phone_error_msg", "__phone_warning", "__phone_warning_msg")
_CODE_COLUMNS = ("__error", "__error_field", "__warning")  # few values, 1M rows: categorical
BOOL_FIELDS = ("opt_out", "opt_out_marketing", "reply_bot_enabled")
LIST_FIELDS = ("tags", "groups")
TEXT_FIELDS = ("name", "first_name", "last_name", "email", "notes")


@dataclass(frozen=True)
class ValidateOptions:
    """Options of the validation step."""

    default_name: str | None = None  # used when a row has no name ("{phone}" = its E.164)
    extra_groups: tuple[str, ...] = ()  # added to every row (import --group)
    strict: bool = False  # reject rows with a bad secondary field instead of warning


_EMAIL_RE = re.compile(_EMAIL)
_EMAIL_SEPARATORS = re.compile(r"\s*(?::::|[;,|])\s*")


def fix_email(value: str, strict: bool = False) -> tuple[str | None, str | None, str | None]:
    """(address kept, code, message) for an e-mail cell that is not one plain address.

    Several addresses (Google's ``a@x.com ::: b@y.com``, ``;``, ``,``, ``|`` or spaces between
    them): the first valid one, EXTRA_EMAILS naming the others.  No valid one: INVALID_EMAIL;
    without ``strict``, an address broken by spaces (``x@hot mail.com``) is read without them.
    """
    text = value.strip()
    parts = [p for p in _EMAIL_SEPARATORS.split(text) if p]
    if text.count("@") > 1:
        parts = [q for p in parts for q in p.split()]
    valid = [p for p in parts if _EMAIL_RE.match(p)]
    if valid:
        others = [p for p in parts if p != valid[0]]
        if not others:
            return valid[0], None, None
        return (
            valid[0],
            "EXTRA_EMAILS",
            f"{len(parts)} e-mail addresses in the cell, kept {valid[0]}; also: "
            + ", ".join(others),
        )
    if strict:
        return None, "INVALID_EMAIL", f"not an e-mail address: {text}"
    squeezed = re.sub(r"\s+", "", text)
    if text.count("@") == 1 and _EMAIL_RE.match(squeezed):
        return squeezed, "INVALID_EMAIL", f"not an e-mail address: {text}; read as {squeezed}"
    return None, "INVALID_EMAIL", f"not an e-mail address: {text}; e-mail left empty"


_EMAIL_FIX_COLUMNS = ("__em_fix", "__em_code", "__em_msg")


def _email_fixes(email: pl.Series, strict: bool) -> list[pl.Series] | list[pl.Expr]:
    """``__em_fix``, ``__em_code``, ``__em_msg`` for every row: :func:`fix_email`'s answer
    where the cell is not one plain address, else null.  Each distinct bad cell is fixed
    once, and only the bad rows (a few in a thousand) are looked up: a lookup of every
    row would hash every address, three times."""
    bad_rows = (email.is_not_null() & ~email.str.contains(_EMAIL)).arg_true()
    if bad_rows.is_empty():
        return [pl.lit(None, pl.String).alias(c) for c in _EMAIL_FIX_COLUMNS]
    bad = email.gather(bad_rows)
    values = bad.unique().to_list()
    fixes = [fix_email(v, strict) for v in values]
    out = []
    for i, c in enumerate(_EMAIL_FIX_COLUMNS):
        found = bad.replace_strict(values, [f[i] for f in fixes], return_dtype=pl.String)
        column = pl.Series(c, dtype=pl.String).extend_constant(None, email.len())
        out.append(column.scatter(bad_rows, found))
    return out


def _blank_null(e: pl.Expr) -> pl.Expr:
    e = e.str.strip_chars()
    return pl.when(e == "").then(None).otherwise(e)


def _split_list(col: str, drop: tuple[str, ...] = ()) -> pl.Expr:
    items = (
        pl.col(col)
        .str.replace_all(r"[,;|\n]", ";")
        .str.split(";")
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter((pl.element() != "") & ~pl.element().is_in(list(drop))))
    )
    return (
        pl.when(pl.col(col).is_null()).then(pl.lit([], dtype=pl.List(pl.String))).otherwise(items)
    )


def _bool(col: str) -> pl.Expr:
    key = pl.col(col).str.strip_chars().str.to_lowercase()
    return key.replace_strict(_BOOL_MAP, default=None, return_dtype=pl.Boolean)


def _per_value(column: pl.Series, expr: pl.Expr) -> pl.Series:
    """``expr`` (over ``column``'s name) for every row, computed once per distinct value when
    the values repeat (tags: a few dozen distinct lists in a million rows)."""
    values = column.unique()
    if values.len() * 4 > column.len():  # mostly distinct: the lookup would cost more
        return column.to_frame().select(expr.alias(column.name)).to_series()
    if values.len() == 1:  # one value (an absent column: null): no lookup at all
        one = values.to_frame().select(expr.alias(column.name)).to_series()
        return one.new_from_index(0, column.len())
    table = values.to_frame().with_columns(expr.alias("__value"))
    found = column.to_frame().join(
        table, on=column.name, how="left", nulls_equal=True, maintain_order="left"
    )
    return found.get_column("__value").alias(column.name)


def validate(df: pl.DataFrame, options: ValidateOptions | None = None) -> pl.DataFrame:
    """Type and check the canonical fields; add the error and warning columns (see module doc)."""
    options = options or ValidateOptions()
    drop_groups: tuple[str, ...] = ()
    for preset in schemas.load("presets").values():
        if isinstance(preset, dict):
            drop_groups += tuple(preset.get("drop_groups", ()))

    # names repeat (a few thousand in a million rows): spaces collapsed once per name
    df = df.with_columns(
        _per_value(df.get_column("name"), _blank_null(pl.col("name").str.replace_all(r"\s+", " ")))
    )
    name = pl.col("name")
    joined = _blank_null(
        pl.concat_str(
            [_blank_null(pl.col("first_name")), _blank_null(pl.col("last_name"))],
            separator=" ",
            ignore_nulls=True,
        )
    )
    name = pl.coalesce(name, joined)
    if options.default_name:
        # pieces around each "{phone}", joined by the row's number (a literal cannot be
        # str.replace'd with a column: the lengths differ)
        pieces = options.default_name.split("{phone}")
        phone = pl.col("__phone_e164").fill_null("")
        parts: list[pl.Expr] = [pl.lit(pieces[0])]
        for piece in pieces[1:]:
            parts += [phone, pl.lit(piece)]
        name = pl.coalesce(name, pl.concat_str(parts))
    lang_key = pl.col("language_code").str.strip_chars().str.to_lowercase()
    language = pl.coalesce(
        lang_key.replace_strict(_LANGUAGE_NAMES, default=None, return_dtype=pl.String),
        lang_key.str.replace("_", "-", literal=True),
    )
    groups = _split_list("groups", drop_groups)
    if options.extra_groups:
        groups = pl.concat_list(groups, pl.lit(list(options.extra_groups), pl.List(pl.String)))
    groups = groups.list.unique(maintain_order=True)
    present = {c for c in df.columns if df.get_column(c).null_count() < df.height}
    if "groups" not in present:  # every row: no group of its own, then the extra groups
        groups = pl.lit(list(dict.fromkeys(options.extra_groups)), pl.List(pl.String))

    def typed(col: str, expr: pl.Expr, dtype: PolarsDataType = pl.String) -> pl.Expr:
        # A column with no value at all stays a literal null: computing over it would
        # materialise 16 bytes of string view per row for nothing.
        return (expr if col in present else pl.lit(None, dtype)).alias(col)

    out = df.with_columns(
        name.alias("name"),
        *(typed(f, _blank_null(pl.col(f))) for f in ("first_name", "last_name", "email", "notes")),
        typed("language_code", language),
        _per_value(df.get_column("tags"), _split_list("tags").list.unique(maintain_order=True)),
        groups.alias("groups"),
        *(typed(f, _bool(f), pl.Boolean) for f in BOOL_FIELDS),
        *(pl.col(f).alias(f"__raw_{f}") for f in BOOL_FIELDS),
    )
    out = out.with_columns(_email_fixes(out.get_column("email"), options.strict))
    row_checks, field_checks = _checks(out, options.strict)
    checks = row_checks + field_checks if options.strict else row_checks
    first = pl.coalesce([code for code, _, _, _ in checks])
    fld = pl.coalesce([pl.when(hit).then(pl.lit(f)) for _, _, f, hit in checks])
    extra_emails = (pl.col("__em_code") == "EXTRA_EMAILS").fill_null(False)
    warn_parts = [  # (code, message, hit: the code is not null)
        (
            pl.col("__phone_warning"),
            pl.col("__phone_warning_msg"),
            pl.col("__phone_warning").is_not_null(),
        ),
        *([] if options.strict else [(code, msg, hit) for code, msg, _, hit in field_checks]),
        (
            pl.when(extra_emails).then(pl.col("__em_code")),
            pl.when(extra_emails).then(pl.col("__em_msg")),
            extra_emails,
        ),
        _formula_warning(out.columns),
    ]
    # Warnings and messages are built for the flagged rows only (a few percent): computed
    # over every row, each code would be a string column of its own, and the messages'
    # buffers would outweigh the contacts themselves.  Which rows: booleans, cheap.
    flagged = out.select(
        first.is_not_null() | pl.any_horizontal(h for _, _, h in warn_parts)
    ).to_series()
    if flagged.any():
        beside = _messages(out, flagged, checks, warn_parts, first)
    else:  # a clean file (or batch): no message to build, and their query costs 5 ms to plan
        beside = [
            pl.repeat(None, out.height, dtype=pl.String, eager=True).alias(c)
            for c in _MESSAGE_COLUMNS
        ]
    # the rest in one query: a cell that was not one plain address gets its repair (or
    # nothing); secondary fields: the warning says what was repaired or dropped
    repaired = pl.col("__em_fix").is_not_null() | pl.col("__em_code").is_not_null()
    lang = pl.col("language_code")
    lazy = out.lazy().with_columns(first.alias("__error"), fld.alias("__error_field"), *beside)
    lazy = lazy.with_columns(
        pl.when(repaired).then(pl.col("__em_fix")).otherwise(pl.col("email")).alias("email")
    )
    if not options.strict:
        lazy = lazy.with_columns(
            pl.coalesce("name", "__phone_e164").alias("name"),
            pl.col("notes").str.slice(0, NOTES_MAX),
            pl.when(lang.str.contains(_LANGUAGE)).then(lang).alias("language_code"),
        )
    lazy = lazy.drop(
        *(f"__raw_{f}" for f in BOOL_FIELDS),
        *_PHONE_DETAILS,
        "__em_fix",
        "__em_code",
        "__em_msg",
        *([PHONE_ELSEWHERE] if PHONE_ELSEWHERE in out.columns else []),
    )
    return lazy.with_columns(pl.col(c).cast(pl.Categorical) for c in _CODE_COLUMNS).collect(
        engine="in-memory"
    )


_MESSAGE_COLUMNS = ("__warning", "__error_msg", "__warning_msg")


def _messages(
    out: pl.DataFrame,
    flagged: pl.Series,
    checks: list[Check],
    warn_parts: list[tuple[pl.Expr, pl.Expr, pl.Expr]],
    first: pl.Expr,
) -> list[pl.Series]:
    """The warning codes, error message and warning message of every row of ``out``, as
    :data:`_MESSAGE_COLUMNS` (null where the row is not ``flagged``)."""
    warn = pl.concat_str([c for c, _, _ in warn_parts], separator=";", ignore_nulls=True)
    messages = (
        out.lazy()  # lazy: only the columns the messages read are filtered
        .filter(flagged)
        .select(
            _blank_null(warn).alias("__warning"),
            pl.when(first.is_not_null())
            .then(
                pl.concat_str(
                    [pl.when(hit).then(msg) for _, msg, _, hit in checks],
                    separator="; also: ",
                    ignore_nulls=True,
                )
            )
            .alias("__error_msg"),
            _blank_null(
                pl.concat_str(
                    [pl.when(h).then(m) for _, m, h in warn_parts],
                    separator="; ",
                    ignore_nulls=True,
                )
            ).alias("__warning_msg"),
        )
        .collect(engine="in-memory")
    )
    # beside the rows: the join of their index alone (an integer hash join; joining the
    # whole frame would gather a copy of every column)
    messages.insert_column(0, flagged.arg_true().alias("__vi"))
    index = pl.int_range(out.height, dtype=pl.UInt32, eager=True).alias("__vi").to_frame()
    return index.join(messages, on="__vi", how="left", maintain_order="left").get_columns()[1:]


Check = tuple[pl.Expr, pl.Expr, str, pl.Expr]


def _checks(df: pl.DataFrame, strict: bool) -> tuple[list[Check], list[Check]]:
    """(code expr, message expr, field, hit) per check, in priority order; code null (hit
    False) = passes.

    Returns the row checks (phone, name: they reject the row) and the field checks (e-mail,
    notes, language, booleans: warnings, or rejections with ``strict``)."""
    cols = set(df.columns)
    phone_msg = pl.col("__phone_error_msg").fill_null(pl.col("__phone_error"))
    if PHONE_ELSEWHERE in cols:  # MISSING_PHONE, but an unmapped column holds a number
        elsewhere = (pl.col("__phone_error") == "MISSING_PHONE") & pl.col(
            PHONE_ELSEWHERE
        ).is_not_null()
        phone_msg = (
            pl.when(elsewhere)
            .then(
                pl.concat_str(
                    pl.lit("no phone number in the phone column, but column '"),
                    pl.col(PHONE_ELSEWHERE),
                    pl.lit("' holds one: name it with --mapping"),
                )
            )
            .otherwise(phone_msg)
        )
    phone = pl.col("__phone_error")
    rows: list[Check] = [(phone, phone_msg, "phone", phone.is_not_null())]
    dropped = "" if strict else " (left empty)"
    fields: list[Check] = [
        _check(
            pl.col("name").is_null(),
            "MISSING_NAME",
            pl.when(pl.col("name").is_null()).then(
                pl.lit(
                    "no name: fill the name (or first/last name) column, or use --default-name"
                    if strict
                    else "no name (or first/last name): the phone number is used as the name"
                )
            ),
            "name",
        ),
        _check(
            pl.col("__em_code") == "INVALID_EMAIL", "INVALID_EMAIL", pl.col("__em_msg"), "email"
        ),
        _check(
            pl.col("notes").str.len_chars() > NOTES_MAX,
            "NOTES_TOO_LONG",
            pl.format(
                "notes are {} characters long; the limit is {}{}",
                pl.col("notes").str.len_chars(),
                pl.lit(NOTES_MAX),
                pl.lit("" if strict else ": cut there"),
            ),
            "notes",
        ),
        _check(
            pl.col("language_code").is_not_null()
            & ~pl.col("language_code").str.contains(_LANGUAGE),
            "INVALID_LANGUAGE",
            pl.format(
                "not a language code such as en or pt-BR: {}{}",
                pl.col("language_code"),
                pl.lit(dropped),
            ),
            "language_code",
        ),
    ]
    for f in BOOL_FIELDS:
        raw = _blank_null(pl.col(f"__raw_{f}"))
        assert f"__raw_{f}" in cols
        fields.append(
            _check(
                raw.is_not_null() & pl.col(f).is_null(),
                "INVALID_BOOLEAN",
                pl.format("{}: not a yes/no value: {}{}", pl.lit(f), raw, pl.lit(dropped)),
                f,
            )
        )
    return rows, fields


def _check(cond: pl.Expr, code: str, msg: pl.Expr, field: str) -> Check:
    """``code`` where ``cond`` holds (else null), its message, the field, and the hit."""
    return pl.when(cond).then(pl.lit(code)), msg, field, cond.fill_null(False)


def _formula_warning(columns: list[str]) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """FORMULA_TEXT when a text field or a custom field starts with '='."""
    texts = [*TEXT_FIELDS, *(c for c in columns if c.startswith("custom."))]
    hit = pl.any_horizontal(pl.col(c).str.starts_with("=").fill_null(False) for c in texts)
    return (
        pl.when(hit).then(pl.lit("FORMULA_TEXT")),
        pl.when(hit).then(
            pl.lit("a cell starts with '=' like a spreadsheet formula; kept as text")
        ),
        hit,
    )
