"""Fixtures for the load tests: one sandbox server on 127.0.0.1 per module, reset per test.

A test may change ``server.settings`` (turn a rate limit on, add latency): the next test gets
the fast settings back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from load_helpers import fast_settings

from pipeline.sandbox import SandboxServer


@pytest.fixture(scope="module")
def _server() -> Iterator[SandboxServer]:
    with SandboxServer(fast_settings()) as server:
        yield server


@pytest.fixture
def server(_server: SandboxServer) -> SandboxServer:
    """A running sandbox with no data, no faults, an empty journal and no rate limits."""
    fresh = fast_settings()
    for f in dataclasses.fields(fresh):
        setattr(_server.settings, f.name, getattr(fresh, f.name))
    _server.app.reset()
    return _server
