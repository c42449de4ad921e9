"""One exception root for the whole pipeline; the retry decision lives in the type.

    PipelineError                 root: everything contactpipe raises on purpose
    ├── InputError                the user's file or options cannot be used (exit 2)
    │   └── UsageError            an option or argument is wrong (exit 2)
    ├── ThresholdError            the run completed but rejected too many rows (exit 3)
    ├── RemoteError               a remote API refused or failed (exit 4)
    │   ├── TransientRemoteError  worth retrying: 429, 5xx, timeouts, dropped connections
    │   └── TerminalRemoteError   retrying cannot help: bad credentials, quota
    ├── IncompleteLoadError       rows did not reach the API for a system reason (exit 5)
    ├── Deferred                  the load stopped before a long wait, to resume later (exit 75)
    └── Interrupted               Ctrl-C (exit 130) or SIGTERM (exit 143) stopped a load

The last five are also what a finished run's outcome raises: the CLI exits with their
``exit_code`` and ``Result.raise_for_outcome()`` of the Python API raises them.

Row-level problems are not exceptions: they are data (codes and messages on the frame)
and end up in the per-row report.  Messages name files, sheets, rows and columns,
never credentials.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_THRESHOLD = 3
EXIT_REMOTE = 4
EXIT_INCOMPLETE = 5
"""The run ended, but rows did not reach the API for a system reason (a batch failed after
every retry, rows not sent, a group not applied): re-running the same command finishes it."""
INCOMPLETE_CODES = ("LOAD_FAILED", "NOT_SENT", "GROUP_NOT_ADDED", "OUTCOME_UNKNOWN")


def incomplete_rows(by_code: Mapping[str, int]) -> int:
    """Rows that did not reach the API for a system reason (:data:`INCOMPLETE_CODES`), from a
    summary's ``by_code``: re-running the same command finishes them (exit 5)."""
    return sum(by_code.get(code, 0) for code in INCOMPLETE_CODES)


EXIT_DEFERRED = 75
"""EX_TEMPFAIL: not done yet.  The load stopped before a wait longer than ``--defer-after``
(a rate-limit window, a server pause, a bulk job still running), every sent row settled and
the sync state checkpointed; ``--resume`` after ``resume_at`` continues it."""

EXIT_SIGINT = 130  # 128 + SIGINT: Ctrl-C
EXIT_SIGTERM = 143  # 128 + SIGTERM: timeout, systemd, Kubernetes, Airflow


class PipelineError(Exception):
    """Root of every error contactpipe raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class InputError(PipelineError):
    """A file or option that cannot be used: corrupt, empty, unreadable, no phone column."""

    exit_code = EXIT_INPUT


class UsageError(InputError):
    """A command-line option or argument is wrong."""


class ThresholdError(PipelineError):
    """The run completed, but the share of rejected rows is above ``--max-error-rate``."""

    exit_code = EXIT_THRESHOLD


class RemoteError(PipelineError):
    """A remote API refused or failed a request."""

    exit_code = EXIT_REMOTE


class TransientRemoteError(RemoteError):
    """Retrying may help: rate limited, server error, timeout, dropped connection."""


class TerminalRemoteError(RemoteError):
    """Retrying cannot help: authentication or permission refused, quota exhausted."""


class IncompleteLoadError(PipelineError):
    """The run ended, but ``rows`` rows did not reach the API for a system reason
    (``INCOMPLETE_CODES``); re-running the same command finishes them."""

    exit_code = EXIT_INCOMPLETE

    def __init__(self, message: str, *, rows: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rows = rows


class Interrupted(PipelineError):
    """The user (Ctrl-C, exit 130) or a scheduler (SIGTERM, exit 143) stopped the run during
    the load; the report says what was sent."""

    exit_code = EXIT_SIGINT

    def __init__(
        self, message: str, *, exit_code: int = EXIT_SIGINT, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class Deferred(PipelineError):
    """The load stopped cleanly before a wait longer than ``--defer-after``: every request
    sent was answered, the sync state holds what was confirmed, and the rows not sent yet are
    ``DEFERRED``.  ``import --resume`` (``resume=True``) at or after ``resume_at`` (UTC)
    continues it.  Exit 75 (EX_TEMPFAIL: "not done yet")."""

    exit_code = EXIT_DEFERRED

    def __init__(
        self, message: str, *, resume_at: dt.datetime, reason: str, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.resume_at = resume_at
        self.reason = reason
