"""The fault columns of ``cells.csv`` (issue 12 item 5, h32): what a fault in the measured
window did to the clients (empty for cells without a ``fault``).

Kept apart from :mod:`pushbench.schema.cells` (which splices them into its
``EXTRA_COLUMNS``); filled by :mod:`pushbench.runner.outage`, read by the report's
"Faults" section.
"""

from __future__ import annotations

from .column import Column

__all__ = ["FAULT_COLUMNS"]

_C = Column

#: The fault columns, in order.
FAULT_COLUMNS: tuple[Column, ...] = (
    _C(
        "fault",
        "text",
        "the fault injected into the measured window, e.g. 'server-kill at 3 s, down 1 s' "
        "(server-kill: SIGKILL, restart on the same port; proxy-restart: the proxy in front "
        "killed and started again; broker-pause: SIGSTOP/SIGCONT of the Redis server); "
        "empty: no fault",
    ),
    _C(
        "fault_restored_ms",
        "ms",
        "from the fault to the moment it was lifted (the restarted server or proxy ready, "
        "the broker continued): down_s plus the restart's own time",
    ),
    _C(
        "fault_same_port",
        "bool",
        "server-kill and proxy-restart: whether the restarted process listens on the port "
        "the clients knew (it must, or none could come back); empty for broker-pause",
    ),
    _C(
        "reconnect_p50_ms",
        "ms",
        "median over the clients of the time from the fault to the first message each "
        "received after the fault was lifted (reconnect, resume and the first delivery; "
        "includes the time the fault lasted)",
    ),
    _C("reconnect_p99_ms", "ms", "99th percentile of that time over the clients"),
    _C("reconnect_max_ms", "ms", "the slowest client's time from the fault to its first message"),
    _C(
        "reconnected_clients",
        "count",
        "clients that received a message after the fault was lifted (of subscribers)",
    ),
    _C(
        "fault_msgs_lost",
        "count",
        "messages of the window's seq range never received, summed over connections (the "
        "goal where resume applies, hub = redis: 0)",
    ),
    _C(
        "fault_msgs_duplicated",
        "count",
        "receptions beyond the first of a seq in the window, summed over connections (a "
        "resume that replays what the client had)",
    ),
    _C(
        "storm_peak_per_100ms",
        "count",
        "the reconnect storm: most connections established in any 100 ms after the fault "
        "(from the clients' reconnect timestamps, or their first message after it when the "
        "client does not report them: storm_source)",
    ),
    _C(
        "storm_source",
        "text",
        "what storm_peak_per_100ms counts: 'reconnects' (the clients' handshake-done "
        "timestamps) or 'first messages' (the browser's, which reports no timestamps)",
    ),
    # --- h41 (issue 12 item 5): a server-kill of one node of servers = N ---
    _C(
        "fault_node",
        "count",
        "server-kill with servers > 1: the node killed and restarted (0 is the one the "
        "ticker publishes on); its clients come back through nginx to a live node, and the "
        "reconnect and clients-back columns count those clients only; empty otherwise",
    ),
    _C(
        "fault_node_clients",
        "count",
        "server-kill with servers > 1: the clients the killed node was serving (its /stats "
        "connections_open just before the kill: WebSocket and SSE streams; 0 for polling, "
        "whose requests are not held connections, and nginx passes a poll in flight on to a "
        "live node, so no polling client is disconnected); empty otherwise",
    ),
    # --- end h41 ---
)
