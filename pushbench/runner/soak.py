"""What the runner reads of a churn cell (the soak, issue 17 item 6).

:class:`SoakProbe` samples the server's RSS (:func:`pushbench.procs.sample`, as the
memory probe reads it) and its open file descriptors (``/proc/PID/fd``) through the
measured window, :data:`SAMPLES` times spread over it (:meth:`SoakProbe.poll`, called
from the runner's wait loop), and at the end turns the samples, the workers' reconnect
counts and times, their receipts against the ticker's seq range and the server's log
into the :data:`SOAK_COLUMNS` of the row (arithmetic: :mod:`pushbench.metrics.soak`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushbench import metrics
from pushbench.churn import Churn
from pushbench.procs import sample
from pushbench.schema import soak as schema_soak
from pushbench.schema.worker import WorkerResult

__all__ = ["SAMPLES", "SOAK_COLUMNS", "SoakProbe", "SoakSample", "open_fds", "ticker_range"]

#: Samples over the window (at most one each :data:`MIN_STEP_S`).
SAMPLES = 120
MIN_STEP_S = 0.1
#: The cells.csv columns :meth:`SoakProbe.columns` fills (:mod:`pushbench.schema.soak`).
SOAK_COLUMNS: tuple[str, ...] = tuple(c.name for c in schema_soak.SOAK_COLUMNS)


def open_fds(pid: int) -> int | None:
    """How many file descriptors ``pid`` has open (None: gone or not readable)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def ticker_range(ticker: Mapping[str, Any]) -> tuple[int, int] | None:
    """The hub's seqs of every message the ticker published (``/stats``' ticker record):
    ``first_seq..last_seq``; None when it reports no such range (an external stack)."""
    first, last = int(ticker.get("first_seq") or 0), int(ticker.get("last_seq") or 0)
    return (first, last) if first and last >= first else None


@dataclass(frozen=True)
class SoakSample:
    """One reading of the server: when (CLOCK_MONOTONIC ns), its RSS and open fds."""

    t_ns: int
    rss_bytes: int
    fds: int


@dataclass
class SoakProbe:
    """The soak readings of one churn cell's server (pid ``pid``, log ``log_path``)."""

    pid: int
    churn: Churn
    log_path: Path | None
    step_s: float = 1.0
    samples: list[SoakSample] = field(default_factory=list)
    _next: float = 0.0

    @classmethod
    def for_window(
        cls, pid: int, churn: Churn, log_path: Path | None, duration_s: float
    ) -> SoakProbe:
        """A probe sampling :data:`SAMPLES` times over a window of ``duration_s``."""
        return cls(pid, churn, log_path, max(MIN_STEP_S, duration_s / SAMPLES))

    def poll(self) -> None:
        """Take a sample when one is due (the runner's wait loop calls this often)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.step_s
        s, fds = sample(self.pid), open_fds(self.pid)
        if s is not None and fds is not None:
            self.samples.append(SoakSample(s.at_ns, s.rss_bytes, fds))

    def log_errors(self) -> int | None:
        if self.log_path is None or not self.log_path.exists():
            return None
        return metrics.count_error_lines(self.log_path.read_text(errors="replace"))

    def columns(
        self,
        results: Sequence[WorkerResult],
        receipts: metrics.Receipts,
        ticker: Mapping[str, Any],
        subscribers: int,
    ) -> dict[str, Any]:
        """The :data:`SOAK_COLUMNS` of the row."""
        out: dict[str, Any] = dict.fromkeys(SOAK_COLUMNS)
        out["soak_churn"] = self.churn.describe()
        out["soak_reconnects"] = sum(r.total("reconnects") for r in results)
        seqs = ticker_range(ticker)
        if seqs is not None:
            check = metrics.resume_check(
                receipts.conn,
                receipts.seq,
                first_seq=seqs[0],
                last_seq=seqs[1],
                subscribers=subscribers,
            )
            out.update(
                soak_expected_msgs=check.expected,
                soak_lost=check.lost,
                soak_duplicates=check.duplicated,
            )
        times = [
            int(ns) for r in results for c in r.per_connection for ns in c.get("reconnect_ns", ())
        ]
        q = metrics.quantiles_ms(times)
        if q is not None:
            out.update(
                soak_reconnect_p50_ms=q[0], soak_reconnect_p99_ms=q[1], soak_reconnect_max_ms=q[2]
            )
        t = [s.t_ns for s in self.samples]
        rss_slope = metrics.slope_per_min(t, [s.rss_bytes / 1024 for s in self.samples])
        out.update(
            soak_samples=len(self.samples),
            soak_rss_end_bytes=self.samples[-1].rss_bytes if self.samples else None,
            rss_slope_kib_per_min=rss_slope,
            soak_fds_end=self.samples[-1].fds if self.samples else None,
            fd_slope_per_min=metrics.slope_per_min(t, [s.fds for s in self.samples]),
            log_errors=self.log_errors(),
        )
        return out
