"""Settings of the sandbox: credentials, rate limits, job timing, page and bulk limits.

Every number the three docs state is a default here; every number they leave out is a
setting with a plausible production value, so tests can shrink windows and timings.

Choices made where the docs are silent
--------------------------------------
- Default credentials are fixed, recognisable sandbox values (never real secrets):
  the MsgFlash key is ``msgf_live_`` + sha256("contactpipe-sandbox") (64 lowercase hex, the
  documented shape); the WAAPI token, phone id and the Vobiz ``MA_SANDBOX0`` / token / JWT
  are likewise derived from fixed strings.  :func:`SandboxSettings.from_env` replaces them
  with the six variables the importer reads when they are set.
- ``MSGFLASH_API_KEY`` starting with ``msgf_team_`` is taken as the team key; when
  ``MSGFLASH_TEAM_ID`` is set the team credentials are enabled (with a default team key if
  the env only holds a personal key, so a personal key + ``X-Team-Id`` is answered 403
  ``TEAM_KEY_REQUIRED`` exactly as in production).
- MsgFlash jobs: pending for ``msgflash_job_pending_s`` (1 s) then processed at
  ``msgflash_job_items_per_s`` (500 items/s), so a 10,000-id job takes ~21 s like a real
  queue would; tests shrink both.
- Vobiz rate limit (undocumented): 100 requests per second per credential.
- Page maxima: MsgFlash 100 (documented), WAAPI contacts 100 (documented), WAAPI groups 100,
  Vobiz 100 (both undocumented).
- Vobiz CSV import: at most 50,000 data rows and 10 MiB per file.
- WAAPI group add/remove: at most 50,000 ``contact_ids`` per call (same as bulk).
- MsgFlash: at most 100 contact groups per account (plan limit, undocumented value).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from contactpipe.errors import UsageError

WAAPI_READ = "read_contacts"
WAAPI_WRITE = "write_contacts"
VOBIZ_READ = "read"
VOBIZ_WRITE = "write"

MSGFLASH_KEY_RE = re.compile(r"^msgf_live_[0-9a-f]{64}$")
MSGFLASH_TEAM_KEY_RE = re.compile(r"^msgf_team_[0-9A-Za-z_-]{16,128}$")


class SettingsError(UsageError, ValueError):
    """A sandbox setting (or the env var it came from) is unusable; the message names the
    setting, never its value.  A UsageError so the CLI prints it cleanly (exit 2)."""


def _hex(seed: str, n: int = 64) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sandbox_jwt(auth_id: str) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": auth_id, "iss": "contactpipe-sandbox", "scope": "messaging"}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = _b64url(hmac.new(b"contactpipe-sandbox", signing_input, "sha256").digest())
    return f"{header}.{payload}.{signature}"


DEFAULT_MSGFLASH_API_KEY = "msgf_live_" + _hex("contactpipe-sandbox")
DEFAULT_MSGFLASH_TEAM_KEY = "msgf_team_" + _hex("contactpipe-sandbox-team")
DEFAULT_MSGFLASH_TEAM_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "contactpipe-sandbox-team"))
DEFAULT_WAAPI_TOKEN = "waapi_sandbox_" + _hex("contactpipe-sandbox-waapi", 40)
DEFAULT_WAAPI_PHONE_ID = "100000000000001"
DEFAULT_VOBIZ_AUTH_ID = "MA_SANDBOX0"
DEFAULT_VOBIZ_AUTH_TOKEN = "vobiz_sandbox_" + _hex("contactpipe-sandbox-vobiz", 40)
DEFAULT_VOBIZ_BEARER = _sandbox_jwt(DEFAULT_VOBIZ_AUTH_ID)

ENV_VARS = (
    "MSGFLASH_API_KEY",
    "MSGFLASH_TEAM_ID",
    "WAAPI_TOKEN",
    "WAAPI_PHONE_ID",
    "VOBIZ_AUTH_ID",
    "VOBIZ_AUTH_TOKEN",
)


def encode_phone_id(phone_id: str) -> str:
    """Return the ``encodedPhoneId`` path segment WAAPI expects (standard base64)."""
    return base64.b64encode(phone_id.encode()).decode()


@dataclass
class SandboxSettings:
    """Everything the sandbox can be told; defaults follow the docs (see module docstring)."""

    # MsgFlash credentials
    msgflash_api_key: str = DEFAULT_MSGFLASH_API_KEY
    msgflash_team_key: str | None = None
    msgflash_team_id: str | None = None
    # WAAPI credentials: ``waapi_token`` holds both permissions; extra tokens map to a set of
    # permissions among ``read_contacts`` / ``write_contacts``.
    waapi_token: str = DEFAULT_WAAPI_TOKEN
    waapi_extra_tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    waapi_phone_id: str = DEFAULT_WAAPI_PHONE_ID
    # Vobiz credentials: ``X-Auth-ID`` + ``X-Auth-Token`` or ``Authorization: Bearer <jwt>``;
    # extra tokens (usable as X-Auth-Token or Bearer) map to permissions among read / write.
    vobiz_auth_id: str = DEFAULT_VOBIZ_AUTH_ID
    vobiz_auth_token: str = DEFAULT_VOBIZ_AUTH_TOKEN
    vobiz_bearer_token: str = DEFAULT_VOBIZ_BEARER
    vobiz_extra_tokens: dict[str, frozenset[str]] = field(default_factory=dict)

    # Rate limits (None disables a limiter)
    msgflash_rate_limit: int | None = 10
    msgflash_rate_window_s: float = 1.0
    msgflash_monthly_quota: int | None = None
    waapi_rate_limit: int | None = 100
    waapi_rate_window_s: float = 900.0
    vobiz_rate_limit: int | None = 100
    vobiz_rate_window_s: float = 1.0

    # Added delay per request, per API
    msgflash_latency_ms: float = 0.0
    waapi_latency_ms: float = 0.0
    vobiz_latency_ms: float = 0.0

    # MsgFlash bulk behaviour
    msgflash_async_threshold: int = 100
    msgflash_job_pending_s: float = 1.0
    msgflash_job_items_per_s: float = 500.0
    msgflash_bulk_delete_max: int = 10_000
    msgflash_members_max: int = 10_000
    msgflash_max_groups: int = 100
    msgflash_duplicate_phone: Literal["conflict", "allow"] = "conflict"
    msgflash_page_default: int = 50
    msgflash_page_max: int = 100
    msgflash_jobs_page_default: int = 20
    msgflash_jobs_page_max: int = 100

    # WAAPI limits
    waapi_page_default: int = 20
    waapi_page_max: int = 100
    waapi_groups_page_max: int = 100
    waapi_bulk_max: int = 50_000
    waapi_group_ids_max: int = 50_000
    waapi_notes_max: int = 2000
    waapi_custom_fields: frozenset[str] | None = None

    # Vobiz limits
    vobiz_page_default: int = 25
    vobiz_page_max: int = 100
    vobiz_import_max_rows: int = 50_000
    vobiz_import_max_bytes: int = 10 * 1024 * 1024

    # Request journal
    journal_max_entries: int = 100_000
    # Check every request strictly against its contract (bulk entries too) and note in the
    # journal how it fails; the test suites turn it on to hold the client to the contract.
    contract_audit: bool = False

    def __post_init__(self) -> None:
        # Messages name the setting, never the value: these are credentials.
        if not MSGFLASH_KEY_RE.match(self.msgflash_api_key):
            raise SettingsError(
                "msgflash_api_key must be 'msgf_live_' + 64 lowercase hex characters"
            )
        if self.msgflash_team_key is not None and not MSGFLASH_TEAM_KEY_RE.match(
            self.msgflash_team_key
        ):
            raise SettingsError("msgflash_team_key must look like 'msgf_team_...'")
        if (self.msgflash_team_key is None) != (self.msgflash_team_id is None):
            raise SettingsError("msgflash_team_key and msgflash_team_id go together")
        if self.msgflash_duplicate_phone not in ("conflict", "allow"):
            raise SettingsError("msgflash_duplicate_phone must be 'conflict' or 'allow'")
        for name in ("waapi_token", "waapi_phone_id", "vobiz_auth_id", "vobiz_auth_token"):
            if not getattr(self, name):
                raise SettingsError(f"{name} must not be empty")
        for token, perms in self.waapi_extra_tokens.items():
            if not token or not set(perms) <= {WAAPI_READ, WAAPI_WRITE}:
                raise SettingsError(
                    "waapi_extra_tokens: permissions are read_contacts/write_contacts"
                )
        for token, perms in self.vobiz_extra_tokens.items():
            if not token or not set(perms) <= {VOBIZ_READ, VOBIZ_WRITE}:
                raise SettingsError("vobiz_extra_tokens: permissions are read/write")

    @property
    def waapi_encoded_phone_id(self) -> str:
        """The base64 ``encodedPhoneId`` that WAAPI paths carry."""
        return encode_phone_id(self.waapi_phone_id)

    @property
    def msgflash_team_enabled(self) -> bool:
        return self.msgflash_team_key is not None and self.msgflash_team_id is not None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> SandboxSettings:
        """Settings whose credentials come from the importer's six env vars when set."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        key = env.get("MSGFLASH_API_KEY", "").strip()
        team_id = env.get("MSGFLASH_TEAM_ID", "").strip()
        if key and not (MSGFLASH_KEY_RE.match(key) or MSGFLASH_TEAM_KEY_RE.match(key)):
            raise SettingsError(
                "MSGFLASH_API_KEY must be 'msgf_live_' + 64 lowercase hex characters "
                "(or a 'msgf_team_...' key); unset it to use the sandbox default"
            )
        if key.startswith("msgf_team_"):
            values["msgflash_team_key"] = key
            values["msgflash_team_id"] = team_id or DEFAULT_MSGFLASH_TEAM_ID
        else:
            if key:
                values["msgflash_api_key"] = key
            if team_id:
                values["msgflash_team_key"] = DEFAULT_MSGFLASH_TEAM_KEY
                values["msgflash_team_id"] = team_id
        for var, attr in (
            ("WAAPI_TOKEN", "waapi_token"),
            ("WAAPI_PHONE_ID", "waapi_phone_id"),
            ("VOBIZ_AUTH_ID", "vobiz_auth_id"),
            ("VOBIZ_AUTH_TOKEN", "vobiz_auth_token"),
        ):
            value = env.get(var, "").strip()
            if value:
                values[attr] = value
        if "vobiz_auth_id" in values:
            values["vobiz_bearer_token"] = _sandbox_jwt(str(values["vobiz_auth_id"]))
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
