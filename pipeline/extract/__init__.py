"""Extract: one reader per format -> polars frame of text columns + source position columns."""
