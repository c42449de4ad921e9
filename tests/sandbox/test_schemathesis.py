"""Property-based API tests: schemathesis generates requests from each document (valid and
invalid ones) and sends them to the sandbox in process.  No answer may be a 5xx, every
answer must be documented and conform, and a request outside the document must be refused.

Bounded for ``make test``: a few examples per operation, derandomised (the same requests on
every run), no deadline."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from sandbox_helpers import fast_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contactpipe.sandbox import build_app
from contactpipe.sandbox.contract import read_document

SETTINGS = fast_settings()
APP = build_app(SETTINGS)
HEADERS = {
    "msgflash": {"x-api-key": SETTINGS.msgflash_api_key},
    "waapi": {"Authorization": f"Bearer {SETTINGS.waapi_token}"},
    "vobiz": {"X-Auth-ID": SETTINGS.vobiz_auth_id, "X-Auth-Token": SETTINGS.vobiz_auth_token},
}
CONFORMS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 8


def _schema(api: str) -> Any:
    schema = schemathesis.openapi.from_dict(read_document(api))
    schema.app = APP
    return schema


def _call(api: str, case: Any) -> None:
    if "encodedPhoneId" in (case.path_parameters or {}):
        # one WhatsApp number exists; another id is a documented 404 and would hide the rest
        case.path_parameters["encodedPhoneId"] = SETTINGS.waapi_encoded_phone_id
    bulk = case.operation.path.endswith("/bulk")
    # WAAPI checks bulk entries one by one (x-contactpipe-item-errors): an invalid entry is
    # skipped and listed in the answer, not a refusal of the call
    checks = CONFORMS if bulk else [*CONFORMS, negative_data_rejection]
    response = case.call_and_validate(headers=HEADERS[api], checks=checks)
    if bulk and response.status_code == 200:
        data = response.json()["data"]
        sent = len(case.body["contacts"])
        assert data["created"] + data["updated"] + data["skipped"] == sent


def _test(api: str) -> Any:
    @_schema(api).parametrize()
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def test(case: Any) -> None:
        _call(api, case)

    return test


test_msgflash = pytest.mark.slow(_test("msgflash"))
test_waapi = pytest.mark.slow(_test("waapi"))
test_vobiz = pytest.mark.slow(_test("vobiz"))
