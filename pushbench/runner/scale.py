"""The runner's part of issue 18 item 2 (100,000 connections on one box): which source
addresses a cell's clients connect from, how long a worker may take to open a paced ramp,
and the scale columns of the row (:data:`pushbench.schema.scale.SCALE_COLUMNS`).

Source addresses. One source/destination address pair has about 28,000 ephemeral ports
(``net.ipv4.ip_local_port_range``), so a cell of more than ``connections_per_source``
subscribers spreads its client connections over 127.0.0.2, 127.0.0.3, … (any address of
127/8 is the loopback interface's without configuration): connection k binds address
k mod N before connecting (:func:`pushbench.clients.tlsconn.bind_source`). Below that the
clients connect as they always did (the kernel picks 127.0.0.1), so existing cells are
unchanged. Only our light asyncio clients bind a source; a cell that would need several
with another client (an aiohttp variant, Locust, the browser) is skipped with the reason.
"""

from __future__ import annotations

import ipaddress
import math
import resource
from collections.abc import Sequence
from typing import Any

import numpy as np

from pushbench import registry
from pushbench.fdlimit import FD_SLACK, SERVER_FDS_PER_CONN, reachable
from pushbench.metrics import Receipts
from pushbench.scenario import Cell
from pushbench.schema.scale import SCALE_COLUMNS
from pushbench.schema.worker import WorkerResult

from .sharedport import node_max_connections, servers_needed

__all__ = [
    "FIRST_SOURCE",
    "SCALE_COLUMN_NAMES",
    "binds_sources",
    "fanout_last_us",
    "later_ramps_s",
    "ramp_timeout_s",
    "scale_columns",
    "server_fds",
    "source_addresses",
    "unsupported",
]

#: The first client source address when a cell needs several (127.0.0.1 stays the server's
#: and every other process's).
FIRST_SOURCE = ipaddress.IPv4Address("127.0.0.2")
#: A later worker's start (interpreter, imports, spec) allowed for in :func:`later_ramps_s`.
LATER_START_S = 10.0
SCALE_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in SCALE_COLUMNS)


def binds_sources(cell: Cell) -> bool:
    """Whether the cell's clients can bind a source address: our light asyncio clients."""
    return cell.client == "python" and not registry.transport(cell.transport).is_variant


def source_addresses(cell: Cell) -> tuple[str, ...]:
    """The source addresses of the cell's client connections: none (the kernel's choice)
    up to ``connections_per_source`` subscribers, else ⌈subscribers ÷ it⌉ of them from
    :data:`FIRST_SOURCE` on."""
    if cell.subscribers <= cell.connections_per_source:
        return ()
    n = math.ceil(cell.subscribers / cell.connections_per_source)
    return tuple(str(FIRST_SOURCE + k) for k in range(n))


def server_fds(cell: Cell) -> int:
    """Descriptors each server process of the cell raises its limit to (its
    ``--max-connections``: :func:`.sharedport.node_max_connections`, h44)."""
    return SERVER_FDS_PER_CONN * node_max_connections(cell) + FD_SLACK


def unsupported(cell: Cell) -> str:
    """Why the cell cannot run here, else ``""``: it needs several source addresses and its
    client cannot bind one, or more descriptors than the server could open (the hard
    open-file limit is lower and the process may not raise it)."""
    if source_addresses(cell) and not binds_sources(cell):
        return (
            f"{cell.subscribers:,} subscribers need several client source addresses "
            f"(over {cell.connections_per_source:,} per address): only the light python "
            f"clients bind one, not {cell.client} / {cell.transport}"
        )
    need = server_fds(cell)
    if not reachable(need):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        per = "each server process" if cell.servers > 1 else "the server"
        return (
            f"{cell.subscribers:,} subscribers need {need:,} open files in {per}, over "
            f"the hard limit of {hard:,} this process may not raise (no CAP_SYS_RESOURCE): "
            f"run under `ulimit -Hn {need}` or more (systemd: LimitNOFILE), or share them "
            f'out: servers = {servers_needed(cell.subscribers)} with via = "direct" '
            f"(processes on one port, SO_REUSEPORT)"
        )
    return ""


def ramp_timeout_s(cell: Cell, connections: int, base_s: float) -> float:
    """How long a worker of ``connections`` may take to say it is ready: ``base_s`` plus
    its paced ramp (``connections ÷ connect_rate``), doubled for a server slower than the
    pace (what it achieved is then the figure, not a timeout)."""
    if cell.connect_rate <= 0:
        return base_s + connections / 1000.0  # unpaced: generous for tens of thousands
    return base_s + 2.0 * connections / cell.connect_rate


def later_ramps_s(cell: Cell, later: Sequence[int]) -> float:
    """How much longer a worker must run (its own ``duration_s`` counts from its start)
    while the workers started after it, of ``later`` connections each, open theirs in turn
    (h44: 100,000 connections over 11 workers at a paced rate take longer than a short
    window); 0 for an unpaced cell (as before)."""
    if cell.connect_rate <= 0:
        return 0.0
    return sum(ramp_timeout_s(cell, conns, LATER_START_S) for conns in later)


def fanout_last_us(receipts: Receipts, start_ns: int, end_ns: int | None) -> tuple[float, float]:
    """(median, max) over the messages scheduled in the window of the corrected latency of
    each one's last receipt (µs); NaNs when there is no receipt."""
    r = receipts.window(start_ns, end_ns)
    if len(r.seq) == 0:
        return math.nan, math.nan
    order = np.argsort(r.seq, kind="stable")
    seq = r.seq[order]
    lat = (r.recv_ns - r.sched_ns)[order]
    starts = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]])
    last = np.maximum.reduceat(lat, starts) / 1e3
    return float(np.median(last)), float(last.max())


def scale_columns(
    cell: Cell,
    results: Sequence[WorkerResult],
    receipts: Receipts,
    window: tuple[int, int | None],
    server_cpu_s: float | None,
    conns_open: int,
) -> dict[str, Any]:
    """The scale columns of a measured row."""
    out: dict[str, Any] = dict.fromkeys(SCALE_COLUMN_NAMES)
    if binds_sources(cell):
        out["client_source_addresses"] = max(1, len(source_addresses(cell)))
    ramps = [r.ramp_ns for r in results if r.ramp_ns is not None]
    if ramps and sum(ramps) > 0:
        out["connect_rate_per_s"] = sum(r.connected for r in results) / (sum(ramps) / 1e9)
    idle = not cell.rate and not cell.publishers
    if idle and server_cpu_s is not None and conns_open > 0:
        out["heartbeat_cpu_ns_per_conn_s"] = server_cpu_s * 1e9 / (conns_open * cell.duration_s)
    p50, peak = fanout_last_us(receipts, *window)
    if not math.isnan(p50):
        out["fanout_last_p50_us"], out["fanout_last_max_us"] = p50, peak
    return out
