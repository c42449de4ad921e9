"""Progress display behind a silent-aware wrapper: library code never prints.

:class:`NullProgress` does nothing (the default for library calls and tests);
:class:`TerminalProgress` shows a spinner per stage on a terminal; :class:`LogProgress` writes
one plain log line per finished stage when stderr is not a terminal (cron, Airflow).
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

log = logging.getLogger("contactpipe")


class Progress(Protocol):
    """What the pipeline tells its observer."""

    def stage(self, name: str, detail: str = "") -> Stage:
        """Start a stage; use the result as a context manager."""
        ...


class Stage:
    """A running stage: ``note()`` updates its detail line, ``done`` is set on exit."""

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        self.detail = detail
        self.started = time.perf_counter()
        self.seconds = 0.0

    def note(self, detail: str) -> None:
        """Replace the stage's detail text (e.g. '1,000,000 rows')."""
        self.detail = detail

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


class NullProgress:
    """Shows nothing."""

    def stage(self, name: str, detail: str = "") -> Stage:
        return Stage(name, detail)


class LogProgress:
    """One log line per finished stage (for schedulers and pipes)."""

    def stage(self, name: str, detail: str = "") -> Stage:
        return _LoggedStage(name, detail)


class _LoggedStage(Stage):
    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if exc[0] is None:
            log.info("%s: %s (%.2f s)", self.name, self.detail, self.seconds)


class TerminalProgress:
    """A rich spinner per stage, replaced by a check line when the stage ends."""

    def __init__(self, console: object) -> None:
        self.console = console

    def stage(self, name: str, detail: str = "") -> Stage:
        return _TerminalStage(self.console, name, detail)


class _TerminalStage(Stage):
    def __init__(self, console: object, name: str, detail: str) -> None:
        super().__init__(name, detail)
        self.console = console
        self._status = None

    def __enter__(self) -> Stage:
        self._status = self.console.status(f"[bold]{self.name}[/] {self.detail}")  # type: ignore[attr-defined]
        self._status.__enter__()
        return super().__enter__()

    def note(self, detail: str) -> None:
        super().note(detail)
        if self._status is not None:
            self._status.update(f"[bold]{self.name}[/] {detail}")

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self._status is not None:
            self._status.__exit__(None, None, None)
        if exc[0] is None:
            self.console.print(  # type: ignore[attr-defined]
                f"[green]✓[/] [bold]{self.name:<10}[/] {self.detail}  [dim]{self.seconds:.2f} s[/]"
            )
