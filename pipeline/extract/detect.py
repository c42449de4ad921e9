"""Format sniffing: what a file really is, from its first bytes; the extension only breaks ties.

An XLSX saved under ``.csv`` is read as XLSX; a PDF or a Word document renamed ``.csv`` is
refused with a message saying what it is, instead of being parsed as garbage text.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from pathlib import Path

from contactpipe.errors import InputError

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".csv",
        ".tsv",
        ".txt",
        ".xlsx",
        ".xlsm",
        ".xls",
        ".ods",
        ".parquet",
        ".json",
        ".ndjson",
        ".jsonl",
    }
)
"""File name extensions (lower case, with the dot) picked up when a directory is expanded."""

TEXT_EXTENSIONS = frozenset({".csv", ".tsv", ".txt"})

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_FOREIGN = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive (decompress it first)",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
    b"SQLite format 3": "an SQLite database",
    b"{\\rtf": "an RTF document",
}
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_ENCRYPTED_MARKER = "EncryptedPackage".encode("utf-16-le")
_JSON_START = re.compile(r'^(\[\s*(\{|\[|"|-?\d|true|false|null|\]|$)|\{\s*("|\}|$))')


def describe(path: Path | str) -> str:
    """The file name as shown in messages."""
    return str(path)


def check_readable(path: Path) -> None:
    """Raise :class:`InputError` for a missing path, a directory or an unreadable file."""
    if not path.exists():
        raise InputError(f"{describe(path)}: file not found")
    if path.is_dir():
        raise InputError(
            f"{describe(path)}: is a directory, not a file",
            hint="pass the directory through expand_inputs() or give the files inside",
        )
    if not path.is_file():  # a pipe, FIFO or device: opening it here would consume or block
        if not os.access(path, os.R_OK):
            raise InputError(f"{describe(path)}: cannot be opened (permission denied)")
        return
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputError(f"{describe(path)}: cannot be opened ({exc.strerror})") from exc


def _zip_format(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                mimetype = archive.read("mimetype").decode("ascii", "replace").strip()
                if mimetype == "application/vnd.oasis.opendocument.spreadsheet":
                    return "ods"
                raise InputError(
                    f"{describe(path)}: is an OpenDocument file of type {mimetype!r}, "
                    "not a spreadsheet"
                )
            if "[Content_Types].xml" in names:
                if "xl/workbook.xml" in names:
                    types = archive.read("[Content_Types].xml").lower()
                    macro = b"macroenabled" in types or path.suffix.lower() == ".xlsm"
                    return "xlsm" if macro else "xlsx"
                if "xl/workbook.bin" in names:
                    raise InputError(
                        f"{describe(path)}: is a binary Excel workbook (XLSB), which is not "
                        "supported",
                        hint="save it as .xlsx from Excel",
                    )
                if "word/document.xml" in names:
                    raise InputError(f"{describe(path)}: is a Word document, not a spreadsheet")
                raise InputError(f"{describe(path)}: is an Office document but not a workbook")
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        KeyError,
        ValueError,
        NotImplementedError,  # "zip file version 6.4", an unknown compression method
    ) as exc:
        raise InputError(
            f"{describe(path)}: is a corrupt or truncated ZIP/Excel file ({exc})",
            hint="open it in Excel or LibreOffice and save it again",
        ) from exc
    raise InputError(f"{describe(path)}: is a ZIP archive, not a spreadsheet (unzip it first)")


def _ole2_format(path: Path, head: bytes) -> str:
    data = head if len(head) < 65536 else path.read_bytes()
    if _ENCRYPTED_MARKER in data:
        raise InputError(
            f"{describe(path)}: is password-protected (encrypted); it cannot be read",
            hint="open it in Excel, remove the password (File > Info > Protect Workbook) "
            "and save it again",
        )
    return "xls"


def _text_kind(path: Path, head: bytes) -> str:
    for bom in _BOMS:
        if head.startswith(bom):
            codec = {3: "utf-8"}.get(len(bom), "utf-16-le" if bom == b"\xff\xfe" else "utf-16-be")
            text = head[len(bom) :].decode(codec, "ignore")
            break
    else:
        text = head.decode("utf-8", "ignore")
    stripped = text.lstrip()
    suffix = path.suffix.lower()
    if stripped.startswith("<"):
        lowered = stripped[:2000].lower()
        what = None
        if "<html" in lowered or "<table" in lowered or "<!doctype html" in lowered:
            what = "an HTML page (often a web export saved with an Excel extension)"
        elif "urn:schemas-microsoft-com:office:spreadsheet" in lowered:
            what = "an Excel 2003 XML spreadsheet"
        elif lowered.startswith("<?xml"):
            what = "an XML document"
        if what:
            raise InputError(
                f"{describe(path)}: is {what}, not a supported spreadsheet",
                hint="open it in Excel or LibreOffice and save it as .xlsx or .csv",
            )
    if stripped[:1] not in ("[", "{"):
        return "csv"
    first_line = stripped.split("\n", 1)[0].strip()
    if suffix in TEXT_EXTENSIONS and not _JSON_START.match(first_line):
        return "csv"
    if stripped.startswith("["):
        return "json"
    if suffix in (".ndjson", ".jsonl"):
        return "ndjson"
    lines = [line for line in stripped.splitlines() if line.strip()]
    if len(lines) > 1:
        try:
            value = json.loads(lines[0])
        except ValueError:
            return "json"  # one object spread over several lines
        return "ndjson" if isinstance(value, dict) else "json"
    return "json"


def detect_format(path: Path) -> str:
    """Format of ``path`` from its content: ``csv``, ``xlsx``, ``xlsm``, ``xls``, ``ods``, ...

    Magic bytes decide: a ZIP with ``[Content_Types].xml`` is XLSX (XLSM when macro-enabled),
    a ZIP whose ``mimetype`` is the OpenDocument spreadsheet type is ODS, an OLE2 compound
    file is XLS (or an encrypted workbook, refused), ``PAR1`` is Parquet, text starting with
    ``[`` is JSON and with ``{`` JSON or NDJSON (one object per line).  Anything else that is
    text is ``csv`` (covers TSV and TXT; the delimiter is detected when reading).  The extension
    only breaks ties (``.ndjson``/``.jsonl``; a ``.csv`` whose first line is not JSON).
    Raises :class:`InputError` for a missing, empty or unreadable file, a known foreign format
    (PDF, image, archive...), a corrupt ZIP or a password-protected workbook.
    """
    path = Path(path)
    check_readable(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError as exc:
        raise InputError(f"{describe(path)}: cannot be read ({exc.strerror})") from exc
    if not head.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise InputError(f"{describe(path)}: is empty")
    if head.startswith(_ZIP):
        return _zip_format(path)
    if head.startswith(_OLE2):
        return _ole2_format(path, head)
    if head.startswith(b"PAR1"):
        return "parquet"
    for magic, what in _FOREIGN.items():
        if head.startswith(magic):
            raise InputError(f"{describe(path)}: is {what}, not a contact list")
    return _text_kind(path, head)
