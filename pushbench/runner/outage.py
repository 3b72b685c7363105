"""A fault in the measured window (issue 12 item 5, h32): inject it, lift it, measure it.

:func:`inject` runs inside the window (the caller waits until ``at_s`` into it):

- ``server-kill``: SIGKILL to the server, which leaves the group (a death the runner
  caused is not a crash); ``down_s`` later the same argv is started again with the port
  the clients know in place of ``--port 0`` (its Redis URL and key prefix unchanged, so
  the sequence and history go on), and the ticker is posted again for the rest of the
  window (the old one died with its process). With ``servers = N`` (h41) it kills node
  ``fault.node`` only and restarts it on its port; the ticker is posted again only when
  that was node 0 (the others never ran it). The node's clients come back through nginx
  (its upstream marks the dead node failed and passes a reconnect on to a live one) and
  resume there from the broker's history. Its CPU before the kill still counts
  (:func:`rebase`), and so do its /stats counters (:func:`with_killed`);
- ``proxy-restart``: the proxy in front is stopped, and started again on its port
  ``down_s`` later (server, hub and ticker stay up);
- ``broker-pause``: SIGSTOP to the Redis server, SIGCONT ``down_s`` later — in a
  ``finally``, so it is continued on every exit path.

What it did comes back as a :class:`FaultRun` (when, how long, the port), and
:func:`columns` turns it and the workers' outputs into the fault columns of
:mod:`pushbench.schema.outage`: per client the time from the fault to its first message
after the fault was lifted, the loss and duplicates of the window's seq range, and the
reconnect storm's peak per 100 ms. For a kill of one node of several the clients the
kill disconnected are the ones timed (the others never stopped receiving): each one from
the fault to its first message after its first reconnect, which for them is before the
node is back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pushbench import metrics, registry
from pushbench.procs import Pinning, ProcessGroup, ProcSample, Started, sample
from pushbench.scenario import Cell
from pushbench.tls import TlsFiles

from .options import READY_TIMEOUT_S, CellFailed
from .proxy import start_proxy
from .rows import WorkerRun, read_results
from .scaleout import SUMMED_STATS
from .server import HOST, Server

__all__ = [
    "STORM_BIN_NS",
    "TAIL_S",
    "FaultRun",
    "columns",
    "inject",
    "rebase",
    "restart_argv",
    "storm_peak",
    "with_killed",
]

#: A fault cell's ticker runs this long past the window, so a client that comes back
#: late still gets a message its reconnect is timed by (the seq range counted for loss
#: stays the window's).
TAIL_S = 3.0
#: The reconnect storm's rate is counted per this much time.
STORM_BIN_NS = 100_000_000
MEMORY_HUB_KILL = (
    "server-kill with hub = 'memory': the history and the sequence die with the server, so "
    "no client can resume losslessly; run it with hub = 'redis'"
)


@dataclass(frozen=True)
class FaultRun:
    """What :func:`inject` did: the fault at ``at_ns``, lifted at ``back_ns``
    (CLOCK_MONOTONIC), and whether the restarted process got its old port. A server-kill
    of one node of several (h41) adds the node, the clients it was serving, its last
    /proc reading and its ``/stats`` before the kill."""

    kind: str
    at_ns: int
    back_ns: int
    same_port: bool | None = None
    node: int | None = None
    node_clients: int | None = None
    node_last: ProcSample | None = None
    node_stats: Mapping[str, Any] | None = None


def tail_s(cell: Cell) -> float:
    """Seconds the cell's ticker runs past its window: :data:`TAIL_S` with a fault."""
    return TAIL_S if cell.fault is not None else 0.0


def unsupported(cell: Cell) -> str:
    """Why a fault cell cannot run here ("" when it can)."""
    fault = cell.fault
    if fault is None:
        return ""
    if fault.kind == "server-kill" and cell.hub == "memory":
        return MEMORY_HUB_KILL
    if fault.kind == "server-kill" and registry.stack(cell.stack).external:
        return "server-kill: an external stack's restart is not supported yet"
    return ""


def restart_argv(argv: Sequence[str], port: int) -> list[str]:
    """``argv`` with its ``--port`` value replaced by ``port``."""
    out = list(argv)
    if "--port" not in out:
        raise CellFailed("server-kill: the server's argv has no --port to restart it on")
    i = out.index("--port")
    out[i + 1] = str(port)
    return out


def _port(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    if port is None:
        raise CellFailed(f"server-kill: no port in {url!r}")
    return port


def inject(
    cell: Cell,
    group: ProcessGroup,
    pinning: Pinning,
    server: Server | None,
    proxy: Started | None,
    server_url: str,
    proxy_dir: Path,
    wait: Callable[[float], None],
    repost_ticker: Callable[[], None],
    tls: TlsFiles | None = None,  # issue 12 item 2: a restarted proxy terminates TLS again
    node_stats: Callable[[str], Mapping[str, Any]] | None = None,  # h41: GET url's /stats
) -> tuple[FaultRun, Server | None, Started | None]:
    """Inject the cell's fault now and lift it ``down_s`` later (``wait(until)``: the
    runner's wait, checking the other processes) → (what happened, the server and proxy
    as they now are)."""
    fault = cell.fault
    assert fault is not None
    if server is None:
        raise CellFailed("a fault needs a server the runner started")
    at_ns = time.monotonic_ns()
    until = time.monotonic() + fault.down_s
    if fault.kind == "broker-pause":
        if server.broker is None:
            raise CellFailed("broker-pause: no Redis server was started")
        pid = server.broker.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            wait(until)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        return FaultRun(fault.kind, at_ns, time.monotonic_ns()), server, proxy
    if fault.kind == "proxy-restart":
        if proxy is None:
            raise CellFailed("proxy-restart: no proxy in front")
        port = _port("http://" + proxy.ready_line.rsplit(" ", 1)[-1])  # "… listening on h:p"
        group.stop(proxy)
        group.started.remove(proxy)
        wait(until)
        started, url = start_proxy(group, cell, pinning, server_url, proxy_dir, port=port, tls=tls)
        run = FaultRun(fault.kind, at_ns, time.monotonic_ns(), _port(url) == port)
        return run, server, started
    # server-kill (h41: of node ``fault.node`` when the cell runs several behind nginx)
    k = fault.node
    several = len(server.nodes) > 1
    if k >= max(1, len(server.nodes)):
        raise CellFailed(f"server-kill: no node {k} (servers = {len(server.nodes)})")
    old, url = server.nodes[k] if server.nodes else (server.started, server.base_url)
    port = _port(url)
    argv = [str(a) for a in old.proc.args] if isinstance(old.proc.args, list) else []
    # h41: the node's last reading and its /stats, so its CPU and counters before the
    # kill still count (:func:`rebase`, :func:`with_killed`)
    last = sample(old.pid) if several else None
    before = dict(node_stats(url)) if several and node_stats is not None else {}
    at_ns, until = time.monotonic_ns(), time.monotonic() + fault.down_s
    old.proc.kill()
    old.proc.wait(5)
    if old.proc.stdout is not None:
        old.proc.stdout.close()
    group.started.remove(old)
    wait(until)
    new = group.start(
        "server" if k == 0 else f"server{k}",
        restart_argv(argv, port),
        cpus=old.cpus,
        ready_prefix=registry.stack(cell.stack).ready_line,
        timeout_s=READY_TIMEOUT_S,
    )
    back_ns = time.monotonic_ns()
    same = f"{HOST}:{port}" in new.ready_line
    if k == 0:  # the ticker runs on node 0 only: another node's death leaves it running
        repost_ticker()
    if not several:
        return FaultRun(fault.kind, at_ns, back_ns, same), replace(server, started=new), proxy
    nodes = list(server.nodes)
    nodes[k] = (new, url)
    clients = before.get("connections_open")
    run = FaultRun(
        fault.kind,
        at_ns,
        back_ns,
        same,
        node=k,
        node_clients=None if clients is None else int(clients),
        node_last=last,
        node_stats=before,
    )
    return run, replace(server, started=nodes[0][0], nodes=tuple(nodes)), proxy


def rebase(start: Sequence[ProcSample | None], run: FaultRun | None) -> list[ProcSample | None]:
    """The nodes' window-start readings with a killed node's moved back (h41), so its
    CPU over the window is the old process's from the start to the kill plus the
    restarted one's whole life (start-up included): ``end − (start − last)``."""
    out = list(start)
    if run is None or run.node is None or run.node_last is None:
        return out
    s0 = out[run.node]
    if s0 is not None:
        cpu = s0.cpu_s - run.node_last.cpu_s
        out[run.node] = ProcSample(cpu, s0.rss_bytes, s0.at_ns, s0.cpu_source)
    return out


def with_killed(
    per_node: Sequence[Mapping[str, Any]], run: FaultRun | None
) -> list[dict[str, Any]]:
    """Every node's ``/stats`` with the killed node's counters from before the kill added
    to its restarted process's (:data:`.scaleout.SUMMED_STATS`; h41)."""
    out = [dict(s) for s in per_node]
    if run is None or run.node is None or not run.node_stats:
        return out
    mine = out[run.node]
    for key in SUMMED_STATS:
        if key in run.node_stats:
            mine[key] = int(mine.get(key) or 0) + int(run.node_stats[key] or 0)
    return out


def storm_peak(times_ns: Sequence[int] | np.ndarray[Any, Any], bin_ns: int = STORM_BIN_NS) -> int:
    """Most of ``times_ns`` in any window of ``bin_ns`` (sliding, anchored at each time)."""
    t = np.sort(np.asarray(times_ns, dtype=np.int64))
    if not len(t):
        return 0
    ends = np.searchsorted(t, t + bin_ns, side="left")
    return int(np.max(ends - np.arange(len(t))))


def columns(
    cell: Cell, run: FaultRun | None, workers: Sequence[WorkerRun], window: tuple[int, int]
) -> dict[str, Any]:
    """The fault columns of the row (:data:`pushbench.schema.outage.FAULT_COLUMNS`)."""
    if cell.fault is None or run is None:
        return {"fault": None if cell.fault is None else cell.fault.describe()}
    outs = read_results(workers)
    conn = np.concatenate([r.conn for _, r in outs]).astype(np.int64)
    seq = np.concatenate([r.seq for _, r in outs])
    sched = np.concatenate([r.sched_ns for _, r in outs])
    recv = np.concatenate([r.recv_ns for _, r in outs])
    # per client: the first message after the fault was lifted — for it, when a node of
    # several was killed (h41): the clients it disconnected, after each one's reconnect
    since = _killed_clients(run, outs)
    after = recv >= run.back_ns
    if since is not None:
        after = recv >= np.array([since.get(c, _NEVER) for c in conn.tolist()], dtype=np.int64)
    firsts: dict[int, int] = {}
    for c, t in zip(conn[after].tolist(), recv[after].tolist(), strict=True):
        if c not in firsts or t < firsts[c]:
            firsts[c] = t
    waits_ms = np.array([(t - run.at_ns) / 1e6 for t in firsts.values()], dtype=np.float64)
    # loss and duplicates over the window's seq range (as the row's chat accounting)
    inside = (sched >= window[0]) & (sched < window[1])
    lost = dup = None
    if inside.any():
        d = metrics.delivery(
            conn,
            seq,
            first_seq=int(seq[inside].min()),
            last_seq=int(seq[inside].max()),
            connections=cell.subscribers,
        )
        lost, dup = d.total("lost"), d.total("duplicated")
    stamps = [
        int(t)
        for info, _ in outs
        for c in info.per_connection
        for t in c.get("reconnect_at_ns", ())
        if int(t) >= run.at_ns
    ]
    reported = any("reconnect_at_ns" in c for info, _ in outs for c in info.per_connection)
    source = "reconnects" if reported else "first messages"
    peak = storm_peak(stamps if reported else list(firsts.values()))

    def pct(q: float) -> float | None:
        return float(np.percentile(waits_ms, q)) if len(waits_ms) else None

    return {
        "fault": cell.fault.describe(),
        "fault_restored_ms": (run.back_ns - run.at_ns) / 1e6,
        "fault_same_port": run.same_port,
        "reconnect_p50_ms": pct(50),
        "reconnect_p99_ms": pct(99),
        "reconnect_max_ms": float(waits_ms.max()) if len(waits_ms) else None,
        "reconnected_clients": len(firsts),
        "fault_msgs_lost": lost,
        "fault_msgs_duplicated": dup,
        "storm_peak_per_100ms": peak,
        "storm_source": source,
        "fault_node": run.node,  # h41
        "fault_node_clients": run.node_clients,
    }


#: Later than any receive time: a client the node kill did not disconnect.
_NEVER = np.iinfo(np.int64).max


def _killed_clients(run: FaultRun, outs: Sequence[tuple[Any, Any]]) -> dict[int, int] | None:
    """A node kill's clients (h41): connection id → its first reconnect after the fault;
    None when it was not a node kill or the clients report no reconnect times (the
    browser's: then every client's first message after the node is back counts)."""
    if run.node is None:
        return None
    out: dict[int, int] = {}
    reported = False
    for info, _ in outs:
        for c in info.per_connection:
            if "reconnect_at_ns" not in c:
                continue
            reported = True
            stamps = [int(t) for t in c["reconnect_at_ns"] if int(t) >= run.at_ns]
            if stamps:
                out[int(c["conn"])] = min(stamps)
    return out if reported else None
