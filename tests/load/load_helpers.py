"""Helpers for the load tests (a uniquely named module: tests/ has no packages).

``sandbox_env`` (the variables a user would export for a sandbox) comes from the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from contactpipe.demo import sandbox_env
from contactpipe.load.base import LoadOptions, Target, TargetConfig
from contactpipe.load.client import ClientStats, RetryPolicy
from contactpipe.load.targets import get
from contactpipe.report.writer import CONTACT_COLUMNS
from contactpipe.sandbox import SandboxServer, SandboxSettings
from contactpipe.sandbox.contract import contract

LIST_FIELDS = ("tags", "groups")
BOOL_FIELDS = ("opt_out", "opt_out_marketing", "reply_bot_enabled")

FAST_POLICY = RetryPolicy(attempts=4, backoff_s=0.01, backoff_cap_s=0.05, throttle_backoff_s=0.05)


def fast_settings(**overrides: Any) -> SandboxSettings:
    """Sandbox settings for load tests: no rate limits, jobs that finish in a blink."""
    values: dict[str, Any] = {
        "msgflash_rate_limit": None,
        "waapi_rate_limit": None,
        "vobiz_rate_limit": None,
        "msgflash_job_pending_s": 0.02,
        "msgflash_job_items_per_s": 200_000.0,
        "contract_audit": True,
    }
    values.update(overrides)
    return SandboxSettings(**values)


def phone(i: int) -> str:
    """A valid French mobile number, distinct per i (i < 10**8)."""
    return f"+336{i:08d}"


def contacts_df(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A frame shaped like :func:`contactpipe.report.writer.contacts_frame` from partial dicts.
    ``custom_fields`` may be given as a dict; ``row`` defaults to the position + 2."""
    full = []
    for i, r in enumerate(rows):
        d: dict[str, Any] = {c: r.get(c) for c in CONTACT_COLUMNS}
        for c in LIST_FIELDS:
            d[c] = list(r.get(c) or [])
        cf = r.get("custom_fields")
        d["custom_fields"] = json.dumps(cf) if isinstance(cf, dict) else cf
        d["source_file"] = r.get("source_file", "contacts.csv")
        d["sheet"] = r.get("sheet")
        d["row"] = r.get("row", i + 2)
        full.append(d)
    schema: dict[str, Any] = {c: pl.String for c in CONTACT_COLUMNS}
    for c in LIST_FIELDS:
        schema[c] = pl.List(pl.String)
    for c in BOOL_FIELDS:
        schema[c] = pl.Boolean
    schema.update({"source_file": pl.String, "sheet": pl.String, "row": pl.Int64})
    return pl.DataFrame(full, schema=schema, orient="row")


def simple_contacts(n: int, start: int = 0, **extra: Any) -> pl.DataFrame:
    """``n`` valid contacts named ``Contact <i>``."""
    return contacts_df(
        [{"phone": phone(i), "name": f"Contact {i}", **extra} for i in range(start, start + n)]
    )


def make_target(
    name: str,
    server: SandboxServer,
    *,
    env: dict[str, str] | None = None,
    policy: RetryPolicy = FAST_POLICY,
    **options: Any,
) -> Target:
    """A target pointed at ``server`` with the sandbox's credentials and fast retries."""
    cls = get(name)
    config: TargetConfig = cls.config_from_env(env or sandbox_env(server), None)
    options.setdefault("poll_interval_s", 0.02)
    return cls(config, LoadOptions(**options), stats=ClientStats(), policy=policy)


def request_file_violations(path: Path) -> list[str]:
    """How a ``--dry-run`` request file steps outside its API's contract, checked as the
    request it stands for (strictly: bulk entries included).  Files that are not request
    bodies (``msgflash-groups.json``: group -> phones) have no contract and pass."""
    name = path.name
    json_type = {"Content-Type": "application/json"}
    if name.startswith("waapi-bulk-"):
        api, url = "waapi", "http://h/api/external/contacts/MTAw/bulk"
        auth = {"Authorization": "Bearer t"}
        requests = [httpx.Request("POST", url, content=path.read_bytes(), headers=json_type)]
    elif name.startswith("msgflash-contacts-"):
        api, url, auth = "msgflash", "http://h/api/v1/contacts", {"x-api-key": "k"}
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        requests = [httpx.Request("POST", url, content=line, headers=json_type) for line in lines]
    elif name.startswith("vobiz-import-"):
        api, url = "vobiz", "http://h/api/v1/messaging/contacts/import"
        auth = {"X-Auth-ID": "MA_X", "X-Auth-Token": "t"}
        header = path.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
        missing = {"phone_number", "name"} - set(header)
        if missing:
            return [f"{name}: CSV header lacks {sorted(missing)}"]
        files = {"file": (name, path.read_bytes(), "text/csv")}
        requests = [httpx.Request("POST", url, files=files)]
    elif name == "msgflash-groups.json":
        return []
    else:
        return [f"{name}: no known request"]
    out = []
    for k, request in enumerate(requests, 1):
        request.headers.update(auth)
        problems = contract(api).check_request(
            request.method, request.url.path, "", request.headers, request.read()
        )
        out += [f"{name} #{k}: {p}" for p in problems]
    return out
