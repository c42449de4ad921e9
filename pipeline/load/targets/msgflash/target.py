"""The MsgFlash target: import, export, delete and groups put together."""

from __future__ import annotations

from .exporter import MsgFlashExporter
from .importer import MsgFlashImporter
from .manage import MsgFlashManager


class MsgFlash(MsgFlashImporter, MsgFlashExporter, MsgFlashManager):
    """MsgFlash (see ``docs/targets/msgflash.md``)."""


TARGET = MsgFlash
__all__ = ["TARGET", "MsgFlash"]
