"""A paginator per pagination style, each with a loop guard.

- :func:`cursor_pages`: ``cursor`` in, ``nextCursor`` out (MsgFlash).  A cursor the API has
  given before would read the same pages forever: the listing stops with a
  :class:`~contactpipe.errors.TerminalRemoteError` instead (singer-sdk's paginators raise on a
  token identical to the previous one; this remembers every token of the listing).
- :func:`numbered_pages`: ``page=N&limit=L`` (WAAPI, Vobiz), ending as the latest answer says
  (:func:`more_pages`).  A page holding exactly the items of the page before (a server that
  ignores ``page``) stops the listing the same way.

Both take a ``fetch`` callable making the request, so that the envelope, the error handling
and the endpoint name stay with the target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from contactpipe.errors import TerminalRemoteError

Page = tuple[list[dict[str, Any]], Mapping[str, Any]]
"""The items of one page and what the answer says about the listing (totals, cursor)."""


def _loop(what: str, detail: str) -> TerminalRemoteError:
    return TerminalRemoteError(
        f"{what}: the API {detail}; stopped rather than read the same pages forever"
    )


def cursor_pages(
    fetch: Callable[[str | None], Page],
    next_cursor: Callable[[Mapping[str, Any]], str | None],
    what: str,
) -> Iterator[Page]:
    """Pages from ``fetch(None)``, then ``fetch(cursor)`` while ``next_cursor(meta)`` gives
    one (None or ``""``: the last page)."""
    seen: set[str] = set()
    cursor: str | None = None
    while True:
        items, meta = fetch(cursor)
        yield items, meta
        cursor = next_cursor(meta)
        if not cursor:
            return
        if cursor in seen:
            raise _loop(what, f"gave cursor {cursor[:40]!r} a second time")
        seen.add(cursor)


def more_pages(page: int, size: int, n_items: int, meta: Mapping[str, Any]) -> bool:
    """Whether page ``page`` (of ``size`` asked, ``n_items`` received) has a next one: the
    answer's ``has_more`` when it says, else ``totalPages``, else ``total``, else a full page
    means maybe.  An empty page is the last whatever the answer says."""
    if n_items == 0:
        return False
    more = meta.get("has_more", meta.get("hasMore"))
    if isinstance(more, bool):
        return more
    pages = meta.get("totalPages")
    if isinstance(pages, int) and not isinstance(pages, bool):
        return page < pages
    total = meta.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        return page * size < total
    return n_items >= size


def numbered_pages(
    fetch: Callable[[int], Page],
    more: Callable[[int, Page], bool],
    key: Callable[[dict[str, Any]], str],
    what: str,
) -> Iterator[Page]:
    """Pages 1, 2, ... of ``fetch(page)`` while ``more(page, answer)``; ``key`` names an item
    (its id) for the loop guard."""
    page = 1
    previous: list[str] | None = None
    while True:
        answer = fetch(page)
        keys = [key(x) for x in answer[0]]
        if keys and keys == previous:
            raise _loop(what, f"answered page {page} with the items of page {page - 1}")
        yield answer
        if not more(page, answer):
            return
        previous = keys
        page += 1
