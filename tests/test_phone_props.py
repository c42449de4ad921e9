"""Property tests: a valid number written any usual way normalises back to itself."""

from __future__ import annotations

import phonenumbers as pn
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat as PNF
from phonenumbers import PhoneNumberType as PNT

from contactpipe.transform.phones import normalize_phones

REGIONS = sorted(pn.SUPPORTED_REGIONS)
SEPARATORS = [" ", ".", "-", "", "\u00a0", "/", " - ", "\u2053", "\u223c"]  # ⁓ ∼: punctuation
FORMATS = [PNF.E164, PNF.INTERNATIONAL, PNF.NATIONAL, PNF.RFC3966]


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[pn.PhoneNumber, str]:
    region = draw(st.sampled_from(REGIONS))
    ntype = draw(st.sampled_from([PNT.MOBILE, PNT.FIXED_LINE, PNT.TOLL_FREE]))
    ex = pn.example_number_for_type(region, ntype) or pn.example_number(region)
    if ex is None:
        return draw(valid_numbers())
    nsn = pn.national_significant_number(ex)
    k = draw(st.integers(0, min(4, len(nsn) - 1)))
    tail = draw(st.text("0123456789", min_size=k, max_size=k))
    n = pn.parse("+" + str(ex.country_code) + nsn[: len(nsn) - k] + tail, None)
    if not pn.is_valid_number(n):
        n = ex
    return n, pn.region_code_for_number(n) or region


def _write(n: pn.PhoneNumber, fmt: int, sep: str) -> str:
    s = pn.format_number(n, fmt)
    return s if fmt == PNF.RFC3966 else s.replace(" ", sep)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            valid_numbers(),
            st.sampled_from(FORMATS),
            st.sampled_from(SEPARATORS),
            st.sampled_from(REGIONS),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_valid_numbers_normalise_back_to_themselves(items: list) -> None:
    cells, regions, expected = [], [], []
    for (n, home), fmt, sep, other in items:
        e164 = pn.format_number(n, PNF.E164)
        if home == "001":
            home = "US"
        cells.append(_write(n, fmt, sep))
        regions.append(home)  # own region: every form
        expected.append(e164)
        if fmt != PNF.NATIONAL:  # international forms: any default region
            cells.append(_write(n, fmt, sep))
            regions.append(other)
            expected.append(e164)
    df = pl.DataFrame({"phone": cells, "country": regions})
    out = normalize_phones(
        df, phone_col="phone", region="FR", country_col="country", legacy="reject", workers=1
    )
    assert out["__phone_e164"].to_list() == expected, list(zip(cells, regions, strict=True))
