"""Delivery accounting and throughput: which expected messages each connection received.

Per connection, from ``seq`` against the range the server published in the
measured window: delivered, lost, duplicated, out of order (and receptions
outside the range, ignored by the rest); the first arrival of each expected
message on each connection (:func:`first_arrivals`, what the all-expected latency
ranks); then the offered and delivered rates over the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .receipts import Int64s, Receipts

__all__ = [
    "Delivery",
    "Throughput",
    "delivery",
    "first_arrivals",
    "merge_deliveries",
    "throughput",
]


@dataclass(frozen=True)
class Delivery:
    """Per-connection delivery of the sequence numbers ``first_seq..last_seq``.

    ``delivered``: distinct expected seqs received; ``lost``: expected, never
    received; ``duplicated``: receptions beyond the first of a seq;
    ``out_of_order``: first receptions of a seq after a higher seq had arrived
    on that connection; ``outside``: receptions of seqs outside the range
    (warm-up or after the window; ignored by the other counts).
    """

    first_seq: int
    last_seq: int
    delivered: Int64s
    lost: Int64s
    duplicated: Int64s
    out_of_order: Int64s
    outside: Int64s

    @property
    def connections(self) -> int:
        return len(self.delivered)

    @property
    def expected_per_connection(self) -> int:
        return max(0, self.last_seq - self.first_seq + 1)

    @property
    def expected(self) -> int:
        return self.expected_per_connection * self.connections

    def total(self, name: str) -> int:
        """Sum over connections of ``delivered``, ``lost``, ``duplicated``, … ."""
        return int(np.sum(getattr(self, name)))

    @property
    def delivered_fraction(self) -> float | None:
        """Delivered ÷ expected; ``None`` when nothing was expected (idle cells)."""
        return self.total("delivered") / self.expected if self.expected else None


def delivery(
    conn: ArrayLike, seq: ArrayLike, *, first_seq: int, last_seq: int, connections: int
) -> Delivery:
    """Exact delivery accounting of one worker's receipts (``conn`` in ``0..connections-1``).

    Arrival order is array order, which is the receive path's order; every
    connection is expected to receive every seq in ``[first_seq, last_seq]``.
    """
    conns = np.asarray(conn, dtype=np.int64)
    seqs = np.asarray(seq, dtype=np.int64)
    if len(conns) != len(seqs):
        raise ValueError("conn and seq differ in length")
    if len(conns) and (conns.min() < 0 or conns.max() >= connections):
        raise ValueError(f"connection ids must be in 0..{connections - 1}")
    inside = (seqs >= first_seq) & (seqs <= last_seq)
    outside = np.bincount(conns[~inside], minlength=connections)
    span = max(0, last_seq - first_seq + 1)
    # A stable sort by connection keeps each connection's arrival order.
    order = np.argsort(conns[inside], kind="stable")
    c = conns[inside][order]
    # One key per (connection, seq), increasing with the connection, so a running
    # maximum over the whole array never leaks from one connection into the next.
    key = c * (span + 1) + (seqs[inside][order] - first_seq)
    received = np.bincount(c, minlength=connections)
    first_seen = np.zeros(len(key), dtype=bool)
    first_seen[np.unique(key, return_index=True)[1]] = True  # first occurrence of each key
    delivered = np.bincount(c[first_seen], minlength=connections)
    prior_max = np.maximum.accumulate(np.concatenate(([-1], key)))[:-1]
    late = first_seen & (key < prior_max)
    return Delivery(
        first_seq=first_seq,
        last_seq=last_seq,
        delivered=delivered,
        lost=span - delivered,
        duplicated=received - delivered,
        out_of_order=np.bincount(c[late], minlength=connections),
        outside=outside,
    )


def first_arrivals(receipts: Receipts, first_seq: int, last_seq: int) -> Receipts:
    """The receipts of seqs ``first_seq..last_seq``, each (connection, seq) once: its first
    arrival in array order (the receive path's order), as :func:`delivery` counts it
    delivered. Receipts keep their order."""
    seqs = receipts.seq
    inside = np.flatnonzero((seqs >= first_seq) & (seqs <= last_seq))
    span = max(0, last_seq - first_seq + 1)
    key = receipts.conn[inside].astype(np.int64) * (span + 1) + (seqs[inside] - first_seq)
    keep = inside[np.sort(np.unique(key, return_index=True)[1])]
    return Receipts(
        receipts.conn[keep],
        seqs[keep],
        receipts.sched_ns[keep],
        receipts.pub_ns[keep],
        receipts.recv_ns[keep],
    )


def merge_deliveries(parts: Sequence[Delivery]) -> Delivery:
    """The connections of several workers side by side (same expected range)."""
    if not parts:
        raise ValueError("nothing to merge")
    if len({(p.first_seq, p.last_seq) for p in parts}) != 1:
        raise ValueError("deliveries of different seq ranges cannot be merged")

    def cat(name: str) -> Int64s:
        return np.concatenate([getattr(p, name) for p in parts])

    return Delivery(
        parts[0].first_seq,
        parts[0].last_seq,
        cat("delivered"),
        cat("lost"),
        cat("duplicated"),
        cat("out_of_order"),
        cat("outside"),
    )


@dataclass(frozen=True)
class Throughput:
    """Rates over the measured window, in messages per second.

    ``offered_msgs_per_s``: published into the topic; ``offered_deliveries_per_s``:
    that × connections (what the server must write); ``delivered_msgs_per_s``:
    distinct messages the clients actually received, all connections together.
    """

    duration_s: float
    offered_msgs_per_s: float
    offered_deliveries_per_s: float
    delivered_msgs_per_s: float


def throughput(d: Delivery, duration_s: float) -> Throughput:
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    return Throughput(
        duration_s,
        d.expected_per_connection / duration_s,
        d.expected / duration_s,
        d.total("delivered") / duration_s,
    )
