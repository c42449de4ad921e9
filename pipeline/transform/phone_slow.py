"""Slow path: real ``phonenumbers`` calls, once per distinct (candidate, region) pair.

This is the definition the fast path is measured against.  Large batches are spread over
worker processes.  Start method: ``fork`` on Linux, ``spawn`` elsewhere.  ``spawn`` (and
``forkserver``) children re-import the caller's ``__main__`` -- for the CLI that is the
whole pipeline, about a second per worker, more than the work itself.  Forking a process
that has polars threads is safe here because the children run only this module's
pure-Python phonenumbers code: they never enter polars (whose idle pool threads hold no
lock the children need), and pool workers leave with ``os._exit`` without finalising
inherited objects.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import phonenumbers as pn
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from phonenumbers import ValidationResult as VR

from contactpipe.transform import phone_patterns

PARALLEL_MIN = 5_000  # below this, the pool costs more than it saves
START_METHOD = "fork" if sys.platform == "linux" else "spawn"
CHUNK = 4_000
MANY_REGIONS = 60
"""Fewer pairs than :data:`PARALLEL_MIN` still go to the workers, split by region, when they
span at least this many regions (1,000 numbers of 240 countries: phonenumbers compiles
~1,100 patterns, ~0.1 s; a pool of two costs ~20 ms to start)."""

# phonenumbers compiles each region's patterns through `re`, whose cache holds 512: a list
# spanning many countries (about 1,100 patterns for 240 regions) recompiled them on every
# call, 0.4 s per 1,000 numbers.  Its own unbounded cache (the metadata is fixed) keeps them
# in a process, and phone_patterns keeps their compiled code on disk between runs.
phone_patterns.install()

# (e164 | None, mobile | None, message | None, country code | None, nsn | None)
Outcome = tuple[str | None, bool | None, str | None, int | None, str | None]

_MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
_PARSE_REASONS = {
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_LONG: "too long",
}
_LENGTH_REASONS = {
    VR.TOO_SHORT: "too short for {}",
    VR.TOO_LONG: "too long for {}",
    VR.INVALID_LENGTH: "wrong number of digits for {}",
}


def _without_plus_hint(
    cand: str, region: str | None = None, *, possible: bool | None = None
) -> str:
    """' -- looks like ...' when '+' + the digits would be a valid number (never accepted).

    Not when the digits have the length of a national number of ``region``: ``(465) 808-8296``
    in the US is a US-shaped number that is not valid, not a Swedish one missing its '+'.
    ``possible``: whether ``parse(cand, region)`` is a possible number (False when that parse
    fails), when the caller knows it already: the parse is then not repeated."""
    if not cand[:1].isdigit():
        return ""
    if region is not None:
        if possible is None:
            try:
                possible = pn.is_possible_number(pn.parse(cand, region))
            except NumberParseException:
                possible = False
        if possible:
            return ""
    try:
        n = pn.parse("+" + cand, None)
    except NumberParseException:
        return ""
    if not pn.is_valid_number(n):
        return ""
    e164 = pn.format_number(n, PhoneNumberFormat.E164)
    return f"; looks like an international number without its '+' ({e164})"


def resolve_one(cand: str, region: str | None) -> Outcome:
    """Decide one canonical candidate exactly as phonenumbers does."""
    try:
        n = pn.parse(cand, region)
    except NumberParseException as e:
        if e.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            why = (
                "unknown country calling code"
                if cand.lstrip().startswith(("+", "\uff0b"))
                else "no '+' country code and no default region"
            )
        else:
            why = _PARSE_REASONS.get(e.error_type, "not a phone number")
        hint = _without_plus_hint(cand, region, possible=False)  # the same parse fails
        return None, None, why + hint, None, None
    nsn = pn.national_significant_number(n)
    if pn.is_valid_number(n):
        e164 = pn.format_number(n, PhoneNumberFormat.E164)
        return e164, pn.number_type(n) in _MOBILE, None, n.country_code, nsn
    # a valid number always has its country code (the stubs say int | None)
    where = pn.region_code_for_country_code(n.country_code)  # type: ignore[arg-type]
    where = f"+{n.country_code}" if where in ("001", "ZZ") else where
    length = pn.is_possible_number_with_reason(n)
    reason = _LENGTH_REASONS.get(length, "not a valid number for {}")
    # pn.is_possible_number(n), without computing the length check twice
    hint = _without_plus_hint(
        cand, region, possible=length in (VR.IS_POSSIBLE, VR.IS_POSSIBLE_LOCAL_ONLY)
    )
    return None, None, reason.format(where) + hint, n.country_code, nsn


def resolve_chunk(pairs: Sequence[tuple[str, str | None]]) -> list[Outcome]:
    out = [resolve_one(c, r) for c, r in pairs]
    phone_patterns.save()  # in the process that compiled them (a pool worker too)
    return out


def resolve_many(pairs: list[tuple[str, str | None]], workers: int) -> list[Outcome]:
    """resolve_one over all pairs, in order; in worker processes when worth it: many pairs,
    or pairs of many regions (each region's first numbers make phonenumbers compile its
    patterns with ``re``, ~0.4 ms a region: split by region, each process compiles only its
    own regions')."""
    if workers <= 1:
        return resolve_chunk(pairs)
    if len(pairs) >= PARALLEL_MIN:
        chunks = [pairs[i : i + CHUNK] for i in range(0, len(pairs), CHUNK)]
        return [o for part in _pool_map(chunks, workers) for o in part]
    if len(pairs) < MANY_REGIONS or len({r for _, r in pairs}) < MANY_REGIONS:
        return resolve_chunk(pairs)
    order = sorted(range(len(pairs)), key=lambda i: (pairs[i][1] or "", i))
    size = -(-len(order) // workers)
    parts = [order[i : i + size] for i in range(0, len(order), size)]
    out: list[Outcome | None] = [None] * len(pairs)
    chunks = [[pairs[i] for i in part] for part in parts]
    for part, outcomes in zip(parts, _pool_map(chunks, workers), strict=True):
        for i, o in zip(part, outcomes, strict=True):
            out[i] = o
    return out  # type: ignore[return-value]  # every position filled


def _pool_map(chunks: list[list[tuple[str, str | None]]], workers: int) -> list[list[Outcome]]:
    # imported here: a small run never starts a pool and need not import multiprocessing
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context(START_METHOD)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        return list(ex.map(resolve_chunk, chunks))
