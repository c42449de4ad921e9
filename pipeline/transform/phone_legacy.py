"""Numbers of superseded national plans (Benin 2024, Côte d'Ivoire 2021), as data.

The rules live in ``schemas/legacy_numbering.json``.  They apply only to numbers that
phonenumbers parsed but found INVALID under current metadata, whose country code and
old-length national number match a rule (so: international form, or national form with the
row region BJ / CI).  The converted number is decided by phonenumbers again (the caller
resolves it like any candidate) and must be valid, else the row stays INVALID_NUMBER.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from schemas import SCHEMAS_DIR

SCHEMA_PATH = SCHEMAS_DIR / "legacy_numbering.json"


@cache
def load_plans(path: Path = SCHEMA_PATH) -> tuple[dict[str, Any], ...]:
    with path.open(encoding="utf-8") as fh:
        return tuple(json.load(fh)["plans"])


def legacy_candidates(invalid: pl.DataFrame) -> pl.DataFrame:
    """Old-plan numbers among ``invalid`` (columns cand, region, cc, nsn).

    Returns cand, region, old (E.164-style old number), new_cand (``+CC`` + new NSN),
    plan (name), effective, verified (bool), note (str | null).
    """
    parts = []
    nsn = pl.col("nsn")
    for plan in load_plans():
        sub = invalid.filter(
            pl.col("cc") == plan["country_code"], nsn.str.len_chars() == plan["old_nsn_length"]
        )
        if sub.is_empty():
            continue
        new = verified = note = None
        for rule in reversed(plan["rules"]):  # first matching rule wins
            hit = nsn.str.contains(f"^(?:{rule['old']})$")
            head, _, tail = rule["new"].partition("{nsn}")
            value = pl.concat_str(pl.lit(f"+{plan['country_code']}{head}"), nsn, pl.lit(tail))
            new = pl.when(hit).then(value).otherwise(new)
            verified = pl.when(hit).then(pl.lit(rule["verified"])).otherwise(verified)
            note = pl.when(hit).then(pl.lit(rule.get("note"), pl.String)).otherwise(note)
        parts.append(
            sub.with_columns(new_cand=new, verified=verified, note=note)
            .filter(pl.col("new_cand").is_not_null())
            .select(
                "cand",
                "region",
                "new_cand",
                "verified",
                "note",
                old=pl.concat_str(pl.lit(f"+{plan['country_code']}"), nsn),
                plan=pl.lit(plan["name"]),
                effective=pl.lit(plan["effective"]),
            )
        )
    if not parts:
        schema = {"cand": pl.String, "region": pl.String, "new_cand": pl.String}
        schema |= {"verified": pl.Boolean, "note": pl.String, "old": pl.String}
        schema |= {"plan": pl.String, "effective": pl.String}
        return pl.DataFrame(schema=schema)
    return pl.concat(parts)
