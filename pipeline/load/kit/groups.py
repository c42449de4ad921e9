"""Groups by name, the same way for every API that has them: a name matches in any case,
surrounding blanks ignored (the APIs' own uniqueness rule), and a create never makes a second
group of the same name (looked up first; a 409 means someone created it meanwhile)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..client import ApiRefused

Group = dict[str, Any]


def group_key(name: str) -> str:
    return name.strip().casefold()


def named(groups: Iterable[Mapping[str, Any]], name: str) -> Group | None:
    """The first of ``groups`` whose ``name`` matches ``name``."""
    key = group_key(name)
    return next((dict(g) for g in groups if group_key(str(g.get("name") or "")) == key), None)


def create_once(
    name: str,
    find: Callable[[str], Group | None],
    post: Callable[[str], Group],
    *,
    look_first: bool = True,
) -> tuple[Group, bool]:
    """(group, created): the group named ``name`` when ``find`` has it (skipped with
    ``look_first=False`` when the caller has just listed the groups), else ``post(name)``; a
    409 answer is looked up again."""
    if look_first:
        found = find(name)
        if found is not None:
            return found, False
    try:
        return post(name), True
    except ApiRefused as exc:
        if exc.status == 409:
            found = find(name)
            if found is not None:
                return found, False
        raise
