"""The machine's speed around each repeat: a fixed piece of CPU work timed on every core.

Why: on a shared virtual machine the host slows the guest down for seconds at a time.
Measured on the project's 2-vCPU VM (a pure-Python loop timed every 250 ms for 90 s,
thread CPU time, nothing else running): most probes within ±10 % of the median, then
stretches of 2–20 s where the same loop takes 1.3–1.6× as long, with no steal time in
``/proc/stat``. A repeat that lands in such a stretch measures everything slower —
server CPU per message, the publisher's lateness and the latency together (seen in a
``make bench`` run: the one repeat of three with p50 +43 % also had +27 % server CPU
per message and +70 % publish lag). That is the machine, not the stack, and it is what
made the within-run spread of p50 miss ±10 % in a third of the cells.

So the runner times :func:`work` on each of the run's cores before and after every
repeat (:func:`probe`: the slower core, each core's fastest of :data:`TRIES`, on CPU
time so a preemption does not count); the repeat's figure is the slower of the two.
Never while a repeat runs: sampling it then, even at idle priority every quarter
second, doubled the p99 latency of the cells (two ``make bench`` runs: p99 ~1,000–1,750
µs where runs without it read ~450–700), the walk evicting the server's and clients'
caches. So a slow stretch wholly inside a repeat goes unseen (seen: server CPU per
message ×1.6 with both ends at ×1.04). :func:`slow_repeats` compares a repeat's probe
with the run's median probe: a repeat whose machine was :data:`SLOW` × slower or more
is re-measured once at the end of the run (a new repeat number; nothing is
overwritten) and its row becomes status ``left-out`` with the reason, so medians,
spreads and verdicts use the re-measured repeat and the report still lists the one
left out. A probe costs ~1 ms per core, between repeats.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "SLOW",
    "TRIES",
    "WORK_LOOPS",
    "Slow",
    "median_probe",
    "probe",
    "rerun_limit",
    "slow_repeats",
    "work",
]

WORK_LOOPS = 5_000  # ~0.2 ms of CPython on the project's VM
CELLS = 150_000  # objects of the memory walk (~15 MB)
WALK = 1_500  # reads of it per work()
TRIES = 3
#: A repeat whose machine was this much slower than the run's median probe is re-measured.
SLOW = 1.25
#: Re-measure at most this share of the run's repeats, the slowest first: a tenth keeps
#: ``make bench`` within its 10 minutes (a re-measure costs a repeat, ~8 s there), and a
#: machine slow all along is the run's machine (its slowdowns stay in the rows).
MAX_SHARE = 0.10


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


@dataclass(frozen=True)
class Slow:
    """A repeat measured while the machine was slow: which row, and by how much."""

    index: int  # into the rows given to :func:`slow_repeats`
    slowdown: float  # its probe over the run's median probe


def median_probe(probes: Sequence[float | None]) -> float | None:
    """The run's usual machine: the median of the probes taken (``None``: no probe)."""
    known = [p for p in probes if p]
    return statistics.median(known) if known else None


def slow_repeats(probes: Sequence[float | None], limit: int) -> list[Slow]:
    """The repeats to re-measure: a probe ≥ :data:`SLOW` × the median of all probes,
    slowest first, at most ``limit``. ``None``: a row without a probe (skipped, failed).
    With fewer than three probes there is no usual machine to compare with."""
    median = median_probe(probes)
    if median is None or sum(1 for p in probes if p) < 3 or limit <= 0:
        return []
    slow = [Slow(i, p / median) for i, p in enumerate(probes) if p and p >= SLOW * median]
    slow.sort(key=lambda s: -s.slowdown)
    return slow[:limit]


def rerun_limit(planned: int) -> int:
    """How many repeats a run of ``planned`` may re-measure (:data:`MAX_SHARE`, at least 1)."""
    return max(1, int(planned * MAX_SHARE))
