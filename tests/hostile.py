"""Makers of hostile inputs, written at test time (the bombs are small on disk, huge inflated).

Each ``make_*`` writes one file at ``path`` and returns it.  The XLSX files are assembled by
hand (a zip of the few parts a reader needs) so that a part can say anything: a dimension of
``A1:ZZZZZ4000000000``, a cell at ``XFD1048576``, a sheet or a shared string that inflates to
gigabytes, millions of shared strings.  Large parts are streamed into the zip, never built in
memory.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

_CT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WB = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WB_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>'
)
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS = f'xmlns="{_MAIN}"'


def _write_part(
    archive: zipfile.ZipFile, name: str, chunks: Iterable[str | bytes], zip64: bool = True
) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = 6  # no public setter before Python 3.13
    with archive.open(info, "w", force_zip64=zip64) as part:
        for chunk in chunks:
            part.write(chunk.encode() if isinstance(chunk, str) else chunk)


def make_raw_xlsx(
    path: Path,
    sheet: Iterable[str | bytes],
    shared: Iterable[str | bytes] = ("<sst " + _NS + ' count="0" uniqueCount="0"/>',),
    *,
    zip64: bool = True,
) -> Path:
    """An XLSX whose ``sheet1.xml`` and ``sharedStrings.xml`` are the given chunks (deflated)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        _write_part(archive, "[Content_Types].xml", [_CT])
        _write_part(archive, "_rels/.rels", [_RELS])
        _write_part(archive, "xl/workbook.xml", [_WB])
        _write_part(archive, "xl/_rels/workbook.xml.rels", [_WB_RELS])
        _write_part(archive, "xl/worksheets/sheet1.xml", sheet, zip64)
        _write_part(archive, "xl/sharedStrings.xml", shared, zip64)
    return path


def _inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def sheet_xml(rows: Iterable[str], dimension: str | None = None) -> Iterator[str]:
    """Chunks of a worksheet: an optional ``<dimension ref>``, then the given ``<row>`` XML."""
    yield f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet {_NS}>'
    if dimension:
        yield f'<dimension ref="{dimension}"/>'
    yield "<sheetData>"
    yield from rows
    yield "</sheetData></worksheet>"


_SHEET_TAGS = re.compile(
    r"<(/?)(worksheet|sheetData|dimension|sheetViews|sheetView|sheetFormatPr|cols|col|row|c|v"
    r"|is|t|f|pageMargins)(?=[\s/>])"
)


def prefixed(xml: str, prefix: str = "x") -> str:
    """``xml`` (worksheet XML) with every element of the sheet's namespace written with
    ``prefix``, as the .NET Open XML SDK writes it (``<x:row r="1"><x:c r="A1">``)."""
    xml = _SHEET_TAGS.sub(rf"<\1{prefix}:\2", xml)
    return xml.replace(f"<{prefix}:worksheet ", f'<{prefix}:worksheet xmlns:{prefix}="{_MAIN}" ', 1)


def prefix_workbook(src: Path, dst: Path, prefix: str = "x") -> Path:
    """A copy of the workbook ``src`` whose worksheets are :func:`prefixed`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.startswith("xl/worksheets/sheet"):
                data = prefixed(data.decode("utf-8"), prefix).encode("utf-8")
            zout.writestr(info, data)
    return dst


def header_rows() -> list[str]:
    """A plausible two-row contact table (rows 1 and 2)."""
    return [
        '<row r="1">' + _inline("A1", "Name") + _inline("B1", "Phone") + "</row>",
        '<row r="2">' + _inline("A2", "Ana") + _inline("B2", "+33612345678") + "</row>",
    ]


def make_far_cell_xlsx(path: Path, ref: str = "XFD1048576") -> Path:
    """A small table plus one cell at ``ref``: the used range covers the whole grid."""
    row = int("".join(ch for ch in ref if ch.isdigit()))
    far = f'<row r="{row}">' + _inline(ref, "x") + "</row>"
    return make_raw_xlsx(path, sheet_xml([*header_rows(), far]))


def make_dimension_xlsx(path: Path, dimension: str = "A1:ZZZZZ4000000000") -> Path:
    """A small table whose ``<dimension>`` declares an absurd used range."""
    return make_raw_xlsx(path, sheet_xml(header_rows(), dimension))


def make_sheet_bomb_xlsx(path: Path, inflated: int = 2 << 30, *, zip64: bool = True) -> Path:
    """A sheet whose XML inflates to about ``inflated`` bytes (rows of one repeated cell)."""

    def rows() -> Iterator[str]:
        yield from header_rows()
        block = '<row><c t="inlineStr"><is><t>Bob</t></is></c></row>' * 20_000
        written = 0
        while written < inflated:
            yield block
            written += len(block)

    return make_raw_xlsx(path, sheet_xml(rows()), zip64=zip64)


def make_lying_xlsx(path: Path, inflated: int = 200 << 20, declared: int = 1000) -> Path:
    """A sheet bomb whose zip headers (local and central) claim ``declared`` bytes."""
    make_sheet_bomb_xlsx(path, inflated, zip64=False)
    data = bytearray(path.read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(signature)
        while at >= 0:
            if data[at + name_at : at + name_at + len(name)] == name:
                data[at + size_at : at + size_at + 4] = declared.to_bytes(4, "little")
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    return path


def make_string_bomb_xlsx(path: Path, length: int = 1536 << 20) -> Path:
    """One shared string of ``length`` characters, referenced by one cell."""

    def shared() -> Iterator[str]:
        yield f'<sst {_NS} count="1" uniqueCount="1"><si><t>'
        chunk = "A" * (1 << 20)
        for _ in range(length // len(chunk)):
            yield chunk
        yield "</t></si></sst>"

    rows = [*header_rows(), '<row r="3"><c r="A3" t="s"><v>0</v></c></row>']
    return make_raw_xlsx(path, sheet_xml(rows), shared())


def make_many_strings_xlsx(path: Path, count: int = 100_000_000) -> Path:
    """``count`` (empty) shared strings, none of them used."""

    def shared() -> Iterator[str]:
        yield f'<sst {_NS} count="{count}" uniqueCount="{count}">'
        block = "<si><t></t></si>" * 10_000
        for _ in range(count // 10_000):
            yield block
        yield "</sst>"

    return make_raw_xlsx(path, sheet_xml(header_rows()), shared())


def make_wide_csv(path: Path, columns: int, rows: int = 3) -> Path:
    """A CSV with ``columns`` columns: Name, Phone, then ``c3``... filled with short values."""
    header = ["Name", "Phone", *(f"c{i}" for i in range(3, columns + 1))]
    lines = [",".join(header)]
    for r in range(rows):
        lines.append(",".join([f"P{r}", f"+3361234567{r}", *("x" * (columns - 2))]))
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


ODS_REPEAT_FORMS = {  # how calamine still reads a repeat count
    "double-quoted": 'table:number-{}-repeated="{}"',
    "single-quoted": "table:number-{}-repeated='{}'",
    "spaced": 'table:number-{}-repeated = "{}"',
    "plus-signed": 'table:number-{}-repeated="+{}"',
}


def make_ods_repeat_bomb(
    path: Path, columns: int = 100_000, rows: int = 1000, form: str = "double-quoted"
) -> Path:
    """An ODS whose rows repeat one non-empty cell ``columns`` times, ``rows`` times, the
    counts written in ``ODS_REPEAT_FORMS[form]``."""
    from filemakers import make_ods

    make_ods(path, {"S": [["Name", "Phone"], ["Ana", "+33612345678"]]})
    with zipfile.ZipFile(path) as archive:
        parts = {i.filename: archive.read(i) for i in archive.infolist()}
    attr = ODS_REPEAT_FORMS[form]
    bomb = (
        f"<table:table-row {attr.format('rows', rows)}>"
        f"<table:table-cell {attr.format('columns', columns)} "
        'office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>'
    )
    parts["content.xml"] = parts["content.xml"].replace(
        b"</table:table>", bomb.encode() + b"</table:table>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), parts.pop("mimetype"))
        for name, data in parts.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED)
    return path


def make_corrupt_xlsx(path: Path, kind: str) -> Path:
    """A small XLSX broken the ways fuzzing found: ``deflate`` (the sheet's compressed bytes
    overwritten: zlib fails) or ``version`` (a central directory asking for zip version 6.4)."""
    make_raw_xlsx(path, sheet_xml(header_rows()), zip64=False)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    if kind == "deflate":
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        data[start : start + 8] = b"\xff" * 8
    else:
        at = data.find(b"PK\x01\x02")
        while at >= 0:
            data[at + 6 : at + 8] = (64).to_bytes(2, "little")  # version needed: 6.4
            at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path


def make_unreferenced_xlsx(path: Path, rows: int = 200_000, width: int = 16_384) -> Path:
    """Cells without ``r`` attributes (allowed: a reader places them one after the other):
    ``rows`` one-cell rows and one row of ``width`` cells make a used range of their product
    from few cells."""

    def body() -> Iterator[str]:
        yield from header_rows()
        yield "<row>" + '<c t="inlineStr"><is><t>x</t></is></c>' * width + "</row>"
        block = '<row><c t="inlineStr"><is><t>y</t></is></c></row>' * 10_000
        for _ in range(rows // 10_000):
            yield block

    return make_raw_xlsx(path, sheet_xml(body()))


def make_parquet_bomb(path: Path, rows: int = 25_000_000) -> Path:
    """A Parquet file of ``rows`` identical phone numbers: a few KB on disk (run-length and
    dictionary encoding), millions of cells once read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    block = pa.table({"phone": pa.array(["+33612345678"] * 1_000_000)})
    with pq.ParquetWriter(path, block.schema) as writer:
        for _ in range(rows // 1_000_000):
            writer.write_table(block)
    return path


_FAR = 'r="XFD900000"'
REFERENCE_FORMS = {
    # how a cell at XFD900000 can be written so that calamine still places it there
    "single-quoted": "r='XFD900000'",
    "spaced": 'r = "XFD900000"',
    "lower-case": 'r="xfd900000"',
    "second-attribute": 't="inlineStr" r="XFD900000"',
    "duplicate": 'r="C3" r="XFD900000"',
    "understated-dimension": _FAR,  # the sheet's <dimension> says A1:B3
}


def make_far_reference_xlsx(path: Path, form: str) -> Path:
    """A small table plus one cell at XFD900000 written in ``REFERENCE_FORMS[form]``: a used
    range of 14.7 G cells that a check reading only ``r="..."`` first would miss."""
    attrs = REFERENCE_FORMS[form]
    if "t=" not in attrs:
        attrs += ' t="inlineStr"'
    far = f'<row r="3"><c {attrs}><is><t>x</t></is></c></row>'
    dimension = "A1:B3" if form == "understated-dimension" else None
    return make_raw_xlsx(path, sheet_xml([*header_rows(), far], dimension))


def make_far_row_xlsx(path: Path, row: str = "900000", width: int = 30, tag: str = "c") -> Path:
    """Cells without references in a row tagged far down (``<row r="900000">``): calamine
    places them on that row, so a few cells make a used range of ``row`` x ``width``.
    ``tag``: how the cells are named (the reader takes any prefix: ``:c``, ``é:c``)."""
    cells = f'<{tag} t="inlineStr"><is><t>x</t></is></{tag}>' * width
    return make_raw_xlsx(path, sheet_xml([*header_rows(), f'<row r="{row}">{cells}</row>']))


def make_decoy_reference_xlsx(path: Path, row: int = 10_000, width: int = 29) -> Path:
    """``width`` cells with only a prefixed ``x:r="A3"``, then a row tagged far down: calamine
    ignores ``x:r`` and places those cells one after the other (A3, B3, ...), so the used range
    is ``row`` x ``width + 1``; a check taking ``x:r`` for ``r`` bounds it ``row`` x 2."""
    text = "<is><t>x</t></is>"
    cells = f'<c x:r="A3" t="inlineStr">{text}</c>' * width
    rows = [
        *header_rows(),
        f'<row r="3"><c r="A3" t="inlineStr">{text}</c>{cells}</row>',
        f'<row r="{row}"><c r="A{row}" t="inlineStr">{text}</c></row>',
    ]
    return make_raw_xlsx(path, sheet_xml(rows))


def make_odd_genuine_xlsx(path: Path) -> Path:
    """A small, genuine table in every reference form calamine reads, without a dimension:
    the exact check places each cell and lets it through."""
    rows = [
        "<row r='1'><c r='A1' t='inlineStr'><is><t>Name</t></is></c>"
        '<c t="inlineStr" r = "b1"><is><t>Phone</t></is></c></row>',
        '<row><c t="inlineStr"><is><t>Ana</t></is></c>'
        '<c t="inlineStr"><is><t>+33612345678</t></is></c></row>',
        '<row r="3"><c s="0" r="A3" t="inlineStr"><is><t>Bob</t></is></c>'
        '<c r="B3" t="inlineStr"><is><t>+33612345679</t></is></c></row>',
    ]
    return make_raw_xlsx(path, sheet_xml(rows))
