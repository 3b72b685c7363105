"""The scale-out columns of ``cells.csv`` (issue 12 item 4): how many server processes
the cell ran behind nginx, and what each of them did.

Kept apart from :mod:`pushbench.schema.cells` (which splices :data:`SERVERS_COLUMN` into
the parameter columns after ``via`` and :data:`SCALEOUT_COLUMNS` into ``EXTRA_COLUMNS``)
so that module stays small; filled by :mod:`pushbench.runner.scaleout`.
"""

from __future__ import annotations

from .column import CPU_NS, Column

__all__ = ["SCALEOUT_COLUMNS", "SERVERS_COLUMN"]

_C = Column
_PER_NODE = "one figure per node, node 0 first (the one the ticker publishes on), ';'-separated"

#: The parameter column: server processes of the stack (nodes).
SERVERS_COLUMN: Column = _C(
    "servers",
    "count",
    "server processes of the stack (nodes) behind nginx's upstream, round robin, sharing "
    "the broker hub (redis or nats); 1: one process, as every cell before scale-out. "
    "server_cpu_us_per_msg and server_rss_bytes are the nodes' sum",
)

#: The per-node columns, in order (empty when servers = 1).
SCALEOUT_COLUMNS: tuple[Column, ...] = (
    _C(
        "node_connections",
        "text",
        f"streaming connections each node accepted over the cell (its /stats "
        f"connections_total; 0 for polling, whose requests are not counted there): how the "
        f"balancer spread the subscribers; {_PER_NODE}; empty when servers = 1",
    ),
    _C(
        "node_msgs_delivered",
        "text",
        f"messages each node wrote to its subscribers (its /stats messages_delivered); "
        f"{_PER_NODE}; empty when servers = 1",
    ),
    _C(
        "node_cpu_us_per_msg",
        "text",
        f"each node's CPU (user + system, all threads, {CPU_NS}) over the measured window "
        f"÷ msgs_delivered of the whole cell (they add up to server_cpu_us_per_msg); "
        f"{_PER_NODE}; empty when servers = 1",
    ),
)
