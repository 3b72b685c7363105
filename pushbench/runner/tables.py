"""The run's tables on disk: ``cells.csv`` and ``saturation.csv``, rewritten atomically.

Both are rewritten whole after every cell (an interrupted run keeps what it
measured), with the header from :mod:`pushbench.schema.cells` and empty
fields for ``None``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pushbench.results import atomic_write_text
from pushbench.schema.cells import ALL_COLUMNS, SATURATION_COLUMNS

__all__ = ["write_cells", "write_saturation"]


def write_cells(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``cells.csv``: :data:`~pushbench.schema.cells.ALL_COLUMNS` of every row, in order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ALL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in ALL_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def write_saturation(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``saturation.csv``: one row per group of [slo] cells."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SATURATION_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in SATURATION_COLUMNS})
    atomic_write_text(path, buf.getvalue())
