"""WAAPI: bulk upsert by phone, page/limit listings, groups with member ids, 100 requests per
15 minutes.  What the docs leave open and how this package decides: ``docs/targets/waapi.md``.

- :mod:`.core`: configuration, client, listings, groups lookup;
- :mod:`.importer`: the bulk upsert; :mod:`.exporter`: export; :mod:`.manage`: delete and
  group commands; :mod:`.target`: the class that puts them together.
"""

from __future__ import annotations

from typing import Any

from contactpipe.load.registry import TargetInfo

INFO = TargetInfo(
    name="waapi",
    title="WAAPI",
    module="contactpipe.load.targets.waapi.target",
    credentials=("WAAPI_TOKEN", "WAAPI_PHONE_ID"),
    base_url_var="WAAPI_BASE_URL",
    default_base_url=None,
    capabilities=frozenset({"bulk_upsert", "groups", "custom_fields", "export", "delete"}),
    export_filters=frozenset({"search", "tag", "group", "opt_out"}),
    credentials_note="the phone id raw or base64",
    secret="WAAPI_TOKEN",
    account="WAAPI_PHONE_ID",
    labels={
        "WAAPI_TOKEN": "Access token",
        "WAAPI_PHONE_ID": "Phone number id",
        "WAAPI_BASE_URL": "Base URL",
    },
)


def __getattr__(name: str) -> Any:  # the class on first use: importing INFO stays cheap
    if name in ("Waapi", "TARGET", "encoded_phone_id"):
        from . import target

        return getattr(target, name)
    raise AttributeError(name)
