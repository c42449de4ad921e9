"""Compile contactpipe's bytecode before a benchmark measures whole processes.

An installed wheel has its ``.pyc`` files (pip compiles them at install time).  An editable
install run with ``PYTHONDONTWRITEBYTECODE=1`` (set on the development machines) has none
unless something writes them, so every ``contactpipe`` process compiled all its modules
again: about 80 ms of a 0.35 s one-row validate (issue 16).  Stale files are harmless: Python
checks each one against its source and recompiles, in memory, the ones that changed.
"""

from __future__ import annotations

import compileall
from pathlib import Path

import contactpipe


def compile_package() -> None:
    """Write the ``__pycache__`` of every module of the contactpipe package being measured."""
    compileall.compile_dir(Path(contactpipe.__file__).parent, quiet=1)
