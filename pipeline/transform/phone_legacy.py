"""Numbers of superseded national plans (Benin 2024, Côte d'Ivoire 2021, Brazil's ninth
mobile digit 2012-2016, Mexico's 2019 ten-digit dialling), as data.

The rules live in ``schemas/legacy_numbering.json``.  They apply only to numbers that
phonenumbers parsed but found INVALID under current metadata, whose country code and
old-length national number match a rule (so: international form, or national form with the
row region of the plan).  The converted number is decided by phonenumbers again (the caller
resolves it like any candidate) and must be valid, else the row stays INVALID_NUMBER.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
from polars._typing import PolarsDataType

from contactpipe.schemas import SCHEMAS_DIR

SCHEMA_PATH = SCHEMAS_DIR / "legacy_numbering.json"


@cache
def load_plans(path: Path = SCHEMA_PATH) -> tuple[dict[str, Any], ...]:
    with path.open(encoding="utf-8") as fh:
        return tuple(json.load(fh)["plans"])


def _new_nsn(nsn: pl.Expr, old: str, template: str) -> pl.Expr:
    """The new national number: ``{nsn}`` is the whole old one, ``{1}``, ``{2}``... the
    groups of the rule's ``old`` regex (Brazil's 9 goes between area code and number)."""
    if "{nsn}" in template:
        head, _, tail = template.partition("{nsn}")
        return pl.concat_str(pl.lit(head), nsn, pl.lit(tail))
    return nsn.str.replace(old, re.sub(r"\{(\d+)\}", r"${\1}", template))


CANDIDATES_SCHEMA: dict[str, PolarsDataType] = {
    "cand": pl.String,
    "region": pl.String,
    "new_cand": pl.String,
    "verified": pl.Boolean,
    "note": pl.String,
    "effective": pl.String,
    "old": pl.String,
    "plan": pl.String,
}
"""The columns of :func:`legacy_candidates`, in its order."""


def legacy_candidates(invalid: pl.DataFrame) -> pl.DataFrame:
    """Old-plan numbers among ``invalid`` (columns cand, region, cc, nsn).

    Returns cand, region, old (E.164-style old number), new_cand (``+CC`` + new NSN),
    plan (name), effective, verified (bool), note (str | null).
    """
    if invalid.is_empty():  # every number valid (most batches): no query per plan
        return pl.DataFrame(schema=CANDIDATES_SCHEMA)
    parts = []
    nsn = pl.col("nsn")
    for plan in load_plans():
        sub = invalid.filter(
            pl.col("cc") == plan["country_code"], nsn.str.len_chars() == plan["old_nsn_length"]
        )
        if sub.is_empty():
            continue
        new = verified = note = effective = None
        for rule in reversed(plan["rules"]):  # first matching rule wins
            old = f"^(?:{rule['old']})$"
            hit = nsn.str.contains(old)
            value = pl.lit(f"+{plan['country_code']}") + _new_nsn(nsn, old, rule["new"])
            new = pl.when(hit).then(value).otherwise(new)
            verified = pl.when(hit).then(pl.lit(rule["verified"])).otherwise(verified)
            note = pl.when(hit).then(pl.lit(rule.get("note"), pl.String)).otherwise(note)
            since = pl.lit(rule.get("effective", plan["effective"]))
            effective = pl.when(hit).then(since).otherwise(effective)
        parts.append(
            sub.with_columns(new_cand=new, verified=verified, note=note, effective=effective)
            .filter(pl.col("new_cand").is_not_null())
            .select(
                "cand",
                "region",
                "new_cand",
                "verified",
                "note",
                "effective",
                old=pl.concat_str(pl.lit(f"+{plan['country_code']}"), nsn),
                plan=pl.lit(plan["name"]),
            )
        )
    if not parts:
        return pl.DataFrame(schema=CANDIDATES_SCHEMA)
    return pl.concat(parts)
