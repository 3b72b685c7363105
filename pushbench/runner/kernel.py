"""The loopback floor of each of a run's loads, measured before its first cell.

:mod:`pushbench.netfloor` measures what the kernel alone charges to send a segment to
each of N connections R times a second and to receive it. The floor depends on the load
(per tick, the sender's wake-up is shared by N sends; at 50 × 200/s on the project's VM a
send cost 9.9 µs, at 100 × 1,000/s 7.2 µs), so the run measures it, before its first cell
and after its last, at the loads its cells
push (:mod:`pushbench.scenario.floorplan` says which, and for how long) — a few
seconds in all, on the server's and a client's core like the cells. Every listed row of
a matching load then carries ``kernel_floor_send_ns`` and ``kernel_floor_recv_ns``, so
its server's and clients' CPU per message can be read against what no code above the
kernel could remove.

One segment per delivery is the floor of WebSocket and SSE; a poll also takes a request
per answer, so its kernel share is larger than one segment's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pushbench import netfloor
from pushbench.procs import Pinning
from pushbench.scenario import Cell
from pushbench.scenario.floorplan import PROBE_S, floor_loads

__all__ = ["annotate", "measure"]


def measure(cells: Sequence[Cell], pinning: Pinning, when: str) -> list[dict[str, Any]]:
    """One :class:`~pushbench.netfloor.KernelFloor` record per load, with ``when`` (``start``
    or ``end`` of the run: ``metadata.json`` ``kernel_floor``); a probe that failed is a
    record with its load, ``when`` and ``error``."""
    out: list[dict[str, Any]] = []
    for connections, rate in floor_loads(cells):
        try:
            floor = netfloor.measure(
                pinning.server[0] if pinning.server else None,
                pinning.clients[0] if pinning.clients else None,
                connections=connections,
                rate=rate,
                seconds=PROBE_S,  # read at call time: a test shortens it
            )
        except (RuntimeError, OSError, ValueError) as exc:
            out.append({"connections": connections, "rate": rate, "when": when, "error": str(exc)})
        else:
            out.append({**floor.as_dict(), "when": when})
    return out


def annotate(rows: Iterable[dict[str, Any]], floors: Sequence[dict[str, Any]]) -> None:
    """Give each row whose (subscribers, rate) was probed its ``kernel_floor_send_ns`` and
    ``kernel_floor_recv_ns``: the mean of that load's probes (the run's start and end)."""
    probes: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for f in floors:
        if "error" not in f and f.get("sent") and f.get("received"):
            probes.setdefault((f["connections"], f["rate"]), []).append(f)
    by_load = {
        load: {k: sum(f[k] for f in fs) / len(fs) for k in ("send_ns", "recv_ns")}
        for load, fs in probes.items()
    }
    for row in rows:
        try:
            load = (int(row["subscribers"]), round(float(row["rate_msgs_per_s"])))
        except (KeyError, TypeError, ValueError):
            continue
        mean = by_load.get(load)
        if mean is not None:
            row["kernel_floor_send_ns"] = round(mean["send_ns"])
            row["kernel_floor_recv_ns"] = round(mean["recv_ns"])
