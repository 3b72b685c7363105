"""The decision guide's "many idle subscribers" answer at scale (issue 18 items 2 and 4):
what the cells of 10,000 subscribers and more (``scenarios/scale.toml``) say, one line per
stack and transport — the most connections it held, memory per connection (user and kernel),
connect rate, heartbeat CPU per connection-second, the fan-out latency of one message to all
of them — and where it stopped (the first failed or skipped count above, with the reason).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SCALE_FROM", "scale_lines"]

#: Subscribers from which a cell counts as a scale cell.
SCALE_FROM = 10_000


def _median(rows: Any, column: str) -> float | None:
    if column not in rows:
        return None
    values = rows[column].dropna()
    value = float(values.median()) if len(values) else math.nan
    return None if math.isnan(value) else value


def _held(rows: Any) -> list[str]:
    """The figures of the largest count a stack held (its ok rows there)."""
    top = int(rows["subscribers"].max())
    at = rows[rows["subscribers"] == top]
    idle = at[at["rate_msgs_per_s"] == 0]
    fan = at[at["rate_msgs_per_s"] > 0]
    parts = [f"held {top:,}"]
    mem = _median(idle if len(idle) else at, "mem_marginal_bytes_per_conn")
    kern = _median(idle if len(idle) else at, "kernel_sock_bytes_per_conn")
    if mem is not None:
        kernel = "" if kern is None else f" + {kern / 1024:.1f} KiB kernel"
        parts.append(f"{mem / 1024:.1f} KiB user{kernel} per connection")
    if (rate := _median(at, "connect_rate_per_s")) is not None:
        parts.append(f"connected {rate:,.0f}/s")
    if (hb := _median(idle, "heartbeat_cpu_ns_per_conn_s")) is not None:
        parts.append(f"idle CPU {hb:,.0f} ns per connection-second")
    lat = [_median(fan, c) for c in ("lat_p50_us", "lat_p99_us", "lat_max_us")]
    if all(v is not None for v in lat):
        shown = "/".join(f"{v / 1000:.1f}" for v in lat if v is not None)
        parts.append(f"one message to all: p50/p99/max {shown} ms")
    return parts


def scale_lines(cells: Any) -> list[str]:
    """One line per stack × transport with cells of :data:`SCALE_FROM` subscribers or more;
    none when the run has no such cell."""
    if cells is None or "subscribers" not in cells or "status" not in cells:
        return []
    big = cells[cells["subscribers"] >= SCALE_FROM]
    lines = []
    for (stack, transport), rows in big.groupby(["stack", "transport"], sort=True):
        ok = rows[rows["status"] == "ok"]
        parts = _held(ok) if len(ok) else [f"held none of {int(rows['subscribers'].min()):,}"]
        top = int(ok["subscribers"].max()) if len(ok) else 0
        stopped = rows[(rows["status"] != "ok") & (rows["subscribers"] > top)]
        if len(stopped):
            first = stopped.sort_values("subscribers").iloc[0]
            why = str(first.get("reason", "") or "")[:200]
            parts.append(f"stopped at {int(first['subscribers']):,} ({first['status']}: {why})")
        lines.append(f"At scale, {stack} {transport}: " + "; ".join(parts) + ".")
    return lines
