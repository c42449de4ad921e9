"""SIGTERM handled like Ctrl-C: what ``timeout``, systemd, Kubernetes and Airflow send to stop
a run must leave the same complete report as a user's Ctrl-C.

While :func:`sigterm_as_interrupt` is active (the CLI wraps every command in it), the first
SIGTERM raises :class:`Terminated` in the main thread, a ``KeyboardInterrupt`` subclass, so
every place that settles an interrupted load (the targets, :func:`contactpipe.run._settle`)
handles both the same way: stop sending, let in-flight work settle, write the report.  Later
SIGTERMs are ignored while that happens (a scheduler's SIGKILL still ends it).  The exit code
is 143 (128 + 15), as for a process killed by SIGTERM; Ctrl-C's is 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from contactpipe.errors import EXIT_SIGINT, EXIT_SIGTERM


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""

    exit_code = EXIT_SIGTERM


def interrupt_reason(stop: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped the run, as words and as the exit code it ends with."""
    if isinstance(stop, Terminated):
        return "terminated (SIGTERM)", EXIT_SIGTERM
    return "interrupted (Ctrl-C)", EXIT_SIGINT


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn the first SIGTERM into :class:`Terminated` for the duration of the block (main
    thread only; elsewhere the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # settling: no second interruption
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
