"""Country cells in any common form -> ISO 3166 alpha-2 region codes, before phones are read.

A row's country column (``Country``, ``Pays``, HubSpot's ``Country/Region``, Salesforce's
``MailingCountry``...) holds names as people and CRMs write them: ``Deutschland``, ``España``,
``Viêt Nam``, ``Korea, Republic of``, ``Türkiye``, ``U.S.A.``, ``The Netherlands``, ``DEU``.
:func:`country_code` understands, compared after folding case, accents, spaces and punctuation
(and a leading "the"):

* ISO 3166 alpha-2 and alpha-3 codes;
* ISO names (short, official and common: ``Russian Federation``, ``Viet Nam``, ``Czechia``)
  and their translations in the ~160 languages of the iso-codes project, from ``pycountry``;
  ISO's "Name, Qualifier" forms also read the other way round (``Republic of Korea``);
* the CLDR-derived names in ~100 languages that ``phonenumbers`` ships (``Südkorea``);
* a few usual short forms no table holds (``UAE``, ``DR Congo``, ``UK``).

:func:`resolve_countries` rewrites the canonical ``country`` column with these codes.  Values
it does not know are left as they are (calling codes such as ``+229`` are read later by
:mod:`contactpipe.transform.phone_regions`); when a value is understood by nobody but the row's
phone carries its own international prefix (``+``, ``00``, ``011``), the phone is read anyway:
the country becomes a region that reads that prefix as international.
"""

from __future__ import annotations

import gettext
import os
import re
import unicodedata
from functools import cache

import phonenumbers as pn
import polars as pl

from contactpipe.transform.phone_regions import resolve_region

# Short forms that neither ISO nor CLDR list (folded keys).
_ALIASES = {
    "uae": "AE",
    "emirates": "AE",
    "usa": "US",
    "us": "US",
    "america": "US",
    "unitedstatesofamerica": "US",
    "uk": "GB",
    "greatbritain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northernireland": "GB",
    "drcongo": "CD",
    "drc": "CD",
    "rdc": "CD",
    "congokinshasa": "CD",
    "congobrazzaville": "CG",
    "ivorycoast": "CI",
    "southkorea": "KR",
    "northkorea": "KP",
    "holland": "NL",
    "turkey": "TR",
    "czechrepublic": "CZ",
    "russia": "RU",
    "vietnam": "VN",
    "ksa": "SA",
}
# Region whose international dialling prefix is the row's: the number is then read as
# international whatever the (not understood) country says.
_IDD_REGION = (("011", "US"), ("00", "GB"))
_INTERNATIONAL = r"^[\s'\"(]*(?:\+|\uff0b|00|011)"


def fold_country(value: str) -> str:
    """Case, accents, spaces, punctuation and a leading "the" removed (any script kept)."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold().strip()
    text = re.sub(r"^the\s+", "", text)
    return re.sub(r"[\W_]+", "", text)


def _iso_names() -> dict[str, str]:
    import pycountry

    out: dict[str, str] = {}
    names: list[tuple[str, str]] = []  # (English name, alpha-2)
    for c in pycountry.countries:
        out.setdefault(fold_country(c.alpha_3), c.alpha_2)
        for attr in ("name", "official_name", "common_name"):
            name = getattr(c, attr, None)
            if name:
                names.append((name, c.alpha_2))
    for name, code in names:
        out.setdefault(fold_country(name), code)
    locales = pycountry.LOCALES_DIR
    for lang in sorted(os.listdir(locales)):
        try:
            tr = gettext.translation("iso3166-1", locales, languages=[lang])
        except OSError:
            continue
        for name, code in names:
            out.setdefault(fold_country(tr.gettext(name)), code)
    for name, code in list(names):  # "Korea, Republic of" -> "Republic of Korea"
        if ", " in name:
            head, tail = name.split(", ", 1)
            out.setdefault(fold_country(f"{tail} {head}"), code)
    return out


def _cldr_names() -> dict[str, str]:
    from phonenumbers.geodata.locale import LOCALE_DATA

    out: dict[str, str] = {}
    for region, names in LOCALE_DATA.items():
        for value in names.values():
            if value and not value.startswith("*"):
                out.setdefault(fold_country(value), region)
    return out


@cache
def _table() -> dict[str, str]:
    """Folded name or code -> alpha-2, for the regions phonenumbers supports."""
    table = dict(_ALIASES)
    for source in (_iso_names(), _cldr_names()):
        for key, code in source.items():
            table.setdefault(key, code)
    table.pop("", None)
    return {k: v for k, v in table.items() if v in pn.SUPPORTED_REGIONS}


def country_code(value: str | None) -> str | None:
    """ISO alpha-2 code for a country cell (code, alpha-3 or name), or None if not known."""
    v = (value or "").strip()
    if not v:
        return None
    if len(v) == 2 and v.upper() in pn.SUPPORTED_REGIONS:
        return v.upper()
    return _table().get(fold_country(v))


def resolve_countries(
    df: pl.DataFrame, *, country_col: str = "country", phone_col: str = "phone"
) -> pl.DataFrame:
    """``df`` with ``country_col`` rewritten to alpha-2 codes where understood (see the module
    docstring); one lookup per distinct value."""
    raw = df.get_column(country_col).cast(pl.String)
    values = [v for v in raw.unique().to_list() if v is not None]
    table = {}
    for v in values:
        if resolve_region(v, None)[1]:
            table[v] = v  # a code or calling code phone_regions reads as it is
        else:
            table[v] = country_code(v)  # None: understood by nobody
    known = pl.DataFrame(
        {"__cv": list(table), "__cc": list(table.values())},
        schema={"__cv": pl.String, "__cc": pl.String},
    )
    joined = raw.alias("__cv").to_frame().join(known, on="__cv", how="left", maintain_order="left")
    country = pl.coalesce("__cc", "__cv")
    unknown = pl.col("__cv").is_not_null() & pl.col("__cc").is_null()
    phone = df.get_column(phone_col).cast(pl.String).str.strip_chars()
    joined = joined.with_columns(phone.alias("__ph"))
    idd = pl.lit(None, pl.String)
    for prefix, region in reversed(_IDD_REGION):
        starts = pl.col("__ph").str.replace(r"^[\s'\"(]+", "").str.starts_with(prefix)
        idd = pl.when(starts).then(pl.lit(region)).otherwise(idd)
    fixed = joined.select(
        pl.when(unknown & pl.col("__ph").str.contains(_INTERNATIONAL).fill_null(False))
        .then(
            pl.when(pl.col("__ph").str.contains(r"^[\s'\"(]*[+\uff0b]")).then(None).otherwise(idd)
        )
        .otherwise(country)
        .alias(country_col)
    )
    return df.with_columns(fixed.get_column(country_col))
