"""The scale columns of ``cells.csv`` (issue 18 item 2: 100,000 connections on one box):
how the connections were opened (source addresses, the ramp's achieved rate), what an
idle connection costs the server's CPU, and how long one message takes to reach every
subscriber. Memory per connection is in the ``mem_*`` and ``kernel_sock_*`` columns; the
fan-out latency over subscribers (p50/p99/max) is ``lat_p50_us`` / ``lat_p99_us`` /
``lat_max_us`` of a cell whose ticker publishes a few messages to all of them.

Kept apart from :mod:`pushbench.schema.cells` (which splices them into its
``EXTRA_COLUMNS``); filled by :mod:`pushbench.runner.scale`.
"""

from __future__ import annotations

from .column import CPU_NS, Column

__all__ = ["SCALE_COLUMNS"]

_C = Column

#: The scale columns, in order.
SCALE_COLUMNS: tuple[Column, ...] = (
    _C(
        "client_source_addresses",
        "count",
        "source addresses the asyncio clients' connections were spread over (127.0.0.2 … "
        "127.0.0.(1+N), connection k on address k mod N: each address has its own ~28,000 "
        "ephemeral ports to the server), one per connections_per_source connections once a "
        "cell has more; 1: the kernel's default source (127.0.0.1); empty for other clients",
    ),
    _C(
        "connect_rate_per_s",
        "conns/s",
        "connections established ÷ the time the client workers spent opening them (summed "
        "over the workers, which open theirs one after another; the first worker's pause for "
        "the mid-way memory reading left out); bounded by the scenario's connect_rate when it "
        "paces the ramp; empty when no worker timed its ramp",
    ),
    _C(
        "heartbeat_cpu_ns_per_conn_s",
        "ns/conn-s",
        f"idle cells (rate 0): the server's CPU (user + system, all threads, {CPU_NS}) over the "
        "measured window ÷ (connections open × window seconds): what holding one connection "
        "open for one second costs, heartbeats (WebSocket pings, SSE comments) or re-polls "
        "included; empty for cells that publish",
    ),
    _C(
        "fanout_last_p50_us",
        "µs",
        "per message scheduled in the window, the corrected latency of its LAST receipt over "
        "the subscribers (scheduled send time → the last subscriber's receive time: when the "
        "message had reached everyone who got it), the median over those messages; the "
        "per-subscriber spread is lat_p50_us / lat_p99_us / lat_max_us, losses are in the "
        "delivery columns; empty without receipts",
    ),
    _C(
        "fanout_last_max_us",
        "µs",
        "the largest of those per-message last-receipt latencies (the slowest complete "
        "fan-out of the window); empty without receipts",
    ),
    # -- h44: several server processes on one port (servers = N, via = "direct") --
    _C(
        "server_open_files",
        "count",
        "the open-file limit (soft RLIMIT_NOFILE) each server process reached after raising "
        "its own (the lowest over the processes when servers > 1: each holds one descriptor "
        "per connection, so this bounds its connections; the machine's hard limit unless the "
        "server may raise that); empty when the server does not report it",
    ),
    _C(
        "server_max_connections",
        "count",
        "--max-connections of each server process: the subscribers + 100 (at least 1,000), "
        'or with servers = N on one port (via = "direct", SO_REUSEPORT) each process\'s '
        "share: ⌈subscribers × 1.1 ÷ N⌉ + 100 (the kernel's split is not exact); the "
        "number of processes is the servers column; empty for an external stack",
    ),
)
