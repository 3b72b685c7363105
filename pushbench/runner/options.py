"""What a run is given and what it gives back, and the timing every cell shares.

:class:`RunOptions` (from the CLI or a test), :class:`RunResult` (the run
directory, status and rows), :class:`CellFailed` (one cell could not be
measured; the run goes on), and the constants of a cell's timeline that the
server start, the measurement and the worker spec must agree on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushbench.procs import Started
from pushbench.settings import Settings

from .progress import ProgressMode

__all__ = [
    "DRAIN_CAP_S",
    "DRAIN_S",
    "READY_TIMEOUT_S",
    "TICKER_DELAY_S",
    "TOPIC",
    "WORKER_SLACK_S",
    "CellFailed",
    "RunOptions",
    "RunResult",
]

TOPIC = "bench"
TICKER_DELAY_S = 0.2  # between POST /control/ticker and the first message
DRAIN_S = 0.5  # after the last receipt (+ a short poll's interval): the rest is lost (.drain)
DRAIN_CAP_S = 5.0  # the longest drain after the window (or the quiet bound when longer)
WORKER_SLACK_S = 30.0  # workers run this much past the window; the runner stops them
READY_TIMEOUT_S = 30.0  # for a server or a worker to print its ready line


class CellFailed(RuntimeError):
    """A cell could not be measured (a process crashed, a request failed); the run goes on.
    ``columns``: what was still measured and belongs in the failed row (h27: the
    ``upgrade_status`` a proxy answered)."""

    def __init__(self, reason: str, columns: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.columns: dict[str, Any] = dict(columns or {})


@dataclass
class RunOptions:
    out: Path = Path("results")
    repeats: int | None = None  # overrides every cell's repeats
    only: str | None = None  # substring of the cell id
    #: "live" (a terminal), "lines" (a log: one line per run and every ~10 s) or "off";
    #: True is "live", False "off" (see :mod:`.progress`).
    progress: ProgressMode | bool = True
    #: The command line and settings the CLI read (recorded in metadata.json).
    command: tuple[str, ...] = ()
    settings: Settings = field(default_factory=Settings)
    #: Called with the server process of each cell once it is ready (tests use it).
    on_server_started: Callable[[Started], None] | None = None
    #: h28: an external target's base URL (``--target``): no server is started, every
    #: cell's clients connect there (:mod:`.target`).
    target: str | None = None
    #: Re-measure, once, the repeats that ran while the machine was slow (:mod:`.speed`).
    #: ``pushbench run`` turns it on (``--no-remeasure`` or ``PUSHBENCH_NO_REMEASURE=1``
    #: off); off here, so a run built in code (a test) has exactly its planned rows.
    remeasure_slow: bool = False
    #: A re-measure starts only if the run, that far in, would still end it within this
    #: many seconds (judged by the first measurement's wall time): a wall-clock cap on the
    #: extras, so a run on a stealing host keeps its time budget (``make bench``: 560 s for
    #: the scenario, ~40 s left for the codec pass and the report). None: no cap.
    remeasure_within_s: float | None = None
    #: Measure the kernel's loopback floor at the run's loads before the first cell
    #: (:mod:`.kernel`, a few seconds). ``pushbench run`` turns it on (``--no-kernel-floor``
    #: off); off here, like ``remeasure_slow``.
    kernel_floor: bool = False
    #: The PM QoS CPU latency (µs) the caller holds for the run (``--cpu-latency-us``,
    #: :class:`pushbench.cpuidle.LatencyHold`), recorded in ``metadata.json`` ``cpu_idle``;
    #: None: nothing held.
    cpu_latency_us: int | None = None


@dataclass
class RunResult:
    run_dir: Path
    status: str  # complete / incomplete
    rows: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
