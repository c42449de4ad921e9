"""Numbering plans compiled from the *installed* ``phonenumbers`` metadata, for the fast path.

Nothing here is hard-coded: every pattern, prefix and length comes from
``PhoneMetadata`` at run time, so a ``phonenumbers`` upgrade updates the fast path with it.
A plan is only *usable* when all of its patterns

* use nothing but the regex subset phonenumbers' metadata is written in (digits, ``\\d``,
  classes, groups, alternation, counted/optional repetition, ``$``), where Python ``re``
  and the Rust ``regex`` engine polars uses define the same language and, for the
  prefix matches whose *end* matters (IDD, national prefix), the same leftmost-first match;
* compile (in polars: a pattern polars cannot compile is found where :mod:`phone_fast`
  uses it, and the rows it concerns are left to phonenumbers).

Rows whose plan is not usable are never claimed by the fast path (they go to phonenumbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import phonenumbers as pn
from phonenumbers.phonemetadata import PhoneMetadata

# The number types `_number_type_helper` tests after the general description, in its order.
OTHER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
MIN_NSN = 2  # phonenumberutil._MIN_LENGTH_FOR_NSN
MAX_NSN = 17  # phonenumberutil._MAX_LENGTH_FOR_NSN
NON_GEO = "001"

_SAFE_PATTERN = re.compile(r"(?:\\d|[0-9$()?,:\[\]{}|*+-])*")


@dataclass(frozen=True)
class Desc:
    """One ``PhoneNumberDesc``: national number pattern (None = matches nothing) + lengths."""

    pattern: str | None
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """What the fast path needs from one region's (or non-geographic entity's) metadata."""

    key: str
    cc: int
    idd: str | None
    npfp: str | None  # national_prefix_for_parsing
    np_transform: bool  # a national_prefix_transform_rule exists (then: claim only if no match)
    general: Desc
    local_lengths: tuple[int, ...]
    others: tuple[Desc, ...]  # OTHER_TYPES, in order
    fixed: Desc
    mobile: Desc
    same_mobile_fixed: bool
    leading_digits: str | None


def _desc(d: object | None) -> Desc:
    if d is None:
        return Desc(None, ())
    pattern = d.national_number_pattern or None  # type: ignore[attr-defined]
    return Desc(pattern, tuple(d.possible_length or ()))  # type: ignore[attr-defined]


def _all_compile(patterns: list[str]) -> bool:
    """Every pattern is in the safe subset.  Whether it compiles is found where it is used:
    :mod:`phone_fast` leaves a group to phonenumbers when polars raises (compiling every
    pattern of a plan here, in polars and in Python, cost 2-10 ms per region on every run)."""
    return all(_SAFE_PATTERN.fullmatch(p) is not None and "{," not in p for p in patterns)


def _plan(md: PhoneMetadata | None, key: str) -> Plan | None:
    if md is None or md.general_desc is None:
        return None
    general = _desc(md.general_desc)
    if general.pattern is None or not general.lengths:
        return None
    plan = Plan(
        key=key,
        cc=md.country_code,  # type: ignore[arg-type]  # always set in metadata (stubs: int | None)
        idd=md.international_prefix or None,
        npfp=md.national_prefix_for_parsing or None,
        np_transform=bool(md.national_prefix_transform_rule),
        general=general,
        local_lengths=tuple(md.general_desc.possible_length_local_only or ()),
        others=tuple(_desc(getattr(md, a, None)) for a in OTHER_TYPES),
        fixed=_desc(md.fixed_line),
        mobile=_desc(md.mobile),
        same_mobile_fixed=bool(md.same_mobile_and_fixed_line_pattern),
        leading_digits=md.leading_digits,
    )
    patterns = [plan.idd, plan.npfp, plan.leading_digits, general.pattern, plan.fixed.pattern]
    patterns += [plan.mobile.pattern, *(d.pattern for d in plan.others)]
    if not _all_compile([p for p in patterns if p is not None]):
        return None
    return plan


@cache
def plan_for_region(region: str) -> Plan | None:
    """The usable plan of a supported region (upper-case ISO code), else None."""
    if region not in pn.SUPPORTED_REGIONS:
        return None
    return _plan(PhoneMetadata.metadata_for_region(region, None), region)


@cache
def plan_for_key(key: str) -> Plan | None:
    """Plan by key: a region code, or ``+CC`` for a non-geographic entity (+800, +882...)."""
    if key.startswith("+"):
        return _plan(PhoneMetadata.metadata_for_nongeo_region(int(key[1:]), None), key)
    return plan_for_region(key)


def main_key(cc: int) -> str:
    """Plan key parse() uses for a country code: its main region, or ``+CC`` if non-geographic."""
    region = pn.region_code_for_country_code(cc)
    return f"+{cc}" if region == NON_GEO else region


def validity_keys(cc: int) -> tuple[str, ...]:
    """Regions `_region_code_for_number_from_list` tries for cc, in order (as plan keys)."""
    regions = pn.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    return tuple(f"+{cc}" if r == NON_GEO else r for r in regions)


def country_code_sets() -> tuple[set[str], set[str], set[str]]:
    """Known calling codes as strings, by length (1, 2, 3 digits)."""
    codes = [str(c) for c in pn.COUNTRY_CODE_TO_REGION_CODE]
    return tuple({c for c in codes if len(c) == n} for n in (1, 2, 3))  # type: ignore[return-value]
