"""Where a run measures the kernel's loopback floor, and what that adds to its time.

``pushbench run`` measures, before its first cell and again after its last, what the
kernel alone charges to send and receive one small segment (:mod:`pushbench.netfloor`)
at each distinct load (subscribers × rate) of its cells that publish to at most
:data:`MAX_CONNECTIONS` connections on loopback — the most common load first, at most
:data:`MAX_LOADS` — for :data:`PROBE_S` each time. Twice, because a shared host's speed
drifts over a run (the floor at 50 × 200/s moved from 12.3 to 10.3 µs per send between two
runs 30 minutes apart): the cells are read against the mean of the two, and the report
shows both. The floor depends on the load (per tick the sender's wake-up is
shared by every connection's send), so each cell is read against its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .model import Cell

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_LOADS",
    "PROBE_OVERHEAD_S",
    "PROBE_S",
    "floor_loads",
    "floor_seconds",
]

MAX_LOADS = 4
MAX_CONNECTIONS = 1_000  # loads above this (the idle and scale cells) are not probed
PROBE_S = 0.75  # the sender's window at each load, each time
PROBE_OVERHEAD_S = 1.0  # two interpreters started, connections, settle and tail


def floor_loads(cells: Iterable[Cell]) -> list[tuple[int, int]]:
    """The (connections, segments/s each) to probe, the most common first."""
    counts = Counter(
        (c.subscribers, round(c.rate))
        for c in cells
        if c.net == "loopback" and round(c.rate) >= 1 and 1 <= c.subscribers <= MAX_CONNECTIONS
    )
    return [load for load, _ in counts.most_common(MAX_LOADS)]


def floor_seconds(cells: Iterable[Cell]) -> float:
    """What the probes add to a run (before and after), estimated."""
    return 2 * len(floor_loads(cells)) * (PROBE_S + PROBE_OVERHEAD_S)
