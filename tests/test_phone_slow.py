"""The slow path's answers do not depend on how the pairs are spread over worker processes."""

from __future__ import annotations

import phonenumbers
import pytest

from contactpipe.transform import phone_slow


def pairs_of_many_regions() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)[:90]:
        example = phonenumbers.example_number(region)
        nsn = phonenumbers.national_significant_number(example) if example else "123"
        out += [(nsn, region), (nsn[:-2] or "1", region), ("+" + nsn, region)]
    out.append(("0612345678", None))  # no region: an error, in its place
    return out


def test_pairs_of_many_regions_are_split_over_workers_in_their_order() -> None:
    pairs = pairs_of_many_regions()
    assert len({r for _, r in pairs}) >= phone_slow.MANY_REGIONS > 1
    assert len(pairs) < phone_slow.PARALLEL_MIN  # the split by region, not by count
    assert phone_slow.resolve_many(pairs, 2) == phone_slow.resolve_chunk(pairs)


@pytest.mark.parametrize("workers", [1, 2])
def test_many_pairs_in_chunks_keep_their_order(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phone_slow, "PARALLEL_MIN", 50)
    monkeypatch.setattr(phone_slow, "CHUNK", 37)
    pairs = pairs_of_many_regions()
    assert phone_slow.resolve_many(pairs, workers) == phone_slow.resolve_chunk(pairs)
