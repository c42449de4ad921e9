"""Column mapping: the user's headers onto the canonical contact schema (``schemas/``).

Resolution order for every header of a file:

1. ``--mapping FILE`` entries (``{"Source header": "phone" | "custom.city" | null}``);
2. a preset when the file is a known export (Google Contacts, Outlook: ``schemas/presets.json``);
3. header aliases (``schemas/aliases.json``), compared after folding case, accents, spaces and
   punctuation, so ``Téléphone``, ``TELEPHONE`` and ``télé-phone`` are the same header; an alias
   followed by a number (``Telefone1``, ``Phone_2``, ``Email 2``) counts as that alias;
4. when no header names a phone column, the content decides: an unmapped column most of whose
   non-empty cells look like phone numbers is a phone column (``phone_by_content``);
5. with ``--keep-extra-columns``, every header still unmapped becomes a custom field.

Several columns may feed the phone (:attr:`ColumnMapping.phone_candidates`, mobile and WhatsApp
columns first): they are coalesced in priority order (the first non-empty cell of a row wins)
and the report names the column the value came from.

Placeholders (``N/A``, ``-``, ``none``, ``k.A.``... listed under ``$placeholders`` in
``schemas/aliases.json``) are empty cells in every column: a placeholder phone is a missing one.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from contactpipe import schemas
from contactpipe.errors import InputError, UsageError
from contactpipe.frames import SOURCE_COLUMNS

# Canonical fields a source column can feed, from ``schemas/contact.schema.json``; custom
# fields are "custom.<key>"; the extension is never a column of its own in an input file.
FIELDS = tuple(f for f in schemas.contact_fields() if f not in ("phone_ext", "custom_fields"))
CUSTOM_PREFIX = "custom."
PHONE_SOURCE = "__phone_column"  # name of the column that gave the row its phone value
PHONE_ELSEWHERE = "__phone_elsewhere"  # unmapped column with a phone-like cell in the row
LIST_SEPARATOR = ";"  # multi-value cells are rewritten with this separator before splitting


_NOT_ALNUM = re.compile(r"[\W_]+")


def fold(header: str) -> str:
    """Fold a header for comparison: no accents, no case, only letters and digits (of any
    script: ``Телефон`` folds to ``телефон``, ``رقم الهاتف`` keeps its Arabic letters)."""
    if header.isascii():  # most headers and aliases: NFKD changes nothing, casefold is lower
        return _NOT_ALNUM.sub("", header.lower())
    text = unicodedata.normalize("NFKD", header)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _NOT_ALNUM.sub("", text.casefold())


_NUMBERED = re.compile(r"(.*\D)(\d{1,2})")


@cache
def placeholders() -> tuple[str, ...]:
    """Cell values that mean "no value" (``schemas/aliases.json`` ``$placeholders``), lower
    case."""
    return tuple(p.casefold() for p in schemas.load("aliases")["$placeholders"])


@cache
def _placeholder_pattern() -> str:
    words = sorted(placeholders(), key=len, reverse=True)
    return r"(?i)^\s*(?:" + "|".join(re.escape(w) for w in words) + r")\s*$"


def is_placeholder(expr: pl.Expr) -> pl.Expr:
    """True where a String cell is a placeholder (``N/A``, ``-``, ``none``...)."""
    return expr.str.contains(_placeholder_pattern()).fill_null(False)


# A cell that looks like a phone number: 7-15 digits with the usual punctuation, not a date.
PHONE_LIKE = r"^\s*(?:\+|00)?[0-9][0-9\s().\-/]{5,22}\s*$"
_DATE_LIKE = r"^\s*(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})(?:\s|$)"
CONTENT_SAMPLE_ROWS = 1000
"""Rows examined to find a phone column by its content."""


def looks_like_phone(expr: pl.Expr) -> pl.Expr:
    """True where a String cell looks like a phone number (shape only, not validity)."""
    digits = expr.str.count_matches(r"[0-9]")
    return (
        expr.str.contains(PHONE_LIKE) & digits.is_between(7, 15) & ~expr.str.contains(_DATE_LIKE)
    ).fill_null(False)


def phone_like_columns(sample: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """``columns`` most of whose non-empty, non-placeholder cells in ``sample`` look like phone
    numbers, in their order.  The sample is unpivoted so that every pattern runs once over
    all its cells (one query per column took 18 s on a 5,000-column file)."""
    names = set(sample.columns)
    present = [c for c in columns if c in names]
    if not present:
        return []
    long = sample.select(pl.col(list(dict.fromkeys(present))).cast(pl.String)).unpivot(
        variable_name="column", value_name="cell"
    )
    cell = pl.col("cell").str.strip_chars()
    kept = cell.is_not_null() & (cell != "") & ~is_placeholder(cell)
    shares = dict(
        long.filter(kept).group_by("column").agg(looks_like_phone(cell).mean()).iter_rows()
    )
    return [c for c in present if (share := shares.get(c)) is not None and share > 0.5]


def custom_key(header: str) -> str:
    """A stable custom-field key: ``"Ville de naissance"`` -> ``ville_de_naissance``."""
    text = unicodedata.normalize("NFKD", header)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return re.sub(r"[^0-9a-z]+", "_", text).strip("_") or "field"


@dataclass(frozen=True)
class ColumnMapping:
    """How one file's columns feed the canonical schema."""

    fields: dict[str, tuple[str, ...]]  # canonical field -> source columns, in priority order
    custom: dict[str, str] = field(default_factory=dict)  # custom key -> source column
    preset: str | None = None
    unmapped: tuple[str, ...] = ()
    multi_value_separator: str | None = None  # e.g. Google's " ::: "
    list_separator: str | None = None  # e.g. Outlook's ";" in Categories
    drop_groups: tuple[str, ...] = ()
    phone_labels: dict[str, str] = field(default_factory=dict)  # phone column -> its label column
    mobile_labels: tuple[str, ...] = ()  # labels that mark a mobile number (case-insensitive)
    phone_by_content: tuple[str, ...] = ()  # phone columns found by their cells, not headers
    phone_like_unmapped: tuple[str, ...] = ()  # unmapped columns whose cells look like phones

    @property
    def phone_candidates(self) -> tuple[str, ...]:
        """Every source column that may hold the row's phone, in priority order: mobile and
        WhatsApp columns first, then the others (numbered ones by their number); two columns
        with the same header are both here (``Phone``, ``Phone_2``)."""
        return self.fields.get("phone", ())

    def as_dict(self) -> dict[str, object]:
        """JSON-ready description for ``summary.json``."""
        out: dict[str, object] = {
            "preset": self.preset,
            "fields": {k: list(v) for k, v in self.fields.items()},
            "custom": dict(self.custom),
            "unmapped": list(self.unmapped),
        }
        if self.phone_by_content:
            out["phone_by_content"] = list(self.phone_by_content)
        return out


def load_mapping_file(path: str | Path) -> dict[str, str | None]:
    """Read a ``--mapping`` file (JSON or TOML): source header -> canonical field or null.

    Accepts either a flat object or one under a ``"columns"`` key.  Targets are canonical field
    names, ``custom.<key>``, or null/"" to ignore the column.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read mapping file {p}: {exc.strerror or exc}") from None
    try:
        if p.suffix.lower() == ".toml":
            import tomllib  # here: most runs have no TOML mapping file

            doc = tomllib.loads(raw.decode("utf-8"))
        else:
            doc = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"mapping file {p} is not valid JSON/TOML: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("columns"), dict):
        doc = doc["columns"]
    if not isinstance(doc, dict):
        raise UsageError(f"mapping file {p} must hold an object of 'Source header': 'field' pairs")
    out: dict[str, str | None] = {}
    for header, target in doc.items():
        if target in (None, "", False):
            out[str(header)] = None
            continue
        if not isinstance(target, str):
            raise UsageError(f"mapping file {p}: target of {header!r} must be a string or null")
        if target not in FIELDS and not (target.startswith(CUSTOM_PREFIX) and len(target) > 7):
            raise UsageError(
                f"mapping file {p}: unknown field {target!r} for column {header!r}",
                hint="use one of " + ", ".join(FIELDS) + ", custom.<key>, or null to ignore",
            )
        out[str(header)] = target
    return out


@cache
def _alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for fld, aliases in schemas.load("aliases").items():
        if fld.startswith("$"):
            continue
        for alias in aliases:
            index.setdefault(fold(alias), fld)
    return index


@cache
def _phone_priority() -> dict[str, int]:
    return {fold(a): i for i, a in enumerate(schemas.load("aliases")["phone"])}


def _detect_preset(folded: Mapping[str, str]) -> tuple[str, dict] | None:
    for name, preset in schemas.load("presets").items():
        if name.startswith("$"):
            continue
        if all(fold(h) in folded for h in preset["detect"]):
            return name, preset
    return None


def _expand_numbered(pattern: str, folded: Mapping[str, str]) -> list[str]:
    if "{n}" not in pattern:
        return [folded[fold(pattern)]] if fold(pattern) in folded else []
    found = []
    for n in range(1, 10):
        key = fold(pattern.replace("{n}", str(n)))
        if key in folded:
            found.append(folded[key])
    return found


def _preset_mapping(
    preset: dict, folded: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(fields, phone column -> its label column) for a detected preset."""
    fields: dict[str, list[str]] = {}
    phones: list[str] = []
    labels: dict[str, str] = {}
    for pattern in preset["phone"]:
        if "{n}" not in pattern:
            phones.extend(_expand_numbered(pattern, folded))
            continue
        for n in range(1, 10):
            key = fold(pattern.replace("{n}", str(n)))
            if key not in folded:
                continue
            phones.append(folded[key])
            for label_pattern in preset.get("phone_type", []):
                label_key = fold(label_pattern.replace("{n}", str(n)))
                if label_key in folded:
                    labels[folded[key]] = folded[label_key]
                    break
    fields["phone"] = phones
    for fld, headers in preset.get("fields", {}).items():
        cols = [folded[fold(h)] for h in headers if fold(h) in folded]
        if cols:
            fields[fld] = cols
    return fields, labels


def infer_mapping(
    columns: Sequence[str],
    *,
    override: Mapping[str, str | None] | None = None,
    keep_extra_columns: bool = False,
    source: str = "input",
    sample: pl.DataFrame | None = None,
) -> ColumnMapping:
    """Map ``columns`` (one file's user headers) onto the canonical schema.

    ``sample`` (the first rows of the data) lets the content find a phone column no header
    names.  Raises :class:`InputError` when no column can feed the phone, listing the headers.
    """
    user_cols = [c for c in columns if c not in SOURCE_COLUMNS]
    folded: dict[str, str] = {}
    for col in user_cols:
        folded.setdefault(fold(col), col)
    fields: dict[str, list[str]] = {}
    custom: dict[str, str] = {}
    used: set[str] = set()
    override = dict(override or {})
    override_folded = {fold(k): v for k, v in override.items()}

    for col in user_cols:  # 1. explicit mapping
        key = fold(col)
        if col in override or key in override_folded:
            target = override.get(col, override_folded.get(key))
            used.add(col)
            if target is None:
                continue
            if target.startswith(CUSTOM_PREFIX):
                custom[target[len(CUSTOM_PREFIX) :]] = col
            else:
                fields.setdefault(target, []).append(col)

    preset_name = None
    preset: dict = {}
    phone_labels: dict[str, str] = {}
    detected = _detect_preset(folded)
    if detected is not None:  # 2. preset
        preset_name, preset = detected
        preset_fields, phone_labels = _preset_mapping(preset, folded)
        for fld, cols in preset_fields.items():
            if fld in fields:
                continue
            free = [c for c in cols if c not in used]
            if free:
                fields[fld] = free
                used.update(free)

    preset_phones = preset_name is not None and bool(fields.get("phone"))
    aliases = _alias_index()  # 3. aliases
    priority = _phone_priority()
    later_phones: list[str] = []
    for col in user_cols:
        if col in used:
            continue
        if col.startswith(CUSTOM_PREFIX) and len(col) > len(CUSTOM_PREFIX):
            custom.setdefault(col[len(CUSTOM_PREFIX) :], col)  # as contactpipe exports them
            used.add(col)
            continue
        alias_of = _alias_field(col, aliases)
        if alias_of is None or (alias_of in fields and alias_of != "phone"):
            continue
        if alias_of == "phone" and preset_phones:
            later_phones.append(col)  # a preset's own phone columns come first
        else:
            fields.setdefault(alias_of, []).append(col)
        used.add(col)
    if "phone" in fields and not preset_phones:
        fields["phone"].sort(key=lambda c: _phone_rank(c, priority))
    if later_phones:  # still candidates: a junk preset column must not hide a valid number
        fields["phone"] += sorted(later_phones, key=lambda c: _phone_rank(c, priority))

    by_content: list[str] = []
    searched = False  # the content of every column left was looked at in step 4
    if not fields.get("phone") and sample is not None:  # 4. the content
        searched = True
        free = [c for c in user_cols if c not in used]
        by_content = phone_like_columns(sample.head(CONTENT_SAMPLE_ROWS), free)
        if by_content:
            fields["phone"] = list(by_content)
            used.update(by_content)

    unmapped = [c for c in user_cols if c not in used]
    phone_like: list[str] = []
    if sample is not None and unmapped and not searched:  # else: none left, by step 4
        phone_like = phone_like_columns(sample.head(CONTENT_SAMPLE_ROWS), unmapped)
    if keep_extra_columns:  # 4. the rest as custom fields
        for col in unmapped:
            key = custom_key(col)
            while key in custom:
                key += "_"
            custom[key] = col
        unmapped = []

    if not fields.get("phone"):
        seen = headers_seen(user_cols)
        raise InputError(
            f"{source}: no phone column found. Headers seen: {seen}",
            hint='name the column with --mapping FILE, e.g. {"Your header": "phone"}',
        )
    return ColumnMapping(
        fields={k: tuple(v) for k, v in fields.items()},
        custom=custom,
        preset=preset_name,
        unmapped=tuple(unmapped),
        multi_value_separator=preset.get("multi_value_separator"),
        list_separator=preset.get("list_separator"),
        drop_groups=tuple(preset.get("drop_groups", ())),
        phone_labels={c: phone_labels[c] for c in fields["phone"] if c in phone_labels},
        mobile_labels=tuple(preset.get("mobile_types", ())),
        phone_by_content=tuple(by_content),
        phone_like_unmapped=tuple(c for c in phone_like if c not in custom.values()),
    )


def _alias_field(col: str, aliases: Mapping[str, str]) -> str | None:
    """The canonical field ``col`` is an alias of, also when a number follows the alias
    (``Telefone1``, ``Phone_2``, ``E-mail 2``)."""
    key = fold(col)
    fld = aliases.get(key)
    if fld is None and (m := _NUMBERED.fullmatch(key)):
        fld = aliases.get(m.group(1))
    return fld


def _phone_rank(col: str, priority: Mapping[str, int]) -> tuple[int, int]:
    """Sort key of a phone column: its alias's place in the list, then its number."""
    key = fold(col)
    if key in priority:
        return priority[key], 0
    m = _NUMBERED.fullmatch(key)
    if m and m.group(1) in priority:
        return priority[m.group(1)], int(m.group(2))
    return len(priority), 0


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    """Trimmed cell; null when blank or a placeholder."""
    stripped = expr.str.strip_chars()
    return pl.when((stripped == "") | is_placeholder(stripped)).then(None).otherwise(stripped)


_BLANKED = "__blanked:"


def _cell(col: str) -> pl.Expr:
    """Source column ``col`` trimmed, null when blank or a placeholder: computed once per
    column by :func:`apply_mapping` (an expression nesting :func:`_blank_to_null` evaluates
    its input three times: 0.4 s per million rows for a one-column tag list)."""
    return pl.col(_BLANKED + col)


def _joined(cols: Iterable[str]) -> pl.Expr:
    parts = [_cell(c) for c in cols]
    return _blank_to_null(pl.concat_str(parts, separator=" ", ignore_nulls=True))


def apply_mapping(frame: pl.DataFrame, mapping: ColumnMapping) -> pl.DataFrame:
    """Return the canonical raw frame: one String column per canonical field (null when absent),
    ``custom.<key>`` columns, ``__phone_column``, and the source position columns."""
    used = {c for cols in mapping.fields.values() for c in cols} | set(mapping.custom.values())
    # trimmed first, then blanked: one pass of strip_chars per column instead of three; all
    # in one query, collected once
    names = [_BLANKED + c for c in used]
    blanked = (
        frame.lazy()
        .with_columns(pl.col(c).str.strip_chars().alias(_BLANKED + c) for c in used)
        .with_columns(
            pl.when((pl.col(n) == "") | is_placeholder(pl.col(n))).then(None).otherwise(n).alias(n)
            for n in names
        )
    )
    exprs: list[pl.Expr] = []
    for fld in FIELDS:
        cols = mapping.fields.get(fld, ())
        if not cols:
            exprs.append(pl.lit(None, dtype=pl.String).alias(fld))
        elif fld == "phone":
            exprs.extend(_phone_exprs(cols, mapping))
        elif fld == "name" and mapping.preset is None and len(cols) > 1:
            exprs.append(_joined(cols).alias(fld))  # e.g. two name-ish columns: join them
        elif fld in ("tags", "groups"):
            exprs.append(_list_cell(cols, mapping).alias(fld))
        else:
            exprs.append(pl.coalesce([_cell(c) for c in cols]).alias(fld))
    for key, col in mapping.custom.items():
        exprs.append(_cell(col).alias(CUSTOM_PREFIX + key))
    exprs.append(_phone_elsewhere(mapping))
    return blanked.select(*SOURCE_COLUMNS, *exprs).collect(engine="in-memory")


def _phone_elsewhere(mapping: ColumnMapping) -> pl.Expr:
    """``__phone_elsewhere``: the first unmapped phone-like column holding a phone-like cell
    in the row (named in MISSING_PHONE messages), else null."""
    out: pl.Expr = pl.lit(None, pl.String)
    for col in reversed(mapping.phone_like_unmapped):
        out = pl.when(looks_like_phone(pl.col(col))).then(pl.lit(col)).otherwise(out)
    return out.alias(PHONE_ELSEWHERE)


def _phone_exprs(cols: Sequence[str], mapping: ColumnMapping) -> list[pl.Expr]:
    """The row's phone and the column it came from.

    Candidates in order: columns whose label in this row marks a mobile (presets with labelled
    numbers, e.g. Google's "Phone 2 - Label" = "Mobile"), then every column; the first non-empty
    one wins.
    """
    mobile = [m.casefold() for m in mapping.mobile_labels]
    candidates: list[tuple[str, pl.Expr]] = []
    for c in cols:
        label_col = mapping.phone_labels.get(c)
        if label_col is not None and mobile:
            label = pl.col(label_col).str.strip_chars().str.to_lowercase()
            is_mobile = label.is_in(mobile).fill_null(False)
            candidates.append((c, pl.when(is_mobile).then(_cell(c))))
    candidates += [(c, _cell(c)) for c in cols]
    phone = pl.coalesce([e for _, e in candidates])
    if mapping.multi_value_separator:  # several numbers in one cell: let phones report them
        phone = phone.str.replace_all(mapping.multi_value_separator, " ; ", literal=True)
    # a Then, then ChainedThens, then an Expr
    source: Any = pl.when(candidates[0][1].is_not_null()).then(pl.lit(candidates[0][0]))
    for c, e in candidates[1:]:
        source = source.when(e.is_not_null()).then(pl.lit(c))
    source = source.otherwise(pl.lit(cols[0])).cast(pl.Categorical)  # a few names, 1M rows
    return [phone.alias("phone"), source.alias(PHONE_SOURCE)]


def _list_cell(cols: Sequence[str], mapping: ColumnMapping) -> pl.Expr:
    """Several list columns joined into one cell with ';' between values."""
    parts = []
    for c in cols:
        e = _cell(c)
        if mapping.multi_value_separator:
            e = e.str.replace_all(mapping.multi_value_separator, LIST_SEPARATOR, literal=True)
        parts.append(e)
    if len(parts) == 1 and not mapping.multi_value_separator:
        return parts[0]  # already trimmed and not blank: the join and its check change nothing
    joined = pl.concat_str(parts, separator=LIST_SEPARATOR, ignore_nulls=True)
    return _blank_to_null(joined)


HEADERS_SHOWN = 30
"""How many headers a message lists: a sheet can have 16,384 columns (or a hostile file
millions of fields), and a message must stay one readable line."""


def headers_seen(headers: Sequence[str | None], limit: int = HEADERS_SHOWN) -> str:
    """``'Name', 'Tel', ... and 15,970 more``: the first ``limit`` headers, each cut at 60
    characters, for the messages that say which headers a file has."""
    shown = []
    for header in list(headers)[:limit]:
        text = repr(header)
        shown.append(text if len(text) <= 60 else text[:57] + "...")
    more = len(headers) - len(shown)
    return (", ".join(shown) or "(none)") + (f", ... and {more:,} more" if more > 0 else "")
