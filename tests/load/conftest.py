"""Fixtures for the load tests: one sandbox server on 127.0.0.1 per module, reset per test.

A test may change ``server.settings`` (turn a rate limit on, add latency): the next test gets
the fast settings back.

The server audits every request against its API's contract (``schemas/apis``), bulk entries
included: a test fails when anything contactpipe sent is outside it, even where the sandbox
(like a lenient real server) answered.  A test that feeds the client a deliberately invalid
value (to see how a refusal is reported) says so with ``@pytest.mark.off_contract``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from load_helpers import fast_settings

from contactpipe.sandbox import SandboxServer


@pytest.fixture(scope="module")
def _server() -> Iterator[SandboxServer]:
    with SandboxServer(fast_settings()) as server:
        yield server


@pytest.fixture
def server(_server: SandboxServer, request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    """A running sandbox with no data, no faults, an empty journal and no rate limits."""
    fresh = fast_settings()
    for f in dataclasses.fields(fresh):
        setattr(_server.settings, f.name, getattr(fresh, f.name))
    _server.app.reset()
    yield _server
    if request.node.get_closest_marker("off_contract") is None:
        outside = [
            f"{e.method} {e.path}?{e.query} -> {e.status}: {'; '.join(e.violations)}"
            for e in _server.app.journal
            if e.violations
        ]
        assert not outside, "requests outside the contract:\n" + "\n".join(outside[:20])
