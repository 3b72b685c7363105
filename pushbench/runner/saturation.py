"""The saturation search of a run: after the listed rates, bisect towards the SLO's edge.

Cells with an ``[slo]`` are grouped by everything but the rate; each rate's
point is the median repeat (a failed repeat counts as nothing delivered) of the
delivered fraction and of the p99 over every expected message, the lost ones
infinitely late (``lat_all_p99_us``: more than 1 % lost fails the SLO however
fast the rest arrived),
:func:`pushbench.metrics.saturation_search` proposes the next rate, and up to
``probes`` extra rates are measured (rows marked ``probe``). The group's row
of ``saturation.csv`` says which side (server or client) had saturated at the
first failing rate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pushbench import metrics
from pushbench.scenario import Cell

from .options import RunOptions
from .progress import Progress
from .window import HARNESS_BOUND_FRACTION

__all__ = ["SERVER_SATURATED_FRACTION", "saturated_side", "search", "slo_groups"]

SERVER_SATURATED_FRACTION = 0.9  # server CPU over the window, one core = 1.0


def slo_groups(runs: Sequence[tuple[Cell, int]]) -> dict[Cell, list[Cell]]:
    """Cells with an ``[slo]``, grouped by everything but the rate (key: rate 0)."""
    groups: dict[Cell, list[Cell]] = {}
    for cell, repeat in runs:
        if cell.slo is not None and repeat == 0:
            groups.setdefault(cell.with_rate(0.0), []).append(cell)
    return groups


def _rate_points(group: Cell, rows: Sequence[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    by_rate: dict[float, list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] == "skipped" or _group_of(row) != group.with_rate(0.0).cell_id:
            continue
        by_rate.setdefault(float(row["rate_msgs_per_s"]), []).append(row)
    return by_rate


def _group_of(row: dict[str, Any]) -> str:
    return str(row.get("_group", ""))


def _slo_p99(row: dict[str, Any]) -> float:
    """The p99 an SLO judges: over every expected message, lost ones as ``inf``
    (``lat_all_p99_us``); ``inf`` for a repeat that measured nothing."""
    if row["status"] != "ok":
        return math.inf
    value = row.get("lat_all_p99_us")
    return math.inf if value is None else float(value)


def _point(rate: float, rows: Sequence[dict[str, Any]]) -> metrics.RatePoint:
    """The median repeat at one rate; a failed repeat counts as nothing delivered."""
    fractions = [
        float(r["delivered_fraction"] or 0.0) if r["status"] == "ok" else 0.0 for r in rows
    ]
    p99s = [_slo_p99(r) for r in rows]
    return metrics.RatePoint(rate, float(np.median(fractions)), float(np.median(p99s)))


def _client_saturated(row: dict[str, Any]) -> bool:
    """A client core ≥ 90 % busy over the window: the figure ``harness_bound`` is made of
    (a row without it, from before it was measured, falls back on the flag)."""
    busy = row.get("client_core_busy_max")
    if busy is None:
        return bool(row.get("harness_bound"))
    return float(busy) >= HARNESS_BOUND_FRACTION


def saturated_side(failing: Sequence[dict[str, Any]]) -> str:
    """Which side had saturated in the ok repeats of a failing rate: ``server`` (its CPU
    ≥ 90 % of a core over the window), ``client`` (a client core ≥ 90 % busy over the
    window), ``both`` or ``neither``."""
    ok = [r for r in failing if r["status"] == "ok"]
    server = any((r["server_cpu_fraction"] or 0) >= SERVER_SATURATED_FRACTION for r in ok)
    client = any(_client_saturated(r) for r in ok)
    return {(True, True): "both", (True, False): "server", (False, True): "client"}.get(
        (server, client), "neither"
    )


def search(
    group: Cell,
    cells: Sequence[Cell],
    rows: list[dict[str, Any]],
    measure: Callable[[Cell, int, bool], dict[str, Any]],
    options: RunOptions,
    progress: Progress,
) -> dict[str, Any]:
    """Bisect between the last rate meeting the SLO and the first failing one."""
    slo = group.slo
    assert slo is not None
    repeats = options.repeats or group.repeats
    search = functools.partial(
        metrics.saturation_search,
        slo_p99_us=slo.p99_ms * 1000,
        min_delivered_fraction=slo.min_delivered_fraction,
    )
    gid = group.with_rate(0.0).cell_id
    for row in rows:  # tag this group's rows (listed rates)
        if any(row["cell_id"] == c.cell_id for c in cells):
            row["_group"] = gid
    probes = 0
    while True:
        by_rate = _rate_points(group, rows)
        if not by_rate:
            break
        found = search(_point(rate, rs) for rate, rs in by_rate.items())
        if found.next_rate is None or probes >= slo.probes:
            break
        probes += 1
        probe = group.with_rate(found.next_rate)
        progress.total += repeats
        for repeat in range(repeats):
            row = measure(probe, repeat, True)
            row["_group"] = gid
    by_rate = _rate_points(group, rows)
    out: dict[str, Any] = {
        "group_id": gid,
        "stack": group.stack,
        "transport": group.transport,
        "ws_client": group.ws_client,
        "client": group.client,
        "subscribers": group.subscribers,
        "publishers": group.publishers,
        "payload_bytes": group.payload_size,
        "hub": group.hub,
        "slo_p99_us": slo.p99_ms * 1000,
        "min_delivered_fraction": slo.min_delivered_fraction,
        "rates_tried": ";".join(f"{r:g}" for r in sorted(by_rate)),
    }
    if not by_rate:
        return out | {"saturated_side": ""}
    found = search(_point(rate, rs) for rate, rs in by_rate.items())
    side = ""
    if found.lowest_failing is not None:
        side = saturated_side(by_rate[found.lowest_failing])
    return out | {
        "max_rate": found.max_rate,
        "highest_passing": found.highest_passing,
        "lowest_failing": found.lowest_failing,
        "monotonic": found.monotonic,
        "saturated_side": side,
    }
