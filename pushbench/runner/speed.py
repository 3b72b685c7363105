"""The machine's speed during each repeat, and which repeats to measure again.

Why: on a shared virtual machine the host slows the guest down for seconds at a time.
Measured on the project's 2-vCPU VM (a pure-Python loop timed every 250 ms for 90 s,
thread CPU time, nothing else running): most probes within ±10 % of the median, then
stretches of 2–20 s where the same loop takes 1.3–1.6× as long, with no steal time in
``/proc/stat``. A repeat that lands in such a stretch measures everything slower —
server CPU per message, the publisher's lateness and the latency together. That is the
machine, not the stack, and it is what made the within-run spread of p50 miss ±10 % in
a third of the cells.

How a slow repeat is seen: by what the repeat itself cost. Every repeat of a cell does
the same work, so its server CPU per message and its clients' CPU per message should
agree across repeats; a repeat whose either figure is :data:`SLOW` × the cell's median
or more ran on a slower machine (:func:`cost_slowdowns`). Over four ``make bench`` runs
(247 repeats) that figure tracked the repeat's p50 (correlation 0.70 for the server's,
and it flags 15 of the 19 repeats whose p50 was > 1.10× their cell's median), where a
probe timed before and after the repeat did not (0.16): a slow stretch wholly inside a
repeat is invisible at its ends, and sampling a probe *during* the repeat, even at idle
priority every quarter second, doubled the cells' p99 (its memory walk evicting the
server's and clients' caches).

A slow stretch can also cost no CPU at all: a vCPU the hypervisor deschedules is charged
nothing, yet every wake-up waits for it. :mod:`.steal` measures that share of each repeat's
window (``steal_fraction_max``), and :func:`judged` takes the more severe of the two: a repeat
with :data:`STEAL_AT` or more of a core stolen is re-measured as a costly one is.

The probe (:func:`probe`: a fixed piece of interpreter work timed on every core before
and after each repeat, ~1 ms per core, on CPU time) stays in every row as context
(``speed_probe_ns``, ``machine_slowdown``); it decides nothing.

:func:`slow_repeats` picks the repeats to re-measure, costliest first, at most
:func:`rerun_limit`: each is measured once more at the end of the run (a new repeat
number; nothing is overwritten) and the costlier of the two becomes status ``left-out``
with the reason, so medians, spreads and verdicts use the other and the report still
lists the one left out.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import statistics
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pushbench.scenario.model import REMEASURE_AT, STEAL_AT, remeasure_limit

__all__ = [
    "COSTS",
    "SLOW",
    "STEAL",
    "STEAL_AT",
    "TRIES",
    "WORK_LOOPS",
    "Cost",
    "Medians",
    "Slow",
    "cost_medians",
    "cost_of",
    "cost_slowdowns",
    "judged",
    "median_probe",
    "probe",
    "rerun_limit",
    "slow_repeats",
    "steal_of",
    "work",
]

WORK_LOOPS = 5_000  # ~0.2 ms of CPython on the project's VM
CELLS = 150_000  # objects of the memory walk (~15 MB)
WALK = 1_500  # reads of it per work()
TRIES = 3
SLOW = REMEASURE_AT  # a repeat this many times its cell's usual cost is re-measured


def work(loops: int = WORK_LOOPS) -> int:
    """The fixed workload, what the servers run: integer arithmetic in the interpreter
    (in the core's own caches), then :data:`WALK` reads of objects scattered over ~15 MB
    (past the core's L2, into the cache and memory the host shares with other guests:
    the part a neighbour slows most — seen: ×2 while the arithmetic was ×1.3)."""
    total = 0
    for i in range(loops):
        total += i * i
    cells = _cells()
    for i in range(0, len(cells), len(cells) // WALK):
        total += cells[i][0]
    return total


_CELLS: list[list[int]] = []


def _cells() -> list[list[int]]:
    """The scattered objects :func:`work` reads, made once per process (~0.1 s): small
    lists allocated in a shuffled order, so consecutive reads land far apart."""
    if not _CELLS:
        order = list(range(CELLS))
        random.Random(0).shuffle(order)
        made = [[i] for i in order]
        made.sort(key=lambda cell: cell[0])  # index order, allocation order shuffled
        _CELLS.extend(made)
    return _CELLS


def _on_core(core: int | None, tries: int, out: list[int]) -> None:
    if core is not None:
        with contextlib.suppress(OSError):  # not allowed there: measure where we are
            os.sched_setaffinity(0, {core})  # this thread only (Linux: pid 0 is the caller)
    best = None
    for _ in range(tries):
        t0 = time.thread_time_ns()
        work()
        spent = time.thread_time_ns() - t0
        best = spent if best is None else min(best, spent)
    out.append(best or 0)


def probe(cores: Iterable[int], tries: int = TRIES) -> int:
    """ns of thread CPU time :func:`work` took on the slowest of ``cores`` (each core's
    fastest of ``tries``); without pinning (no such core) on whatever core runs it."""
    worst = 0
    for core in dict.fromkeys(cores):
        out: list[int] = []
        thread = threading.Thread(target=_on_core, args=(core, tries, out), daemon=True)
        thread.start()
        thread.join()
        worst = max([worst, *out])
    return worst


#: What a repeat cost, per message: (column of cells.csv, name in a reason, per message).
COSTS = (
    ("server_cpu_us_per_msg", "server CPU per message", False),
    ("delivered_msgs_per_client_cpu_s", "client CPU per message", True),
)


def cost_of(row: Mapping[str, Any], column: str, inverse: bool) -> float | None:
    """A row's cost figure (``inverse``: the column is messages per CPU second);
    ``None`` when the row has none (no messages, a server not ours, a failed run)."""
    value = row.get(column)
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return 1 / value if inverse else float(value)


@dataclass(frozen=True)
class Cost:
    """How much slower than usual the machine was during a repeat, and by which figure:
    a CPU figure over its cell's median (``limit`` :data:`SLOW`), or the share of a core
    the hypervisor took (``what`` :data:`STEAL`, ``limit`` :data:`STEAL_AT`)."""

    slowdown: float  # the figure over the cell's median of it; for STEAL the share taken
    what: str  # "server CPU per message", "client CPU per message" or STEAL
    limit: float = SLOW  # at or above it the repeat is re-measured

    @property
    def severity(self) -> float:
        """The figure over its limit: ≥ 1 is re-measured; what ranks two repeats."""
        return self.slowdown / self.limit

    def reason(self) -> str:
        if self.what == STEAL:
            return (
                f"the hypervisor took {self.slowdown:.1%} of a core during it (steal time: "
                "the machine was slower)"
            )
        return (
            f"{self.what} {self.slowdown:.2f}× the cell's median (the machine was slower during it)"
        )


#: Each cell's median of each :data:`COSTS` figure: (cell_id, column) → median.
Medians = dict[tuple[str, str], float]


def cost_medians(rows: Sequence[Mapping[str, Any]]) -> Medians:
    """Each cell's median of each :data:`COSTS` figure over its ``rows`` with status ok
    (a figure with fewer than two repeats to take a median of has none)."""
    by_cell: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("status") == "ok":
            by_cell.setdefault(str(row["cell_id"]), []).append(row)
    medians: Medians = {}
    for cell_id, same in by_cell.items():
        for column, _, inverse in COSTS:
            known = [c for r in same if (c := cost_of(r, column, inverse)) is not None]
            if len(known) >= 2:
                medians[cell_id, column] = statistics.median(known)
    return medians


def cost_slowdowns(
    rows: Sequence[Mapping[str, Any]], medians: Medians | None = None
) -> list[Cost | None]:
    """For each row, the larger of its :data:`COSTS` over its cell's median of that figure
    (``medians``, default :func:`cost_medians` of ``rows``) — ``None`` without a figure or
    a median to compare it with."""
    if medians is None:
        medians = cost_medians(rows)
    found: list[Cost | None] = []
    for row in rows:
        worst: Cost | None = None
        for column, what, inverse in COSTS:
            median = medians.get((str(row["cell_id"]), column))
            cost = cost_of(row, column, inverse)
            if median and cost is not None and (worst is None or cost / median > worst.slowdown):
                worst = Cost(cost / median, what)
        found.append(worst)
    return found


STEAL = "steal time"


def steal_of(row: Mapping[str, Any]) -> Cost | None:
    """A row's ``steal_fraction_max`` as a :class:`Cost` (None without one)."""
    value = row.get("steal_fraction_max")
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return Cost(float(value), STEAL, STEAL_AT)


def judged(rows: Sequence[Mapping[str, Any]], medians: Medians | None = None) -> list[Cost | None]:
    """For each row, the more severe of its CPU cost (:func:`cost_slowdowns`) and its
    steal time (:func:`steal_of`) — what decides whether it is re-measured."""
    out: list[Cost | None] = []
    for row, cost in zip(rows, cost_slowdowns(rows, medians), strict=True):
        found = [c for c in (cost, steal_of(row)) if c is not None]
        out.append(max(found, key=lambda c: c.severity) if found else None)
    return out


@dataclass(frozen=True)
class Slow:
    """A repeat measured while the machine was slow: which row, and by how much."""

    index: int  # into the rows given to :func:`slow_repeats`
    cost: Cost  # what it cost over its cell's usual


def median_probe(probes: Sequence[float | None]) -> float | None:
    """The run's usual machine: the median of the probes taken (``None``: no probe)."""
    known = [p for p in probes if p]
    return statistics.median(known) if known else None


def slow_repeats(costs: Sequence[Cost | None], limit: int) -> list[Slow]:
    """The repeats to re-measure: a cost at or above its limit (:func:`cost_slowdowns`:
    ≥ :data:`SLOW` × its cell's median; :func:`judged`: or steal ≥ :data:`STEAL_AT`), the
    most severe first, at most ``limit``."""
    slow = [Slow(i, c) for i, c in enumerate(costs) if c is not None and c.severity >= 1]
    slow.sort(key=lambda s: -s.cost.severity)
    return slow[: max(limit, 0)]


def rerun_limit(planned: int) -> int:
    """How many repeats a run of ``planned`` may re-measure (the scenario's budget counts
    them: :func:`pushbench.scenario.model.remeasure_limit`)."""
    return remeasure_limit(planned)
