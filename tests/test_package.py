"""Package-level behaviour: the allocator setting made before polars loads."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import os, pipeline, polars; print(os.environ['_RJEM_MALLOC_CONF'])"


def run_probe(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_freed_memory_is_returned_unless_the_user_configured_jemalloc() -> None:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    # polars appends our value to its own defaults: the later keys win in jemalloc
    assert run_probe(env).endswith("background_thread:true,dirty_decay_ms:0,muzzy_decay_ms:0")
    mine = run_probe({**env, "_RJEM_MALLOC_CONF": "narenas:1"})
    assert mine.endswith("narenas:1") and "muzzy_decay_ms:0" not in mine
