"""From what a cell's processes left behind to its ``cells.csv`` row.

The workers' outputs (:class:`~pushbench.schema.worker.WorkerResult` and
receipts), the server's ``/stats`` and the ``/proc`` samples become one row:
the measured window, latency histograms (an HdrHistogram interval log per
repeat under ``hist/``), the latency series (``series/``), delivery, the
latency over every expected message (lost ones infinitely late), throughput,
overhead, and the runner's own columns (``client_processes``: the processes
that actually ran, as each worker's output reports them, :func:`processes_ran`;
``slow_consumers_dropped`` from ``/stats``). Every counter a worker or the server
reports is read (:mod:`.counters`): a harness fault (a full receipt recorder,
unreadable input, a connection never up, messages evicted from the server's history
before they were fetched) fails the repeat with the reason instead of reading as loss.
Failed and skipped cells get a row of their parameters only.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pushbench import cputime, metrics, proxies, registry
from pushbench.procs import ProcSample, Started
from pushbench.results import atomic_write_text
from pushbench.scenario import Cell
from pushbench.schema.cells import ALL_COLUMNS, EXTRA_COLUMNS, PARAM_COLUMNS
from pushbench.schema.outage import FAULT_COLUMNS
from pushbench.schema.scaleout import SCALEOUT_COLUMNS
from pushbench.schema.worker import OutputError, WorkerFailure, WorkerResult, read_output

from .clock import clock_columns
from .counters import counter_columns, harness_faults
from .memory import MEMORY_COLUMNS, MemoryProbe
from .netem import with_relay_cpu
from .options import CellFailed
from .proxy import reason as proxy_reason
from .proxy import upgrade_status
from .scale import scale_columns
from .soak import SOAK_COLUMNS, SoakProbe
from .window import COUNTERS, ClientLoad, ClientWorker, client_load


def _polling(transport: str) -> bool:
    """Whether the transport answers requests (its ``requests`` count means something)."""
    return registry.transport(transport).delivery == "polling"


__all__ = [
    "WorkerRun",
    "bare_row",
    "compute",
    "cpu_accounting",
    "processes_ran",
    "read_results",
    "ticker_seq0",
    "with_broker_cpu",
    "with_proxy_cpu",
    "with_ticker_cpu",
    "with_wire_bytes",
]


@dataclass
class WorkerRun:
    """One worker process of a cell: its process, output path and share of the connections."""

    started: Started
    out: Path
    connections: int
    publishes: bool = False


def measured_window(
    cell: Cell, stats: dict[str, Any], window_start_ns: int | None, all_r: metrics.Receipts
) -> tuple[tuple[int, int], int, int, dict[str, Any]]:
    """The measured window (CLOCK_MONOTONIC ns) and the first and last seq published in it.

    Ticker cells: from the ticker's own start and schedule, and the seqs the hub gave
    its messages (:func:`ticker_seq0`). Chat cells: from the
    runner's clock (the same CLOCK_MONOTONIC), and the seq range of what any
    subscriber received with a scheduled time inside the window — the hub numbers
    every message of the topic, so every seq in between was published.
    """
    warm_ns = int(cell.warmup_s * 1e9)
    dur_ns = int(cell.duration_s * 1e9)
    if window_start_ns is not None and not cell.rate:  # idle: nothing is expected
        return (window_start_ns, window_start_ns + dur_ns), 1, 0, {}
    if window_start_ns is not None:
        window = (window_start_ns, window_start_ns + dur_ns)
        inside = (all_r.sched_ns >= window[0]) & (all_r.sched_ns < window[1])
        seqs = all_r.seq[inside]
        if not len(seqs):
            raise CellFailed("no message scheduled in the window reached any subscriber")
        return window, int(seqs.min()), int(seqs.max()), {}
    ticker = stats.get("ticker") or {}
    start_ns = int(ticker.get("start_ns") or 0)
    if not start_ns:
        raise CellFailed(f"the ticker did not start: {ticker}")
    interval_ns = int(1e9 / cell.rate)  # as the ticker schedules
    count = int(ticker.get("count") or 0)
    end_rel_ns = warm_ns + dur_ns
    first_i = -(-warm_ns // interval_ns)  # ceil: first message scheduled in the window
    last_i = min(-(-end_rel_ns // interval_ns) - 1, count - 1)
    seq0 = ticker_seq0(ticker)
    return (start_ns + warm_ns, start_ns + end_rel_ns), seq0 + first_i, seq0 + last_i, ticker


def ticker_seq0(ticker: Mapping[str, Any]) -> int:
    """The seq the hub gave the ticker's message 0, from the ticker's own record in
    ``/stats`` (``first_seq``, ``last_seq``, ``sent``): message i has seq ``seq0 + i``.

    A hub need not number from 1 (Redis keeps its counter across servers), so the range
    comes from what the hub answered, not from an assumption. A server that does not
    report ``first_seq`` (an external stack) is taken to number from 1. Numbers that are
    not contiguous (someone else published on the topic meanwhile) fail the cell: the
    messages of the window could not be told apart.
    """
    first = int(ticker.get("first_seq") or 0)
    if not first:
        return 1
    last, sent = int(ticker.get("last_seq") or 0), int(ticker.get("sent") or 0)
    if sent and last - first != sent - 1:
        raise CellFailed(
            f"the ticker's {sent} messages got seqs {first}..{last}, not consecutive: "
            "another publisher shares the topic"
        )
    return first


def compute(
    cell: Cell,
    repeat: int,
    name: str,
    run_dir: Path,
    workers: Sequence[WorkerRun],
    stats: dict[str, Any],
    cpu0: ProcSample | None,
    cpu1: ProcSample | None,
    memory_growth: int | None = None,
    window_start_ns: int | None = None,
    drained: tuple[str, float] | None = None,
    *,
    broker_cpu: tuple[ProcSample | None, ProcSample | None] = (None, None),
    memory: MemoryProbe | None = None,
    soak: SoakProbe | None = None,
    relay_cpu: tuple[ProcSample | None, ProcSample | None] = (None, None),
    proxy_cpu: tuple[ProcSample | None, ProcSample | None] = (None, None),
) -> dict[str, Any]:
    """The row of one measured cell × repeat; ``drained``: why the drain ended and how
    long after the window (:func:`.drain.drain`), None when not drained by the runner.
    ``memory``: the server's memory readings (:mod:`.memory`), which give the memory
    columns and the growth in place of ``memory_growth``; every memory figure is divided
    by the connections open once all were up, as the workers report them. ``soak``: a
    churn cell's probe (:mod:`.soak`), which fills the soak columns."""
    outs = read_results(workers)
    results = [info for info, _ in outs]
    faults = harness_faults([w.started.name for w in workers], results, stats)
    upgrade = upgrade_status([c for r in results for c in r.per_connection])  # h27
    if faults:  # the receipts miss what the harness dropped: not a loss to measure
        behind = proxy_reason(cell, upgrade)  # h27: "WebSocket refused by …", "through …"
        why = "; ".join([behind, *faults] if behind else faults)
        raise CellFailed(why, {"upgrade_status": upgrade})
    all_r = metrics.Receipts(
        *(
            np.concatenate([getattr(r, k) for _, r in outs])
            for k in ("conn", "seq", "sched_ns", "pub_ns", "recv_ns")
        )
    )
    window, first_seq, last_seq, ticker = measured_window(cell, stats, window_start_ns, all_r)
    lat = metrics.latency_histograms(all_r, *window)
    corrected, uncorrected = lat.summaries()
    write_hlog(run_dir / "hist" / f"{name}.hlog", all_r, window)
    write_series(run_dir / "series" / f"{name}.csv", all_r, window)
    deliv = metrics.delivery(
        all_r.conn,
        all_r.seq,
        first_seq=first_seq,
        last_seq=last_seq,
        connections=cell.subscribers,
    )
    tput = metrics.throughput(deliv, cell.duration_s)
    tail = metrics.latency_all_expected(all_r, deliv)  # the expected seqs, as deliv counts

    def total(key: str) -> int:
        return sum(r.total(key) for r in results)

    def total_max(key: str) -> int:
        return max((r.total(key) for r in results), default=0)

    connect = [ns for r in results for ns in r.connect_times_ns()]
    load = client_load(
        [
            ClientWorker(w.started.cpus, w.connections, info, receipts.recv_ns)
            for w, (info, receipts) in zip(workers, outs, strict=True)
        ]
    )
    opened = [r.connections - r.connect_failures for r in results]
    conns_open = sum(opened)
    mem_columns: dict[str, Any] = dict.fromkeys(MEMORY_COLUMNS)
    if memory is not None:
        mem_columns = memory.columns(opened)
        figures = memory.figures(opened)
        memory_growth = None if figures is None else figures.growth_bytes
        conns_open = mem_columns["mem_conns_open"]
    sources = {r.bytes_source for r in results}
    max_lag_ns = max(float(r.max_loop_lag_ns) for r in results)
    overhead = metrics.Overhead(
        server_cpu_s=None if cpu0 is None or cpu1 is None else cpu1.cpu_s - cpu0.cpu_s,
        server_rss_bytes=None if cpu1 is None else cpu1.rss_bytes,
        server_rss_growth_bytes=memory_growth,
        conns_open=conns_open,
        client_cpu_s=load.cpu_s,
        bytes_in=total("bytes_in"),
        bytes_out=total("bytes_out"),
        handshake_bytes_in=total("handshake_bytes_in"),
        handshake_bytes_out=total("handshake_bytes_out"),
        bytes_source=sources.pop() if len(sources) == 1 else "mixed",
        connect_p50_us=float(np.median(connect)) / 1e3 if connect else None,
        requests=total("requests") if _polling(cell.transport) else None,
        errors=total("errors"),
        reconnects=total("reconnects"),
        client_max_loop_lag_us=max_lag_ns / 1e3,
        client_loop_stalls=metrics.loop_stalls(r.extra.get("loop_lag_hist") for r in results),
    )
    row = metrics.cell_row(
        cell,
        repeat,
        latency=corrected,
        latency_uncorrected=uncorrected,
        delivery=deliv,
        throughput=tput,
        overhead=overhead,
    )
    # Per message received, numerator and denominator over one span: the window
    # (:mod:`.window`), not the messages of the window against a whole run's counters.
    for key in COUNTERS:
        if row[f"{key}_per_msg"] is not None:
            row[f"{key}_per_msg"] = load.per_msg(key)
    row["delivered_msgs_per_client_cpu_s"] = load.msgs_per_cpu_s()
    row.update(
        status="ok",
        reason="",
        client_processes=sum(processes_ran(r) for r in results),
        client_cpu_fraction_max=load.process_busy_max,
        harness_bound=load.harness_bound,
        publish_lag_max_us=ticker.get("lag_max_us"),
        publish_lag_p50_us=ticker.get("lag_p50_us"),
        publish_lag_p99_us=ticker.get("lag_p99_us"),
        probe=False,
        bytes_per_conn_per_s=load.bytes_per_conn_per_s(),
        client_core_busy_max=load.core_busy_max,
        **tail.columns(),
        slow_consumers_dropped=stats.get("slow_consumers_dropped"),
        drain_s=None if drained is None else drained[1],
        drain_end=None if drained is None else drained[0],
        history_gap_msgs=stats.get("history_gap_messages"),
        publish_overruns=total("publish_overruns") if cell.publishers else None,
        **counter_columns(cell, results),
        **mem_columns,
        **clock_columns(results),  # issue 18: the workers' clock offsets to the server's
        server_unmeasured=None,  # an external target's cells say why (.target)
    )
    soak_columns = dict.fromkeys(SOAK_COLUMNS)  # issue 17 item 6: churn cells only
    if soak is not None:
        soak_columns = soak.columns(results, all_r, ticker, cell.subscribers)
    row.update(soak_columns)
    row.update(tls_phase_columns(results))  # issue 12 item 2
    # issue 12 item 2: server | proxy | end-to-end (h42)
    row["tls_at"] = proxies.tls_at(cell.via, cell.tls, cell.tls_at)
    row.update(dict.fromkeys(c.name for c in SCALEOUT_COLUMNS))  # issue 12 item 4: .scaleout
    row.update(round=None, run_index=None)  # the run's order: set by .orchestrate
    row.update(speed_probe_ns=None, machine_slowdown=None, cost_slowdown=None)  # .orchestrate
    row.update(steal_fraction_max=None)  # .cell: over the window, from /proc/stat
    row.update(kernel_floor_send_ns=None, kernel_floor_recv_ns=None)  # .kernel, at the end
    if cell.publishers:
        row["publish_lag_max_us"] = total_max("publish_lag_max_ns") / 1e3
    row = with_ticker_cpu(with_broker_cpu(row, *broker_cpu), ticker, last_seq - first_seq + 1)
    row = with_relay_cpu(row, *relay_cpu)  # network conditions (issue 12 item 6)
    row = with_proxy_cpu(row, *proxy_cpu)  # h27
    row["upgrade_status"] = upgrade
    # issue 18 item 2: sources, connect rate, idle CPU per connection-second, fan-out
    server_cpu_s = overhead.server_cpu_s
    row.update(scale_columns(cell, results, all_r, window, server_cpu_s, int(conns_open or 0)))
    row.update((c.name, None) for c in FAULT_COLUMNS)  # h32: a fault cell's by runner.outage
    return in_schema_order(with_wire_bytes(row, load))


def tls_phase_columns(results: Sequence[WorkerResult]) -> dict[str, float | None]:
    """``tcp_connect_p50_us`` and ``tls_handshake_p50_us``: the medians over connections of
    the connect phases the clients timed (None where none did; issue 12 item 2)."""
    out: dict[str, float | None] = {}
    for column, key in (
        ("tcp_connect_p50_us", "tcp_connect_ns"),
        ("tls_handshake_p50_us", "tls_handshake_ns"),
    ):
        times = [ns for r in results for ns in r.phase_times_ns(key)]
        out[column] = float(np.median(times)) / 1e3 if times else None
    return out


def in_schema_order(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its columns in cells.csv's order (keys outside the schema last)."""
    ordered = {k: row[k] for k in ALL_COLUMNS if k in row}
    ordered.update((k, v) for k, v in row.items() if k not in ordered)
    return ordered


def with_broker_cpu(
    row: dict[str, Any], start: ProcSample | None, end: ProcSample | None
) -> dict[str, Any]:
    """``row`` with ``broker_cpu_us_per_msg``: the cell's Redis server's CPU over the
    window (``start``/``end``: its /proc samples at the window's edges, None when the cell
    has no broker) per message delivered, the denominator of ``server_cpu_us_per_msg``.
    Empty when there is no broker or nothing was delivered."""
    delivered = row.get("msgs_delivered")
    value = None
    if start is not None and end is not None and delivered:
        value = (end.cpu_s - start.cpu_s) * 1e6 / delivered
    return {**row, "broker_cpu_us_per_msg": value}


def with_proxy_cpu(
    row: dict[str, Any], start: ProcSample | None, end: ProcSample | None
) -> dict[str, Any]:
    """h27: ``row`` with ``proxy_cpu_us_per_msg``, the reverse proxy's CPU over the window
    per message delivered, as :func:`with_broker_cpu` (empty when direct)."""
    delivered = row.get("msgs_delivered")
    value = None
    if start is not None and end is not None and delivered:
        value = (end.cpu_s - start.cpu_s) * 1e6 / delivered
    return {**row, "proxy_cpu_us_per_msg": value}


def cpu_accounting() -> dict[str, str]:
    """How the rows' CPU figures are measured, for metadata.json (``cpu_accounting``);
    ``source``: what :mod:`pushbench.cputime` reads on this machine (``clock``: process
    CPU clocks, ns; ``schedstat``; ``ticks``: 10 ms clock ticks)."""
    here = cputime.read(os.getpid())
    return {
        "ticker": "ticker on the server core, its own cost reported separately "
        "(ticker_cpu_us_per_msg; server_cpu_us_per_msg includes it)",
        "server": "the server process's CPU, all threads, at the window's edges",
        "broker": "the Redis server's CPU, all threads, at the window's edges",
        "proxy": "the reverse proxy's CPU (via), all threads, at the window's edges; it "
        "runs pinned to the server CPUs",
        "clients": "asyncio workers: getrusage (µs); Locust's and the browser's processes: "
        "pushbench.cputime, at the runner's window signals",
        "source": here.source if here is not None else "unavailable",
    }


def with_ticker_cpu(
    row: dict[str, Any], ticker: Mapping[str, Any], published: int
) -> dict[str, Any]:
    """``row`` with ``ticker_cpu_us_per_msg``: the in-server ticker's own CPU per message
    it published (its ``/stats`` record: ``own_cpu_us_per_msg``, over its whole run) ×
    the ``published`` messages of the window ÷ ``msgs_delivered`` — the denominator of
    ``server_cpu_us_per_msg``, which includes it. Empty without a ticker (chat, idle),
    from a server that does not report it, or when nothing was delivered."""
    delivered, own = row.get("msgs_delivered"), ticker.get("own_cpu_us_per_msg")
    value = None
    if own is not None and delivered and published > 0:
        value = float(own) * published / delivered
    return {**row, "ticker_cpu_us_per_msg": value}


def with_wire_bytes(row: dict[str, Any], load: ClientLoad) -> dict[str, Any]:
    """``row`` with the on-the-wire estimates beside its TCP payload byte columns: payload
    plus :data:`pushbench.metrics.HEADER_BYTES_PER_SEGMENT` per TCP segment, segments
    counted by the same kernel counters over the same span (:mod:`pushbench.metrics.wire`).
    Empty where the bytes are not the kernel's (``bytes_source`` not ``tcp_info…``) or a
    worker did not count segments."""
    kernel = str(row.get("bytes_source") or "").startswith("tcp_info")
    segs = ("segs_in", "segs_out")
    wire = {
        "wire_bytes_in_per_msg": metrics.wire_bytes(
            row.get("bytes_in_per_msg"), load.per_msg("segs_in")
        ),
        "wire_bytes_out_per_msg": metrics.wire_bytes(
            row.get("bytes_out_per_msg"), load.per_msg("segs_out")
        ),
        "wire_bytes_per_conn_per_s": metrics.wire_bytes(
            row.get("bytes_per_conn_per_s"), load.bytes_per_conn_per_s(segs)
        ),
    }
    return {**row, **{k: v if kernel else None for k, v in wire.items()}}


def write_hlog(path: Path, receipts: metrics.Receipts, window: tuple[int, int]) -> None:
    """The window's corrected and uncorrected latency per second as an HdrHistogram log.

    The window is on CLOCK_MONOTONIC (the receipts' clock); the log's StartTime is
    that instant on the wall clock, so HdrHistogram's tools show when it ran.
    """
    wall_s = (window[0] + time.time_ns() - time.monotonic_ns()) / 1e9
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_hlog(path, metrics.latency_log(receipts, *window, start_time_s=wall_s))


def processes_ran(result: WorkerResult) -> int:
    """The OS processes that ran one worker's clients, as its output reports them.

    An asyncio worker is one process. A Locust worker is a wrapper around Locust's own
    processes: the ones that ran users (``extra["locust"]["processes"]``) plus the
    master when there are workers; the wrapper, which runs no user, is not counted. A
    browser worker counts the browser's processes whose CPU it read
    (``extra["cpu_processes"]``: browser, renderers, GPU), not its Python driver; 1
    when it could not read them.
    """
    locust = result.extra.get("locust")
    if isinstance(locust, Mapping):
        running = len(locust.get("processes") or ())
        master = 1 if int(locust.get("workers") or 0) > 0 else 0
        return max(1, running + master)
    browser = int(result.extra.get("cpu_processes") or 0)
    return browser if browser > 0 else 1


def write_series(path: Path, receipts: metrics.Receipts, window: tuple[int, int]) -> None:
    """Corrected latency over the window in ≤ 2,000 time buckets (median and max each)."""
    series = metrics.latency_series(receipts, *window)
    buf = io.StringIO()
    buf.write("t_s,width_s,count,p50_us,max_us\n")
    for t, n, p50, mx in zip(series.t_s, series.count, series.p50_us, series.max_us, strict=True):
        buf.write(f"{t:.6f},{series.bucket_s:.6f},{n},{p50:.1f},{mx:.1f}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def bare_row(cell: Cell, repeat: int, status: str, reason: str) -> dict[str, Any]:
    """A row with the cell's parameters and no measurements (failed or skipped)."""
    empty = metrics.Delivery(1, 0, *(np.zeros(0, dtype=np.int64) for _ in range(5)))
    summary = metrics.summarize(metrics.new_histogram())
    full = metrics.cell_row(
        cell,
        repeat,
        latency=summary,
        latency_uncorrected=summary,
        delivery=empty,
        throughput=metrics.Throughput(cell.duration_s, 0.0, 0.0, 0.0),
    )
    row: dict[str, Any] = {k: (full[k] if k in PARAM_COLUMNS else None) for k in full}
    row.update(dict.fromkeys(EXTRA_COLUMNS))  # the runner's own columns: none measured
    row.update(status=status, reason=reason, probe=False)
    if cell.fault is not None:  # h32 (issue 12 item 5): which fault, even when not run
        row["fault"] = cell.fault.describe()
    return row


def read_results(workers: Sequence[WorkerRun]) -> list[tuple[WorkerResult, metrics.Receipts]]:
    """Each worker's OUT.json record and receipts; CellFailed for a worker that wrote no
    output or a :class:`~pushbench.schema.worker.WorkerFailure`."""
    outs = []
    for w in workers:
        json_path = w.out.with_name(w.out.name + ".json")
        if not json_path.exists():
            raise CellFailed(f"{w.started.name} wrote no output ({json_path.name})")
        try:
            info = read_output(json.loads(json_path.read_text()))
        except OutputError as exc:  # a field missing or of the wrong kind: never a 0
            raise CellFailed(f"{w.started.name} wrote no worker record: {exc}") from exc
        if isinstance(info, WorkerFailure):
            raise CellFailed(f"{w.started.name} failed: {info.reason}")
        receipts = metrics.Receipts.load(w.out.with_name(w.out.name + ".npz"))
        outs.append((info, receipts))
    return outs
