"""One exception root for the whole pipeline; the retry decision lives in the type.

    PipelineError                 root: everything contactpipe raises on purpose
    ├── InputError                the user's file or options cannot be used (exit 2)
    │   └── UsageError            an option or argument is wrong (exit 2)
    ├── ThresholdError            the run completed but rejected too many rows (exit 3)
    └── RemoteError               a remote API refused or failed
        ├── TransientRemoteError  worth retrying: 429, 5xx, timeouts, dropped connections
        └── TerminalRemoteError   retrying cannot help: bad credentials, quota (exit 4)

Row-level problems are not exceptions: they are data (codes and messages on the frame)
and end up in the per-row report.  Messages name files, sheets, rows and columns,
never credentials.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_THRESHOLD = 3
EXIT_REMOTE = 4
EXIT_INCOMPLETE = 5
"""The run ended, but rows did not reach the API for a system reason (a batch failed after
every retry, rows not sent, a group not applied): re-running the same command finishes it."""
INCOMPLETE_CODES = ("LOAD_FAILED", "NOT_SENT", "GROUP_NOT_ADDED")


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
