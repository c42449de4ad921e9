"""Names of the reserved columns every stage adds to a frame.

User columns keep their own names; the pipeline's bookkeeping columns start with ``__`` so
that they can never collide with a real header.  The report renames them to the public
names ``source_file``, ``sheet`` and ``row``.
"""

from __future__ import annotations

SRC_FILE = "__source_file"  # str: file name as given on the command line
SRC_SHEET = "__sheet"  # str | null: sheet name (null for CSV, JSON, Parquet)
SRC_ROW = "__row"  # Int64: row number as a person sees it in the spreadsheet/editor
SOURCE_COLUMNS = (SRC_FILE, SRC_SHEET, SRC_ROW)

# Public names of the same columns in every report file.
PUBLIC_SOURCE_COLUMNS = {SRC_FILE: "source_file", SRC_SHEET: "sheet", SRC_ROW: "row"}


def is_reserved(name: str) -> bool:
    """True for the pipeline's own bookkeeping columns."""
    return name.startswith("__")
