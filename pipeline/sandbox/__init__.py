"""Local, faithful servers of the MsgFlash, WAAPI and Vobiz contact APIs.

``contactpipe sandbox`` serves them on one port; tests and ``make demo`` use them in process
(``httpx.ASGITransport(app=build_app())``) or on a free port (``SandboxServer``).  Each API's
module docstring lists what its docs say and every choice made where they are silent:
:mod:`.msgflash`, :mod:`.msgflash_store`, :mod:`.waapi`, :mod:`.waapi_store`, :mod:`.vobiz`,
:mod:`.settings`, :mod:`.common`, :mod:`.faults`, :mod:`.journal`, :mod:`.app`.

Every request is first held to its API's OpenAPI document (``schemas/apis/<api>.yaml``) by
:mod:`.contract`, and refused in the API's own envelope when it steps outside it.

This package never imports :mod:`contactpipe.load`: it must not share the client's assumptions.
It imports :mod:`contactpipe.errors` only so a bad setting is a ``UsageError`` (clean CLI exit).
"""

from .app import Sandbox, SandboxState, build_app
from .common import Clock, ManualClock
from .faults import Fault, FaultSwitch
from .journal import Journal, JournalEntry
from .server import SandboxServer, base_urls, describe, run_forever
from .settings import SandboxSettings, SettingsError, encode_phone_id

__all__ = [
    "Clock",
    "Fault",
    "FaultSwitch",
    "Journal",
    "JournalEntry",
    "ManualClock",
    "Sandbox",
    "SandboxServer",
    "SandboxSettings",
    "SandboxState",
    "SettingsError",
    "base_urls",
    "build_app",
    "describe",
    "encode_phone_id",
    "run_forever",
]
