"""Progress display behind a silent-aware wrapper: library code never prints.

:class:`NullProgress` does nothing (the default for library calls and tests);
:class:`TerminalProgress` shows a spinner per stage on a terminal; :class:`LogProgress` writes
one plain log line per finished stage when stderr is not a terminal (cron, Airflow).

Long stages (sending batches) also get a :class:`Counter` from ``progress.counter(...)``: a bar
with an ETA on a terminal, one log line per step elsewhere (``--log-format json`` turns log lines
into JSON objects for schedulers, see :class:`JsonLogFormatter`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Protocol

log = logging.getLogger("contactpipe")


class Progress(Protocol):
    """What the pipeline tells its observer."""

    def stage(self, name: str, detail: str = "") -> Stage:
        """Start a stage; use the result as a context manager."""
        ...

    def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
        """Start a counted step (e.g. rows sent); use the result as a context manager."""
        ...


class Counter:
    """A counted step: ``advance(n, note)`` after each batch; silent by default."""

    def __init__(self, name: str, total: int, unit: str = "rows") -> None:
        self.name = name
        self.total = total
        self.unit = unit
        self.done = 0
        self.started = time.perf_counter()

    def advance(self, n: int, note: str = "") -> None:
        """``n`` more units are done; ``note`` says what just happened (one batch)."""
        self.done += n

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _LoggedCounter(Counter):
    def advance(self, n: int, note: str = "") -> None:
        super().advance(n, note)
        elapsed = time.perf_counter() - self.started
        eta = ""
        if 0 < self.done < self.total:
            eta = f", ETA {elapsed / self.done * (self.total - self.done):.0f} s"
        log.info(
            "%s: %s/%s %s%s%s",
            self.name,
            f"{self.done:,}",
            f"{self.total:,}",
            self.unit,
            f" ({note})" if note else "",
            eta,
            extra={"event": "progress", "step": self.name, "done": self.done, "total": self.total},
        )


class _TerminalCounter(Counter):
    def __init__(self, console: object, name: str, total: int, unit: str) -> None:
        super().__init__(name, total, unit)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,  # type: ignore[arg-type]
            transient=True,
        )
        self._task = self._bar.add_task(name, total=total, note="")

    def __enter__(self) -> Counter:
        self._bar.start()
        return super().__enter__()

    def advance(self, n: int, note: str = "") -> None:
        super().advance(n, note)
        self._bar.update(self._task, advance=n, note=note)

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()


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

    def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
        return Counter(name, total, unit)


class LogProgress:
    """One log line per finished stage (for schedulers and pipes)."""

    def stage(self, name: str, detail: str = "") -> Stage:
        return _LoggedStage(name, detail)

    def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
        return _LoggedCounter(name, total, unit)


class _LoggedStage(Stage):
    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if exc[0] is None:
            log.info(
                "%s: %s (%.2f s)",
                self.name,
                self.detail,
                self.seconds,
                extra={"event": "stage", "step": self.name, "seconds": round(self.seconds, 3)},
            )


class TerminalProgress:
    """A rich spinner per stage, replaced by a check line when the stage ends."""

    def __init__(self, console: object) -> None:
        self.console = console

    def stage(self, name: str, detail: str = "") -> Stage:
        return _TerminalStage(self.console, name, detail)

    def counter(self, name: str, total: int, unit: str = "rows") -> Counter:
        return _TerminalCounter(self.console, name, total, unit)


class _TerminalStage(Stage):
    def __init__(self, console: object, name: str, detail: str) -> None:
        super().__init__(name, detail)
        self.console = console
        self._status: Any = None  # rich's Status while the stage runs

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


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line (``--log-format json``): time, level, message and the
    structured fields a step attached (event, step, done, total, seconds)."""

    FIELDS = ("event", "step", "done", "total", "seconds")

    def __init__(self, encoding: str | None = None) -> None:
        """``encoding``: the stream's; a line it cannot hold is written with ``\\u00e9``
        escapes (still JSON) rather than failing or being mangled."""
        super().__init__()
        self.encoding = encoding

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                doc[name] = getattr(record, name)
        return json_for(doc, self.encoding)


def json_for(doc: Any, encoding: str | None, indent: int | None = None) -> str:
    """``doc`` as JSON for a stream of ``encoding`` (None: any): its characters as they are,
    or as ``\\u00e9`` escapes when the encoding cannot hold them (still valid JSON)."""
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    if encoding is not None:
        try:
            text.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            return json.dumps(doc, indent=indent)
    return text
