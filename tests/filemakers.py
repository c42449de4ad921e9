"""Makers of small input files of every supported kind, for any test that needs one.

Each ``make_*`` function writes one file at ``path`` and returns ``path``.  Rows are lists of
cells; what a cell *is* in a spreadsheet follows its Python type: ``str`` -> a text cell
(written as text even when it looks like a number or a formula), ``int``/``float`` -> a
number cell, ``bool`` -> a boolean cell, ``datetime``/``date``/``time`` -> a date cell,
``None`` -> no cell at all.

Only ``make_xls`` (needs ``xlwt``) and ``make_encrypted_xlsx`` (needs ``msoffcrypto-tool``)
use optional dev packages; call ``pytest.importorskip`` before them.  ODS files are written by
hand (a zip with ``mimetype``, ``META-INF/manifest.xml`` and ``content.xml``), so no ODF
library is needed.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

Rows = Sequence[Sequence[Any]]

_BOMS = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
}


def csv_text(rows: Rows, *, delimiter: str = ",", newline: str = "\n") -> str:
    """CSV text of ``rows`` (minimal quoting; ``None`` -> empty field; ``[]`` -> blank line)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    for row in rows:
        if len(row) == 0:
            buffer.write(newline)
        else:
            writer.writerow(["" if cell is None else cell for cell in row])
    return buffer.getvalue()


def make_text(path: Path, text: str, *, encoding: str = "utf-8", bom: bool = False) -> Path:
    """Write ``text`` encoded with ``encoding``; ``bom=True`` prefixes the encoding's BOM."""
    data = text.encode(encoding)
    if bom:
        data = _BOMS[codecs.lookup(encoding).name.replace("_", "-")] + data
    path.write_bytes(data)
    return path


def make_csv(
    path: Path,
    rows: Rows,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    bom: bool = False,
    newline: str = "\n",
) -> Path:
    """Write ``rows`` as delimited text (CSV, TSV, pipe...) in ``encoding``.

    ``bom=True`` writes a byte-order mark (UTF-8, UTF-16 LE/BE).  An empty row ``[]`` is
    written as a blank line.
    """
    return make_text(
        path, csv_text(rows, delimiter=delimiter, newline=newline), encoding=encoding, bom=bom
    )


def make_xlsx(
    path: Path,
    sheets: Mapping[str, Rows],
    *,
    hidden: Iterable[str] = (),
    macro: bool = False,
) -> Path:
    """Write a workbook with one worksheet per ``sheets`` entry (in order).

    Row ``i`` of a sheet's rows is worksheet row ``i + 1``.  Sheets named in ``hidden`` are
    hidden.  ``macro=True`` marks the package macro-enabled, as Excel does for ``.xlsm``.
    """
    import xlsxwriter

    target = path if not macro else path.with_name(path.name + ".tmp.xlsx")
    workbook = xlsxwriter.Workbook(str(target))
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    datetime_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    time_format = workbook.add_format({"num_format": "hh:mm:ss"})
    hidden = set(hidden)
    for name, rows in sheets.items():
        sheet = workbook.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, str):
                    sheet.write_string(r, c, value)
                elif isinstance(value, bool):
                    sheet.write_boolean(r, c, value)
                elif isinstance(value, (int, float)):
                    sheet.write_number(r, c, value)
                elif isinstance(value, dt.datetime):
                    sheet.write_datetime(r, c, value, datetime_format)
                elif isinstance(value, dt.date):
                    sheet.write_datetime(r, c, value, date_format)
                elif isinstance(value, dt.time):
                    sheet.write_datetime(r, c, value, time_format)
                else:
                    raise TypeError(f"cell type not supported: {value!r}")
        if name in hidden:
            sheet.hide()
    if hidden and len(hidden) < len(sheets):
        first_visible = next(n for n in sheets if n not in hidden)
        workbook.get_worksheet_by_name(first_visible).activate()
    workbook.close()
    if macro:
        _mark_macro_enabled(target, path)
        target.unlink()
    return path


def _mark_macro_enabled(source: Path, target: Path) -> None:
    main = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    macro = b"application/vnd.ms-excel.sheet.macroEnabled.main+xml"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "[Content_Types].xml":
                data = data.replace(main, macro)
            dst.writestr(item, data)


def make_xls(path: Path, sheets: Mapping[str, Rows], *, hidden: Iterable[str] = ()) -> Path:
    """Write a legacy Excel 97-2003 ``.xls`` workbook (needs the ``xlwt`` dev package)."""
    import xlwt

    workbook = xlwt.Workbook()
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    hidden = set(hidden)
    for name, rows in sheets.items():
        sheet = workbook.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, (dt.date, dt.datetime)):
                    sheet.write(r, c, value, date_style)
                else:
                    sheet.write(r, c, value)
        if name in hidden:
            sheet.visibility = 1
    workbook.save(str(path))
    return path


_ODS_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"'
)
_ODS_MIME = "application/vnd.oasis.opendocument.spreadsheet"


def _ods_cell(value: Any) -> str:
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, bool):
        flag = "true" if value else "false"
        return (
            f'<table:table-cell office:value-type="boolean" office:boolean-value="{flag}">'
            f"<text:p>{flag.upper()}</text:p></table:table-cell>"
        )
    if isinstance(value, (int, float)):
        return (
            f'<table:table-cell office:value-type="float" office:value="{value!r}">'
            f"<text:p>{value!r}</text:p></table:table-cell>"
        )
    if isinstance(value, (dt.date, dt.datetime)):
        return (
            f'<table:table-cell office:value-type="date" office:date-value="{value.isoformat()}">'
            f"<text:p>{value.isoformat()}</text:p></table:table-cell>"
        )
    return (
        f'<table:table-cell office:value-type="string"><text:p>{escape(str(value))}</text:p>'
        "</table:table-cell>"
    )


def make_ods(path: Path, sheets: Mapping[str, Rows], *, hidden: Iterable[str] = ()) -> Path:
    """Write a minimal but valid OpenDocument spreadsheet (``.ods``) by hand."""
    hidden = set(hidden)
    tables = []
    for name, rows in sheets.items():
        style = ' table:style-name="ta_hidden"' if name in hidden else ""
        body = "".join(
            "<table:table-row>" + "".join(_ods_cell(v) for v in row) + "</table:table-row>"
            for row in rows
        )
        tables.append(f"<table:table table:name={quoteattr(name)}{style}>{body}</table:table>")
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODS_NS}>'
        "<office:automatic-styles>"
        '<style:style style:name="ta_hidden" style:family="table">'
        '<style:table-properties table:display="false"/></style:style>'
        "</office:automatic-styles>"
        f"<office:body><office:spreadsheet>{''.join(tables)}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{_ODS_MIME}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), _ODS_MIME, zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return path


def make_parquet(path: Path, columns: Mapping[str, Sequence[Any]]) -> Path:
    """Write a Parquet file from ``{column: values}`` (polars infers the types)."""
    import polars as pl

    pl.DataFrame(dict(columns), strict=False).write_parquet(path)
    return path


def make_json(path: Path, records: Any) -> Path:
    """Write ``records`` (normally a list of dicts) as one indented JSON document."""
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def make_ndjson(path: Path, records: Sequence[Any]) -> Path:
    """Write one JSON value per line; a ``None`` record writes a blank line."""
    lines = ["" if r is None else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_truncated(path: Path, source: Path, keep: float = 0.5) -> Path:
    """Write the first ``keep`` fraction of ``source``'s bytes to ``path`` (a truncated file)."""
    data = source.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def make_encrypted_xlsx(path: Path, rows: Rows, password: str = "secret") -> Path:
    """Write a password-protected XLSX (needs the ``msoffcrypto-tool`` dev package)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = path.with_name(path.name + ".plain.xlsx")
    make_xlsx(plain, {"Sheet1": rows})
    with plain.open("rb") as source, path.open("wb") as target:
        OOXMLFile(source).encrypt(password, target)
    plain.unlink()
    return path
