"""Scale-out cells (``servers = N``, issue 12 item 4): N nodes read as one server side.

:func:`pushbench.runner.server.start_server` starts the N nodes (one broker, one key or
subject prefix shared by all) and nginx balances the clients over them
(:func:`pushbench.proxies.upstream_block`, round robin). The ticker runs on node 0 (the
runner's ``POST /control/ticker`` goes there directly), so every other node receives its
messages through the broker only: the broker's added latency shows against a
``servers = 1`` cell. This module turns the nodes' readings into one server side:

- CPU and RSS: the nodes' /proc samples summed (:func:`sample_nodes`), so
  ``server_cpu_us_per_msg`` is the whole server side's (the broker's stays apart:
  ``broker_cpu_us_per_msg``); each node's share in ``node_cpu_us_per_msg``;
- ``/stats``: node 0's record (its ticker) with the counters that judge a repeat summed
  over the nodes (:func:`merge_stats`); what each node did in ``node_connections`` and
  ``node_msgs_delivered`` (:func:`node_columns`), which show the balancer's spread.

With ``servers = 1`` every function returns what the single server gave, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pushbench.procs import ProcSample, sample

from .server import Server

__all__ = ["SUMMED_STATS", "merge_stats", "node_columns", "node_urls", "sample_nodes", "total"]

#: /stats counters that are the server side's when summed over the nodes.
SUMMED_STATS: tuple[str, ...] = (
    "slow_consumers_dropped",
    "history_gaps",
    "history_gap_messages",
    "connections_total",
    "messages_delivered",
)


def node_urls(server: Server) -> list[str]:
    """Every node's base URL for the balancer; empty with one node (the proxy's usual
    single upstream)."""
    return [url for _, url in server.nodes] if len(server.nodes) > 1 else []


def sample_nodes(server: Server) -> list[ProcSample | None]:
    """A /proc sample of each node, node 0 first."""
    nodes = server.nodes or ((server.started, server.base_url),)
    return [sample(started.pid) for started, _ in nodes]


def total(samples: Sequence[ProcSample | None]) -> ProcSample | None:
    """The nodes' samples as one: CPU and RSS summed (None when a node is gone); a single
    node's sample as it is."""
    if len(samples) == 1:
        return samples[0]
    if not samples or any(s is None for s in samples):
        return None
    each = [s for s in samples if s is not None]
    sources = {s.cpu_source for s in each}
    return ProcSample(
        sum(s.cpu_s for s in each),
        sum(s.rss_bytes for s in each),
        max(s.at_ns for s in each),
        sources.pop() if len(sources) == 1 else "mixed",
    )


def merge_stats(per_node: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Node 0's ``/stats`` with :data:`SUMMED_STATS` summed over ``per_node``."""
    merged = dict(per_node[0])
    if len(per_node) > 1:
        for key in SUMMED_STATS:
            merged[key] = sum(int(s.get(key) or 0) for s in per_node)
    return merged


def node_columns(
    per_node: Sequence[Mapping[str, Any]],
    start: Sequence[ProcSample | None],
    end: Sequence[ProcSample | None],
    delivered: int | None,
) -> dict[str, str | None]:
    """``node_connections``, ``node_msgs_delivered`` and ``node_cpu_us_per_msg`` (each
    node's CPU over the window ÷ the cell's ``delivered``); all None with one node."""
    keys = ("node_connections", "node_msgs_delivered", "node_cpu_us_per_msg")
    if len(per_node) < 2:
        return dict.fromkeys(keys)

    def joined(values: Sequence[object]) -> str:
        return ";".join("" if v is None else str(v) for v in values)

    cpu: list[str | None] = []
    for s0, s1 in zip(start, end, strict=True):
        if s0 is None or s1 is None or not delivered:
            cpu.append(None)
        else:
            cpu.append(f"{(s1.cpu_s - s0.cpu_s) * 1e6 / delivered:.3f}")
    return {
        "node_connections": joined([s.get("connections_total") for s in per_node]),
        "node_msgs_delivered": joined([s.get("messages_delivered") for s in per_node]),
        "node_cpu_us_per_msg": joined(cpu),
    }
