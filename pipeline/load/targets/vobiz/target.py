"""The Vobiz target: import, export and delete put together."""

from __future__ import annotations

from .core import NO_GROUPS
from .exporter import VobizExporter, export_contact
from .importer import VobizImporter
from .manage import VobizManager


class Vobiz(VobizImporter, VobizExporter, VobizManager):
    """Vobiz (see ``docs/targets/vobiz.md``)."""


TARGET = Vobiz
__all__ = ["NO_GROUPS", "TARGET", "Vobiz", "export_contact"]
