"""What the client workers did over the measured window: CPU per core, and per-message ratios.

The runner signals every worker when its measured window starts and ends
(:data:`~pushbench.schema.worker.WINDOW_SIGNALS`, sent as it samples the server's
CPU); each worker reads its CPU and summed counters then
(:class:`~pushbench.schema.worker.WindowMark`). From the two marks:

- **client CPU** over the window only, not the ready-to-SIGTERM time around it
  (idle while the ticker starts, the drain, the stop), so a pegged client reads
  ~100 % rather than the 77–93 % a longer wall made of it;
- **per core**: the workers pinned to one client CPU add up (two at 50 % each are
  one busy core), and the cell is :data:`harness_bound <HARNESS_BOUND_FRACTION>`
  when any client core was ≥ 90 % busy — the saturation search's
  ``saturated_side`` reads the same figure;
- **per-message ratios** (requests, TCP payload bytes in and out, TCP segments in and
  out where the worker kind counts them, messages per client CPU second) with
  numerator and denominator over one span: the counters' change between the marks ÷
  the messages received between them.

A counter a worker kind could not read at a mark (Locust's users and the browser's
pages keep theirs) falls back, for that worker, to the whole run against the whole
run's messages; the window's messages come from the receipts when the mark has none.
A worker without marks (stopped before the window) falls back entirely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pushbench.schema.worker import SEGMENT_TOTALS, WindowMark, WorkerResult

__all__ = [
    "COUNTERS",
    "HARNESS_BOUND_FRACTION",
    "ClientLoad",
    "ClientWorker",
    "Share",
    "WorkerLoad",
    "client_load",
    "worker_load",
]

#: A client core this busy over the window (CPU seconds ÷ wall seconds, summed over the
#: workers pinned to it) flags the cell: the load generator may be the bottleneck.
HARNESS_BOUND_FRACTION = 0.9
#: The counters divided by messages received (cells.csv's ``<counter>_per_msg``).
COUNTERS: tuple[str, ...] = ("requests", "bytes_in", "bytes_out")


@dataclass(frozen=True)
class ClientWorker:
    """One worker process as the window accounting needs it: the CPUs it was pinned to
    (empty: not pinned), its connections, its output record and receive times."""

    cpus: tuple[int, ...]
    connections: int
    result: WorkerResult
    recv_ns: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Share:
    """One worker's count of something and the messages it received over the same span."""

    count: float
    messages: int
    seconds: float


@dataclass(frozen=True)
class WorkerLoad:
    """One worker's CPU over the window (or its run, unmarked) and its counters' shares."""

    cpu_s: float
    seconds: float
    messages: int
    window: bool
    shares: Mapping[str, Share]

    @property
    def busy(self) -> float:
        """CPU seconds per wall second over the span (1.0 = one core busy)."""
        return self.cpu_s / self.seconds if self.seconds > 0 else 0.0


def _delta(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else int(b) - int(a)


def _marked(result: WorkerResult) -> tuple[WindowMark, WindowMark] | None:
    a, b = result.window_start, result.window_end
    if a is None or b is None or b.t_ns <= a.t_ns:
        return None
    return a, b


def worker_load(result: WorkerResult, recv_ns: npt.NDArray[np.int64]) -> WorkerLoad:
    """A worker's load over the runner's window (its two marks), each counter paired with
    the messages received over that counter's span."""
    run_messages = result.total("messages")
    run = {k: Share(result.total(k), run_messages, result.run_s) for k in COUNTERS}
    run.update(
        (k, Share(result.total(k), run_messages, result.run_s))
        for k in SEGMENT_TOTALS
        if k in result.totals  # counted by this worker kind
    )
    marks = _marked(result)
    if marks is None:
        return WorkerLoad(result.cpu_run_s, result.run_s, run_messages, False, run)
    a, b = marks
    seconds = (b.t_ns - a.t_ns) / 1e9
    messages = _delta(a.messages, b.messages)
    if messages is None:  # the kind keeps its counts elsewhere: receipts in the window
        messages = int(np.count_nonzero((recv_ns >= a.t_ns) & (recv_ns < b.t_ns)))
    shares = {}
    for key in run:
        moved = _delta(getattr(a, key), getattr(b, key))
        shares[key] = run[key] if moved is None else Share(moved, messages, seconds)
    return WorkerLoad(b.cpu_s - a.cpu_s, seconds, messages, True, shares)


@dataclass(frozen=True)
class ClientLoad:
    """Every client worker of a cell over the window: what the row's client columns say."""

    workers: tuple[WorkerLoad, ...]
    connections: tuple[int, ...]
    #: client CPU set → CPU seconds per wall second of the workers pinned to it, ÷ its
    #: CPUs (a worker not pinned is a "core" of its own)
    cores: Mapping[str, float]

    @property
    def cpu_s(self) -> float:
        """Client CPU seconds, all workers, over the window."""
        return sum(w.cpu_s for w in self.workers)

    @property
    def process_busy_max(self) -> float | None:
        """The busiest single worker process (CPU ÷ wall over the window)."""
        return max((w.busy for w in self.workers), default=None)

    @property
    def core_busy_max(self) -> float | None:
        """The busiest client core: the workers pinned to it added up."""
        return max(self.cores.values(), default=None)

    @property
    def harness_bound(self) -> bool:
        busiest = self.core_busy_max
        return busiest is not None and busiest >= HARNESS_BOUND_FRACTION

    def per_msg(self, key: str) -> float | None:
        """``key`` (one of :data:`COUNTERS`, or of the segment counters where every worker
        counted them) per message received, both over one span."""
        if any(key not in w.shares for w in self.workers):
            return None
        count = sum(w.shares[key].count for w in self.workers)
        messages = sum(w.shares[key].messages for w in self.workers)
        return count / messages if messages else None

    def msgs_per_cpu_s(self) -> float | None:
        """Messages received per client CPU second, both over the window."""
        cpu = self.cpu_s
        return sum(w.messages for w in self.workers) / cpu if cpu > 0 else None

    def bytes_per_conn_per_s(self, keys: Sequence[str] = ("bytes_in", "bytes_out")) -> float | None:
        """TCP payload bytes both ways (or the sum of other counters ``keys``) per connection
        per second over the window (idle cells' keepalive cost); None when a worker did
        not count one of ``keys``."""
        if any(key not in w.shares for w in self.workers for key in keys):
            return None
        moved = conn_s = 0.0
        for w, conns in zip(self.workers, self.connections, strict=True):
            for key in keys:
                moved += w.shares[key].count
            conn_s += conns * w.shares[keys[0]].seconds
        return moved / conn_s if conn_s > 0 else None


def _core(worker: ClientWorker, k: int) -> str:
    if not worker.cpus:
        return f"worker{k} (not pinned)"
    return "cpu " + ",".join(str(c) for c in worker.cpus)


def client_load(workers: Sequence[ClientWorker]) -> ClientLoad:
    """The cell's client load: each worker over the window, summed per client core."""
    loads = tuple(worker_load(w.result, w.recv_ns) for w in workers)
    cores: dict[str, float] = {}
    for k, (worker, load) in enumerate(zip(workers, loads, strict=True)):
        key = _core(worker, k)
        cores[key] = cores.get(key, 0.0) + load.busy / max(1, len(worker.cpus))
    return ClientLoad(loads, tuple(w.connections for w in workers), cores)
