"""MsgFlash: contacts one by one at 10 requests per second, cursor listings, groups with a
members endpoint, bulk jobs for large writes.  What the docs leave open and how this package
decides: ``docs/targets/msgflash.md``.

- :mod:`.core`: configuration, client, listings, groups lookup and create;
- :mod:`.importer`: the record importer; :mod:`.exporter`: export; :mod:`.bulk`: bulk
  writes and their jobs; :mod:`.manage`: delete and group commands; :mod:`.target`: the class
  that puts them together.
"""

from __future__ import annotations

from typing import Any

from contactpipe.load.registry import TargetInfo

INFO = TargetInfo(
    name="msgflash",
    title="MsgFlash",
    module="contactpipe.load.targets.msgflash.target",
    credentials=("MSGFLASH_API_KEY",),
    optional=("MSGFLASH_TEAM_ID",),
    base_url_var="MSGFLASH_BASE_URL",
    default_base_url="https://srv.msgflash.com",
    capabilities=frozenset({"groups", "custom_fields", "async_jobs", "export", "delete"}),
    export_filters=frozenset({"search", "group"}),
    credentials_note="the team id for msgf_team_ keys",
    secret="MSGFLASH_API_KEY",
    account="MSGFLASH_TEAM_ID",
    labels={
        "MSGFLASH_API_KEY": "API key",
        "MSGFLASH_TEAM_ID": "Team id (msgf_team_ keys only)",
        "MSGFLASH_BASE_URL": "Base URL",
    },
)


def __getattr__(name: str) -> Any:  # the class on first use: importing INFO stays cheap
    if name in ("MsgFlash", "TARGET"):
        from . import target

        return getattr(target, name)
    raise AttributeError(name)
