"""phonenumbers' compiled metadata patterns, kept on disk between runs.

phonenumbers decides a number with regular expressions from its metadata, each compiled by
``re`` the first time a process needs it: about 120 us a pattern, 1,091 patterns for a list
spanning 240 countries (0.13 s of its 0.24 s).  The compiled code is kept in a file of
:mod:`contactpipe.recache` (``patterns-<key>.bin``, keyed by the Python build and
phonenumbers' version), from which a later run rebuilds a pattern in about 1.5 us: the same
object ``re.compile`` returns (a test compares every pattern of the metadata).

The file is read when the process first needs a pattern; each entry is decoded only when its
pattern is needed (reading a file of 1,091 patterns takes 0.4 ms), and the patterns a batch
of numbers compiled that the file lacked are added after the batch, by whichever process
(pool workers too) compiled them.

Installed by :func:`install`: the only change to phonenumbers is its pattern cache (its own
``enable_pattern_cache``) and the ``re`` that its ``re_compile`` calls on a miss.
"""

from __future__ import annotations

import logging
import marshal
import re
import threading
from pathlib import Path
from typing import Any

from contactpipe.recache import (
    BUILD_ERRORS,
    add_entries,
    build,
    cache_file,
    decode,
    entry_for,
    read_entries,
    works,
)

log = logging.getLogger(__name__)


class PatternStore:
    """The stored patterns of one cache file, and those this process compiled since.

    ``path`` None: the file that ``CONTACTPIPE_PATTERN_CACHE`` names, found on first use."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._stored: dict[Any, bytes] | None = None
        self._new: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._writable = True
        self._exact: bool | None = None
        self.hits = 0
        self.misses = 0

    @property
    def path(self) -> Path | None:
        """The cache file; None when the cache is off or this Python cannot use it."""
        if self._stored is None:
            self._entries()
        return self._path

    def _entries(self) -> dict[Any, bytes]:
        if self._stored is None:
            if self._path is None:
                import phonenumbers

                self._path = cache_file("patterns", phonenumbers.__version__)
            self._stored = read_entries(self._path) if self._path is not None else {}
        return self._stored

    def compile(self, pattern: str) -> re.Pattern[str]:
        """``re.compile(pattern)``, from the stored code when the file holds it."""
        entries = self._entries()
        if self._path is None:
            return re.compile(pattern)
        raw = entries.get(pattern)
        entry = decode(pattern, raw) if raw is not None else None
        if entry is not None:
            try:
                compiled = build(pattern, entry)
            except BUILD_ERRORS:
                pass  # a stored form _sre refuses: compile it afresh (and store that)
            else:
                self.hits += 1
                return compiled
        self.misses += 1
        if self._exact is None:  # once, in a process that compiles: the file is named by the
            self._exact = works()  # Python build, so what one build wrote it can read back
        if not self._exact:
            return re.compile(pattern)
        entry = entry_for(pattern)
        compiled = build(pattern, entry)
        with self._lock:
            self._new[pattern] = marshal.dumps(entry)
        return compiled

    def save(self) -> None:
        """Write what this process compiled since the last save, if anything; never raises
        for the file system (the cache only saves time)."""
        with self._lock:
            if not self._new or self._path is None or not self._writable:
                return
            new, self._new = self._new, {}
        try:
            self._stored = add_entries(self._path, new)
        except OSError as exc:
            log.debug("pattern cache not written (%s): %s", self._path, exc)
            self._writable = False  # not again in this process


class _CachingRe:
    """Stands in for the ``re`` module inside ``phonenumbers.re_util``, whose only use of it
    is ``re.compile(regex)`` in ``re_compile`` when its own cache misses."""

    def __init__(self, store: PatternStore) -> None:
        self.store = store

    def compile(self, pattern: Any, flags: int = 0) -> re.Pattern[Any]:
        if flags == 0 and type(pattern) is str:
            return self.store.compile(pattern)
        return re.compile(pattern, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)


_store: PatternStore | None = None


def install() -> PatternStore:
    """Keep phonenumbers' compiled patterns in memory (its ``enable_pattern_cache``) and,
    where this Python allows and ``CONTACTPIPE_PATTERN_CACHE`` does not say ``none``, on disk
    between runs (the folder is looked up on the first pattern).  Idempotent."""
    global _store
    import phonenumbers
    from phonenumbers import re_util

    if hasattr(phonenumbers, "enable_pattern_cache"):
        phonenumbers.enable_pattern_cache()
    if _store is None:
        _store = PatternStore()
        if getattr(re_util, "re", None) is re:
            re_util.re = _CachingRe(_store)  # type: ignore[attr-defined]
    return _store


def save() -> None:
    """Write the patterns compiled since the last save (see :meth:`PatternStore.save`)."""
    if _store is not None:
        _store.save()
