"""The run's tables on disk: ``cells.csv`` and ``saturation.csv``, rewritten atomically.

Both are rewritten whole after every cell (an interrupted run keeps what it
measured), header and fields from the column records of
:mod:`pushbench.schema.cells`: each value rounded as its column's unit says
(no float noise such as ``74.99999999999993``), empty fields for ``None``,
and a ValueError for a key no column documents.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pushbench.results import atomic_write_text
from pushbench.schema.cells import (
    ALL_COLUMNS,
    COLUMNS,
    EXTRA_COLUMNS,
    SATURATION_COLUMNS,
    Column,
    write_row,
)

__all__ = ["write_cells", "write_saturation"]

#: The columns of ``cells.csv`` in header order (:data:`~pushbench.schema.cells.ALL_COLUMNS`).
_CELLS: dict[str, Column] = {name: {**COLUMNS, **EXTRA_COLUMNS}[name] for name in ALL_COLUMNS}


def _write(path: Path, columns: Mapping[str, Column], rows: Sequence[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(write_row(row, columns))
    atomic_write_text(path, buf.getvalue())


def write_cells(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``cells.csv``: :data:`~pushbench.schema.cells.ALL_COLUMNS` of every row, in order."""
    _write(path, _CELLS, rows)


def write_saturation(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``saturation.csv``: one row per group of [slo] cells."""
    _write(path, SATURATION_COLUMNS, rows)
