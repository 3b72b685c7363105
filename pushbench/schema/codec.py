"""The records of ``pushbench bench-codec``: what one timed case stores, and its files.

The codec benchmark (:mod:`pushbench.bench.codec`) writes these, its report
(:mod:`pushbench.report.codec`) reads them; neither imports the other. A run
directory holds ``codec.json`` (every :class:`Record`, raw repeats included)
and ``codec.csv`` (one tidy row per case, :data:`CSV_COLUMNS`).

Besides the record, the few constants that say what a record's figures mean
live here too, because the report states them beside every figure: the
libraries in display order, and how many frames one timed call covers
(:data:`STREAM_BYTES`, :data:`MIN_FRAMES`, :data:`MAX_FRAMES`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pushbench.results import atomic_write_json, atomic_write_text, read_json

__all__ = [
    "CSV_COLUMNS",
    "LIBRARIES",
    "LIBRARY_LABELS",
    "MAX_FRAMES",
    "MIN_FRAMES",
    "STREAM_BYTES",
    "Record",
    "library_label",
    "load_records",
    "write_records",
]

#: Frame codecs compared, in display order (rows of pushbench.bench.peers.PEERS).
LIBRARIES: tuple[str, ...] = (
    "pushbench",
    "pushbench-py",
    "wsproto",
    "websockets",
    "aiohttp-c",
    "aiohttp-py",
)

#: How plots and tables name a library whose record name says less than it should.
LIBRARY_LABELS: dict[str, str] = {
    "pushbench": "pushbench (C)",
    "pushbench-py": "pushbench (pure)",
}


def library_label(library: str) -> str:
    """The display name of ``library`` (its record name unless :data:`LIBRARY_LABELS` says)."""
    return LIBRARY_LABELS.get(library, library)


# Frames per timed call: enough bytes to reach steady state (≈ 4 MiB), enough
# frames to amortise per-stream setup, and not so many that small-frame cases
# spend their time in list growth.
STREAM_BYTES = 4 * 1024 * 1024
MAX_FRAMES = 1000
MIN_FRAMES = 4


@dataclass
class Record:
    """The stored result of one case: raw repeats plus derived figures.

    ``repeats_ns`` are the total times of each repeat, each covering
    ``iterations`` calls of ``frames_per_call`` frames. Rates use decimal
    units: MB/s = 10^6 payload bytes per second (headers not counted).
    ``status`` is ``ok``, ``n/a`` (the library cannot do this), ``unavailable``
    (library or required build missing) or ``error`` (its output was wrong, so
    it was not timed).
    """

    case: str
    library: str
    variant: str
    op: str
    masked: bool
    payload: int
    status: str
    frames_per_call: int = 0
    iterations: int = 0
    repeats_ns: list[int] = field(default_factory=list)
    per_frame_us_median: float | None = None
    per_frame_us_min: float | None = None
    per_frame_us_max: float | None = None
    frames_per_s: float | None = None
    mb_per_s: float | None = None
    version: str | None = None
    notes: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# Columns of codec.csv: one row per case, scalars only (raw repeats are in codec.json).
CSV_COLUMNS: tuple[str, ...] = (
    *(f.name for f in fields(Record) if f.name != "repeats_ns"),
    "repeats",
)


def write_records(run_dir: Path, records: Sequence[Record]) -> tuple[Path, Path]:
    """Store ``records`` as ``codec.json`` (complete) and ``codec.csv`` (tidy), atomically."""
    json_path = run_dir / "codec.json"
    csv_path = run_dir / "codec.csv"
    atomic_write_json(json_path, [asdict(r) for r in records])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        row = asdict(r)
        row["repeats"] = len(row.pop("repeats_ns"))
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path


def load_records(run_dir: Path | str) -> list[Record]:
    """Read the records of a run back from its ``codec.json``."""
    return [Record.from_dict(d) for d in read_json(Path(run_dir) / "codec.json")]
