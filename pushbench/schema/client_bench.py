"""The records of ``pushbench bench-client``: one repeat, one case's summary, and their files.

The client benchmark (:mod:`pushbench.bench.client`) writes these, its report
(:mod:`pushbench.report.client`) reads them; neither imports the other. A run
directory holds ``client.json`` (the options, the target as judged when the run
was stored, every :class:`CaseResult` and every :class:`Sample`) and
``client.csv`` (one row per case, :data:`CASE_COLUMNS`).

The thresholds the stored verdicts were judged by live here too, because the
report states them beside the table (what "saturated", "client-bound" and
"kept up" mean).
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
    "CASE_COLUMNS",
    "FED_FRACTION",
    "KEPT_UP_FRACTION",
    "QUEUE_SAMPLE_S",
    "SATURATED_FRACTION",
    "SCHEMA",
    "CaseResult",
    "ClientRun",
    "Sample",
    "load_client_results",
    "write_client_results",
]

#: Version of client.json's layout.
SCHEMA = 1

SATURATED_FRACTION = 0.9  # a CPU this busy over the window is saturated (as pushbench.runner)
# At saturation the client must have had data waiting in at least this fraction of the
# window's queue samples for its figure to be its own ceiling, not the feeder's.
FED_FRACTION = 0.9
KEPT_UP_FRACTION = 0.97  # offered mode: received at least this share of the offered rate
QUEUE_SAMPLE_S = 0.1  # how often the window samples the bytes waiting for the client


@dataclass
class Sample:
    """One repeat of one case: the figures of one feeder + worker pair.

    Fractions are of one CPU (1.0 = one core fully used over the window).
    ``client_core_busy`` / ``feeder_core_busy``: how busy the CPU each side was
    pinned to was, whoever used it (``/proc/stat``); ``None`` where unknown.
    """

    case: str
    client: str
    mode: str
    offered: int
    repeat: int
    status: str  # "ok" | "failed"
    reason: str = ""
    msgs_per_s: float | None = None
    messages: int = 0  # received inside the window
    window_s: float | None = None
    client_cpu: float | None = None
    feeder_cpu: float | None = None
    client_core_busy: float | None = None
    feeder_core_busy: float | None = None
    msgs_per_client_cpu_s: float | None = None
    gc_collections: int | None = None
    gc_pause_max_ms: float | None = None
    gc_pause_sum_ms: float | None = None
    max_loop_lag_ms: float | None = None
    connected: int = 0
    reconnects: int = 0
    errors: int = 0
    overflow: int = 0
    queue_samples: int = 0
    fed_fraction: float | None = None  # share of queue samples with bytes waiting for the client
    queued_median_kib: float | None = None  # bytes waiting for the client, all connections
    saturated: str = ""  # "client" | "feeder" | "both" | "neither"
    lower_bound: bool = False
    verdict: str = ""
    # Its CPU was >= 90 % busy but the client had less than 90 % of it: other processes
    # took the rest, so msgs/s understates what the client takes on a core of its own.
    contended: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class CaseResult:
    """The repeats of one case summarised: median with min and max of the rate."""

    case: str
    client: str
    mode: str
    offered: int
    connections: int
    payload: int
    repeats: int  # successful repeats
    failed: int
    msgs_per_s_median: float | None = None
    msgs_per_s_min: float | None = None
    msgs_per_s_max: float | None = None
    client_cpu_median: float | None = None
    feeder_cpu_median: float | None = None
    client_core_busy_median: float | None = None
    feeder_core_busy_median: float | None = None
    msgs_per_client_cpu_s_median: float | None = None
    gc_collections_median: float | None = None
    gc_pause_max_ms: float | None = None  # the longest over every repeat
    max_loop_lag_ms: float | None = None  # the longest over every repeat
    overflow: int = 0
    fed_fraction_min: float | None = None
    saturated: str = ""  # the most frequent side over the repeats
    lower_bound: bool = False  # some repeat was feeder-bound or its arrays overflowed
    verdict: str = ""  # the repeats' verdict, or each verdict with its count when they differ
    contended: int = 0  # repeats in which other processes took part of the client's CPU

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


#: Columns of client.csv: one row per case (the repeats are in client.json).
CASE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CaseResult))


@dataclass(frozen=True)
class ClientRun:
    """What ``client.json`` holds, read back.

    ``options`` are the run's resolved options (connections, payload, pinning…);
    ``target`` is the target as judged when the run was stored (the keys of
    :func:`pushbench.bench.client.evaluate_target`).
    """

    options: dict[str, Any]
    target: dict[str, Any]
    cases: list[CaseResult]
    samples: list[Sample]
    #: Every target judged (WebSocket, SSE, long poll: :data:`pushbench.bench.client.TARGETS`);
    #: runs stored before there were several hold ``[target]``.
    targets: list[dict[str, Any]] = field(default_factory=list)


def write_client_results(
    run_dir: Path,
    options: dict[str, Any],
    target: dict[str, Any],
    cases: Sequence[CaseResult],
    samples: Sequence[Sample],
    targets: Sequence[dict[str, Any]] = (),
) -> tuple[Path, Path]:
    """Store a run's results: ``client.json`` (all) and ``client.csv`` (one row per
    case), each atomically."""
    json_path = run_dir / "client.json"
    csv_path = run_dir / "client.csv"
    atomic_write_json(
        json_path,
        {
            "schema": SCHEMA,
            "options": options,
            "target": target,
            "targets": list(targets) or [target],
            "cases": [asdict(s) for s in cases],
            "samples": [asdict(s) for s in samples],
        },
    )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CASE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for summary in cases:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(summary).items()})
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path


def load_client_results(run_dir: Path | str) -> ClientRun:
    """Read a run's ``client.json`` back."""
    data = read_json(Path(run_dir) / "client.json")
    return ClientRun(
        options=data["options"],
        target=data["target"],
        targets=data.get("targets") or [data["target"]],
        cases=[CaseResult.from_dict(c) for c in data["cases"]],
        samples=[Sample.from_dict(s) for s in data.get("samples", [])],
    )
