"""The production-topology columns of ``cells.csv`` (issues 12 and 18): what the relay of
a ``net`` cell costs, the TLS connect split of a ``tls`` cell (empty elsewhere), and the
clock offset of workers on other hosts (0 on one host), and what a proxy in front costs
and answered to the upgrade.

Kept apart from :mod:`pushbench.schema.cells` (which splices them into its
``EXTRA_COLUMNS``) so that module stays small; filled by :mod:`pushbench.runner.rows`.
"""

from __future__ import annotations

from .column import CPU_NS, Column

__all__ = ["TOPOLOGY_COLUMNS"]

_C = Column

#: The topology columns, in order.
TOPOLOGY_COLUMNS: tuple[Column, ...] = (
    # -- network conditions (issue 12 item 6) --
    _C(
        "relay_cpu_us_per_msg",
        "µs/msg",
        f"CPU (user + system, all threads, {CPU_NS}) of the cell's network-conditions relay "
        "(pinned to the client CPUs) over the measured window ÷ msgs_delivered; empty when "
        "net = loopback (no relay)",
    ),
    # --- issue 12 item 2 (TLS): the connect time split (connect_p50_us is the whole) ---
    _C(
        "tcp_connect_p50_us",
        "µs",
        "median over connections of the TCP connect (connect() → established), the first "
        "part of connect_p50_us; our light clients only (ws, sse, longpoll, shortpoll), "
        "empty for the others",
    ),
    _C(
        "tls_handshake_p50_us",
        "µs",
        "median over connections of the TLS handshake (TCP established → handshake done, "
        "before the first HTTP byte), the second part of connect_p50_us; the rest up to "
        "ready is the WebSocket upgrade or the first response; empty for plaintext cells "
        "and for clients that do not split it",
    ),
    _C(
        "tls_at",
        "text",
        "where a TLS cell's TLS terminates: 'server' (direct, end to end) or 'proxy' (behind "
        "via: the proxy listens with the run's certificate and forwards plain HTTP to a "
        "server started without TLS, so the two columns above time the client ↔ proxy "
        "handshake) or 'end-to-end' (behind via with tls_at = end-to-end: the proxy "
        "terminates the clients' TLS and opens its own to a server serving the same "
        "certificate, verified against the run's CA; the columns above still time the client "
        "↔ proxy handshake); empty for plaintext cells",
    ),
    # -- issue 18 item 1: clock offset across hosts (pushbench.clocksync) --
    _C(
        "clock_offset_us",
        "µs",
        "the client worker's clock offset to the server's (server − worker, NTP-style from "
        "the minimum-round-trip GET /clock exchange at its start), by which every receive "
        "time and so every latency of the row was corrected; of the worker with the widest "
        "bound when there are several; 0 when the workers read the server's own clock "
        "(same kernel); empty when a worker did not measure it (browser, no /clock)",
    ),
    _C(
        "clock_bound_us",
        "µs",
        "error bound of that correction: half the best /clock round trip, the widest over "
        "the workers; every latency figure of the row is exact to within ± this (0: the "
        "server's own clock, no error); empty when a worker did not measure it",
    ),
    # -- issue 12 item 1: the reverse proxy in front (pushbench.proxies) --
    _C(
        "proxy_cpu_us_per_msg",
        "µs/msg",
        f"CPU (user + system, all threads, {CPU_NS}) of the cell's reverse proxy (via) over "
        "the measured window ÷ msgs_delivered, beside server_cpu_us_per_msg (same window, "
        "same denominator; pinned to the server CPUs); empty when direct",
    ),
    _C(
        "upgrade_status",
        "text",
        "WebSocket cells (light client): the status line the clients' upgrade got, the most "
        "frequent over the connections (HTTP/1.1 101 Switching Protocols when the upgrade "
        "came through); with the response's Server header when it has one, e.g. "
        "'HTTP/1.1 101 Switching Protocols; server=nginx/1.22.1'; empty for other clients",
    ),
    # -- issue 12 item 7: cells measured against an external target (--target URL) --
    _C(
        "server_unmeasured",
        "text",
        "why the server-side columns (server CPU, RSS, socket memory) are empty: the cell ran "
        "against an external target (`pushbench run --target URL`) the runner did not start; "
        "empty when the runner started the server",
    ),
)
