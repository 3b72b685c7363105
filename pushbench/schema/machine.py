"""The columns of ``cells.csv`` about the machine under a repeat's figures: how fast it
was around the repeat (:mod:`pushbench.runner.speed`) and the least CPU its kernel
charges per message at the cell's load (:mod:`pushbench.runner.kernel`).

Kept apart from :mod:`pushbench.schema.cells` (which splices :data:`MACHINE_COLUMNS` into
``EXTRA_COLUMNS`` after ``run_index``) so that module stays small.
"""

from __future__ import annotations

from .column import Column

__all__ = ["MACHINE_COLUMNS"]

_C = Column

MACHINE_COLUMNS: tuple[Column, ...] = (
    _C(
        "speed_probe_ns",
        "ns",
        "the machine's speed around this repeat: CPU ns a fixed interpreter loop took on the "
        "slowest of the run's cores, timed before and after the repeat (never during it), "
        "the slower of the two (pushbench.runner.speed)",
    ),
    _C(
        "machine_slowdown",
        "ratio",
        "speed_probe_ns ÷ the median probe of the run's listed repeats (metadata.json "
        "speed.median_probe_ns): 1 is the run's usual machine; context only (a slow "
        "stretch inside a repeat does not show at its ends; cost_slowdown decides)",
    ),
    _C(
        "cost_slowdown",
        "ratio",
        "the larger of this repeat's server CPU per message and client CPU per message, "
        "each over its median among the cell's ok listed repeats (the same work each time: "
        "above 1 the machine was slower); a repeat at ≥ 1.2 was re-measured and the "
        "costlier of the two left out (status left-out); empty without those figures",
    ),
    _C(
        "steal_fraction_max",
        "fraction",
        "the largest share of the window the hypervisor took from one of the run's pinned "
        "cores (steal time, /proc/stat; 0.05: 50 ms a second): a descheduled vCPU is charged "
        "no CPU, yet every wake-up waits for it; a repeat at ≥ 0.05 was re-measured like a "
        "costly one (pushbench.runner.steal); empty where the kernel does not count it",
    ),
    _C(
        "kernel_floor_send_ns",
        "ns",
        "the kernel's loopback floor at this cell's load (subscribers × rate), measured "
        "before the run's first cell: CPU a compiled loop on the server's core spent per "
        "segment sending one 175-byte segment to each connection every tick (its TCP "
        "output and, on loopback, the receiver's TCP input; pushbench.netfloor) — the least "
        "CPU per delivered message any server could spend here; empty for loads not probed",
    ),
    _C(
        "kernel_floor_recv_ns",
        "ns",
        "the same probe's receiving side on a client core: CPU per segment of a compiled "
        "epoll and recv loop (with the ACKs recv sends) — the least CPU per message any "
        "client could spend here; empty for loads not probed",
    ),
)
