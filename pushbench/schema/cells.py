"""The columns of ``cells.csv`` and ``saturation.csv``: the stored record of a run's cells.

Each column is a :class:`Column` record — name, :class:`Unit`, and a
description of what it holds and includes (which bytes, whose CPU, which time
span) — in one list, versioned by :data:`CELLS_SCHEMA_VERSION`. From these
records:

- the runner writes the header of ``cells.csv`` (:data:`ALL_COLUMNS`) and each
  value rounded as its unit says (:func:`write_value`: no ``74.99999999999993``),
  and the version into ``metadata.json`` (``"cells_schema"``);
- :func:`pushbench.metrics.cell_row` fills :data:`COLUMNS` and the runner
  :data:`EXTRA_COLUMNS`; the report reads the files by these names;
- :func:`columns_markdown` writes ``docs/cells-columns.md`` (regenerate with
  ``python -m pushbench.schema.cells > docs/cells-columns.md``; a test checks
  it is current and that no column lacks a unit or a description).

Renaming, removing or changing the meaning of a column raises the version;
adding one at the end does too, so a reader can tell an old file from a new
one without guessing from the header. The written precision is not part of
the meaning: a reader parses every numeric field as a number either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .column import CPU_NS, UNITS, Column, Unit, columns_of
from .machine import MACHINE_COLUMNS
from .outage import FAULT_COLUMNS  # h32 (issue 12 item 5)
from .saturation import SATURATION_COLUMNS
from .scale import SCALE_COLUMNS
from .scaleout import SCALEOUT_COLUMNS, SERVERS_COLUMN
from .soak import SOAK_COLUMNS
from .topology import TOPOLOGY_COLUMNS
from .versions import CELLS_SCHEMA_VERSION  # and its history

__all__ = [
    "ALL_COLUMNS",
    "CELLS_SCHEMA_VERSION",
    "COLUMNS",
    "EXTRA_COLUMNS",
    "PARAM_COLUMNS",
    "SATURATION_COLUMNS",
    "UNITS",
    "Column",
    "Unit",
    "columns_markdown",
    "write_row",
    "write_value",
]

_C = Column
_LAT = "corrected latency (receive time − the message's scheduled send time, so a late "
_LAT += "publisher cannot hide its lateness), messages scheduled in the window, all connections"
_ULAT = "uncorrected latency (receive time − actual publish time)"
_ALL = (
    "corrected latency over every expected message (msgs_expected: each message of the window "
    "× each subscribing connection, its first arrival), a lost one counted as infinitely late "
    "(wrk2's rule): inf when the percentile's rank falls among the lost (written `inf`, which "
    "pandas and float() read as infinity); equal to the received figure when nothing was lost "
    "or duplicated; empty when nothing was expected"
)
_SPAN = (
    "between the runner's window marks (each worker reads its counters when the measured "
    "window starts and ends), ÷ messages received between the same marks; a worker kind "
    "that cannot read the counter then (Locust; the browser's requests) counts it over its "
    "whole run ÷ that run's messages"
)
_BYTES = (
    f"after each connection's handshake, {_SPAN}; TCP payload from the kernel's counters "
    "when bytes_source is tcp_info (HTTP heads, framing, pushbench's JSON envelope, a chat "
    "publisher's own publish connection; no IP/TCP headers: the wire_bytes_* columns add "
    "them), what the client's socket layer read and wrote when it is socket"
)
_WIRE = (
    "estimated bytes on the wire: the TCP payload column plus 52 B per TCP segment (the "
    "kernel's tcpi_segs_in / tcpi_segs_out of the same sockets over the same span, pure "
    "ACKs and retransmissions included; 52 B = IPv4 20 + TCP 20 + the timestamps option "
    "12, Linux's loopback defaults: IPv6 would add 20 B a segment, and no link-layer "
    "framing is counted); empty when bytes_source is not tcp_info…"
)
_CPU_NS = CPU_NS

#: The columns :func:`pushbench.metrics.cell_row` fills (the cell's parameters, then what was
#: measured), in order.
COLUMNS: dict[str, Column] = columns_of(
    _C("scenario", "text", "scenario name"),
    _C("cell_id", "text", "stable cell id (stack-transport-sub…-rate…-p…)"),
    _C("repeat", "count", "repeat index, from 0"),
    _C("stack", "text", "server stack (a row of pushbench.registry)"),
    _C("transport", "text", "client transport (ws, ws-aiohttp, sse, longpoll, shortpoll)"),
    _C("ws_client", "text", "WebSocket client (light, aiohttp); empty for other transports"),
    _C(
        "client",
        "text",
        "who receives: python (pushbench.clients.worker), browser (Chromium), locust",
    ),
    _C("subscribers", "count", "connections receiving, over all client processes"),
    _C("publishers", "count", "connections also publishing (0: the server's ticker publishes)"),
    _C(
        "rate_msgs_per_s",
        "msgs/s",
        "configured publish rate into the topic (each message goes to every subscriber); 0: idle",
    ),
    _C("payload_bytes", "B", "payload size, without pushbench's JSON envelope and framing"),
    _C("hub", "text", "hub backend (memory: inside the server process; redis)"),
    _C("loop", "text", "event loop"),
    # h25 (compression)
    _C(
        "compression",
        "text",
        "permessage-deflate (RFC 7692) on WebSocket cells: off, or deflate (offered by the "
        "client, accepted by the stack); empty outside WebSocket cells",
    ),
    _C(
        "payload_kind",
        "text",
        "what the payload holds: filler ('x' repeated) or json (realistic price-tick JSON text)",
    ),
    _C("poll_interval_s", "s", "short-poll interval (empty: not a short-poll cell)"),
    _C("poll_timeout_s", "s", "long-poll timeout (empty: not a long-poll cell)"),
    _C("heartbeat_s", "s", "WebSocket ping / SSE comment interval (empty: none)"),
    _C("duration_s", "s", "measured window"),
    _C(
        "warmup_s",
        "s",
        "warm-up before the window: in no latency, delivery, client CPU, byte or request figure",
    ),
    _C("check_delay_ms", "ms", "self-check: injected delay per message"),
    _C("check_pause_ms", "ms", "self-check: one server stall"),
    _C("check_drop_every", "count", "self-check: every Nth message dropped (0: off)"),
    _C("check_recv_bias_ms", "ms", "self-check (client fault): bias added to every receive time"),
    _C("check_client_stall_ms", "ms", "self-check (client fault): client event-loop stall"),
    _C("check_client_stall_every_ms", "ms", "self-check (client fault): period of those stalls"),
    _C(
        "check_drop_receipt_every",
        "count",
        "self-check (client fault): every Nth receipt not recorded (0: off)",
    ),
    # -- network conditions (issue 12 item 6) --
    _C(
        "net",
        "text",
        "network profile between clients and server (pushbench.netem.PROFILES; loopback: "
        "no relay; others: the userspace relay, calibrated in the run's netem.json)",
    ),
    # --- issue 12 item 2 (TLS) ---
    _C(
        "tls",
        "bool",
        "the connections are TLS (https://, wss://): the server holds a certificate made for "
        "the run (pushbench.tls: a throwaway CA, ECDSA P-256 leaf) and every client "
        "verifies it against that CA; false: plaintext",
    ),
    # -- h27 (issue 12 item 1): the reverse proxy in front (pushbench.proxies) --
    _C(
        "via",
        "text",
        "direct (clients talk to the server), or the reverse proxy in front and its config: "
        "nginx, caddy, haproxy (configured for push) or nginx-naive, caddy-naive, "
        "haproxy-naive (the proxy's defaults and a short idle timeout: pushbench.proxies)",
    ),
    SERVERS_COLUMN,  # issue 12 item 4 (scale-out): pushbench.schema.scaleout
    _C(
        "lat_count",
        "count",
        "latency samples: receipts of messages scheduled in the window, "
        "all connections, duplicates included",
    ),
    _C("lat_p50_us", "µs", f"median of the {_LAT}"),
    _C("lat_p90_us", "µs", f"p90 of the {_LAT}"),
    _C("lat_p99_us", "µs", f"p99 of the {_LAT}"),
    _C("lat_p999_us", "µs", f"p99.9 of the {_LAT}"),
    _C("lat_max_us", "µs", f"maximum of the {_LAT}"),
    _C("lat_mean_us", "µs", f"mean of the {_LAT}"),
    _C("lat_clamped", "count", "corrected samples clamped to 0 or 60 s"),
    _C("ulat_p50_us", "µs", f"median of the {_ULAT}"),
    _C("ulat_p99_us", "µs", f"p99 of the {_ULAT}"),
    _C("ulat_max_us", "µs", f"maximum of the {_ULAT}"),
    _C("msgs_expected", "count", "messages published in the window × subscribing connections"),
    _C(
        "msgs_delivered",
        "count",
        "distinct messages of the window received, summed over connections",
    ),
    _C("msgs_lost", "count", "expected but never received"),
    _C("msgs_duplicated", "count", "receptions beyond the first of a message"),
    _C("msgs_out_of_order", "count", "messages received after a later one"),
    _C("delivered_fraction", "fraction", "msgs_delivered ÷ msgs_expected (empty when idle)"),
    _C(
        "offered_msgs_per_s",
        "msgs/s",
        "messages published per second in the window (achieved: those scheduled in it that "
        "reached the hub; rate_msgs_per_s is the schedule's rate)",
    ),
    _C("offered_deliveries_per_s", "msgs/s", "offered_msgs_per_s × subscribers"),
    _C("delivered_msgs_per_s", "msgs/s", "msgs_delivered ÷ duration_s (all subscribers)"),
    _C(
        "server_cpu_s",
        "s",
        f"server process CPU time (user + system, all its threads, {_CPU_NS}) over the "
        "window: includes the in-server ticker that publishes (it runs on the server's "
        "core; its own share: ticker_cpu_us_per_msg) and the memory hub; not a Redis "
        "server, not the clients",
    ),
    _C(
        "server_cpu_us_per_msg",
        "µs/msg",
        "server_cpu_s ÷ msgs_delivered (ticker included: minus ticker_cpu_us_per_msg is the "
        "stack's own)",
    ),
    _C("server_rss_bytes", "B", "server resident memory (VmRSS) at the end of the window"),
    _C(
        "server_rss_bytes_per_conn",
        "B/conn",
        "server_rss_bytes ÷ connections open (mem_conns_open; the interpreter's baseline included)",
    ),
    _C(
        "server_rss_growth_bytes_per_conn",
        "B/conn",
        "server RSS growth from before the first connection to all connected, ÷ "
        "connections open (mem_conns_open): the first connection's fixed set-up included "
        "(mem_first_conn_bytes), so small counts read high; see mem_marginal_bytes_per_conn",
    ),
    _C("server_cpu_fraction", "cores", "server_cpu_s ÷ duration_s (1.0 = one core busy)"),
    _C(
        "client_cpu_s",
        "s",
        "CPU time (user + system) of every client worker process (with the processes it "
        "drives: Locust's, the browser's) over the measured window, read by each worker when "
        "the runner marked the window's start and end (ready → end for a worker that was "
        "not marked); the asyncio worker's from getrusage (µs), Locust's and the browser's "
        "processes' from their CPU clocks (ns)",
    ),
    _C(
        "delivered_msgs_per_client_cpu_s",
        "msgs/CPU-s",
        "messages received by the clients ÷ client_cpu_s, both over the measured window "
        "(what one load-generator core can receive)",
    ),
    _C("bytes_in_per_msg", "B/msg", f"TCP payload bytes received by clients, {_BYTES}"),
    _C(
        "bytes_out_per_msg",
        "B/msg",
        f"TCP payload bytes sent by clients (poll requests, pongs, chat publishes), {_BYTES}",
    ),
    _C(
        "handshake_bytes_per_conn",
        "B/conn",
        "TCP payload bytes until each connection was ready (the "
        "WebSocket upgrade, the first request and response head), both directions, per "
        "connection",
    ),
    _C(
        "bytes_source",
        "text",
        "how bytes were counted: tcp_info (kernel TCP counters), "
        "socket (the client's socket layer), unavailable, or mixed",
    ),
    _C("connect_p50_us", "µs", "median over connections of the connect time (TCP connect → ready)"),
    _C(
        "requests_per_msg",
        "requests/msg",
        f"HTTP requests per message received, {_SPAN} (polling transports; empty for "
        "streaming ones)",
    ),
    _C("errors", "count", "client errors, all connections"),
    _C("reconnects", "count", "client reconnects, all connections"),
    _C(
        "client_max_loop_lag_us",
        "µs",
        "longest stall of a client process's own event loop (GC included), worst process: "
        "how late a 5 ms timer ran, in the loop that receives (the compiled receive loop's "
        "timerfd when it took the connections, the worker's asyncio loop otherwise)",
    ),
    _C(
        "client_loop_stalls_10ms",
        "count",
        "stalls of 10 ms or more of the client processes' own event loops (the loop-lag "
        "timer woken that late), processes summed; one alone can be the host's (an idle "
        "process on this project's VM sees ~9 ms every minute or two); empty: the clients "
        "(browser, Locust) keep no such histogram",
    ),
)

#: Columns the runner adds after :data:`COLUMNS` (status, harness and publisher figures, the
#: latency over every expected message, slow consumers, the drain).
EXTRA_COLUMNS: dict[str, Column] = columns_of(
    _C(
        "status",
        "text",
        "ok, failed, skipped or left-out (cost more than its cell's usual, see "
        "cost_slowdown: the machine was slower during it; re-measured as another repeat)",
    ),
    _C("reason", "text", "why a cell failed, was skipped or was left out (empty when ok)"),
    _C(
        "client_processes",
        "count",
        "client processes that ran the clients: one per asyncio worker; Locust's master "
        "and its workers (not the wrapper); the browser's own processes",
    ),
    _C(
        "client_cpu_fraction_max",
        "cores",
        "highest CPU fraction of one client worker process (with the processes it drives) "
        "over the measured window (CPU ÷ wall time between the window marks)",
    ),
    _C(
        "harness_bound",
        "bool",
        "client_core_busy_max >= 0.9: a client core was (nearly) saturated, the load "
        "generator may be the bottleneck",
    ),
    _C(
        "publish_lag_max_us",
        "µs",
        "longest delay of a publish behind its schedule (the "
        "server's ticker, or the publishing clients in chat cells)",
    ),
    _C("publish_lag_p50_us", "µs", "median of that delay (server ticker; empty for chat cells)"),
    _C("publish_lag_p99_us", "µs", "p99 of that delay (server ticker; empty for chat cells)"),
    _C("probe", "bool", "True for a rate the saturation search added (not listed in the scenario)"),
    _C(
        "bytes_per_conn_per_s",
        "B/conn/s",
        "TCP payload bytes both ways per connection per second after "
        "the handshake, over the measured window (same counting and span as "
        "bytes_in_per_msg): the keepalive cost of idle cells",
    ),
    _C(
        "client_core_busy_max",
        "cores",
        "busiest client CPU over the measured window: the CPU fractions of every worker "
        "pinned to it added up (two workers at 50 % on one core: 1.0)",
    ),
    _C("lat_all_p50_us", "µs", f"median of the {_ALL}"),
    _C(
        "lat_all_p99_us",
        "µs",
        f"p99 of the {_ALL}; inf once more than 1 % is lost. The saturation search's SLO "
        "judges this p99",
    ),
    _C("lat_all_p999_us", "µs", f"p99.9 of the {_ALL}; inf once more than 0.1 % is lost"),
    _C("lat_all_max_us", "µs", f"maximum of the {_ALL}; inf as soon as one message is lost"),
    _C(
        "slow_consumers_dropped",
        "count",
        "subscribers the server dropped for falling more than its queue limit behind, "
        "whole server run (its /stats; empty when the server does not report it)",
    ),
    _C(
        "drain_s",
        "s",
        "time from the window's end until the runner stopped the workers: it waits until "
        "every connection has the window's last message, or every worker has been quiet for "
        "the poll interval + 0.5 s, or 5 s (the larger of 5 s and the quiet bound) have passed",
    ),
    _C(
        "drain_end",
        "text",
        "why the drain ended: delivered (every connection had the last message), quiet (no "
        "receipts for the quiet bound), cap (the hard cap: a later arrival counts lost), or "
        "none (nothing expected)",
    ),
    _C(
        "history_gap_msgs",
        "count",
        "messages requests missed because their since was older than the server's history "
        "(evicted before fetched; the runner sizes the history from the cell: 0 expected)",
    ),
    _C(
        "broker_cpu_us_per_msg",
        "µs/msg",
        f"CPU (user + system, all threads, {_CPU_NS}) of the cell's Redis server over the "
        "measured window ÷ "
        "msgs_delivered, beside server_cpu_us_per_msg (same window, same denominator; the "
        "two add up to the server side's cost); empty when the hub is in-process",
    ),
    _C(
        "round",
        "count",
        "the round of the run, from 0: round k runs every cell's repeat k once, in an order "
        "shuffled by metadata.json's order_seed; the saturation search's probe rounds follow",
    ),
    _C(
        "run_index",
        "count",
        "place of this cell × repeat in the run's order, from 0 (cells.csv lists the rows in "
        "scenario order; sort by this for the order they ran in)",
    ),
    *MACHINE_COLUMNS,  # the machine under the figures: pushbench.schema.machine
    _C(
        "publish_overruns",
        "count",
        "chat cells: client publishes that fell due while the publisher already had 8 in "
        "flight (unanswered POST /publish, unwritten WebSocket frames); each was sent as soon "
        "as one finished, stamped with its scheduled time (the wait is in the corrected "
        "latency, nothing skipped); empty for ticker cells",
    ),
    # CPU and bytes named for what they are (schema 4)
    _C(
        "ticker_cpu_us_per_msg",
        "µs/msg",
        "the in-server ticker's own CPU: thread CPU (time.thread_time_ns, one section in 7 "
        "timed and scaled up: a clock read is a system call) of its pacing loop, timer "
        "arming and per-message bookkeeping — not the event loop's wake-up for it, not "
        "hub.publish (envelope, "
        "encoding, history, fan-out: the stack's work) — per message it published over its "
        "run (its /stats), × the window's published messages ÷ msgs_delivered: the "
        "denominator of server_cpu_us_per_msg, which includes it (the ticker runs on the "
        "server's core), so the difference is the stack's own cost; empty for chat and idle "
        "cells and servers that do not report it",
    ),
    _C("wire_bytes_in_per_msg", "B/msg", f"received by clients: {_WIRE}"),
    _C("wire_bytes_out_per_msg", "B/msg", f"sent by clients: {_WIRE}"),
    _C(
        "wire_bytes_per_conn_per_s",
        "B/conn/s",
        f"both ways, per connection per second (beside bytes_per_conn_per_s): {_WIRE}",
    ),
    # What the workers counted beside their receipts (pushbench.runner.counters). A full
    # receipt recorder, unreadable input, a connection never up or messages evicted from
    # the server's history fail the repeat (reason) instead; these measure the run as it was.
    _C(
        "connect_failures",
        "count",
        "connections whose first attempt failed (each came up later: one never up fails "
        "the repeat), all workers",
    ),
    _C(
        "slow_parses",
        "count",
        "envelopes the clients' fast parser did not recognise and read with json instead "
        "(recorded; a cost of the client, not a loss)",
    ),
    _C(
        "missed_polls",
        "count",
        "short-poll slots the clients skipped because the previous poll ran late (the next "
        "poll fetched their messages from the history); empty for other transports or a "
        "client kind that does not count them",
    ),
    _C(
        "publish_errors",
        "count",
        "chat cells: client publishes that failed (the message never got a sequence "
        "number, so delivery cannot count it); whole run, stop included; empty for "
        "ticker cells",
    ),
    _C(
        "recorder_fill_max",
        "fraction",
        "receipts recorded ÷ receipt capacity of the fullest client worker (the runner "
        "sizes the capacity from the cell; a worker that overflowed fails the repeat)",
    ),
    # -- memory per connection as a slope (pushbench.metrics.memory) --
    _C(
        "mem_conns_open",
        "count",
        "connections open once all were up (each worker's connections − its connect "
        "failures): the divisor of every per-connection memory figure",
    ),
    _C(
        "mem_marginal_bytes_per_conn",
        "B/conn",
        "what one more connection costs the server: least-squares slope of its RSS over the "
        "connections open, read with the first worker's first half up, then with each "
        "worker up (empty: one reading only, e.g. one connection, browser or Locust clients)",
    ),
    _C(
        "mem_first_conn_bytes",
        "B",
        "the server's fixed set-up on the first connections: RSS at the first reading − RSS "
        "before any connection − marginal × the connections open then; empty when that is "
        "below zero (the RSS grew faster per connection at higher counts than at the first "
        "reading: no fixed cost can be separated from a line that runs below idle)",
    ),
    _C(
        "kernel_sock_bytes_per_conn",
        "B/conn",
        "kernel memory of the server's sockets once all were up (at rest) ÷ "
        "mem_conns_open: ss -tm skmem r + w + f (receive queue, write queue, reserve: what "
        "TCP accounts), not in the RSS; the sockets' own kernel objects (~ a few KB each) "
        "not included",
    ),
    _C(
        "kernel_sock_load_bytes_per_conn",
        "B/conn",
        "as kernel_sock_bytes_per_conn, read at the end of the measured window (under load: "
        "queued data included)",
    ),
    _C(
        "kernel_sock_source",
        "text",
        "where the kernel figures come from: ss (the server's own sockets) or sockstat "
        "(/proc/net/sockstat TCP pages grown since before the first connection: every TCP "
        "socket of the namespace, both ends of each loopback connection, coarse)",
    ),
    *SOAK_COLUMNS,  # the soak (issue 17 item 6): pushbench.schema.soak
    *TOPOLOGY_COLUMNS,  # issues 12, 18 (relay, TLS phases, clock): pushbench.schema.topology
    *SCALEOUT_COLUMNS,  # issue 12 item 4 (per-node figures): pushbench.schema.scaleout
    *SCALE_COLUMNS,  # issue 18 item 2 (100,000 connections): pushbench.schema.scale
    *FAULT_COLUMNS,  # h32 (issue 12 item 5): faults in the window, pushbench.schema.outage
)

#: Every column of ``cells.csv``, in order: the header the runner writes.
ALL_COLUMNS: list[str] = [*COLUMNS, *EXTRA_COLUMNS]
#: The columns that describe the cell (its parameters): filled even when it failed or was
#: skipped.
PARAM_COLUMNS: list[str] = list(COLUMNS)[: list(COLUMNS).index("lat_count")]

_CELLS: dict[str, Column] = {**COLUMNS, **EXTRA_COLUMNS}


def write_value(column: str, value: Any, columns: Mapping[str, Column] = _CELLS) -> str:
    """``value`` of ``column`` as written to the CSV, rounded as its unit says."""
    return columns[column].write(value)


def write_row(row: Mapping[str, Any], columns: Mapping[str, Column] = _CELLS) -> dict[str, str]:
    """Every column of ``columns`` of ``row`` as CSV text (missing keys: empty fields).

    A key of ``row`` that is no column (other than the runner's private ``_…``
    keys) is a ValueError: nothing is written without its documentation.
    """
    unknown = [k for k in row if k not in columns and not k.startswith("_")]
    if unknown:
        raise ValueError(f"columns not in pushbench.schema.cells: {', '.join(unknown)}")
    return {name: col.write(row.get(name)) for name, col in columns.items()}


# --- the human document --------------------------------------------------------------


def _table(columns: Iterable[Column]) -> list[str]:
    lines = ["| column | unit | what it holds and includes |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.unit} | {c.description.replace('|', '∣')} |" for c in columns]
    return [*lines, ""]


def columns_markdown() -> str:
    """``docs/cells-columns.md``: every column of both files, its unit and what it holds."""
    lines = [
        "# The columns of `cells.csv` and `saturation.csv`",
        "",
        "Generated from `pushbench/schema/cells.py` (the same records the runner writes the",
        "header and the values from) by `python -m pushbench.schema.cells > "
        "docs/cells-columns.md`;",
        "`tests/test_schema_cells.py` fails when this file is stale. Schema version "
        f"{CELLS_SCHEMA_VERSION}",
        "(`cells_schema` in each run's `metadata.json`). An empty field means not measured or",
        "not applicable, never zero.",
        "",
        "## Units and precision",
        "",
        "Each value is rounded as its unit says when the row is written, then written as the",
        "shortest text that reads back as the rounded number.",
        "",
        "| unit | meaning | written |",
        "|---|---|---|",
        *(f"| {u.name} | {u.meaning} | {u.rule()} |" for u in UNITS.values()),
        "",
        "## `cells.csv`: one row per cell × repeat",
        "",
        "### The cell's parameters (filled for failed and skipped cells too)",
        "",
        *_table(COLUMNS[n] for n in PARAM_COLUMNS),
        "### What was measured",
        "",
        *_table(c for n, c in COLUMNS.items() if n not in PARAM_COLUMNS),
        "### The runner's columns",
        "",
        *_table(EXTRA_COLUMNS.values()),
        "## `saturation.csv`: one row per group of `[slo]` cells differing only in rate",
        "",
        *_table(SATURATION_COLUMNS.values()),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(columns_markdown(), end="")
