"""Compiled regular expressions kept on disk between runs.

A one-row ``contactpipe validate`` compiled about 110 regular expressions with ``re`` before
doing any work, 19 ms of its 0.32 s: the module-level patterns of phonenumbers (7 ms), click,
jinja2, the standard library and contactpipe itself.  A list spread over many countries also
compiles phonenumbers' metadata patterns, 1,091 of them for 240 countries
(:mod:`contactpipe.transform.phone_patterns`).  What ``re`` compiles a pattern to (the
arguments it passes to ``_sre.compile``: flags, code, groups) depends only on the pattern,
its flags and the Python build, so a later run can rebuild the same pattern object from the
stored code with ``_sre.compile`` in about 1.5 us instead of 120 us.  Patterns whose code is
equal compare equal, and every stored entry was compared with ``re``'s own result before it
was written.

The files:

- live in ``CONTACTPIPE_PATTERN_CACHE`` when set (``none`` switches the cache off), else in
  the per-user cache folder: ``$XDG_CACHE_HOME/contactpipe/patterns`` (default
  ``~/.cache/...``; macOS ``~/Library/Caches/...``; Windows ``%LOCALAPPDATA%\\contactpipe\\
  cache\\patterns``), created ``0700``;
- are named by a key of the Python build and ``_sre``'s magic number and code size (and
  phonenumbers' version for its patterns): another Python, or an upgrade, starts new files;
- are read only when they and their folder belong to this user and nobody else may write
  them, when they are at most 32 MiB and when their CRC-32 matches their header; anything else
  (a truncated, corrupt, foreign or unreadable file) is ignored.  Each entry is decoded and
  checked when it is used, and ``_sre.compile`` checks the code it is given: an entry that
  fails is compiled by ``re`` instead;
- are written whole (a temporary file, then a rename) under a lock, merged with what another
  process wrote meanwhile.  A write that fails (read-only home, full disk) changes nothing
  else: the cache only saves time.

The start-up patterns (:func:`prime`, :func:`remember`) are only those compiled while the CLI
imports its modules, never one built from a file's content, and only the CLI uses them: it
fills ``re``'s own cache before its imports, as if an earlier import had compiled them.
Library users of ``import contactpipe`` keep their ``re`` untouched.  CPython 3.11-3.13's
``re`` internals are used; on any other ``re`` the cache switches itself off.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import re
import stat
import sys
import zlib
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

try:
    import _sre  # type: ignore[import-not-found]  # CPython's regex engine, no stub
except ImportError:  # another Python: no disk cache
    _sre = None

ENV = "CONTACTPIPE_PATTERN_CACHE"
OFF = "none"
MAX_BYTES = 32 * 1024 * 1024
STARTUP_MAX = 2_000
"""Start-up patterns the file keeps at most (each CLI command imports its own modules; a
library upgrade leaves the old ones behind): above it, only the last run's are kept."""
_MAGIC = b"contactpipe-patterns 1\n"
_CODE = next((t for t in "HILQ" if _sre and array(t).itemsize == _sre.CODESIZE), "")
"""The array type code of one word of ``_sre`` code ("" if none fits: no disk cache)."""
BUILD_ERRORS = (RuntimeError, TypeError, ValueError, OverflowError)
"""What :func:`build` raises for an entry ``_sre.compile`` refuses (its code checker)."""

# (flags, code as machine words, groups, groupindex, indexgroup): _sre.compile's arguments
Entry = tuple[int, bytes, int, dict[str, int], tuple[str | None, ...]]
Pattern = str | bytes


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


def cache_key(*extra: str) -> str:
    """What the compiled form depends on (the Python build), and ``extra``."""
    parts = (sys.version, sys.implementation.cache_tag or "", _sre.MAGIC, _sre.CODESIZE)
    text = repr((*parts, sys.byteorder, *extra)).encode()
    return f"{zlib.crc32(text):08x}{zlib.crc32(text[::-1]):08x}"  # no hashlib: 1-2 ms


def cache_file(name: str, *extra: str) -> Path | None:
    """``<folder>/<name>-<key>.bin``; None when the cache is off or cannot work here (no
    ``_sre``, or no home folder to put it in: a uid without a passwd entry and no ``$HOME``)."""
    try:
        directory = cache_directory() if _CODE else None
    except (RuntimeError, KeyError, OSError):  # Path.home(): "Could not determine home"
        return None
    return directory / f"{name}-{cache_key(*extra)}.bin" if directory is not None else None


def entry_for(pattern: Pattern, flags: int = 0) -> Entry:
    """What ``re.compile(pattern, flags)`` passes to ``_sre.compile`` (CPython 3.11-3.13's
    ``re._compiler.compile``), the code packed as machine words."""
    from re import _compiler, _parser  # type: ignore[attr-defined]

    flags = int(flags)  # a RegexFlag is not marshallable
    p = _parser.parse(pattern, flags)
    code = _compiler._code(p, flags)
    groupindex = dict(p.state.groupdict)
    indexgroup: list[str | None] = [None] * p.state.groups
    for name, i in groupindex.items():
        indexgroup[i] = name
    words = array(_CODE, code).tobytes()
    return flags | p.state.flags, words, p.state.groups - 1, groupindex, tuple(indexgroup)


def build(pattern: Pattern, entry: Entry) -> re.Pattern[Any]:
    """The pattern ``entry`` describes (``_sre.compile`` checks the code; raises on a bad one)."""
    flags, code, groups, groupindex, indexgroup = entry
    words = array(_CODE)
    words.frombytes(code)
    compiled: re.Pattern[Any] = _sre.compile(
        pattern, flags, words.tolist(), groups, groupindex, indexgroup
    )
    return compiled


def _valid(pattern: object, entry: object) -> bool:
    if type(pattern) not in (str, bytes) or type(entry) is not tuple or len(entry) != 5:
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


def decode(pattern: object, raw: object) -> Entry | None:
    """The entry ``raw`` (as :func:`read_entries` gives it) holds for ``pattern``; None when
    it is not one."""
    if type(raw) is not bytes:
        return None
    try:
        entry = marshal.loads(raw)
    except (ValueError, EOFError, TypeError):
        return None
    return entry if _valid(pattern, entry) else None


def works() -> bool:
    """Whether this Python's ``re`` compiles the way :func:`entry_for` assumes."""
    sample = r"(?:(\d{2})[- ]?)?(?P<n>\d{3,4})|[+\uff0b]?(?:1(?:0[0-4]|[1-9]\d)\d)"
    try:
        return bool(_CODE) and build(sample, entry_for(sample)) == re.compile(sample)
    except Exception:  # a Python whose private compiler moved: no disk cache
        return False


def _trusted(st: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else (POSIX; elsewhere the folder's ACLs)."""
    if not hasattr(os, "getuid"):
        return True
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read_entries(path: Path) -> dict[Any, bytes]:
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


def _digest(payload: bytes | memoryview) -> bytes:
    return b"%08x" % zlib.crc32(payload)


def write_entries(path: Path, entries: Mapping[Any, bytes]) -> None:
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
    """Held while a process merges and writes a file, so two never drop each other's new
    entries (POSIX ``flock``, released by the kernel if the process dies; elsewhere none)."""
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


def add_entries(
    path: Path,
    new: Mapping[Any, bytes],
    cap: int | None = None,
    keep: set[Any] | frozenset[Any] = frozenset(),
) -> dict[Any, bytes]:
    """Merge ``new`` into the file ``path`` (created with its folder, ``0700``) and return
    what it now holds; a file that would grow above ``cap`` entries keeps only ``new`` and the
    entries whose keys are in ``keep``.  Raises OSError, also when the folder may be written
    by other users."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _trusted(os.stat(path.parent)):
        raise PermissionError(f"{path.parent} may be written by other users")
    with _locked(path.parent):
        merged = read_entries(path)
        merged.update(new)
        if cap is not None and len(merged) > cap:
            merged = {k: v for k, v in merged.items() if k in keep or k in new}
        write_entries(path, merged)
    return merged


# --- start-up patterns ----------------------------------------------------------------------

_startup: tuple[Path, dict[Any, bytes]] | None = None


def _re_caches() -> list[dict[Any, Any]]:
    """``re``'s caches (3.11: ``_cache``; 3.12+: also ``_cache2``), keyed
    ``(type(pattern), pattern, flags)``; empty when ``re`` is not the one this assumes."""
    caches = [getattr(re, "_cache", None), getattr(re, "_cache2", {})]
    if not all(type(c) is dict for c in caches):
        return []
    return caches  # type: ignore[return-value]


def prime() -> int:
    """Put the patterns earlier runs compiled while importing into ``re``'s cache, so that
    the imports of this one find them there; returns how many (0 when the cache is off).
    Never raises: a cache must not stop a run."""
    try:
        return _prime()
    except Exception:  # whatever a damaged file or another Python does: as if no cache
        return 0


def remember() -> int:
    """Store the patterns ``re`` compiled in this process that the start-up file lacks (the
    CLI calls it once its imports are done); returns how many.  Each is compiled again from
    its text and stored only if the result equals what ``re`` made of it.  Never raises."""
    try:
        return _remember()
    except Exception:
        return 0


def _prime() -> int:
    global _startup
    caches = _re_caches()
    path = cache_file("startup") if caches else None
    if path is None:
        return 0
    entries = read_entries(path)
    _startup = (path, entries)
    cache, room = caches[0], getattr(re, "_MAXCACHE", 512) - len(caches[0])
    primed = 0
    for key, raw in entries.items():
        if primed >= room:
            break
        if type(key) is not tuple or len(key) != 2 or type(key[1]) is not int:
            continue
        pattern, flags = key
        entry = decode(pattern, raw)
        if entry is None or (type(pattern), pattern, flags) in cache:
            continue
        try:
            cache[type(pattern), pattern, flags] = build(pattern, entry)
        except BUILD_ERRORS:
            continue
        primed += 1
    return primed


def _remember() -> int:
    global _startup
    if _startup is None:
        return 0
    path, known = _startup
    new: dict[Any, bytes] = {}
    in_use = set()
    for cache in _re_caches():
        for (_, pattern, flags), compiled in list(cache.items()):
            in_use.add((pattern, flags))
            if (pattern, flags) in known or (pattern, flags) in new:
                continue
            try:
                entry = entry_for(pattern, flags)
                if build(pattern, entry) != compiled:  # never store a pattern re would not make
                    continue
            except Exception:  # a pattern this cannot rebuild is left to re
                continue
            new[pattern, flags] = marshal.dumps(entry)
    if not new:
        return 0
    try:
        merged = add_entries(path, new, cap=STARTUP_MAX, keep=in_use)
    except OSError:
        return 0
    _startup = (path, merged)
    return len(new)
