"""Per-row country values -> ISO region codes phonenumbers accepts as a default region.

Accepted, after trimming (case-insensitive): ISO 3166 alpha-2 codes that phonenumbers
supports (plus ``UK`` for GB); calling codes (``+229``, ``229``, ``00229``: the code's main
region, e.g. ``1`` -> US, ``44`` -> GB); and country names in English or French as found
in phonenumbers' own ``geodata.locale`` table (accents, case and punctuation ignored:
``cote d'ivoire``, ``Bénin``, ``Etats-Unis``), plus a few common aliases.  ISO alpha-3 is
not supported: there is no table for it without a new dependency.  Blank -> default region.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import phonenumbers as pn

_ALIASES = {
    "UK": "GB",
    "usa": "US",
    "united states of america": "US",
    "etats unis d amerique": "US",
    "ivory coast": "CI",
    "great britain": "GB",
    "england": "GB",
    "angleterre": "GB",
    "grande bretagne": "GB",
}
_CALLING_CODE = re.compile(r"(?:\+|00)?\s*([0-9]{1,3})")


def _key(name: str) -> str:
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_.lower()).split())


def _locale_name(names: dict[str, str], lang: str) -> str | None:
    value = names.get(lang)
    while value is not None and value.startswith("*"):
        value = names.get(value[1:])
    return value


@cache
def _names() -> dict[str, str]:
    # Imported here, on the first country *name*: the table takes half a second to load and
    # most files carry ISO codes or no country column at all.
    from phonenumbers.geodata.locale import LOCALE_DATA

    out: dict[str, str] = {}
    for region, names in LOCALE_DATA.items():
        if region not in pn.SUPPORTED_REGIONS:
            continue
        for lang in ("aa", "en", "fr"):
            name = _locale_name(names, lang)
            if name:
                out.setdefault(_key(name), region)
    out.update({k: v for k, v in _ALIASES.items() if k.islower()})
    return out


def resolve_region(value: str | None, default: str | None) -> tuple[str | None, bool]:
    """(region, understood).  Blank -> (default, True); unknown -> (None, False)."""
    v = (value or "").strip()
    if not v:
        return default, True
    up = _ALIASES.get(v.upper(), v.upper())
    if len(up) == 2 and up in pn.SUPPORTED_REGIONS:
        return up, True
    m = _CALLING_CODE.fullmatch(v)
    if m:
        region: str | None = pn.region_code_for_country_code(int(m.group(1)))
        return (region, True) if region in pn.SUPPORTED_REGIONS else (None, False)
    region = _names().get(_key(v))
    return (region, True) if region else (None, False)
