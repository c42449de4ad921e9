"""What every export shares: refusing, before any request, a filter the API does not offer
(what the registry says it offers is what ``--help`` says too), and keeping each contact once
when a listing shifts under the walk."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from contactpipe.errors import UsageError

from ..base import ExportFilters
from ..registry import TargetInfo

OPTIONS = {
    "search": "--search (name or phone)",
    "tag": "--tag",
    "group": "--group",
    "opt_out": "--opt-out",
}


def check_filters(filters: ExportFilters, with_groups: bool, info: TargetInfo) -> None:
    """UsageError for a filter (or ``--with-groups``) that ``info``'s API cannot apply."""
    if not info.can("groups"):
        for flag, given in (("--group", filters.group is not None), ("--with-groups", with_groups)):
            if given:
                raise UsageError(f"{flag}: {info.title} has no contact groups")
    missing = [
        OPTIONS[key].split(" ")[0]
        for key in OPTIONS
        if getattr(filters, key) is not None and key not in info.export_filters
    ]
    if missing:
        offered = [OPTIONS[key] for key in OPTIONS if key in info.export_filters]
        raise UsageError(
            f"{info.title} cannot filter an export by {' or '.join(missing)}: its API offers "
            f"{' and '.join(offered)}",
            hint="drop the option and filter the exported file instead",
        )


def fresh(items: Iterable[Any], key: Callable[[Any], str], seen: set[str]) -> Iterator[Any]:
    """The items whose key was not met before (page/limit listings shift while contacts are
    created: an item can come again on the next page); an item without a key is kept."""
    for item in items:
        k = key(item)
        if k and k in seen:
            continue
        if k:
            seen.add(k)
        yield item
