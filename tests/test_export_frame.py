"""export_frame: exported dicts -> the export file's columns and types."""

from __future__ import annotations

import polars as pl

from contactpipe.run import export_frame


def test_columns_types_and_custom_fields() -> None:
    rows = [
        {
            "id": "c1",
            "phone": "+33612345678",
            "name": "Awa",
            "tags": ["vip", "b2b"],
            "opt_out": False,
            "custom_fields": {"city": "Lyon", "tier": 2},
            "created_at": "2026-11-01T10:00:00Z",
            "temperature": 3,
            "meta": {"a": 1},
        },
        {"id": "c2", "phone": "+22901971234567", "name": "Bio", "groups": ["G1"]},
    ]
    df = export_frame(rows, with_groups=True)
    assert df.columns[:10] == [
        "phone",
        "name",
        "email",
        "language_code",
        "tags",
        "notes",
        "opt_out",
        "opt_out_marketing",
        "reply_bot_enabled",
        "groups",
    ]
    assert df.columns[10:] == [
        "custom.city",
        "custom.tier",
        "id",
        "created_at",
        "updated_at",
        "temperature",
        "meta",
    ]
    assert df.schema["tags"] == df.schema["groups"] == pl.List(pl.String)
    assert df.schema["opt_out"] == pl.Boolean
    assert df.get_column("tags").to_list() == [["vip", "b2b"], []]
    assert df.get_column("groups").to_list() == [[], ["G1"]]
    assert df.get_column("opt_out").to_list() == [False, None]
    assert df.get_column("custom.tier").to_list() == ["2", None]
    assert df.get_column("meta").to_list() == ['{"a":1}', None]
    assert "groups" not in export_frame(rows, with_groups=False).columns


def test_api_messages_never_carry_a_credential_into_the_report() -> None:
    from contactpipe.load.base import LoadResult
    from contactpipe.run import _failures_frame, mask

    assert mask("bad key tok_123 for tok_123", ["tok_123", ""]) == "bad key *** for ***"
    result = LoadResult("waapi", 2)
    result.fail([1], "API_REJECTED", "WAAPI: token tok_123 is not allowed")
    frame = _failures_frame(result, ["tok_123"])
    assert frame.rows() == [(1, "API_REJECTED", "WAAPI: token *** is not allowed")]
