"""contactpipe: batch ETL of contact lists between spreadsheets and WhatsApp contact APIs.

Data flows one way: ``extract -> transform -> load -> report``, driven by a thin CLI
(:mod:`contactpipe.cli`) and orchestrated by :mod:`contactpipe.run`.  The Python API
(:mod:`contactpipe.api`, names listed in ``__all__``) is a typed facade over the same run.
"""

import importlib
import os
from typing import TYPE_CHECKING, Any

# Polars allocates with jemalloc, whose defaults (dirty pages kept 0.5 s, "muzzy" pages 1 s)
# let the RSS of a run that builds and drops large frames stage after stage ratchet up to its
# high-water mark (1M rows read whole: 1.0-1.4 GB instead of 0.75-0.92 GB).  Freed pages go
# back to the OS after 100 ms, from jemalloc's background thread: immediately (0 ms) cost a
# 1M-row batched validate 3.3 s of system time against 1.3 s, and 1 s kept ~30 MiB more
# (benchmarks/README.md, issue 16).  Polars appends this variable to its own jemalloc
# settings when it is imported; a value the user already set wins.  It only takes effect when
# polars is imported after this package.
os.environ.setdefault(
    "_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0"
)

__version__ = "0.1.0"

# The public API (``import contactpipe``), httpx style: re-exported from the modules that
# define it, sorted.  Imported on first use (PEP 562), so that ``import contactpipe`` (the CLI's
# start, ``--help``) stays free of polars and httpx; type checkers see the imports below.
if TYPE_CHECKING:
    from contactpipe.api import (
        Credentials,
        Deferral,
        ExportResult,
        LoadFigures,
        MigrateFigures,
        ReportFiles,
        Result,
        change_group,
        delete_contacts,
        export_contacts,
        import_contacts,
        migrate,
        validate,
    )
    from contactpipe.errors import (
        Deferred,
        IncompleteLoadError,
        InputError,
        Interrupted,
        PipelineError,
        RemoteError,
        TerminalRemoteError,
        ThresholdError,
        TransientRemoteError,
        UsageError,
    )
    from contactpipe.extract.limits import Limits
    from contactpipe.load.base import ExportFilters, LoadOptions, PlanLine
    from contactpipe.load.client import RetryPolicy
    from contactpipe.report.progress import LogProgress, NullProgress, Progress
    from contactpipe.run import RunOptions
    from contactpipe.signals import sigterm_as_interrupt

_EXPORTS = {
    "contactpipe.api": (
        "Credentials",
        "Deferral",
        "ExportResult",
        "LoadFigures",
        "MigrateFigures",
        "ReportFiles",
        "Result",
        "change_group",
        "delete_contacts",
        "export_contacts",
        "import_contacts",
        "migrate",
        "validate",
    ),
    "contactpipe.errors": (
        "Deferred",
        "IncompleteLoadError",
        "InputError",
        "Interrupted",
        "PipelineError",
        "RemoteError",
        "TerminalRemoteError",
        "ThresholdError",
        "TransientRemoteError",
        "UsageError",
    ),
    "contactpipe.extract.limits": ("Limits",),
    "contactpipe.load.base": ("ExportFilters", "LoadOptions", "PlanLine"),
    "contactpipe.load.client": ("RetryPolicy",),
    "contactpipe.report.progress": ("LogProgress", "NullProgress", "Progress"),
    "contactpipe.run": ("RunOptions",),
    "contactpipe.signals": ("sigterm_as_interrupt",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "Credentials",
    "Deferral",
    "Deferred",
    "ExportFilters",
    "ExportResult",
    "IncompleteLoadError",
    "InputError",
    "Interrupted",
    "Limits",
    "LoadFigures",
    "LoadOptions",
    "LogProgress",
    "MigrateFigures",
    "NullProgress",
    "PipelineError",
    "PlanLine",
    "Progress",
    "RemoteError",
    "ReportFiles",
    "Result",
    "RetryPolicy",
    "RunOptions",
    "TerminalRemoteError",
    "ThresholdError",
    "TransientRemoteError",
    "UsageError",
    "__version__",
    "change_group",
    "delete_contacts",
    "export_contacts",
    "import_contacts",
    "migrate",
    "sigterm_as_interrupt",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
