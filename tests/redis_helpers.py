"""A real Redis server for tests (Debian's ``redis-server``, `make redis`): the ``redis_url``
fixture in conftest.py, and :func:`redis_server` for a test that needs its own (to stop it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS_PASSWORD = "rl-test-s3cret-pw"
"""The test Redis server's password: tests check that it never shows in output or reports."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    """The redis-server binary; missing: the test skips, or fails in CI (CI=true)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).is_file():
        reason = "redis-server is not installed (`make redis` installs the Debian package)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@contextmanager
def redis_server(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server on a free port of 127.0.0.1 with :data:`REDIS_PASSWORD`, no persistence,
    its files in ``folder``: (its ``redis://`` URL, its process), stopped on the way out."""
    binary = redis_binary()
    for _attempt in range(5):  # a free port may be taken between the probe and the bind
        port = _free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass"]
        args += [REDIS_PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(folder)]
        log = (folder / f"redis-{port}.log").open("wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.02)
        if proc.poll() is None:
            break
        log.close()
    else:
        pytest.fail(f"redis-server did not start: {(folder / f'redis-{port}.log').read_text()}")
    try:
        yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0", proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
