"""The records of an abuse run (``[abuse]`` in a scenario): one :class:`ProbeRecord` per
stack × probe, written by the runner (:mod:`pushbench.runner.abuse`) as ``abuse.json``
and ``abuse.csv`` in the run directory, read by the report's "Robustness" table and the
decision guide (:mod:`pushbench.report.robustness`), which never re-run anything.

A probe's own findings are an :class:`Outcome` (each probe fills the fields that apply
to it, the rest stay None/empty); the runner adds what it measures around every probe:
the server's RSS before, at its peak while the probe ran and after it, ``/health``
latency sampled while the probe ran, and the bytes the server wrote to its log.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pushbench.results import atomic_write_json, atomic_write_text, read_json

__all__ = [
    "ABUSE_CSV",
    "ABUSE_JSON",
    "ABUSE_SCHEMA_VERSION",
    "Health",
    "Outcome",
    "ProbeRecord",
    "read_records",
    "write_records",
]

ABUSE_JSON = "abuse.json"
ABUSE_CSV = "abuse.csv"
ABUSE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Outcome:
    """What one probe found (fields that do not apply to it stay None or empty).

    ``drop_s``: median seconds until the server closed a stalled request head (slowloris;
    None: none was dropped within the probe's window); ``held``: attack connections the
    server still held open when the probe ended; ``answer``: what the server answered
    (status codes by case, e.g. ``control/forged=401``); ``close_code``: the first Close
    frame's code a dropped slow consumer read (None: TCP ended without one);
    ``tcp_close_s``: seconds from the drop until the server ended TCP (None: still open);
    ``bytes_per_conn``: RSS growth ÷ connections open (idle); ``kernel_bytes_per_conn``:
    the server's socket buffers ÷ connections (``ss -tm``; None without ``ss``)."""

    drop_s: float | None = None
    held: int | None = None
    answer: str = ""
    close_code: int | None = None
    tcp_close_s: float | None = None
    bytes_per_conn: float | None = None
    kernel_bytes_per_conn: float | None = None


@dataclass(frozen=True)
class Health:
    """``GET /health`` sampled while a probe ran: latency percentiles (ms, nearest rank)
    over ``n`` answered requests; ``errors``: requests unanswered within the timeout or
    refused."""

    n: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @classmethod
    def of(cls, latencies_s: list[float], errors: int) -> Health:
        if not latencies_s:
            return cls(0, errors)
        ms = sorted(x * 1000 for x in latencies_s)

        def rank(q: float) -> float:
            return ms[min(len(ms) - 1, max(0, int(q * len(ms) + 0.999999) - 1))]

        return cls(len(ms), errors, rank(0.5), rank(0.99), ms[-1])


@dataclass(frozen=True)
class ProbeRecord:
    """One probe against one stack's freshly started server (see the module text)."""

    stack: str
    probe: str
    size: int  # connections, or bytes for the oversized header
    status: str  # "ok" or "failed"
    reason: str = ""
    seconds: float = 0.0
    rss_before_bytes: int | None = None
    rss_under_bytes: int | None = None
    rss_after_bytes: int | None = None
    log_bytes: int | None = None
    health: Health = field(default_factory=Health)
    outcome: Outcome = field(default_factory=Outcome)

    def flat(self) -> dict[str, Any]:
        """One CSV row: the nested records' fields prefixed (``health_p99_ms``)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)[:-2]}
        row.update({f"health_{k}": v for k, v in asdict(self.health).items()})
        row.update(asdict(self.outcome))
        return row

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeRecord:
        own = {k: v for k, v in data.items() if k not in ("health", "outcome")}
        return cls(
            **own,
            health=Health(**data.get("health", {})),
            outcome=Outcome(**data.get("outcome", {})),
        )


def write_records(run_dir: Path, records: list[ProbeRecord]) -> None:
    """``abuse.json`` (versioned) and ``abuse.csv``, each written atomically."""
    atomic_write_json(
        run_dir / ABUSE_JSON,
        {"schema": ABUSE_SCHEMA_VERSION, "records": [asdict(r) for r in records]},
    )
    rows = [r.flat() for r in records]
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(run_dir / ABUSE_CSV, out.getvalue())


def read_records(run_dir: Path) -> list[ProbeRecord]:
    """The run's abuse records; [] when it ran no ``[abuse]``."""
    path = run_dir / ABUSE_JSON
    if not path.exists():
        return []
    data = read_json(path)
    return [ProbeRecord.from_dict(r) for r in data.get("records", [])]
