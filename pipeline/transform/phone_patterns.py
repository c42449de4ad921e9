"""phonenumbers' compiled metadata patterns, kept on disk between runs.

phonenumbers decides a number with regular expressions from its metadata, each compiled by
``re`` the first time a process needs it: about 120 us a pattern, 1,091 patterns for a list
spanning 240 countries (0.13 s of its 0.24 s).  What ``re`` compiles a pattern to (the
arguments of ``_sre.compile``: flags, code, groups) depends only on the pattern and the
Python build, so it can be stored: a later run rebuilds the pattern with ``_sre.compile``
from the stored code in about 1.5 us, the same object ``re.compile`` returns (patterns with
equal code compare equal, and a test compares every pattern of the metadata).

The cache file:

- lives in ``CONTACTPIPE_PATTERN_CACHE`` when set (``none`` switches the cache off), else in
  the per-user cache directory: ``$XDG_CACHE_HOME/contactpipe/patterns`` (default
  ``~/.cache/...``; macOS ``~/Library/Caches/...``; Windows ``%LOCALAPPDATA%\\contactpipe\\
  cache\\patterns``), created ``0700``;
- is named by a key of phonenumbers' version, the Python build and ``_sre``'s magic number
  and code size, so an upgrade of either starts a new file;
- is only read when it and its folder belong to this user and nobody else may write them,
  when it is at most 32 MiB and when its CRC-32 matches its header; anything else (a
  truncated, corrupt, foreign or unreadable file) is ignored.  Each pattern's entry is decoded
  and checked only when a run needs that pattern (a run of one number reads a file of 2,800
  patterns in well under a millisecond), and ``_sre.compile`` itself checks the code it is
  given: an entry that fails is compiled by ``re`` instead and replaced;
- is written whole (temporary file, then rename) after a batch of numbers compiled patterns
  it did not hold, merged with what another process may have written meanwhile.  A write
  that fails (read-only home, full disk) leaves the run as it was: the cache only saves time.

Installed by :func:`install`: the only change to phonenumbers is its pattern cache (its own
``enable_pattern_cache``) and the ``re`` that its ``re_compile`` calls on a miss.
"""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]  # CPython's regex engine, no stub
import contextlib
import logging
import marshal
import os
import re
import stat
import sys
import threading
import zlib
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV = "CONTACTPIPE_PATTERN_CACHE"
OFF = "none"
MAX_BYTES = 32 * 1024 * 1024
_MAGIC = b"contactpipe-patterns 1\n"
_CODE = next((t for t in "HILQ" if array(t).itemsize == _sre.CODESIZE), "")
"""The array type code of one word of ``_sre`` code ("" if none fits: no disk cache)."""

# (flags, code as machine words, groups, groupindex, indexgroup): _sre.compile's arguments
Entry = tuple[int, bytes, int, dict[str, int], tuple[str | None, ...]]


def default_directory(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user folder of the cache (not created here)."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    home = Path(env.get("HOME") or Path.home())
    if platform.startswith("win"):
        return Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local") / (
            "contactpipe/cache/patterns"
        )
    if platform == "darwin":
        return home / "Library" / "Caches" / "contactpipe" / "patterns"
    return Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "contactpipe" / "patterns"


def cache_directory(env: Mapping[str, str] | None = None) -> Path | None:
    """``CONTACTPIPE_PATTERN_CACHE`` (None when it says ``none``), else the default folder."""
    env = os.environ if env is None else env
    value = env.get(ENV, "").strip()
    if value.lower() == OFF:
        return None
    return Path(value).expanduser() if value else default_directory(env)


def cache_key() -> str:
    """What the compiled form depends on, and phonenumbers' version (its patterns)."""
    import hashlib

    import phonenumbers

    parts = (
        phonenumbers.__version__,
        sys.version,
        sys.implementation.cache_tag or "",
        _sre.MAGIC,
        _sre.CODESIZE,
        sys.byteorder,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def entry_for(pattern: str) -> Entry:
    """What ``re.compile(pattern)`` passes to ``_sre.compile`` (Python 3.11-3.13's
    ``re._compiler.compile`` with flags 0), the code packed as machine words."""
    from re import _compiler, _parser  # type: ignore[attr-defined]

    p = _parser.parse(pattern, 0)
    code = _compiler._code(p, 0)
    groupindex = dict(p.state.groupdict)
    indexgroup: list[str | None] = [None] * p.state.groups
    for name, i in groupindex.items():
        indexgroup[i] = name
    return (
        p.state.flags,
        array(_CODE, code).tobytes(),
        p.state.groups - 1,
        groupindex,
        tuple(indexgroup),
    )


def build(pattern: str, entry: Entry) -> re.Pattern[str]:
    """The pattern ``entry`` describes (``_sre.compile`` checks the code; raises on a bad one)."""
    flags, code, groups, groupindex, indexgroup = entry
    words = array(_CODE)
    words.frombytes(code)
    compiled: re.Pattern[str] = _sre.compile(
        pattern, flags, words.tolist(), groups, groupindex, indexgroup
    )
    return compiled


def _valid(pattern: object, entry: object) -> bool:
    if type(pattern) is not str or type(entry) is not tuple or len(entry) != 5:
        return False
    flags, code, groups, groupindex, indexgroup = entry
    return (
        type(flags) is int
        and type(code) is bytes
        and len(code) % _sre.CODESIZE == 0
        and type(groups) is int
        and type(groupindex) is dict
        and type(indexgroup) is tuple
    )


def _trusted(st: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else (POSIX; elsewhere the folder's ACLs)."""
    if not hasattr(os, "getuid"):
        return True
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read_entries(path: Path) -> dict[str, bytes]:
    """The entries of the cache file ``path``, each still marshalled (:func:`decode`); empty
    when it is missing or not to be trusted."""
    try:
        if not _trusted(os.stat(path.parent)):
            return {}
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or not _trusted(st) or st.st_size > MAX_BYTES:
                return {}
            data = f.read(st.st_size + 1)  # not a buffer of MAX_BYTES: 0.3 ms
    except OSError:
        return {}
    if len(data) > MAX_BYTES or not data.startswith(_MAGIC):  # grew while read
        return {}
    end = data.find(b"\n", len(_MAGIC))
    payload = memoryview(data)[end + 1 :]  # no copy of the payload (0.5 ms)
    if end < 0 or data[len(_MAGIC) : end] != _digest(payload):
        return {}
    try:
        loaded = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return {}
    return loaded if type(loaded) is dict else {}


def decode(pattern: str, raw: object) -> Entry | None:
    """The entry ``raw`` holds for ``pattern``; None when it is not one."""
    if type(pattern) is not str or type(raw) is not bytes:
        return None
    try:
        entry = marshal.loads(raw)
    except (ValueError, EOFError, TypeError):
        return None
    return entry if _valid(pattern, entry) else None


def _digest(payload: bytes | memoryview) -> bytes:
    return b"%08x" % zlib.crc32(payload)


def write_entries(path: Path, entries: Mapping[str, bytes]) -> None:
    """Replace the cache file ``path`` with ``entries`` (each marshalled, as
    :func:`read_entries` gives them; raises OSError)."""
    import tempfile  # only when writing: ~2 ms of imports a run need not pay

    payload = marshal.dumps(dict(entries))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".patterns-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + _digest(payload) + b"\n" + payload)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Held while a process merges and writes the file, so two never drop each other's new
    patterns (POSIX ``flock``, released by the kernel if the process dies; elsewhere none)."""
    try:
        import fcntl
    except ImportError:  # Windows: the last writer wins, the next run adds what it lost
        yield
        return
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class PatternStore:
    """The stored patterns of one cache file, and those this process compiled since.

    ``path`` None: the file that ``CONTACTPIPE_PATTERN_CACHE`` names, found on first use."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._stored: dict[str, bytes] | None = None
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

    def _entries(self) -> dict[str, bytes]:
        if self._stored is None:
            if self._path is None and _CODE:
                directory = cache_directory()
                if directory is not None:
                    self._path = directory / f"patterns-{cache_key()}.bin"
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
            except (RuntimeError, TypeError, ValueError, OverflowError):
                pass  # a stored form _sre refuses: compile it afresh (and store that)
            else:
                self.hits += 1
                return compiled
        self.misses += 1
        if self._exact is None:  # once, in a process that compiles: the file is named by the
            self._exact = _works()  # Python build, so what one build wrote it can read back
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
        path = self._path
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _trusted(os.stat(path.parent)):
                raise PermissionError(f"{path.parent} may be written by other users")
            with _locked(path.parent):
                merged = read_entries(path)
                merged.update(self._entries())
                merged.update(new)
                write_entries(path, merged)
            self._stored = merged
        except OSError as exc:
            log.debug("pattern cache not written (%s): %s", path, exc)
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


def _works() -> bool:
    """Whether this Python's ``re`` compiles the way :func:`entry_for` assumes."""
    sample = r"(?:(\d{2})[- ]?)?(\d{3,4})|[+\uff0b]?(?:1(?:0[0-4]|[1-9]\d)\d)"
    try:
        return bool(_CODE) and build(sample, entry_for(sample)) == re.compile(sample)
    except Exception:  # a Python whose private compiler moved: phonenumbers compiles itself
        return False


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
