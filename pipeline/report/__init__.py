"""Per-row error report and run summary."""
