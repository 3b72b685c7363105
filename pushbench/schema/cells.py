"""The columns of ``cells.csv`` and ``saturation.csv``: the stored record of a run's cells.

One list, name → what the column holds (units are in the names), versioned by
:data:`CELLS_SCHEMA_VERSION`. The runner writes the header of ``cells.csv``
from :data:`ALL_COLUMNS` and the version into ``metadata.json``
(``"cells_schema"``); :func:`pushbench.metrics.cell_row` fills
:data:`COLUMNS` and the runner :data:`EXTRA_COLUMNS`; the report reads the
files by these names. Renaming, removing or changing the meaning of a column
raises the version; adding one at the end does too, so a reader can tell an
old file from a new one without guessing from the header.
"""

from __future__ import annotations

__all__ = [
    "ALL_COLUMNS",
    "CELLS_SCHEMA_VERSION",
    "COLUMNS",
    "EXTRA_COLUMNS",
    "PARAM_COLUMNS",
    "SATURATION_COLUMNS",
]

#: Version of the columns below, recorded as ``"cells_schema"`` in each run's metadata.json.
CELLS_SCHEMA_VERSION = 1

#: The columns :func:`pushbench.metrics.cell_row` fills (the cell's parameters, then what was
#: measured), in order → what each holds (units are in the names).
COLUMNS: dict[str, str] = {
    "scenario": "scenario name",
    "cell_id": "stable cell id (stack-transport-sub…-rate…-p…)",
    "repeat": "repeat index, from 0",
    "stack": "server stack",
    "transport": "client transport (ws, ws-aiohttp, sse, longpoll, shortpoll)",
    "ws_client": "WebSocket client (light, aiohttp); empty for other transports",
    "client": "who receives: python (pushbench.clients.worker), browser (Chromium), locust",
    "subscribers": "connections receiving",
    "publishers": "connections also publishing (0: server ticker)",
    "rate_msgs_per_s": "configured publish rate into the topic",
    "payload_bytes": "payload size",
    "hub": "hub backend",
    "loop": "event loop",
    "poll_interval_s": "short-poll interval",
    "poll_timeout_s": "long-poll timeout",
    "heartbeat_s": "WebSocket ping / SSE comment interval",
    "duration_s": "measured window",
    "warmup_s": "warm-up before the window",
    "check_delay_ms": "self-check: injected delay per message",
    "check_pause_ms": "self-check: one server stall",
    "check_drop_every": "self-check: every Nth message dropped (0: off)",
    "lat_count": "latency samples (receipts in the window, duplicates included)",
    "lat_p50_us": "corrected latency (recv − scheduled) median",
    "lat_p90_us": "corrected latency p90",
    "lat_p99_us": "corrected latency p99",
    "lat_p999_us": "corrected latency p99.9",
    "lat_max_us": "corrected latency max",
    "lat_mean_us": "corrected latency mean",
    "lat_clamped": "corrected samples clamped to 0 or 60 s",
    "ulat_p50_us": "uncorrected latency (recv − published) median",
    "ulat_p99_us": "uncorrected latency p99",
    "ulat_max_us": "uncorrected latency max",
    "msgs_expected": "messages published in the window × connections",
    "msgs_delivered": "distinct messages received (all connections)",
    "msgs_lost": "expected but never received",
    "msgs_duplicated": "receptions beyond the first of a message",
    "msgs_out_of_order": "messages received after a later one",
    "delivered_fraction": "msgs_delivered ÷ msgs_expected (empty when idle)",
    "offered_msgs_per_s": "messages published per second in the window",
    "offered_deliveries_per_s": "offered_msgs_per_s × connections",
    "delivered_msgs_per_s": "msgs_delivered per second",
    "server_cpu_s": "server process CPU (user + sys) in the window",
    "server_cpu_us_per_msg": "server CPU per delivered message",
    "server_rss_bytes": "server resident memory at the end",
    "server_rss_bytes_per_conn": "server_rss_bytes ÷ subscribers",
    "server_rss_growth_bytes_per_conn": "memory per connection: server RSS growth from before "
    "the first connection to all connected, ÷ subscribers",
    "server_cpu_fraction": "server_cpu_s ÷ duration_s (1.0 = one core busy)",
    "client_cpu_s": "client processes CPU (user + sys)",
    "delivered_msgs_per_client_cpu_s": "delivered messages per second of client CPU "
    "(what one load-generator core can receive)",
    "bytes_in_per_msg": "bytes received by clients per delivered message",
    "bytes_out_per_msg": "bytes sent by clients per delivered message",
    "handshake_bytes_per_conn": "handshake bytes (both directions) per connection",
    "bytes_source": "how bytes were counted (tcp_info, socket)",
    "connect_p50_us": "median connect time (TCP connect → ready)",
    "requests_per_msg": "HTTP requests per delivered message (polling)",
    "errors": "client errors",
    "reconnects": "client reconnects",
    "client_max_loop_lag_us": "longest stall of a client's own event loop",
}

#: Columns the runner adds after :data:`COLUMNS` (status, harness and publisher figures).
EXTRA_COLUMNS: dict[str, str] = {
    "status": "ok, failed or skipped",
    "reason": "why a cell failed or was skipped (empty when ok)",
    "client_processes": "client worker processes",
    "client_cpu_fraction_max": "highest CPU fraction of one client process over its run",
    "harness_bound": "a client process used >= 90 % of its core: the load generator "
    "may be the bottleneck",
    "publish_lag_max_us": "longest delay of a publish behind its schedule (the server's "
    "ticker, or the publishing clients in chat cells)",
    "publish_lag_p50_us": "median of that delay (server ticker; empty for chat cells)",
    "publish_lag_p99_us": "p99 of that delay (server ticker; empty for chat cells)",
    "probe": "True for a rate the saturation search added (not listed in the scenario)",
    "bytes_per_conn_per_s": "bytes both ways per connection per second after the handshake, "
    "over each worker's whole run: the keepalive cost of idle cells",
    "history_gap_msgs": "messages requests missed because their since was older than the "
    "server's history (evicted before fetched; the runner sizes it: 0 expected)",
}

#: Columns of saturation.csv: one row per group of [slo] cells differing only in rate.
SATURATION_COLUMNS: dict[str, str] = {
    "group_id": "the group's cell id with the rate left out",
    "stack": "server stack",
    "transport": "transport",
    "ws_client": "WebSocket client",
    "client": "who receives",
    "subscribers": "connections receiving",
    "publishers": "publishing connections (0: server ticker)",
    "payload_bytes": "payload size",
    "hub": "hub backend",
    "slo_p99_us": "the SLO's p99 bound",
    "min_delivered_fraction": "the SLO's delivery bound",
    "max_rate": "highest rate meeting the SLO below every failing rate (msgs/s)",
    "highest_passing": "highest rate meeting the SLO at all",
    "lowest_failing": "lowest failing rate above max_rate (empty: none failed)",
    "monotonic": "max_rate == highest_passing (no noisy pass above a failure)",
    "saturated_side": "at lowest_failing: server (its CPU >= 90 %), client (harness-bound), "
    "both, or neither (the SLO failed for another reason); empty when nothing failed",
    "rates_tried": "every rate measured, ascending, ';'-separated",
}

#: Every column of ``cells.csv``, in order: the header the runner writes.
ALL_COLUMNS: list[str] = [*COLUMNS, *EXTRA_COLUMNS]
#: The columns that describe the cell (its parameters): filled even when it failed or was
#: skipped.
PARAM_COLUMNS: list[str] = list(COLUMNS)[: list(COLUMNS).index("lat_count")]
