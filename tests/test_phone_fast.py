"""Differential proof of the fast path: it must agree with phonenumbers wherever it claims.

Inputs: the example number of every region (and non-geographic entity) for every type,
written in many forms, with random digit mutations (invalid, too short, too long...) and
random default regions.  The reference is a plain per-row phonenumbers call.
"""

from __future__ import annotations

import dataclasses
import random
import re

import phonenumbers as pn
import polars as pl
import pytest
from phonenumbers import PhoneNumberFormat as PNF
from phonenumbers import PhoneNumberType as PNT

from contactpipe.transform import phone_fast, phone_resolve
from contactpipe.transform.phone_fast import fast_resolve
from contactpipe.transform.phone_meta import Desc, plan_for_region
from contactpipe.transform.phones import normalize_phones

REGIONS = sorted(pn.SUPPORTED_REGIONS)
TYPES = [
    PNT.FIXED_LINE,
    PNT.MOBILE,
    PNT.TOLL_FREE,
    PNT.PREMIUM_RATE,
    PNT.SHARED_COST,
    PNT.VOIP,
    PNT.PERSONAL_NUMBER,
    PNT.PAGER,
    PNT.UAN,
    PNT.VOICEMAIL,
]


def _examples() -> list[tuple[str, pn.PhoneNumber]]:
    out = []
    for r in REGIONS:
        for t in TYPES:
            n = pn.example_number_for_type(r, t)
            if n is not None:
                out.append((r, n))
    for cc in sorted(pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        n = pn.example_number_for_non_geo_entity(cc)
        if n is not None:
            out.append(("US", n))
    return out


EXAMPLES = _examples()


def reference(cell: str, region: str | None) -> tuple[str | None, bool | None]:
    try:
        n = pn.parse(cell, region)
    except pn.NumberParseException:
        return None, None
    if not pn.is_valid_number(n):
        return None, None
    return pn.format_number(n, PNF.E164), pn.number_type(n) in (
        PNT.MOBILE,
        PNT.FIXED_LINE_OR_MOBILE,
    )


def _mutate(d: str, rng: random.Random) -> str:
    m, start, k = list(d), 1 if d.startswith("+") else 0, rng.random()
    if k < 0.3 and len(m) > start + 2:
        m[rng.randrange(start, len(m))] = str(rng.randrange(10))
    elif k < 0.5:
        m.append(str(rng.randrange(10)))
    elif k < 0.7 and len(m) > start + 2:
        m.pop()
    elif k < 0.8:
        m.insert(start, "0")
    else:
        m.insert(start, str(pn.country_code_for_region(rng.choice(REGIONS))))
    return "".join(m)


def _digit_pairs(seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = set()
    for home, n in EXAMPLES:
        e164 = pn.format_number(n, PNF.E164)
        natl = re.sub(r"[^0-9+]", "", pn.format_number(n, PNF.NATIONAL))
        forms = [e164, natl, "00" + e164[1:], "011" + e164[1:], e164[1:]]
        for f in forms:
            rows.add((f, home))
            rows.add((f, rng.choice(REGIONS)))
            rows.add((_mutate(f, rng), home))
            rows.add((_mutate(f, rng), rng.choice(REGIONS)))
        rows.add((e164, None))
        rows.add((natl, None))
    return pl.DataFrame(
        sorted(rows, key=str), schema={"cand": pl.String, "region": pl.String}, orient="row"
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_fast_path_equals_phonenumbers_where_it_claims(seed: int) -> None:
    pairs = _digit_pairs(seed)
    claimed = {(c, r): (e, m) for c, r, e, m in fast_resolve(pairs).iter_rows()}
    valid = 0
    for cand, region in pairs.iter_rows():
        ref = reference(cand, region)
        valid += ref[0] is not None
        if (cand, region) in claimed:
            assert claimed[(cand, region)] == ref, (cand, region)
    assert len(claimed) >= 0.95 * valid, (len(claimed), valid)  # regression to "claim nothing"
    assert len(claimed) > 5_000


def _human_forms(n: pn.PhoneNumber, rng: random.Random) -> list[str]:
    e164 = pn.format_number(n, PNF.E164)
    intl = pn.format_number(n, PNF.INTERNATIONAL)
    natl = pn.format_number(n, PNF.NATIONAL)
    cc = str(n.country_code)
    forms = [
        e164,
        intl,
        natl,
        pn.format_number(n, PNF.RFC3966),
        re.sub(r"[^0-9]", "", natl),
        intl.replace(" ", "."),
        intl.replace(" ", "-"),
        natl.replace(" ", "."),
        "00" + intl[1:],
        f"(+{cc}) " + intl.split(" ", 1)[-1],
        f"+{cc} (0)" + intl.split(" ", 1)[-1],
        # tildes: an extension marker before final digits for phonenumbers, else punctuation
        intl.replace(" ", "~"),
        natl.replace(" ", "\uff5e"),
        intl.replace(" ", "\u2053"),
        natl.replace(" ", "\u223c"),
        e164 + "~" + str(rng.randrange(1, 10 ** rng.randrange(1, 11))),
        natl + " ～ " + str(rng.randrange(100)),
        "~" + natl + "~",
    ]
    return [f if rng.random() < 0.7 else _mutate(re.sub(r"[^0-9+]", "", f), rng) for f in forms]


@pytest.mark.parametrize("min_group", [1, phone_resolve.FAST_MIN_GROUP])
def test_normalize_equals_phonenumbers_row_by_row(
    min_group: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cleaning + fast path + slow path == phonenumbers on the raw cell, for the formats it
    prints and the usual human variants (legacy plans off: plain phonenumbers semantics).
    With ``min_group`` 1 the fast path takes every region, even one with a single number."""
    monkeypatch.setattr(phone_resolve, "FAST_MIN_GROUP", min_group)
    rng = random.Random(7)
    cells, regions = [], []
    for home, n in EXAMPLES:
        for f in _human_forms(n, rng):
            cells.append(f)
            regions.append(home if rng.random() < 0.7 else rng.choice(REGIONS))
    df = pl.DataFrame({"phone": cells, "country": regions})
    out = normalize_phones(
        df,
        phone_col="phone",
        region=None,
        country_col="country",
        legacy="reject",
        mobile_only=False,
    )
    got = out["__phone_e164"].to_list()
    for cell, region, e164 in zip(cells, regions, got, strict=True):
        assert e164 == reference(cell, region)[0], (cell, region)
    assert sum(e is not None for e in got) > 0.5 * len(got)


def test_every_region_example_round_trips() -> None:
    e164s, natl, regions = [], [], []
    for r in REGIONS:
        n = pn.example_number(r)
        if n is None:
            continue
        e164s.append(pn.format_number(n, PNF.E164))
        natl.append(pn.format_number(n, PNF.NATIONAL))
        regions.append(r)
    out = normalize_phones(pl.DataFrame({"phone": e164s}), phone_col="phone", region=None)
    assert out["__phone_e164"].to_list() == e164s
    df = pl.DataFrame({"phone": natl, "country": regions})
    out = normalize_phones(df, phone_col="phone", region=None, country_col="country")
    assert out["__phone_e164"].to_list() == e164s


def test_small_groups_are_left_to_phonenumbers() -> None:
    """``min_group``: a region, plan or country code with fewer pairs is not claimed (each
    costs the fast path a fixed few ms); a big enough one is, with phonenumbers' answer."""
    fr = [(f"06{i:08d}", "FR") for i in range(12_345_600, 12_345_650)]
    de = [(f"+49151{i:08d}", None) for i in range(23_456_700, 23_456_705)]
    pairs = pl.DataFrame(fr + de, schema={"cand": pl.String, "region": pl.String}, orient="row")
    claimed = {(c, r): (e, m) for c, r, e, m in fast_resolve(pairs, min_group=10).iter_rows()}
    assert {r for _, r in claimed} == {"FR"}
    assert len(claimed) == len(fr)
    for (cand, region), got in claimed.items():
        assert got == reference(cand, region)
    assert fast_resolve(pairs, min_group=51).is_empty()
    assert len(fast_resolve(pairs)) == len(fr) + len(de)


def test_a_plan_polars_cannot_compile_is_not_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pattern over polars' regex size limit (Python compiles it): the rows it concerns
    go to phonenumbers, the others are still claimed, and nothing raises."""
    huge = r"(?:\d{100}){100}{100}"
    real = plan_for_region

    def plan(region: str) -> object:
        p = real(region)
        if region == "FR" and p is not None:
            return dataclasses.replace(p, general=Desc(huge, p.general.lengths))
        return p

    monkeypatch.setattr(phone_fast, "plan_for_region", plan)
    monkeypatch.setattr(phone_fast, "plan_for_key", plan)
    pairs = pl.DataFrame(
        {"cand": ["0612345678", "+33612345678", "+4915123456789"], "region": ["FR", None, None]}
    )
    claimed = {c: e for c, _, e, _ in fast_resolve(pairs).iter_rows()}
    assert claimed == {"+4915123456789": "+4915123456789"}
    out = normalize_phones(pairs.rename({"cand": "phone"}), phone_col="phone", region="FR")
    assert out["__phone_e164"].to_list() == ["+33612345678", "+33612345678", "+4915123456789"]


def _nsn_variants(nsns: list[str], rng: random.Random) -> set[str]:
    """NSNs around real ones: digit changes, one digit more or less, another first digit."""
    out = set()
    for n in nsns:
        out.add(n)
        for _ in range(4):
            m = list(n)
            m[rng.randrange(len(m))] = str(rng.randrange(10))
            out.add("".join(m))
        out.update({n[:-1], n + str(rng.randrange(10)), str(rng.randrange(10)) + n[1:]})
    return {n for n in out if 2 <= len(n) <= 17}


def _fold(t: int) -> int:
    if t == PNT.UNKNOWN:
        return 0
    return 1 if t in (PNT.MOBILE, PNT.FIXED_LINE_OR_MOBILE) else 2


def test_types_equal_phonenumbers_type_helper_for_every_plan() -> None:
    """`_typed` (other types unioned per set of possible lengths, length tests on the NSN)
    == phonenumbers' `_number_type_helper`, folded, for every usable plan, on the example
    numbers of every type and their neighbours."""
    from phonenumbers.phonemetadata import PhoneMetadata
    from phonenumbers.phonenumberutil import _number_type_helper

    rng = random.Random(16)
    keys = REGIONS + [f"+{cc}" for cc in sorted(pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS)]
    checked = 0
    for key in keys:
        p = phone_fast.plan_for_key(key)
        if p is None:
            continue
        if key.startswith("+"):
            md = PhoneMetadata.metadata_for_nongeo_region(int(key[1:]), None)
            examples = [pn.example_number_for_non_geo_entity(int(key[1:]))]
        else:
            md = PhoneMetadata.metadata_for_region(key, None)
            examples = [pn.example_number_for_type(key, t) for t in TYPES]
        nsns = [pn.national_significant_number(n) for n in examples if n is not None]
        frame = pl.DataFrame({"nsn": sorted(_nsn_variants(nsns, rng))}).with_columns(
            cand=pl.col("nsn"), region=pl.lit(key), cc=pl.lit(p.cc, pl.Int32)
        )
        got = phone_fast._typed(frame.lazy(), p).collect()
        for nsn, t in zip(got["nsn"], got["t"], strict=True):
            assert t == _fold(_number_type_helper(nsn, md)), (key, nsn)
            checked += 1
    assert checked > 7_000


@pytest.mark.parametrize("min_group", [1, 3])
def test_codes_of_several_regions_pick_phonenumbers_region(min_group: int) -> None:
    """Codes shared by several regions (+1, +44, +7, +262, +590...): the region phonenumbers
    picks (leading digits in list order, or types for regions without them) and its answer,
    for many numbers of each code at once, so every region of a code gets a group."""
    rng = random.Random(44)
    cells = set()
    for cc, regions in pn.COUNTRY_CODE_TO_REGION_CODE.items():
        if len(regions) < 2:
            continue
        nsns = []
        for r in regions:
            for t in TYPES:
                n = pn.example_number_for_type(r, t)
                if n is not None:
                    nsns.append(pn.national_significant_number(n))
        cells.update(f"+{cc}{n}" for n in _nsn_variants(nsns, rng))
    pairs = pl.DataFrame(
        {"cand": sorted(cells), "region": [None] * len(cells)},
        schema={"cand": pl.String, "region": pl.String},
    )
    claimed = {c: (e, m) for c, _, e, m in fast_resolve(pairs, min_group).iter_rows()}
    valid = 0
    for cand in cells:
        ref = reference(cand, None)
        valid += ref[0] is not None
        if cand in claimed:
            assert claimed[cand] == ref, cand
    assert len(claimed) >= 0.9 * valid, (len(claimed), valid)


def test_descs_sharing_a_regex_keep_their_own_lengths() -> None:
    """`_any_desc` unions the patterns of descs with the same possible lengths: each desc
    still only matches numbers of its own lengths (phonenumbers' metadata patterns mostly
    imply their lengths, so synthetic descs whose patterns do not are checked here against
    `_is_number_matching_desc` itself)."""
    from phonenumbers.phonemetadata import PhoneNumberDesc
    from phonenumbers.phonenumberutil import _is_number_matching_desc

    descs = [
        Desc(r"\d{4,8}", (5,)),
        Desc(r"9\d{3,7}", (4, 8)),
        Desc(r"[5-7]\d{2,9}", (5, 6)),
        Desc(r"1\d+", ()),
        Desc(r"\d+", (-1,)),
        Desc(None, (6,)),
        Desc(r"3\d{4}", (5,)),
    ]
    nsns = sorted(
        {d * k for d in "1359" for k in range(2, 12)} | {"3" + "0" * k for k in range(2, 9)}
    )
    frame = pl.DataFrame({"nsn": nsns})
    for subset in [descs, descs[:2], descs[2:], [descs[0], descs[6]], [descs[4], descs[5]]]:
        got = frame.select(phone_fast._any_desc(pl.col("nsn"), subset))[:, 0].to_list()
        pdescs = [
            PhoneNumberDesc(national_number_pattern=d.pattern, possible_length=d.lengths)
            for d in subset
        ]
        want = [any(_is_number_matching_desc(n, d) for d in pdescs) for n in nsns]
        assert got == want, subset
        assert any(want) or subset == [descs[4], descs[5]]
