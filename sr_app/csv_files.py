"""Writing CSV files that people open in a spreadsheet: one writer (:func:`write_csv`) for every table the lab offers
as a download (the survey's export, the Folder tab's scores), safe against formula injection."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: How times are written: UTC, ISO 8601, to the microsecond.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: A text cell starting with one of these is one a spreadsheet runs as a formula (``=``, ``+``, ``-``, ``@``) or may
#: (tab, carriage return): :func:`write_csv` puts a ``'`` before it (OWASP, "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def write_csv(table: pd.DataFrame, path: Path, float_format: str | None = None) -> Path:
    """Write ``table`` to CSV file ``path`` and return the path (times as :data:`TIME_FORMAT`, floats as
    ``float_format`` if given; lines end in CRLF, as RFC 4180 has it, which also makes the writer quote a text holding
    a lone carriage return), every text cell that starts with one of :data:`FORMULA_PREFIXES` preceded by ``'``, so
    that a spreadsheet shows it as text instead of running it (a crowd id ``=HYPERLINK(...)``, a self-report
    ``+cmd``, a file named ``-x.png``). Only text columns are touched: numbers, negative ones too, stay numbers."""
    safe = table.copy()
    for column in safe.select_dtypes(include=["object", "string"]).columns:
        safe[column] = safe[column].map(
            lambda cell: f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES) else cell
        )
    safe.to_csv(path, index=False, date_format=TIME_FORMAT, float_format=float_format, lineterminator="\r\n")
    return path
