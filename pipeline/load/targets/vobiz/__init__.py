"""Vobiz: CSV bulk import, page/limit listing with ``has_more``, tags instead of groups, no
documented rate limit.  What the docs leave open and how this package decides:
``docs/targets/vobiz.md``.

- :mod:`.core`: configuration, client, the listing; :mod:`.importer`: the CSV import;
  :mod:`.exporter`: export; :mod:`.manage`: delete (groups are refused); :mod:`.target`: the
  class that puts them together.
"""

from __future__ import annotations

from typing import Any

from contactpipe.load.registry import TargetInfo

INFO = TargetInfo(
    name="vobiz",
    title="Vobiz",
    module="contactpipe.load.targets.vobiz.target",
    credentials=("VOBIZ_AUTH_ID", "VOBIZ_AUTH_TOKEN"),
    base_url_var="VOBIZ_BASE_URL",
    default_base_url="https://api.vobiz.ai/api/v1/messaging",
    capabilities=frozenset({"csv_import", "export", "delete"}),
    export_filters=frozenset({"search", "tag"}),
    secret="VOBIZ_AUTH_TOKEN",
    account="VOBIZ_AUTH_ID",
    labels={
        "VOBIZ_AUTH_TOKEN": "Auth token",
        "VOBIZ_AUTH_ID": "Auth id",
        "VOBIZ_BASE_URL": "Base URL",
    },
)


def __getattr__(name: str) -> Any:  # the class on first use: importing INFO stays cheap
    if name in ("Vobiz", "TARGET", "NO_GROUPS", "export_contact"):
        from . import target

        return getattr(target, name)
    raise AttributeError(name)
