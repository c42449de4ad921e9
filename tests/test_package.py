"""Package-level behaviour: the allocator setting made before polars loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = "import os, contactpipe, polars; print(os.environ['_RJEM_MALLOC_CONF'])"


def run_probe(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_freed_memory_is_returned_unless_the_user_configured_jemalloc() -> None:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    # polars appends our value to its own defaults: the later keys win in jemalloc
    assert run_probe(env).endswith("background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0")
    mine = run_probe({**env, "_RJEM_MALLOC_CONF": "narenas:1"})
    assert mine.endswith("narenas:1") and "muzzy_decay_ms:0" not in mine


def _imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                pkg = str(path).split("pipeline/", 1)[1].rsplit("/", 1)[0].split("/")
                base = pkg[: len(pkg) - node.level + 1]
                out.add(
                    ".".join(["contactpipe", *base, *(node.module or "").split(".")]).strip(".")
                )
            else:
                out.add(node.module or "")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_data_flows_one_way_between_the_stages() -> None:
    """transform never imports load or cli; load never imports cli or sandbox; the sandbox
    never imports load (it must not share the client's assumptions)."""
    root = Path(__file__).resolve().parents[1] / "pipeline"
    forbidden = {
        "transform": ("contactpipe.load", "contactpipe.cli", "contactpipe.run"),
        "load": ("contactpipe.cli", "contactpipe.sandbox", "contactpipe.run"),
        "sandbox": ("contactpipe.load", "contactpipe.cli", "contactpipe.run"),
        "extract": (
            "contactpipe.load",
            "contactpipe.cli",
            "contactpipe.run",
            "contactpipe.transform",
        ),
    }
    checked = 0
    for stage, banned in forbidden.items():
        for path in (root / stage).rglob("*.py"):
            checked += 1
            for name in _imports(path):
                assert not name.startswith(banned), f"{path.relative_to(root)} imports {name}"
    assert checked > 20
