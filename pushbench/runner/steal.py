"""Time the hypervisor took from the run's cores during a repeat's window (steal time).

Why: on a shared host a vCPU that is descheduled neither runs nor is charged CPU time, so
a repeat that lands in such a stretch shows no extra CPU per message, yet every wake-up
waits for the vCPU to come back and its latency grows. Seen on the project's VM (an AMD
host, 42 repeats of the everyday cells, /proc/stat sampled every 0.1 s): the repeats
whose p50 was ≥ 1.19× their cell's median had 76–173 ms of steal per second summed over
the two cores, the others mostly under 40; steal tracked p50 (correlation 0.58) about as
well as CPU per message did (0.62), and found outliers it missed (p50 1.25×, 1.29×, 1.36×
at CPU 0.99–1.13×). Linux counts it per CPU in ``/proc/stat`` (the eighth figure, in clock
ticks); :func:`read` takes it for the run's pinned cores at the window's start and end, and
:func:`fraction_max` is the largest share of the window taken from any one of them
(``cells.csv`` ``steal_fraction_max``). :mod:`.speed` re-measures a repeat with
:data:`pushbench.scenario.model.STEAL_AT` or more, as it does a costly one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pushbench.cputime import PROC_STAT, cpu_ticks

__all__ = ["PROC_STAT", "fraction_max", "read"]

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
_STEAL = 7  # of cputime.cpu_ticks' fields: user nice system idle iowait irq softirq steal


def read(cpus: Iterable[int], path: Path = PROC_STAT) -> dict[int, int] | None:
    """Steal ticks so far of each of ``cpus`` (those the file lists); None where there is
    no such file or it cannot be read (not Linux)."""
    ticks = cpu_ticks(cpus, path)
    return None if ticks is None else {c: v[_STEAL] for c, v in ticks.items()}


def fraction_max(
    before: Mapping[int, int] | None, after: Mapping[int, int] | None, seconds: float
) -> float | None:
    """The largest share of ``seconds`` the hypervisor took from one of the CPUs read
    in both (0.05: 50 ms a second); None without readings or time between them."""
    if not before or not after or seconds <= 0:
        return None
    shares = [(after[c] - before[c]) * _TICK_S / seconds for c in before if c in after]
    return max(shares) if shares else None
