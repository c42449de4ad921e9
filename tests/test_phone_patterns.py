"""The on-disk cache of phonenumbers' compiled patterns: exact, shared between runs, and a
file that is missing, corrupt, foreign or unwritable only costs the time it would have saved."""

from __future__ import annotations

import json
import marshal
import multiprocessing
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import phonenumbers as pn
import pytest
from phonenumbers import PhoneMetadata, re_util

from contactpipe import recache as rc
from contactpipe.transform import phone_patterns as pp

FIELDS = [
    "general_desc",
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "emergency",
    "voicemail",
    "short_code",
    "standard_rate",
    "carrier_specific",
    "sms_services",
    "no_international_dialling",
]


def _metadata_patterns() -> set[str]:
    """Every regular expression of phonenumbers' metadata (regions, non-geographic codes,
    short numbers): the strings its ``re_compile`` may be given."""
    metas = [PhoneMetadata.metadata_for_region(r) for r in pn.SUPPORTED_REGIONS]
    metas += [
        PhoneMetadata.metadata_for_nongeo_region(c) for c in pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    metas += [PhoneMetadata.short_metadata_for_region(r) for r in pn.SUPPORTED_SHORT_REGIONS]
    out = {"NonMatch"}  # the international prefix parse() tries when no region is given
    for m in metas:
        assert m is not None
        for name in FIELDS:
            desc = getattr(m, name, None)
            if desc is not None and desc.national_number_pattern:
                out.add(desc.national_number_pattern)
        for text in (m.international_prefix, m.national_prefix_for_parsing, m.leading_digits):
            if text:
                out.add(text)
        for fmt in list(m.number_format) + list(m.intl_number_format):
            out.add(fmt.pattern)
            out.update(fmt.leading_digits_pattern)
    return out


PATTERNS = sorted(_metadata_patterns())


def test_the_metadata_has_the_patterns_this_test_walks() -> None:
    assert len(PATTERNS) > 2_500
    assert any("(" in p for p in PATTERNS)  # patterns with groups (the formats)


def test_every_metadata_pattern_rebuilds_as_re_compiles_it(tmp_path: Path) -> None:
    """The stored form, through a file and back, gives the pattern ``re.compile`` gives:
    patterns compare equal only when their flags and code are the same."""
    path = tmp_path / "p.bin"
    rc.write_entries(path, {p: marshal.dumps(rc.entry_for(p)) for p in PATTERNS})
    stored = rc.read_entries(path)
    assert stored.keys() == set(PATTERNS)
    for p in PATTERNS:
        entry = rc.decode(p, stored[p])
        assert entry is not None, p
        built, want = rc.build(p, entry), re.compile(p)
        assert built == want, p
        assert (built.pattern, built.flags, built.groups, built.groupindex) == (
            want.pattern,
            want.flags,
            want.groups,
            want.groupindex,
        )


def test_named_groups_and_flags_rebuild_too() -> None:
    p = r"(?i)(?P<area>\d{3})-(?P<line>\d{4})|x(\d)"
    built, want = rc.build(p, rc.entry_for(p)), re.compile(p)
    assert built == want
    assert built.groupindex == want.groupindex
    m = built.fullmatch("555-1234")
    assert m is not None and m.lastgroup == "line" and m.group("area") == "555"


RUN = textwrap.dedent(
    """
    import json, sys
    import phonenumbers as pn
    from contactpipe.transform import phone_slow, phone_patterns
    pairs = []
    for region in sorted(pn.SUPPORTED_REGIONS):
        ex = pn.example_number(region)
        nsn = pn.national_significant_number(ex) if ex else "123"
        pairs += [(nsn, region), (nsn[:-2] or "1", region), ("+" + nsn, region)]
    out = phone_slow.resolve_many(pairs, int(sys.argv[1]))
    store = phone_patterns._store
    path = store.path
    print(json.dumps({"out": out, "hits": store.hits, "misses": store.misses,
                      "path": str(path) if path else None}))
    """
)


def _run(env_value: str | None, workers: int = 1, **extra: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != rc.ENV}
    if env_value is not None:
        env[rc.ENV] = env_value
    env.update(extra)
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(workers)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_second_run_rebuilds_what_the_first_compiled_and_answers_the_same(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "cache" / "patterns"
    first = _run(str(folder))
    second = _run(str(folder))
    off = _run("none")
    assert first["misses"] > 500 and first["hits"] == 0  # type: ignore[operator]
    assert second["hits"] == first["misses"] and second["misses"] == 0
    assert off["path"] is None and off["hits"] == off["misses"] == 0
    assert first["out"] == second["out"] == off["out"]
    assert rc.read_entries(Path(first["path"])).keys() <= set(PATTERNS)  # type: ignore[arg-type]
    files = list(folder.iterdir())
    assert [f.name for f in files if not f.name.startswith(".")] == [Path(first["path"]).name]  # type: ignore[arg-type]
    assert folder.stat().st_mode & 0o777 == 0o700
    assert Path(first["path"]).stat().st_mode & 0o777 == 0o600  # type: ignore[arg-type]


def test_pool_workers_store_what_they_compiled(tmp_path: Path) -> None:
    """Pairs of many regions are resolved in worker processes; the patterns they compiled
    reach the file (each worker writes its own, under a lock), so a run in one process later
    compiles none."""
    first = _run(str(tmp_path), workers=2)
    again = _run(str(tmp_path), workers=1)
    assert again["misses"] == 0 and again["hits"] > 500  # type: ignore[operator]
    assert first["out"] == again["out"]


def test_without_the_variable_the_cache_is_the_users(tmp_path: Path) -> None:
    done = _run(None, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert Path(done["path"]).parent == tmp_path / "xdg" / "contactpipe" / "patterns"  # type: ignore[arg-type]
    assert Path(done["path"]).is_file()  # type: ignore[arg-type]


def test_default_folders_per_platform() -> None:
    home = {"HOME": "/h"}
    assert rc.default_directory(home, "linux") == Path("/h/.cache/contactpipe/patterns")
    assert rc.default_directory({**home, "XDG_CACHE_HOME": "/x"}, "linux") == Path(
        "/x/contactpipe/patterns"
    )
    assert rc.default_directory(home, "darwin") == Path("/h/Library/Caches/contactpipe/patterns")
    assert rc.default_directory({**home, "LOCALAPPDATA": "/l"}, "win32") == Path(
        "/l/contactpipe/cache/patterns"
    )
    assert rc.cache_directory({rc.ENV: " None "}) is None
    assert rc.cache_directory({rc.ENV: "~/c"}) == Path("~/c").expanduser()


# --- files that are not to be trusted -------------------------------------------------------

SAMPLE = sorted(PATTERNS, key=len)[-40:]  # long ones, with groups and alternations


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "p.bin"
    rc.write_entries(path, {p: marshal.dumps(rc.entry_for(p)) for p in SAMPLE})
    assert rc.read_entries(path).keys() == set(SAMPLE)
    return path


def _with_payload(path: Path, payload: bytes) -> None:
    """A file with a correct header for ``payload``: only its content is wrong."""
    path.write_bytes(rc._MAGIC + rc._digest(payload) + b"\n" + payload)
    path.chmod(0o600)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:-10] + bytes([b[-10] ^ 1]) + b[-9:], id="one-bit-flipped"),
        pytest.param(lambda b: b"contactpipe-patterns 9\n" + b[23:], id="other-format"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: os.urandom(4096), id="noise"),
        pytest.param(lambda b: b.replace(b"\n", b"", 2), id="no-header"),
    ],
)
def test_a_damaged_file_is_ignored(tmp_path: Path, spoil: object) -> None:
    path = _good(tmp_path)
    path.write_bytes(spoil(path.read_bytes()))  # type: ignore[operator]
    assert rc.read_entries(path) == {}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x00garbage", id="not-marshal"),
        pytest.param(marshal.dumps([1, 2, 3]), id="a-list"),
        pytest.param(marshal.dumps(b"bytes"), id="bytes"),
    ],
)
def test_a_file_of_the_wrong_content_gives_no_entries(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "p.bin"
    _with_payload(path, payload)
    assert rc.read_entries(path) == {}


P = SAMPLE[0]
_REFUSED = (rc.entry_for(P)[0], b"\xff\xff\x00\x00" * 8, *rc.entry_for(P)[2:])
"""P's entry with code that ``_sre.compile`` refuses (its checker, not a crash)."""


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param({P: b"\x00garbage"}, id="entry-not-marshal"),
        pytest.param({P: "text"}, id="entry-not-bytes"),
        pytest.param({P: marshal.dumps([1, 2])}, id="entry-a-list"),
        pytest.param({P: marshal.dumps((0, b"abc", 0, {}, ()))}, id="odd-code-length"),
        pytest.param({P: marshal.dumps((0, [1, 2], 0, {}, ()))}, id="code-not-bytes"),
        pytest.param({P: marshal.dumps((0, b"", 0, {}))}, id="four-fields"),
        pytest.param({1: b"", P: None}, id="int-key-and-none"),
        pytest.param({P: marshal.dumps(_REFUSED)}, id="code-sre-refuses"),
    ],
)
def test_an_entry_of_the_wrong_content_is_compiled_afresh(
    tmp_path: Path, entries: dict[object, object]
) -> None:
    """Entries are decoded when a run needs them: a bad one is compiled by ``re`` instead, and
    the file is rewritten with the good entry."""
    path = tmp_path / "p.bin"
    _with_payload(path, marshal.dumps(entries))
    store = pp.PatternStore(path)
    assert store.compile(P) == re.compile(P)
    assert (store.hits, store.misses) == (0, 1)
    store.save()
    assert rc.decode(P, rc.read_entries(path)[P]) == rc.entry_for(P)


def test_too_big_a_file_is_not_read(tmp_path: Path) -> None:
    path = _good(tmp_path)
    with open(path, "r+b") as f:
        f.truncate(rc.MAX_BYTES + 1)
    assert rc.read_entries(path) == {}


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_files_others_may_write_are_not_read(tmp_path: Path) -> None:
    path = _good(tmp_path)
    path.chmod(0o620)
    assert rc.read_entries(path) == {}
    path.chmod(0o600)
    tmp_path.chmod(0o777)
    assert rc.read_entries(path) == {}
    tmp_path.chmod(0o700)
    assert rc.read_entries(path).keys() == set(SAMPLE)
    (tmp_path / "dev").symlink_to("/dev/zero")
    assert rc.read_entries(tmp_path / "dev") == {}  # not a regular file: never read forever


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="chown needs root")
def test_a_file_of_another_user_is_not_read(tmp_path: Path) -> None:
    path = _good(tmp_path)
    os.chown(path, 65534, 65534)
    assert rc.read_entries(path) == {}


def test_a_folder_others_may_write_is_neither_read_nor_written(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    store = pp.PatternStore(folder / "p.bin")
    assert store.compile(SAMPLE[0]) == re.compile(SAMPLE[0])
    store.save()  # refused, silently
    assert list(folder.iterdir()) == []


def test_an_unwritable_place_costs_nothing_but_time(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    store = pp.PatternStore(tmp_path / "file" / "sub" / "p.bin")
    for p in SAMPLE[:3]:
        assert store.compile(p) == re.compile(p)
    store.save()
    store.save()
    assert store.misses == 3


def test_saves_merge_with_what_others_wrote(tmp_path: Path) -> None:
    path = tmp_path / "p.bin"
    a, b = pp.PatternStore(path), pp.PatternStore(path)
    a.compile(SAMPLE[0])
    b.compile(SAMPLE[1])
    a.save()
    b.save()  # read before b compiled nothing from the file: merges a's entry in
    assert rc.read_entries(path).keys() == {SAMPLE[0], SAMPLE[1]}
    c = pp.PatternStore(path)
    assert c.compile(SAMPLE[0]) == re.compile(SAMPLE[0]) and c.hits == 1


def _compile_and_save(args: tuple[str, list[str]]) -> None:
    path, patterns = args
    store = pp.PatternStore(Path(path))
    for p in patterns:
        store.compile(p)
        store.save()


def test_processes_saving_at_once_lose_no_pattern(tmp_path: Path) -> None:
    path = tmp_path / "p.bin"
    parts = [(str(path), PATTERNS[i::4][:60]) for i in range(4)]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_compile_and_save, parts)
    assert rc.read_entries(path).keys() == {p for _, ps in parts for p in ps}


def test_only_plain_compiles_go_through_the_store() -> None:
    """phonenumbers' ``re_util`` sees the stand-in; anything but ``compile(str)`` is re's."""
    store = pp.install()
    stand_in = re_util.re
    assert isinstance(stand_in, pp._CachingRe) and stand_in.store is store
    assert stand_in.compile("a+", re.I) == re.compile("a+", re.I)
    assert stand_in.compile(b"a+") == re.compile(b"a+")
    assert stand_in.escape is re.escape
    assert pp.install() is store  # idempotent
