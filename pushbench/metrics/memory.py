"""Server memory per connection: a slope over connection counts, not one quotient.

The runner reads the server's resident memory (VmRSS) before the first connection
(*idle*) and at two or more connection counts (:class:`RssPoint`: after the first
worker's first half of its connections, and after each worker is up). One quotient
``(RSS with N up − idle) ÷ N`` mixes two things that scale differently: what the first
connection sets up once (code paths paged in, the allocator's first arenas, caches,
module-level state) and what each further connection costs. At 50 connections the
first dominates (a Starlette SSE server reads ~64 KB "per connection" at 50 and ~45 KB
at 500), so :func:`memory_figures` separates them:

- **marginal bytes per connection**: the least-squares slope of RSS over the connected
  count through the points (with two points: their difference ÷ the connections
  between them) — what one more connection costs;
- **first-connection bytes**: RSS at the first point − idle − slope × its count — the
  fixed set-up the first connection triggered;
- **growth per connection**: (RSS at the last point − idle) ÷ the connections open then,
  the old quotient, kept for comparison.

Every divisor is the number of connections actually open at that point (reported by
the workers), not the configured subscriber count.

Kernel memory of the server's sockets is not in its RSS. :func:`skmem_bytes` reads it
from ``ss -tmn`` (each socket's ``skmem``: receive queue ``r``, write queue ``w`` and
the forward-allocated reserve ``f``, which is what TCP's memory accounting charges), and
:func:`sockstat_tcp_mem_bytes` from ``/proc/net/sockstat`` (``TCP: … mem N``: pages
charged to TCP by every socket of the network namespace — both ends of a loopback
connection, and anything else running) when ``ss`` is missing. Neither counts the
sockets' own kernel objects (struct tcp_sock, inode, file, epoll item: a few KB each,
visible only in /proc/slabinfo, root only).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MemoryFigures",
    "RssPoint",
    "SocketMemory",
    "least_squares_slope",
    "memory_figures",
    "skmem_bytes",
    "sockstat_tcp_mem_bytes",
]

#: The skmem fields whose sum is a socket's memory as TCP accounts it (see the module doc).
SKMEM_CHARGED: tuple[str, ...] = ("r", "w", "f")
_SKMEM = re.compile(r"skmem:\(([^)]*)\)")
_SKMEM_FIELD = re.compile(r"([a-z]+)(\d+)")


@dataclass(frozen=True)
class RssPoint:
    """The server's RSS once ``connected`` connections were open (and no more connecting)."""

    connected: int
    rss_bytes: int


@dataclass(frozen=True)
class MemoryFigures:
    """A cell's server memory per connection (bytes; None: not measurable from the points).

    ``connected``: connections open at the last point (every divisor counts open ones);
    ``marginal_per_conn``: the slope (needs two points with different counts);
    ``first_conn``: the fixed cost at the first point beyond the slope (None when that
    is negative: the RSS grew faster per connection later than at the first point, so
    the line through the points runs below idle and no fixed cost separates);
    ``growth_per_conn``: (last − idle) ÷ ``connected``.
    """

    connected: int
    growth_bytes: int | None
    growth_per_conn: float | None
    marginal_per_conn: float | None
    first_conn: float | None


def _slope(points: Sequence[RssPoint]) -> float | None:
    """Least-squares slope of RSS over the connected count; None without two counts."""
    return least_squares_slope(
        [float(p.connected) for p in points], [float(p.rss_bytes) for p in points]
    )


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The least-squares slope of ``ys`` over ``xs`` (RSS over connections here, RSS and
    open descriptors over time in the soak); None without two distinct ``xs``."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx


def memory_figures(idle_rss: int | None, points: Sequence[RssPoint]) -> MemoryFigures | None:
    """The memory figures from the idle RSS and the points (in the order taken, counts
    ascending); None when there is no point. Points with no connection open are left
    out of the slope (they are the idle state again)."""
    if not points:
        return None
    last = points[-1]
    live = [p for p in points if p.connected > 0]
    slope = _slope(live)
    growth = None if idle_rss is None else last.rss_bytes - idle_rss
    per_conn = None if growth is None or last.connected <= 0 else growth / last.connected
    first = None
    if slope is not None and idle_rss is not None:
        p0 = live[0]
        first = p0.rss_bytes - idle_rss - slope * p0.connected
        if first < 0:  # the fitted line runs below idle: growth is not fixed + linear
            first = None
    return MemoryFigures(last.connected, growth, per_conn, slope, first)


@dataclass(frozen=True)
class SocketMemory:
    """Kernel memory of some sockets: ``bytes`` over ``sockets``, read by ``source``
    (``ss``: the server's own sockets; ``sockstat``: the namespace's TCP pages)."""

    bytes: int
    sockets: int
    source: str


def skmem_bytes(ss_output: str) -> SocketMemory:
    """The sum of :data:`SKMEM_CHARGED` over every socket of ``ss -tmn`` output (a socket
    without a ``skmem`` block counts nothing)."""
    total = sockets = 0
    for block in _SKMEM.findall(ss_output):
        values = {name: int(num) for name, num in _SKMEM_FIELD.findall(block)}
        total += sum(values.get(k, 0) for k in SKMEM_CHARGED)
        sockets += 1
    return SocketMemory(total, sockets, "ss")


def sockstat_tcp_mem_bytes(text: str, page_size: int) -> SocketMemory | None:
    """``/proc/net/sockstat``'s ``TCP: … inuse I … mem N`` → N pages in bytes over I
    sockets; None when the line or its ``mem`` field is missing."""
    for line in text.splitlines():
        if not line.startswith("TCP:"):
            continue
        words = line.split()[1:]
        fields = dict(zip(words[::2], words[1::2], strict=False))
        if "mem" not in fields:
            return None
        return SocketMemory(int(fields["mem"]) * page_size, int(fields.get("inuse", 0)), "sockstat")
    return None
