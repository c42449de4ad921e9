"""The targets by name: what each API is (title, capabilities, credential variables, base URL
rules) without importing it, and its :class:`~contactpipe.load.base.Target` class on demand.

A target is one package under ``pipeline/load/targets/`` whose ``__init__`` defines ``INFO``
(a :class:`TargetInfo`, cheap to import: no polars, no httpx) and whose ``INFO.module`` holds
the class.  The packages are found on disk, so adding a target touches no list anywhere; a
target living elsewhere (a plugin, a test) is added with :func:`register`.  The CLI, the demo,
``migrate`` and the tests read names and capabilities here, and nothing outside a target's
package names a target.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contactpipe.errors import UsageError

if TYPE_CHECKING:
    from .base import Target

CAPABILITIES = frozenset(
    {
        "bulk_upsert",  # one request upserts many contacts by phone
        "csv_import",  # contacts go up as CSV files
        "groups",  # contact groups: import --group, export --with-groups, groups commands
        "custom_fields",  # custom fields are carried on import
        "async_jobs",  # bulk writes may answer with a job to poll
        "export",
        "delete",
    }
)


@dataclass(frozen=True)
class TargetInfo:
    """One API as the rest of the tool sees it."""

    name: str
    """The ``--target`` value."""
    title: str
    """How messages name it (``MsgFlash``)."""
    module: str
    """The module whose ``TARGET`` is the :class:`~contactpipe.load.base.Target` subclass."""
    credentials: tuple[str, ...]
    """Variables that must be set (their values are secrets or identifiers)."""
    base_url_var: str
    """The variable giving the base URL (``--base-url`` wins)."""
    default_base_url: str | None = None
    """The public host, when the API has one (else the variable is required)."""
    optional: tuple[str, ...] = ()
    """Variables read when set (``MSGFLASH_TEAM_ID``)."""
    capabilities: frozenset[str] = field(default_factory=frozenset)
    export_filters: frozenset[str] = frozenset({"search"})
    """Which of ``search``, ``tag``, ``group``, ``opt_out`` the export offers (the others are
    refused before any request)."""
    credentials_note: str = ""
    """One line for ``--help`` when a variable needs explaining."""
    secret: str | None = None
    """The credential variable that holds the key or token (a connection's password: a
    scheduler masks it); the others name the account and are not secret."""
    account: str | None = None
    """The variable naming the account / phone / team the credentials write to (a
    connection's login)."""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    """How a form labels each variable (``{"WAAPI_PHONE_ID": "Phone number id"}``)."""

    def __post_init__(self) -> None:
        unknown = self.capabilities - CAPABILITIES
        if unknown:
            raise ValueError(f"{self.name}: unknown capabilities {sorted(unknown)}")
        known = {*self.credentials, *self.optional}
        stray = {v for v in (self.secret, self.account) if v} | set(self.labels)
        stray -= {*known, self.base_url_var}
        if stray:
            raise ValueError(f"{self.name}: {sorted(stray)} are not among its variables")

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


_PACKAGE = "contactpipe.load.targets"
_extra: dict[str, tuple[TargetInfo, type[Target] | None]] = {}


@functools.cache
def _builtin_names() -> tuple[str, ...]:
    from . import targets

    return tuple(
        sorted(
            m.name for m in pkgutil.iter_modules(targets.__path__) if m.ispkg and m.name[0] != "_"
        )
    )


def names() -> tuple[str, ...]:
    """Every target name: the packages of ``pipeline/load/targets``, then registered ones."""
    return (*_builtin_names(), *sorted(set(_extra) - set(_builtin_names())))


def info(name: str) -> TargetInfo:
    """The :class:`TargetInfo` of ``name``; UsageError listing the names when unknown."""
    if name in _extra:
        return _extra[name][0]
    if name not in _builtin_names():
        raise UsageError(f"unknown target {name!r}", hint=f"choose one of {', '.join(names())}")
    found: TargetInfo = importlib.import_module(f"{_PACKAGE}.{name}").INFO
    return found


def infos() -> list[TargetInfo]:
    return [info(n) for n in names()]


def get(name: str) -> type[Target]:
    """The target class called ``name`` (its module imported on first use)."""
    if name in _extra and _extra[name][1] is not None:
        cls = _extra[name][1]
        assert cls is not None
        return cls
    meta = info(name)
    found: type[Target] = importlib.import_module(meta.module).TARGET
    return found


def with_capability(capability: str) -> tuple[str, ...]:
    """The names of the targets that have ``capability``."""
    return tuple(i.name for i in infos() if i.can(capability))


def titles(capability: str | None = None, *, export_filter: str | None = None) -> str:
    """``MsgFlash, WAAPI``: the titles of the targets with ``capability`` (or offering
    ``export_filter``), for help texts."""
    return ", ".join(
        i.title
        for i in infos()
        if (capability is None or i.can(capability))
        and (export_filter is None or export_filter in i.export_filters)
    )


def register(meta: TargetInfo, cls: type[Target] | None = None) -> None:
    """Add a target that lives outside ``pipeline/load/targets`` (``cls``, or ``meta.module``
    imported on first use).  A built-in name cannot be replaced."""
    if meta.name in _builtin_names():
        raise ValueError(f"{meta.name!r} is a built-in target")
    _extra[meta.name] = (meta, cls)


def unregister(name: str) -> None:
    _extra.pop(name, None)
