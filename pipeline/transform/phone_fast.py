"""Vectorised fast path: the part of ``phonenumbers.parse`` + ``is_valid_number`` that common
numbers take, re-expressed as polars column expressions over distinct (candidate, region) pairs.

Exactness argument.  The fast path only *claims* a pair when it is certain phonenumbers
finds the number VALID, and then returns exactly ``format_number(parse(cand, region), E164)``.
Every other pair (invalid, unusual, or anything this module does not model) is left to the
slow path, which calls phonenumbers itself.  A claimed candidate is ``^\\+?[0-9]+$``, for which
``_build_national_number_for_parsing``, ``_maybe_strip_extension`` and ``_normalize`` are the
identity, so ``parse`` reduces to the steps mirrored below (names from ``phonenumberutil``):

1. Route (``_maybe_extract_country_code``): ``+`` -> international.  Otherwise the region's IDD
   regex is matched at the start; it is stripped unless the next digit is ``0``
   (``_parse_prefix_as_idd``) -> international.  Otherwise, the "country code without +"
   heuristic: the number starts with the region's code and (the full number does not match the
   general pattern but the rest, national-prefix-stripped, does) or the full number is
   TOO_LONG -> code extracted.  Otherwise national, with the region's own metadata.
   International form needs more than 2 digits (else TOO_SHORT_AFTER_IDD); the code is the
   shortest 1-3 digit prefix that is a known calling code, never starting with ``0``
   (``_extract_country_code``); no code -> not claimed.  Metadata for stripping is then the
   code's main region (``region_code_for_country_code``) as in ``parse``.
2. National prefix (``_maybe_strip_national_prefix_carrier_code``): for plans without a
   transform rule, strip the regex's leftmost-first match unless the original is viable and
   the stripped number is not; keep it only if ``_test_number_length`` is not TOO_SHORT /
   IS_POSSIBLE_LOCAL_ONLY / INVALID_LENGTH.  Plans with a transform rule are claimed only
   when the regex does not match at the start (then the step is the identity).
3. NSN length must be within [2, 17]; leading zeros stay in the NSN string, so E.164 is
   ``"+" + cc + nsn`` -- the same string ``national_significant_number`` rebuilds from the
   parsed object (italian_leading_zero / number_of_leading_zeros), never ``int(nsn)``.
4. Validity (``is_valid_number``): the region is the only one of the code, or the first in
   list order whose ``leading_digits`` match at the start, or (without leading digits) whose
   ``_number_type_helper`` is not UNKNOWN; valid iff that helper is not UNKNOWN for it, i.e.
   general desc (lengths + full match), then the other types in the helper's order,
   including ``same_mobile_and_fixed_line_pattern`` (also gives MOBILE / FIXED_LINE_OR_MOBILE).

Regex semantics: full matches use ``^(?:p)$`` (existence: same language in both engines);
prefix ends use ``^((?:p))`` with leftmost-first semantics, which the Rust ``regex`` crate
shares with Python for the pattern subset allowed by :mod:`phone_meta`.  Patterns run with
Unicode off (``(?-u)``): the subjects are ASCII digits only, where ``\\d`` means ``[0-9]`` in
either mode, and the subset has no ``.``, ``\\w``, ``\\s`` or case folding.  Plans whose
patterns fall outside it are never claimed.  Proved by differential tests against
phonenumbers on every region's example numbers in many forms, mutations and regions.

Cost.  polars compiles a pattern each time a query uses it (no cache across calls) and plans
every query it runs, so the fixed cost of a call is per plan: each plan's steps are one lazy
query, built once per process (`_type_exprs`, `_strip_steps`), the independent queries
collected together (``pl.collect_all``), a code with one region decided in the same query
as its national prefix, the descs of a plan's other types sharing one regex per set of
possible lengths, and no query at all for a group with no rows.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from functools import cache

import polars as pl

from contactpipe.transform.phone_meta import (
    MAX_NSN,
    MIN_NSN,
    Desc,
    Plan,
    country_code_sets,
    main_key,
    plan_for_key,
    plan_for_region,
    validity_keys,
)

CLAIM_SCOPE = r"^\+?[0-9]{2,30}$"
# Every metadata pattern runs with Unicode off: on the ASCII digit strings the fast path sees
# (CLAIM_SCOPE), ``\d`` matches the same characters either way, and without Unicode classes
# the regex engine compiles a region's patterns about six times faster (the fixed cost of
# each region: ~0.2 s -> 0.04 s for 120 regions' type patterns).
ASCII = "(?-u)"
_CC1, _CC2, _CC3 = ([int(c) for c in s] for s in country_code_sets())
_MAIN_KEYS = {c: main_key(c) for c in (*_CC1, *_CC2, *_CC3)}
_COLS = ["cand", "region", "cc", "num", "key"]
_NSN = ["cand", "region", "cc", "nsn"]


def _full(expr: pl.Expr, pattern: str | None) -> pl.Expr:
    return pl.lit(False) if pattern is None else expr.str.contains(f"{ASCII}^(?:{pattern})$")


def _any_desc(nsn: pl.Expr, descs: Iterable[Desc]) -> pl.Expr:
    """True where `_is_number_matching_desc` holds for some desc: the number's length is one
    of the desc's possible lengths (if it gives any) and its pattern matches in full.

    Descs with the same possible lengths share one regex, the union of their patterns (a
    string matches an alternation in full iff it matches one of its branches in full), behind
    one length test; a plan's other types (premium rate, toll free...) mostly share theirs."""
    by_lengths: dict[tuple[int, ...], list[str]] = {}
    for d in descs:
        if d.pattern is not None:
            by_lengths.setdefault(tuple(sorted(set(d.lengths))), []).append(d.pattern)
    tests = []
    for lengths, patterns in by_lengths.items():
        union = "|".join(f"(?:{p})" for p in patterns)
        m = nsn.str.contains(f"{ASCII}^(?:{union})$")
        # claimed NSNs are ASCII digits: bytes = characters
        tests.append(nsn.str.len_bytes().is_in(list(lengths)) & m if lengths else m)
    return pl.any_horizontal(tests) if tests else pl.lit(False)


def _typed(frame: pl.LazyFrame, p: Plan) -> pl.LazyFrame:
    """Adds ``t``: `_number_type_helper` of ``nsn`` folded to 0 = UNKNOWN,
    1 = MOBILE / FIXED_LINE_OR_MOBILE, 2 = any other type.  General, fixed line and mobile
    are one regex each; the other types one per set of possible lengths."""
    flags, t = _type_exprs(p)
    return frame.with_columns(**flags).select(*_NSN, t=t)


@cache
def _type_exprs(p: Plan) -> tuple[dict[str, pl.Expr], pl.Expr]:
    """`_typed`'s expressions, built once per plan (building them in Python costs about as
    much as running them on a few hundred numbers, on every call)."""
    nsn = pl.col("nsn")
    flags = {
        "_gen": _any_desc(nsn, [p.general]),
        "_oth": _any_desc(nsn, p.others),
        "_fix": _any_desc(nsn, [p.fixed]),
        "_mob": _any_desc(nsn, [p.mobile]),
    }
    mobile = pl.col("_mob")
    on_fixed = pl.lit(1) if p.same_mobile_fixed else pl.when(mobile).then(1).otherwise(2)
    only_mobile = pl.lit(False) if p.same_mobile_fixed else mobile
    t = (
        pl.when(~pl.col("_gen"))
        .then(0)
        .when("_oth")
        .then(2)
        .when("_fix")
        .then(on_fixed)
        .when(only_mobile)
        .then(1)
        .otherwise(0)
        .cast(pl.Int8)
    )
    return flags, t


def _claims(typed: pl.LazyFrame | pl.DataFrame, p: Plan) -> pl.LazyFrame:
    """The valid rows of ``typed`` as the fast path's result (the code as a literal: no
    integer-to-string cast per row)."""
    t = pl.col("t")
    return (
        typed.lazy()
        .filter(t > 0)
        .select("cand", "region", e164=pl.concat_str(pl.lit(f"+{p.cc}"), "nsn"), mobile=t == 1)
    )


def _length_result(num: pl.Expr, p: Plan) -> tuple[pl.Expr, pl.Expr]:
    """(`_test_number_length` lets stripping stand, result is TOO_LONG) for the general desc."""
    n = num.str.len_chars()
    lengths, local = list(p.general.lengths), list(p.local_lengths)
    lo, hi = lengths[0], lengths[-1]
    not_local = ~n.is_in(local) if local else pl.lit(True)
    too_long = not_local & (n != lo) & (n >= lo) & (n > hi)
    keeps = not_local & ((n == lo) | too_long | ((n > lo) & n.is_in(lengths[1:])))
    return keeps, too_long


def _strip_np(frame: pl.LazyFrame, src: str, out: str, p: Plan) -> pl.LazyFrame:
    """Adds ``out`` = ``src`` after `_maybe_strip_national_prefix_carrier_code`, and ``np_ok``
    (False where a transform rule would apply: those rows must not be claimed)."""
    for step in _strip_steps(p, src, out):
        frame = frame.with_columns(**step)
    return frame.drop("_pfx", "_str", strict=False)


@cache
def _strip_steps(p: Plan, src: str, out: str) -> list[dict[str, pl.Expr]]:
    """`_strip_np`'s expressions, built once per plan."""
    num = pl.col(src)
    if p.npfp is None:
        return [{out: num, "np_ok": pl.lit(True)}]
    if p.np_transform:
        return [{out: num, "np_ok": ~num.str.contains(f"{ASCII}^(?:{p.npfp})")}]
    stripped = pl.col("_str")
    keep = _full(num, p.general.pattern) & ~_full(stripped, p.general.pattern)
    return [
        {"_pfx": num.str.extract(f"{ASCII}^((?:{p.npfp}))", 1)},
        {"_str": num.str.slice(pl.col("_pfx").str.len_chars())},
        {
            out: pl.when(pl.col("_pfx").is_not_null() & ~keep).then(stripped).otherwise(num),
            "np_ok": pl.lit(True),
        },
    ]


def _route_national(sub: pl.DataFrame, p: Plan) -> pl.LazyFrame:
    """National-looking digits of one region, routed: ``full`` (the digits after the IDD)
    for international ones, else ``cc``, ``num`` and the plan ``key`` to strip them with."""
    d = pl.col("cand")
    q = sub.lazy()
    if p.idd is not None:
        q = q.with_columns(_idd=d.str.extract(f"{ASCII}^((?:{p.idd}))", 1))
        q = q.with_columns(after=d.str.slice(pl.col("_idd").str.len_chars()))
        q = q.with_columns(
            idd_hit=pl.col("_idd").is_not_null() & ~pl.col("after").str.starts_with("0")
        )
    else:
        q = q.with_columns(after=pl.lit(None, pl.String), idd_hit=pl.lit(False))
    ccs = str(p.cc)
    starts = d.str.starts_with(ccs)
    q = _strip_np(q.with_columns(pot0=d.str.slice(len(ccs))), "pot0", "pot", p)
    # rows starting with the code whose stripping we cannot model exactly: never claimed
    q = q.filter(pl.col("idd_hit") | ~starts | pl.col("np_ok"))
    _, too_long = _length_result(d, p)
    gen = p.general.pattern
    q = q.with_columns(h=starts & ((~_full(d, gen) & _full(pl.col("pot"), gen)) | too_long))
    intl, h = pl.col("idd_hit"), pl.col("h")
    return q.select(
        "cand",
        "region",
        full=pl.when(intl).then("after"),
        cc=pl.when(~intl).then(pl.lit(p.cc, pl.Int32)),
        num=pl.when(intl).then(None).when(h).then("pot").otherwise("cand"),
        key=pl.when(intl).then(None).when(h).then(pl.lit(main_key(p.cc))).otherwise(pl.lit(p.key)),
    )


def _route_international(intl: pl.DataFrame) -> pl.DataFrame:
    """``full`` (digits after + or the IDD) -> code, rest, plan key: the shortest known code
    among the first 1-3 digits, none when the first is 0 (`_extract_country_code`).  The
    digits as an integer (``full`` is ASCII digits): no string per prefix length."""
    full = pl.col("full")
    n = pl.col("_n")
    cc = (
        pl.when((n // 100).is_in(_CC1))
        .then(n // 100)
        .when((n // 10).is_in(_CC2))
        .then(n // 10)
        .when(n.is_in(_CC3))
        .then(n)
    )
    width = pl.when(pl.col("cc") < 10).then(1).when(pl.col("cc") < 100).then(2).otherwise(3)
    return (
        intl.lazy()
        .filter((full.str.len_bytes() > 2) & ~full.str.starts_with("0"))
        .with_columns(_n=full.str.slice(0, 3).cast(pl.Int32, strict=False))
        .with_columns(cc=cc)
        .filter(pl.col("cc").is_not_null())
        .select(
            "cand",
            "region",
            "cc",
            num=full.str.slice(width),
            key=pl.col("cc").replace_strict(_MAIN_KEYS, return_dtype=pl.String),
        )
        .collect()
    )


def _collect(queries: list[pl.LazyFrame]) -> list[pl.DataFrame | None]:
    """The queries' results, run together (polars spreads them over the cores); None for a
    query with a pattern polars cannot compile: its rows are left to phonenumbers."""
    try:
        return list(pl.collect_all(queries))
    except pl.exceptions.ComputeError:
        out: list[pl.DataFrame | None] = []
        for q in queries:
            try:
                out.append(q.collect())
            except pl.exceptions.ComputeError:
                out.append(None)
        return out


def _nsn_stage(
    routed: pl.DataFrame, min_group: int
) -> tuple[list[pl.LazyFrame], list[pl.LazyFrame]]:
    """Per stripping plan: national prefix + length rules -> (cand, region, cc, nsn).

    A plan whose code has no other region is also the only one that decides validity for
    that code: its query goes on to `_claims` (one query from digits to E.164).  Returns
    (those claims, the NSN queries of the codes shared by several regions)."""
    claims, nsns = [], []
    num = pl.col("num")
    for (key,), sub in routed.partition_by("key", as_dict=True).items():
        p = plan_for_key(key) if sub.height >= min_group else None
        if p is None:
            continue
        q = _strip_np(sub.lazy().filter(num.str.len_chars() >= MIN_NSN), "num", "pot", p)
        keeps, _ = _length_result(pl.col("pot"), p)
        q = q.filter("np_ok").with_columns(nsn=pl.when(keeps).then("pot").otherwise(num))
        q = q.filter(pl.col("nsn").str.len_chars() <= MAX_NSN).select(_NSN)
        if validity_keys(p.cc) == (key,):
            claims.append(_claims(_typed(q, p), p))
        else:
            nsns.append(q)
    return claims, nsns


_Steps = Generator[pl.LazyFrame, pl.DataFrame, list[pl.LazyFrame]]


def _code_valid(rest: pl.DataFrame, plans: list[Plan], min_group: int) -> _Steps:
    """One country code of several regions: yields the queries whose results it needs next
    (sent back by `_drive`), returns the queries giving its valid rows (see `_claims`).

    `_region_code_for_number_from_list`: the first region in list order whose leading
    digits match, or (without leading digits) for which the number has a type.  A run of
    regions with leading digits is decided in one pass (the first match wins); a region
    without them needs its types first (the rows it leaves go on to the next regions)."""
    jobs: list[pl.LazyFrame] = []
    nsn, i = pl.col("nsn"), 0
    while i < len(plans) and rest.height >= max(min_group, 1):
        p = plans[i]
        if p.leading_digits is None:
            typed = yield _typed(rest.lazy(), p)
            jobs.append(_claims(typed, p))
            rest = typed.filter(pl.col("t") == 0).select(_NSN)
            i += 1
            continue
        run: list[Plan] = []
        for q in plans[i:]:
            if q.leading_digits is None:
                break
            run.append(q)
        first: pl.Expr = pl.lit(None, pl.Int32)
        for j in reversed(range(len(run))):  # nested from the last: the first match wins
            hit = nsn.str.contains(f"{ASCII}^(?:{run[j].leading_digits})")
            first = pl.when(hit).then(pl.lit(j, pl.Int32)).otherwise(first)
        rest = yield rest.lazy().with_columns(_r=first)
        chosen = rest.filter(pl.col("_r").is_not_null())
        for (j,), sub in chosen.partition_by("_r", as_dict=True).items():
            if sub.height >= min_group:  # else too few to pay for the region's patterns
                jobs.append(_claims(_typed(sub.lazy(), run[j]), run[j]))
        rest = rest.filter(pl.col("_r").is_null()).drop("_r")
        i += len(run)
    return jobs


def _drive(codes: list[_Steps]) -> list[pl.LazyFrame]:
    """Runs the codes' steps side by side: each round collects every code's next query
    together.  A code with a query polars cannot run is dropped whole (not claimed)."""
    jobs: list[pl.LazyFrame] = []
    active: list[tuple[_Steps, pl.LazyFrame]] = []

    def advance(code: _Steps, result: pl.DataFrame | None) -> None:
        try:
            active.append((code, next(code) if result is None else code.send(result)))
        except StopIteration as done:
            jobs.extend(done.value)

    for code in codes:
        advance(code, None)
    while active:
        results = _collect([q for _, q in active])
        pending, active = active, []
        for (code, _), result in zip(pending, results, strict=True):
            if result is not None:
                advance(code, result)
    return jobs


def _validity_stage(nsns: pl.DataFrame, min_group: int) -> list[pl.LazyFrame]:
    """Per country code of several regions: `is_valid_number` + type class (`_claims`)."""
    codes = []
    for (cc,), rest in nsns.partition_by("cc", as_dict=True).items():
        if rest.height < min_group:
            continue
        plans = [plan_for_key(k) for k in validity_keys(cc)]
        if not plans or any(p is None for p in plans):
            continue  # some region of the code is not usable: never claim
        codes.append(_code_valid(rest, plans, min_group))  # type: ignore[arg-type]
    return _drive(codes)


def fast_resolve(pairs: pl.DataFrame, min_group: int = 1) -> pl.DataFrame:
    """Claim the valid numbers among distinct ``cand`` / ``region`` pairs.

    Returns ``cand, region, e164, mobile`` for claimed pairs only; a pair missing from the
    result must be decided by phonenumbers (slow path).

    ``min_group``: pairs of a region (national numbers), a numbering plan or a country code
    with fewer pairs than this are not claimed.  Each region costs a fixed 2-3 ms (its
    queries; polars compiles its patterns), about what phonenumbers takes for 100 numbers, so
    a list spread thinly over 240 countries is cheaper left to phonenumbers.  Leaving pairs
    unclaimed never changes an answer, only who computes it.
    """
    pairs = pairs.select("cand", pl.col("region").cast(pl.String))
    if pairs.height < min_group:  # every group is smaller: nothing to claim, no query to run
        return pairs.select("cand", "region", e164=pl.lit(""), mobile=pl.lit(True)).clear()
    pairs = pairs.filter(pl.col("cand").str.contains(CLAIM_SCOPE))
    plus = pl.col("cand").str.starts_with("+")
    national = []
    natl = pairs.filter(~plus & pl.col("region").is_not_null())
    for (region,), sub in natl.partition_by("region", as_dict=True).items():
        p = plan_for_region(region) if sub.height >= min_group else None
        if p is not None:
            national.append(_route_national(sub, p))
    done = [x for x in _collect(national) if x is not None]
    routed = pl.concat(done) if done else None
    intl = pairs.filter(plus).select("cand", "region", full=pl.col("cand").str.slice(1))
    parts = [] if routed is None else [routed.filter(pl.col("full").is_null()).select(_COLS)]
    if routed is not None:
        intl = pl.concat([intl, routed.filter(pl.col("full").is_not_null()).select(intl.columns)])
    parts.append(_route_international(intl))
    routed_df = pl.concat([r.cast({"cc": pl.Int32}) for r in parts])
    claims, nsn_jobs = _nsn_stage(routed_df, min_group)
    found = _collect(claims + nsn_jobs)
    nsns = [x for x in found[len(claims) :] if x is not None]
    if nsns:
        found += _collect(_validity_stage(pl.concat(nsns), min_group))
    out = [x for x in found[: len(claims)] + found[len(claims) + len(nsn_jobs) :] if x is not None]
    if not out:
        return pairs.clear().select("cand", "region", e164=pl.lit(""), mobile=pl.lit(True))
    return pl.concat(out)
