"""The start-up patterns: what a CLI run's imports compiled is primed into ``re``'s cache by the
next run, exactly as ``re`` compiles it, and never a pattern built from an input file."""

from __future__ import annotations

import json
import marshal
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jinja2._identifier
import pytest
from filemakers import make_xlsx
from hostile import prefix_workbook

from contactpipe import recache as rc

# Primes (as the `contactpipe` command does), checks every primed pattern against a fresh
# compile by re's own compiler, runs the CLI and prints what happened on stderr.
RUN = textwrap.dedent(
    """
    import json, re, sys
    from re import _compiler
    from contactpipe import recache
    before = dict(re._cache)
    primed = recache.prime()
    added = [(k, v) for k, v in re._cache.items() if k not in before]
    exact = all(v == _compiler.compile(k[1], k[2]) for k, v in added)
    stored = recache._startup[1] if recache._startup else {}
    already = sum((type(p), p, f) in before for p, f in stored)  # compiled by site, before
    from contactpipe.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as stop:
        code = stop.code
    out = {"primed": primed, "already": already, "exact": exact, "code": code}
    print(json.dumps(out), file=sys.stderr)
    """
)


def _cli(folder: Path, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        env={**os.environ, rc.ENV: str(folder)},
        capture_output=True,
        text=True,
        check=False,
    )
    out: dict[str, object] = json.loads(done.stderr.strip().splitlines()[-1])
    return out


def _startup_file(folder: Path) -> Path:
    (found,) = folder.glob("startup-*.bin")
    return found


def test_a_second_run_primes_what_the_first_compiled(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("name,phone\nAwa,+33612345678\n", encoding="utf-8")
    folder = tmp_path / "cache"
    args = ("validate", str(src), "--region", "FR", "--report-dir", str(tmp_path / "r"))
    first = _cli(folder, *args)
    stored = rc.read_entries(_startup_file(folder))
    second = _cli(folder, *args)
    assert first["primed"] == 0 and first["code"] == 0
    assert len(stored) > 50  # phonenumbers, click, jinja2, contactpipe's own modules
    assert second["primed"] + second["already"] == len(stored)  # type: ignore[operator]
    assert second["exact"] is True and second["code"] == 0
    assert ("(?:\\D+)", 0) in stored  # phonenumbers' NON_DIGITS_PATTERN, module level
    assert (jinja2._identifier.pattern.pattern, 0) in stored  # report.html's jinja2
    assert _startup_file(folder).stat().st_mode & 0o777 == 0o600


def test_patterns_built_from_an_input_are_never_stored(tmp_path: Path) -> None:
    """A phone column's name (``Zyxwv``, found by its content: run.py then looks for
    ``Zyxwv_\\d+`` columns) and a workbook's namespace prefix become regular expressions
    during the run: after the imports, so never in the file, which holds only what modules
    compile."""
    csv = tmp_path / "cols.csv"
    csv.write_text("name,Zyxwv,other\nAwa,+33612345678,x\nBob,+33612345679,y\n", encoding="utf-8")
    plain = make_xlsx(tmp_path / "plain.xlsx", {"S": [["name", "phone"], ["a", "+33612345678"]]})
    book = prefix_workbook(plain, tmp_path / "prefixed.xlsx", "qwzk")
    folder = tmp_path / "cache"
    for path in (csv, book, csv):
        done = _cli(folder, "validate", str(path), "--region", "FR", "--report-dir",
                    str(tmp_path / "r"))  # fmt: skip
        assert done["code"] in (0, 2)
    stored = rc.read_entries(_startup_file(folder))
    text = repr(list(stored))
    assert "Zyxwv" not in text and "qwzk" not in text


def test_a_command_without_report_html_stores_no_jinja2(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("name,phone\nAwa,+33612345678\n", encoding="utf-8")
    folder = tmp_path / "cache"
    done = _cli(folder, "validate", str(src), "--region", "FR", "--no-html", "--report-dir",
                str(tmp_path / "r"))  # fmt: skip
    assert done["code"] == 0
    stored = rc.read_entries(_startup_file(folder))
    assert len(stored) > 30 and (jinja2._identifier.pattern.pattern, 0) not in stored


def _file(tmp_path: Path, entries: dict[object, object]) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    path = folder / "startup.bin"
    payload = marshal.dumps(entries)
    path.write_bytes(rc._MAGIC + rc._digest(payload) + b"\n" + payload)
    path.chmod(0o600)
    return path


def _prime_from(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[object, object]]:
    """prime() over ``path`` with a copy of re's cache (this process's stays as it was)."""
    cache: dict[object, object] = {}
    monkeypatch.setattr(re, "_cache", cache)
    monkeypatch.setattr(rc, "cache_file", lambda name, *extra: path)
    monkeypatch.setattr(rc, "_startup", None)
    return rc.prime(), cache


def test_prime_builds_each_entry_as_re_compiles_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patterns = [(r"(?P<x>\d+)-(\w+)", 0), ("abc", int(re.I)), (rb"[\x00-\x7f]+", 0), ("é+", 256)]
    path = _file(tmp_path, {(p, f): marshal.dumps(rc.entry_for(p, f)) for p, f in patterns})
    n, cache = _prime_from(path, monkeypatch)
    assert n == len(patterns)
    for p, f in patterns:
        assert cache[type(p), p, f] == re._compiler.compile(p, f)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param({"no-tuple": b""}, id="key-not-a-pair"),
        pytest.param({("a", "0"): marshal.dumps(rc.entry_for("a"))}, id="flags-not-int"),
        pytest.param({("a", 0): b"\x00garbage"}, id="entry-not-marshal"),
        pytest.param({(1, 0): marshal.dumps(rc.entry_for("a"))}, id="pattern-not-text"),
        pytest.param(
            {("a", 0): marshal.dumps((0, b"\xff\xff\x00\x00" * 4, 0, {}, ()))}, id="bad-code"
        ),
    ],
)
def test_prime_skips_what_is_not_an_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: dict[object, object]
) -> None:
    n, cache = _prime_from(_file(tmp_path, entries), monkeypatch)
    assert n == 0 and cache == {}


def test_prime_leaves_room_in_res_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = {(f"a{i}", 0): marshal.dumps(rc.entry_for(f"a{i}")) for i in range(600)}
    n, cache = _prime_from(_file(tmp_path, many), monkeypatch)
    assert n == len(cache) == re._MAXCACHE  # type: ignore[attr-defined]


def test_a_damaged_startup_file_primes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, {("a", 0): marshal.dumps(rc.entry_for("a"))})
    path.write_bytes(path.read_bytes()[:-3])
    assert _prime_from(path, monkeypatch)[0] == 0


def test_remember_stores_only_what_re_itself_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache" / "startup.bin"
    good = re._compiler.compile(r"x(\d)", 0)  # type: ignore[attr-defined]
    forged = re._compiler.compile(r"y", 0)  # type: ignore[attr-defined]
    cache = {(str, r"x(\d)", 0): good, (str, r"z", 0): forged}  # "z" mapped to y's code
    monkeypatch.setattr(re, "_cache", cache)
    monkeypatch.setattr(rc, "_startup", (path, {}))
    assert rc.remember() == 1
    assert set(rc.read_entries(path)) == {(r"x(\d)", 0)}
    assert rc.remember() == 0  # known now: nothing written again


def test_the_startup_file_keeps_at_most_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache" / "startup.bin"
    rc.add_entries(path, {(f"old{i}", 0): b"" for i in range(5)})
    monkeypatch.setattr(rc, "STARTUP_MAX", 6)
    monkeypatch.setattr(re, "_cache", {(str, "old0", 0): re.compile("old0"), (str, "n1", 0):
                        re.compile("n1"), (str, "n2", 0): re.compile("n2")})  # fmt: skip
    monkeypatch.setattr(rc, "_startup", (path, rc.read_entries(path)))
    assert rc.remember() == 2  # 7 > 6: the old ones this run did not use go
    assert set(rc.read_entries(path)) == {("old0", 0), ("n1", 0), ("n2", 0)}


def test_the_command_is_the_module(tmp_path: Path) -> None:
    """``contactpipe`` and ``python -m contactpipe`` run the same CLI (after priming)."""
    done = subprocess.run(
        [sys.executable, "-m", "contactpipe", "--version"],
        env={**os.environ, rc.ENV: str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "contactpipe" in done.stdout


def test_no_home_folder_means_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduler's container may run as a uid without a passwd entry and no ``$HOME``:
    ``Path.home()`` raises, and the cache is simply off (the run must not fail for it)."""

    def nowhere() -> Path:
        raise RuntimeError("Could not determine home directory.")

    for var in ("HOME", "XDG_CACHE_HOME", rc.ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(Path, "home", nowhere)
    assert rc.cache_file("startup") is None
    monkeypatch.setattr(rc, "_startup", None)
    assert rc.prime() == 0 and rc.remember() == 0
