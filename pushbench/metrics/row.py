"""The flat result row of one cell × repeat: the columns of ``cells.csv`` that metrics fill.

:func:`cell_row` turns the latency summaries, the delivery accounting, the
throughput and the :class:`Overhead` figures into one row whose keys are
:data:`pushbench.schema.cells.COLUMNS`, in order.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pushbench.schema.cells import COLUMNS

from .delivery import Delivery, Throughput
from .latency import LatencySummary

__all__ = ["COLUMNS", "STALL_US", "CellParams", "Overhead", "cell_row", "loop_stalls"]

#: A client loop late this much or more counts as one stall (client_loop_stalls_10ms).
STALL_US = 10_000


class CellParams(Protocol):
    """What a row needs of its cell (:class:`pushbench.scenario.Cell` is one): its own
    columns, and the two figures some ratios divide by. A protocol, so that metrics, a
    layer below the scenario model, does not import it."""

    @property
    def subscribers(self) -> int: ...

    @property
    def duration_s(self) -> float: ...

    def param_columns(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Overhead:
    """Costs measured around the cell (all optional): server and client counters, /proc."""

    server_cpu_s: float | None = None
    server_rss_bytes: int | None = None
    #: server RSS once every connection is up minus before the first one connected
    server_rss_growth_bytes: int | None = None
    #: connections open once all were up (the workers' count): the memory divisor; None:
    #: not known, the configured subscribers then
    conns_open: int | None = None
    client_cpu_s: float | None = None
    bytes_in: int | None = None  # client-side, after the handshakes
    bytes_out: int | None = None
    handshake_bytes_in: int | None = None
    handshake_bytes_out: int | None = None
    bytes_source: str | None = None  # "tcp_info" or "socket"
    connect_p50_us: float | None = None
    requests: int | None = None  # HTTP requests (polling)
    errors: int = 0
    reconnects: int = 0
    client_max_loop_lag_us: float | None = None
    #: late wake-ups ≥ STALL_US of the clients' loop-lag timer, processes summed (None:
    #: no client kept the histogram)
    client_loop_stalls: int | None = None


def _per(total: float | None, n: int | float) -> float | None:
    return None if total is None or not n else total / n


def cell_row(
    cell: CellParams,
    repeat: int,
    *,
    latency: LatencySummary,
    latency_uncorrected: LatencySummary,
    delivery: Delivery,
    throughput: Throughput,
    overhead: Overhead | None = None,
) -> dict[str, Any]:
    """One flat row per cell × repeat with the columns of :data:`COLUMNS`, in order."""
    o = overhead or Overhead()
    conns = cell.subscribers if o.conns_open is None else o.conns_open
    delivered = delivery.total("delivered")
    handshake = (
        None
        if o.handshake_bytes_in is None or o.handshake_bytes_out is None
        else o.handshake_bytes_in + o.handshake_bytes_out
    )
    params = cell.param_columns()
    head = {"scenario": params.pop("scenario"), "cell_id": params.pop("cell_id")}
    row: dict[str, Any] = {
        **head,
        "repeat": repeat,
        **params,
        "lat_count": latency.count,
        "lat_p50_us": latency.p50_us,
        "lat_p90_us": latency.p90_us,
        "lat_p99_us": latency.p99_us,
        "lat_p999_us": latency.p999_us,
        "lat_max_us": latency.max_us,
        "lat_mean_us": latency.mean_us,
        "lat_clamped": latency.below_zero + latency.above_max,
        "ulat_p50_us": latency_uncorrected.p50_us,
        "ulat_p99_us": latency_uncorrected.p99_us,
        "ulat_max_us": latency_uncorrected.max_us,
        "msgs_expected": delivery.expected,
        "msgs_delivered": delivered,
        "msgs_lost": delivery.total("lost"),
        "msgs_duplicated": delivery.total("duplicated"),
        "msgs_out_of_order": delivery.total("out_of_order"),
        "delivered_fraction": delivery.delivered_fraction,
        "offered_msgs_per_s": throughput.offered_msgs_per_s,
        "offered_deliveries_per_s": throughput.offered_deliveries_per_s,
        "delivered_msgs_per_s": throughput.delivered_msgs_per_s,
        "server_cpu_s": o.server_cpu_s,
        "server_cpu_us_per_msg": _per(
            None if o.server_cpu_s is None else o.server_cpu_s * 1e6, delivered
        ),
        "server_rss_bytes": o.server_rss_bytes,
        "server_rss_bytes_per_conn": _per(o.server_rss_bytes, conns),
        "server_rss_growth_bytes_per_conn": _per(o.server_rss_growth_bytes, conns),
        "server_cpu_fraction": _per(o.server_cpu_s, cell.duration_s),
        "client_cpu_s": o.client_cpu_s,
        "delivered_msgs_per_client_cpu_s": (delivered / o.client_cpu_s if o.client_cpu_s else None),
        "bytes_in_per_msg": _per(o.bytes_in, delivered),
        "bytes_out_per_msg": _per(o.bytes_out, delivered),
        "handshake_bytes_per_conn": _per(handshake, cell.subscribers),
        "bytes_source": o.bytes_source,
        "connect_p50_us": o.connect_p50_us,
        "requests_per_msg": _per(o.requests, delivered),
        "errors": o.errors,
        "reconnects": o.reconnects,
        "client_max_loop_lag_us": o.client_max_loop_lag_us,
        "client_loop_stalls_10ms": o.client_loop_stalls,
    }
    assert list(row) == list(COLUMNS), "cell_row and COLUMNS disagree"
    return row


def loop_stalls(hists: Iterable[Mapping[str, Any] | None], at_us: int = STALL_US) -> int | None:
    """How many loop-lag samples were ``at_us`` or later, over the client processes'
    histograms (``{"edges_us": […], "counts": […]}``: ``counts[j]`` the lags from
    ``edges_us[j - 1]`` up to, not including, ``edges_us[j]``; the last one, the rest);
    None when no process kept one. ``at_us`` must be one of the edges."""
    total: int | None = None
    for hist in hists:
        if not hist:
            continue
        edges, counts = list(hist["edges_us"]), list(hist["counts"])
        k = bisect.bisect_left(edges, at_us)
        if k >= len(edges) or edges[k] != at_us or len(counts) != len(edges) + 1:
            raise ValueError(f"a loop-lag histogram without an edge at {at_us} µs: {hist}")
        total = (total or 0) + int(sum(counts[k + 1 :]))
    return total
