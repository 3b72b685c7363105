"""The version of ``cells.csv``'s columns and what changed at each version.

Recorded as ``"cells_schema"`` in every run's metadata.json, so the report reads an
old run's columns for what they were. Kept apart from :mod:`pushbench.schema.cells`
(which re-exports it) so the history can grow without that module growing.
"""

from __future__ import annotations

__all__ = ["CELLS_SCHEMA_VERSION"]

#: Version of the columns below, recorded as ``"cells_schema"`` in each run's metadata.json.
#: 2: history_gap_msgs added; client_processes counts the processes that ran.
#: 3: added broker_cpu_us_per_msg (the Redis hub's server); round and run_index (runs
#:    interleaved in shuffled rounds); lat_all_p50_us … lat_all_max_us (lost messages as
#:    infinitely late), slow_consumers_dropped, drain_s and drain_end (the drain waits for
#:    the last message, no fixed 0.5 s); publish_overruns (chat publishers open loop, the
#:    scheduled time in each publish).
#: 4: check_recv_bias_ms, check_client_stall_ms, check_client_stall_every_ms and
#:    check_drop_receipt_every (the self-check's client faults).
#: 5: CPU to the ns (process CPU clocks, not 10 ms /proc ticks); ticker_cpu_us_per_msg (the
#:    in-server ticker's own share); the byte columns named TCP payload, and beside them
#:    wire_bytes_in_per_msg, wire_bytes_out_per_msg, wire_bytes_per_conn_per_s (payload +
#:    52 B of headers per TCP segment, an estimate).
#: 6: connect_failures, slow_parses, missed_polls, publish_errors, recorder_fill_max (every
#:    worker counter read; overflow, parse errors, connections never up and history
#:    evictions fail the repeat instead of reading as loss).
#: 7: memory per connection as a slope: mem_conns_open, mem_marginal_bytes_per_conn,
#:    mem_first_conn_bytes, kernel_sock_bytes_per_conn, kernel_sock_load_bytes_per_conn,
#:    kernel_sock_source; server_rss_bytes_per_conn and server_rss_growth_bytes_per_conn
#:    divide by the connections open (mem_conns_open), not the configured subscribers.
#: 8: the soak (churn cells, issue 17 item 6): soak_churn … log_errors.
#: 9: net (the network profile) and relay_cpu_us_per_msg (network conditions, issue 12).
#: 10: tls (issue 12 item 2: https:// and wss://), tcp_connect_p50_us and
#:    tls_handshake_p50_us (the connect time split: TCP connect, then the TLS handshake).
#: 11: compression (permessage-deflate: off, deflate, empty outside WebSocket cells) and
#:    payload_kind (filler, json), after loop (issue 12 item 3).
#: 12: clock_offset_us and clock_bound_us (issue 18: each worker's clock offset to the
#:    server's, from GET /clock; every latency corrected by it).
#: 13: via (a reverse proxy in front), proxy_cpu_us_per_msg, upgrade_status (issue 12 item 1).
#: 14: server_unmeasured (an external target's cells: why the server columns are empty).
#: 15: servers (after via), node_connections, node_msgs_delivered, node_cpu_us_per_msg
#:    (scale-out, issue 12 item 4).
#: 16: client_source_addresses, connect_rate_per_s, heartbeat_cpu_ns_per_conn_s,
#:    fanout_last_p50_us, fanout_last_max_us (issue 18 item 2: many connections).
#: 17: fault … storm_source (issue 12 item 5: faults in the window, reconnect, resume).
#: 18: tls_at (issue 12 item 2: TLS terminated at the server or at the proxy in front).
#: 19: fault_node, fault_node_clients (issue 12 item 5, h41: a server-kill of one node of N).
#: 20: server_open_files, server_max_connections, after fanout_last_max_us (h44, issue 18
#:    item 2: several server processes on one port; the per-process open-file limit).
#: 21: speed_probe_ns and machine_slowdown (the machine's speed around each repeat), status
#:    left-out (a repeat measured while the machine was slow, re-measured as another).
#: 22: cost_slowdown (a repeat's CPU per message over its cell's median), after
#:    machine_slowdown: it, not the probe, now picks the repeats to re-measure.
#: 23: steal_fraction_max (the hypervisor's share of the window), kernel_floor_send_ns and
#:    kernel_floor_recv_ns (the kernel's loopback floor at the cell's load,
#:    pushbench.netfloor), after cost_slowdown.
#: 24: client_loop_stalls_10ms (how many times a client's loop stalled ≥ 10 ms), after
#:    client_max_loop_lag_us: the self-check's clean cells allow one (the host's), not two.
CELLS_SCHEMA_VERSION = 24
