"""contactpipe.drops: which files of a drop folder are complete, and how a file moves through
inbox/ -> processing/ -> done/ or failed/ with its digest in the ledger."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contactpipe import drops
from contactpipe.drops import DropFolder, candidate, content_digest, scan_ready


def write(path: Path, text: str = "Name,Phone\nA,+33612345678\n") -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_is_ready_once_unchanged_for_stable_for_seconds(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv")
    ready, seen = scan_ready(tmp_path, stable_for=2.0, now=100.0)
    assert ready == [] and str(f) in seen  # first sight: not yet
    ready, seen = scan_ready(tmp_path, stable_for=2.0, seen=seen, now=101.9)
    assert ready == []
    ready, seen = scan_ready(tmp_path, stable_for=2.0, seen=seen, now=102.0)
    assert ready == [f]
    assert json.loads(json.dumps(seen)) == {k: list(v) for k, v in seen.items()}  # JSON-ready


def test_a_growing_file_starts_its_wait_again(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv")
    _, seen = scan_ready(tmp_path, stable_for=2.0, now=100.0)
    with f.open("a", encoding="utf-8") as fh:
        fh.write("B,+33612345679\n")
    ready, seen = scan_ready(tmp_path, stable_for=2.0, seen=seen, now=103.0)
    assert ready == []  # changed since: a new wait from 103
    ready, seen = scan_ready(tmp_path, stable_for=2.0, seen=seen, now=104.5)
    assert ready == []
    ready, _ = scan_ready(tmp_path, stable_for=2.0, seen=seen, now=105.0)
    assert ready == [f]


def test_a_touched_file_of_the_same_size_is_not_stable(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv")
    _, seen = scan_ready(tmp_path, stable_for=1.0, now=100.0)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    ready, _ = scan_ready(tmp_path, stable_for=1.0, seen=seen, now=101.0)
    assert ready == []


def test_stable_for_zero_is_ready_at_first_sight_and_oldest_comes_first(tmp_path: Path) -> None:
    old, new = write(tmp_path / "z-old.csv"), write(tmp_path / "a-new.csv")
    os.utime(old, (1_000_000, 1_000_000))
    ready, _ = scan_ready(tmp_path, stable_for=0)
    assert ready == [old, new]


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.csv",
        "~$book.xlsx",
        ".~lock.book.xlsx#",
        "book.xlsx.part",
        "list.csv.crdownload",
        "list.csv.tmp",
        "list.csv.partial",
        "list.csv.filepart",
        "list.csv.download",
        "list.csv~",
        "notes.pdf",
        "archive.zip",
        "README",
    ],
)
def test_partial_hidden_and_foreign_names_are_never_ready(tmp_path: Path, name: str) -> None:
    write(tmp_path / name)
    assert not candidate(name)
    assert scan_ready(tmp_path, stable_for=0) == ([], {})


def test_folders_and_a_missing_directory_have_no_ready_file(tmp_path: Path) -> None:
    (tmp_path / "sub.csv").mkdir()
    assert scan_ready(tmp_path, stable_for=0) == ([], {})
    assert scan_ready(tmp_path / "missing", stable_for=0) == ([], {})


def test_a_vanished_file_is_forgotten(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv")
    _, seen = scan_ready(tmp_path, stable_for=1.0, now=1.0)
    f.unlink()
    assert scan_ready(tmp_path, stable_for=1.0, seen=seen, now=5.0) == ([], {})


def test_every_format_contactpipe_reads_is_a_candidate() -> None:
    from contactpipe.extract import SUPPORTED_EXTENSIONS

    assert drops.READABLE_EXTENSIONS == SUPPORTED_EXTENSIONS
    for ext in SUPPORTED_EXTENSIONS:
        assert candidate(f"List{ext.upper()}")


def test_importing_drops_stays_cheap() -> None:
    code = "import sys, contactpipe.drops; print(sorted({'polars', 'httpx'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_content_digest_is_the_sha256_of_the_content(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "x.csv").write_bytes(data)
    assert content_digest(tmp_path / "x.csv") == hashlib.sha256(data).hexdigest()


def test_claim_then_finish_moves_the_whole_entry_and_records_the_digest(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path / "drop")
    assert {p.name for p in (tmp_path / "drop").iterdir()} == set(drops.SUBFOLDERS)
    src = write(folder.inbox / "list.csv")
    digest = content_digest(src)
    claimed = folder.claim(src)
    assert not src.exists() and claimed.name == "list.csv"
    assert claimed.parent.parent == folder.processing
    report = folder.report_dir(claimed)
    report.mkdir()
    (report / "summary.json").write_text("{}")
    assert folder.pending() == [claimed]
    assert not folder.already_done(digest)

    dest = folder.finish(claimed, True, {"rows_read": 1})
    assert dest.parent == folder.done and dest.name == claimed.parent.name
    assert (dest / "list.csv").is_file() and (dest / "report" / "summary.json").is_file()
    state = json.loads((dest / "watch.json").read_text())
    assert state["ok"] is True and state["sha256"] == digest
    assert state["summary"] == {"rows_read": 1}
    assert folder.pending() == []
    assert folder.already_done(digest)
    seen = folder.imported(digest)
    assert seen is not None and seen.entry == f"done/{dest.name}" and seen.file == "list.csv"
    assert DropFolder(tmp_path / "drop").already_done(digest)  # read back from the ledger


def test_a_failed_file_goes_to_failed_and_not_into_the_ledger(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path)
    claimed = folder.claim(write(folder.inbox / "bad.csv", "nothing useful\n"))
    dest = folder.finish(claimed, False, {}, note="no phone column")
    assert dest.parent == folder.failed
    assert json.loads((dest / "watch.json").read_text())["note"] == "no phone column"
    assert not folder.already_done(content_digest(dest / "bad.csv"))
    assert not folder.ledger.exists()


def test_two_claims_of_one_file_move_it_once(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path)
    src = write(folder.inbox / "a.csv")
    folder.claim(src)
    with pytest.raises(FileNotFoundError):
        folder.claim(src)
    assert len(list(folder.processing.iterdir())) == 1


def test_same_names_dropped_twice_get_their_own_entries(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path)
    first = folder.claim(write(folder.inbox / "a.csv", "Phone\n+33612345678\n"))
    second = folder.claim(write(folder.inbox / "a.csv", "Phone\n+33612345679\n"))
    assert first.parent != second.parent
    a, b = folder.finish(first, True, {}), folder.finish(second, True, {})
    assert a != b and (a / "a.csv").read_text() != (b / "a.csv").read_text()


def test_pending_finds_a_file_claimed_by_a_killed_run(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path)
    claimed = folder.claim(write(folder.inbox / "a.csv"))
    (claimed.parent / "watch.json").unlink()  # killed between the rename and watch.json
    (folder.processing / "20260101T000000Z-empty.csv").mkdir()  # killed before the rename
    assert DropFolder(tmp_path).pending() == [claimed]
    assert not (folder.processing / "20260101T000000Z-empty.csv").exists()


def test_a_second_attempt_keeps_the_first_report(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path)
    claimed = folder.claim(write(folder.inbox / "a.csv"))
    folder.report_dir(claimed).mkdir()
    again = folder.report_dir(claimed)
    assert not again.exists() and (claimed.parent / "report.attempt-1").is_dir()


def test_a_file_named_like_the_state_file_is_kept_apart(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path)
    claimed = folder.claim(write(folder.inbox / "watch.json", '[{"phone": "+33612345678"}]'))
    assert claimed.name == "input-watch.json"
    assert folder.pending() == [claimed]
    dest = folder.finish(claimed, True, {})
    assert folder.imported(content_digest(dest / "input-watch.json")).file == "watch.json"  # type: ignore[union-attr]


def test_a_line_cut_by_a_crash_does_not_break_the_ledger(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path)
    dest = folder.finish(folder.claim(write(folder.inbox / "a.csv")), True, {})
    with folder.ledger.open("a") as fh:
        fh.write('{"sha256": "abc", "fi')
    assert folder.already_done(content_digest(dest / "a.csv"))
    assert not folder.already_done("abc")
