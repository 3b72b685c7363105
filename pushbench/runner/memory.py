"""What the runner reads of a cell's server memory: RSS at several connection counts, and
the kernel memory of the server's sockets.

:class:`MemoryProbe` reads the server's RSS before the first connection (:meth:`idle`)
and after each stage of connections is up (:meth:`read`): the first worker opens half
its connections, says how many connected and waits
(:attr:`~pushbench.schema.worker.WorkerSpec.stage_connections`), then the rest; every
further worker adds a point when it is up. Which count each point stands for is known
once the workers' outputs say how many of their connections were open when they were
ready (:meth:`columns`); the arithmetic is :func:`pushbench.metrics.memory_figures`.

Kernel memory (:meth:`kernel`): the server's established sockets from ``ss -tmn``
(:func:`pushbench.metrics.skmem_bytes`), read once every connection is up (at rest) and
at the end of the measured window (under load); without ``ss``, the growth of
``/proc/net/sockstat``'s TCP pages since idle (the whole network namespace: both ends
of each loopback connection).
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushbench.metrics import (
    MemoryFigures,
    RssPoint,
    SocketMemory,
    memory_figures,
    skmem_bytes,
    sockstat_tcp_mem_bytes,
)
from pushbench.procs import run_tool, sample

__all__ = [
    "MEMORY_COLUMNS",
    "RSS_SETTLE_S",
    "MemoryProbe",
    "RssReading",
    "rss_points",
    "server_port",
    "socket_memory",
]

#: Pause before an RSS reading once a stage is up: the server finishes what the last
#: connections started (subscribing, first writes) before its memory is read.
RSS_SETTLE_S = 0.1
SOCKSTAT = Path("/proc/net/sockstat")
#: The cells.csv columns :meth:`MemoryProbe.columns` fills (schema: EXTRA_COLUMNS).
MEMORY_COLUMNS: tuple[str, ...] = (
    "mem_conns_open",
    "mem_marginal_bytes_per_conn",
    "mem_first_conn_bytes",
    "kernel_sock_bytes_per_conn",
    "kernel_sock_load_bytes_per_conn",
    "kernel_sock_source",
)


@dataclass(frozen=True)
class RssReading:
    """The server's RSS with the first ``workers_up`` workers all up and ``partial``
    connections of the next one connected (its first stage)."""

    rss_bytes: int
    workers_up: int
    partial: int = 0


def rss_points(readings: Sequence[RssReading], opened: Sequence[int]) -> list[RssPoint]:
    """The readings as (connections open, RSS); ``opened[k]``: the connections worker k
    had open when it was ready (its connections − its connect failures)."""
    return [RssPoint(sum(opened[: r.workers_up]) + r.partial, r.rss_bytes) for r in readings]


def server_port(base_url: str) -> int | None:
    """The port of the server's base URL (None when it has none)."""
    return urllib.parse.urlsplit(base_url).port


def socket_memory(port: int) -> SocketMemory | None:
    """Kernel memory of the established TCP sockets whose local port is ``port`` (the
    server's side of each connection), from ``ss -tmn``; None when ``ss`` fails."""
    out = run_tool(["ss", "-tmnH", "state", "established", f"( sport = :{port} )"])
    return None if out is None else skmem_bytes(out)


def _sockstat() -> SocketMemory | None:
    try:
        text = SOCKSTAT.read_text()
    except OSError:
        return None
    return sockstat_tcp_mem_bytes(text, os.sysconf("SC_PAGE_SIZE"))


@dataclass
class MemoryProbe:
    """The memory readings of one cell's server (pid ``pid``, listening on ``port``)."""

    pid: int
    port: int | None
    #: h44: more server processes whose RSS is added to ``pid``'s at every reading (nodes
    #: sharing one port: the slope is then the sum of theirs); () for one process
    others: tuple[int, ...] = ()
    idle_rss: int | None = None
    idle_sockstat: SocketMemory | None = None
    readings: list[RssReading] = field(default_factory=list)
    kernel_up: SocketMemory | None = None
    kernel_load: SocketMemory | None = None
    order: list[int] | None = None  # worker indexes in the order they started (None: 0, 1, …)

    def _in_order(self, opened: Sequence[int]) -> list[int]:
        """``opened`` (by worker index) in start order, as the readings count workers."""
        if self.order is None:
            return list(opened)
        return [opened[k] for k in self.order]

    def idle(self) -> None:
        """Before the first connection: RSS and the namespace's TCP pages."""
        self.idle_rss = self._rss()
        self.idle_sockstat = _sockstat()

    def read(self, workers_up: int, partial: int = 0) -> None:
        """A stage is up (see :class:`RssReading`): RSS after :data:`RSS_SETTLE_S`."""
        time.sleep(RSS_SETTLE_S)
        rss = self._rss()
        if rss is not None:
            self.readings.append(RssReading(rss, workers_up, partial))

    def _rss(self) -> int | None:
        """The RSS of ``pid`` and ``others`` summed; None when one of them is gone."""
        total = 0
        for pid in (self.pid, *self.others):
            s = sample(pid)
            if s is None:
                return None
            total += s.rss_bytes
        return total

    def kernel(self) -> SocketMemory | None:
        """The server's sockets now (``ss``), else the TCP pages grown since idle."""
        if self.port is not None:
            got = socket_memory(self.port)
            if got is not None:
                return got
        now, idle = _sockstat(), self.idle_sockstat
        if now is None or idle is None:
            return None
        return SocketMemory(now.bytes - idle.bytes, now.sockets - idle.sockets, now.source)

    def figures(self, opened: Sequence[int]) -> MemoryFigures | None:
        """The memory figures once the workers' open counts are known."""
        return memory_figures(self.idle_rss, rss_points(self.readings, self._in_order(opened)))

    def columns(self, opened: Sequence[int]) -> dict[str, Any]:
        """The :data:`MEMORY_COLUMNS` of the row: every divisor the connections open."""
        figures = self.figures(opened)
        conns = figures.connected if figures is not None else sum(opened)

        def per_conn(mem: SocketMemory | None) -> float | None:
            return None if mem is None or conns <= 0 else mem.bytes / conns

        source = next((m.source for m in (self.kernel_up, self.kernel_load) if m), None)
        return {
            "mem_conns_open": conns,
            "mem_marginal_bytes_per_conn": figures.marginal_per_conn if figures else None,
            "mem_first_conn_bytes": figures.first_conn if figures else None,
            "kernel_sock_bytes_per_conn": per_conn(self.kernel_up),
            "kernel_sock_load_bytes_per_conn": per_conn(self.kernel_load),
            "kernel_sock_source": source,
        }
