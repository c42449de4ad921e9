"""``make demo`` / ``contactpipe demo``: a real import of ``sample_data/`` into each of the three
APIs, served by the built-in sandbox on a free port of 127.0.0.1 for the length of the demo.

Nothing here is special-cased: each import goes through :func:`contactpipe.run.import_files` over
real HTTP, with the sandbox's documented rate limits, exactly as ``contactpipe import`` would
with the sandbox's credentials in the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contactpipe.load import registry
from contactpipe.load.base import LoadOptions
from contactpipe.report.progress import NullProgress, Progress
from contactpipe.run import ImportOptions, RunOptions, RunResult, import_files
from contactpipe.sandbox import SandboxServer, SandboxSettings, describe


def sandbox_targets(server: SandboxServer) -> list[str]:
    """The registered targets this sandbox serves."""
    return [name for name in registry.names() if name in server.base_urls]


def sandbox_env(server: SandboxServer) -> dict[str, str]:
    """The variables a user would export to import into this sandbox: the credentials the
    sandbox describes, and each served target's base URL variable."""
    env: dict[str, str] = {}
    served = set(sandbox_targets(server))
    for api in describe(server.settings, server.url):
        if api["api"] in served:
            env.update(api["env"])
            env[registry.info(api["api"]).base_url_var] = api["base_url"]
    return env


def run_demo(
    inputs: Sequence[str],
    options: RunOptions,
    report_root: Path,
    *,
    groups: tuple[str, ...] = ("contactpipe demo",),
    progress: Progress | None = None,
    on_result: Callable[[str, RunResult], Any] | None = None,
) -> dict[str, RunResult]:
    """Import ``inputs`` into each API of a fresh sandbox; one report per target under
    ``report_root/<target>``.  ``on_result`` is called after each import (to print it)."""
    results: dict[str, RunResult] = {}
    settings = SandboxSettings(msgflash_job_pending_s=0.2, msgflash_job_items_per_s=5_000)
    with SandboxServer(settings) as server:
        env = sandbox_env(server)
        for name in sandbox_targets(server):
            opts = RunOptions(**{**options.__dict__, "extra_groups": groups})
            imp = ImportOptions(target=name, load=LoadOptions(poll_interval_s=0.5), env=env)
            result = import_files(inputs, opts, imp, report_root / name, progress or NullProgress())
            results[name] = result
            if on_result is not None:
                on_result(name, result)
    return results
