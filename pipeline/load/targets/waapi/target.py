"""The WAAPI target: import, export, delete and groups put together."""

from __future__ import annotations

from .core import encoded_phone_id
from .exporter import WaapiExporter
from .importer import WaapiImporter
from .manage import WaapiManager


class Waapi(WaapiImporter, WaapiExporter, WaapiManager):
    """WAAPI (see ``docs/targets/waapi.md``)."""


TARGET = Waapi
__all__ = ["TARGET", "Waapi", "encoded_phone_id"]
