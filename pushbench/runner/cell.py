"""Measuring one cell × repeat: server, workers, load, window, stop, then the row.

For each run: a fresh server (:mod:`.server`) pinned to the server CPUs,
client workers pinned to the client CPUs (``pushbench.clients.worker``;
``pushbench.clients.browser_worker`` or ``pushbench.clients.locust_worker``
when the cell's ``client`` says so — all read a
:class:`~pushbench.schema.worker.WorkerSpec` and write a
:class:`~pushbench.schema.worker.WorkerResult`), then the load: the server's
ticker (``POST /control/ticker`` for ``rate × (warm-up + duration)``
messages), or for chat cells (``publishers > 0``) the publishing clients
themselves, whose workers start after the others (:func:`start_order`). Each worker's
receipt capacity is sized from the cell (:func:`receipt_capacity`). Server RSS is read
before the first connection, once the first worker's first half of its connections is
up (it waits for the runner's signal before opening the rest), and once each worker is
up; the kernel memory of the server's sockets once all are up and at the window's end
(memory per connection as a slope: :mod:`.memory`); server CPU at the start and end of
the measured window, and at the same moments each worker is signalled to read its own
CPU and counters (:data:`~pushbench.schema.worker.WINDOW_SIGNALS`), so the
client's CPU and every per-message ratio cover that window (:mod:`.window`).
After the drain (:mod:`.drain`: until every connection has the window's last
message, all went quiet, or a cap) the workers are stopped (SIGTERM) and their
outputs turned into the row (:mod:`.rows`). Everything started is stopped in
a ``finally``, whatever happened. Against an external target (``--target``,
:mod:`.target`) no server is started or sampled: the clients connect to the
target and the row's server columns stay empty, ``server_unmeasured`` saying why.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import ssl
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pushbench import proxies
from pushbench.browser import MISSING_HINT, chromium_path
from pushbench.netem import profile
from pushbench.procs import Pinning, ProcessGroup, Started, sample
from pushbench.results import atomic_write_json
from pushbench.scenario import Cell
from pushbench.schema.worker import (
    STAGE_LINE,
    STAGE_SIGNAL,
    WINDOW_SIGNALS,
    PublishSpec,
    WorkerSpec,
)
from pushbench.tls import TlsError, TlsFiles, client_context, generate

from . import alive, drain, netem, outage, scale, scaleout, sharedport, steal
from .memory import MemoryProbe, server_port
from .options import (
    READY_TIMEOUT_S,
    TICKER_DELAY_S,
    TOPIC,
    WORKER_SLACK_S,
    CellFailed,
    RunOptions,
)
from .progress import Progress
from .proxy import start_proxy
from .rows import WorkerRun, bare_row, compute
from .server import Server, start_server, unsupported_by_stack
from .soak import SoakProbe
from .target import TargetProbe, server_unmeasured

__all__ = [
    "CAPACITY_MARGIN",
    "CAPACITY_SLACK",
    "CHAT_EDGES_S",
    "CONNECTIONS_PER_WORKER",
    "WORKER_MODULES",
    "plan_workers",
    "receipt_capacity",
    "receiving_s",
    "run_one",
    "stage_size",
    "start_order",
    "worker_spec",
]

CONNECTIONS_PER_WORKER = 1000  # "auto" client processes
#: Receipt capacity: this many times what a worker's connections can receive, plus the slack.
CAPACITY_MARGIN = 1.1
CAPACITY_SLACK = 1000
#: Chat cells: publishing outside warm-up, window and drain (the publishers' connection
#: ramp before the window, reading /stats and stopping them after the drain), seconds.
CHAT_EDGES_S = 3.0
HTTP_TIMEOUT_S = 5.0
TLS_DIR = "tls"  # a run's certificates (pushbench.tls), shared by its TLS cells
#: The worker module each ``client`` runs (same spec, same output contract).
WORKER_MODULES: dict[str, str] = {
    "python": "pushbench.clients.worker",
    "browser": "pushbench.clients.browser_worker",
    "locust": "pushbench.clients.locust_worker",
}


def _unsupported(cell: Cell) -> str:
    if cell.checks.server_active and cell.hub != "memory":
        return "self-check server faults need the in-process hub (hub = memory)"
    by_stack = unsupported_by_stack(cell)
    if by_stack:
        return by_stack
    if cell.tls and cell.client != "python":  # issue 12 item 2
        return f"tls = true: the {cell.client} client does not speak TLS here (python only)"
    too_many = scale.unsupported(cell)  # issue 18 item 2: sources the client cannot bind
    if too_many:
        return too_many
    no_proxy = proxies.missing(cell.via)  # h27: the proxy in front is not installed
    if no_proxy:
        return no_proxy
    if outage.unsupported(cell):  # h32 (issue 12 item 5)
        return outage.unsupported(cell)
    if cell.client == "browser" and chromium_path() is None:
        return f"client = 'browser' needs Chromium: {MISSING_HINT}"
    module = WORKER_MODULES[cell.client]
    if importlib.util.find_spec(module) is None:
        return f"client = {cell.client!r} needs {module}, which is not installed"
    return ""


def run_one(
    cell: Cell,
    repeat: int,
    run_dir: Path,
    pinning: Pinning,
    options: RunOptions,
    progress: Progress,
    servers: dict[str, Any],
    target: TargetProbe | None = None,
) -> dict[str, Any]:
    skip = _unsupported(cell) if target is None else target.unsupported(cell)
    # h44 (issue 18 item 2): every client process under the open-file limit
    skip = skip or sharedport.client_refusal(cell, plan_workers(cell, pinning))
    if skip:
        return bare_row(cell, repeat, "skipped", skip)
    name = f"{cell.cell_id}-r{repeat}"
    group = ProcessGroup(run_dir / "logs" / name)
    try:
        args = (cell, repeat, name, group, run_dir, pinning, options, progress, servers)
        if target is not None:
            row = _measure(*args, target=target.url)
            return {**row, "server_unmeasured": server_unmeasured(target.url)}
        return _measure(*args)
    except CellFailed as exc:
        return {**bare_row(cell, repeat, "failed", str(exc)), **exc.columns}
    except Exception as exc:  # a ReadyTimeout, an HTTP error, unreadable output: go on
        why = f"{type(exc).__name__}: {exc}"
        died = alive.died(group)  # the server killed under a request: its exit is the reason
        return bare_row(cell, repeat, "failed", (f"{died} ({why})" if died else why)[:2000])
    finally:
        group.stop_all()


def plan_workers(cell: Cell, pinning: Pinning) -> list[tuple[int, bool]]:
    """(connections, publishes) per worker process: publishers in workers of their own
    (a worker's spec makes all its connections publish), the other subscribers in
    the rest. Browser and Locust cells use one worker (one browser; Locust's own
    master/worker processes inside it)."""
    if cell.client != "python":
        return [(cell.subscribers, False)]
    plan: list[tuple[int, bool]] = []
    for conns, publishes in ((cell.publishers, True), (cell.subscribers - cell.publishers, False)):
        if not conns:
            continue
        if cell.client_processes is not None:
            share = round(cell.client_processes * conns / cell.subscribers)
            n = max(1, min(share, conns))
        else:
            n = max(1, min(math.ceil(conns / CONNECTIONS_PER_WORKER), len(pinning.clients), conns))
            n = max(n, sharedport.min_client_processes(conns, publishes))  # h44: fd limit
        plan += [(conns // n + (1 if k < conns % n else 0), publishes) for k in range(n)]
    return plan


def receiving_s(cell: Cell) -> float:
    """The longest a connection of ``cell`` receives messages, in seconds at the cell's
    rate. Ticker cells: the ticker's ``rate × (warm-up + duration)`` messages, whenever
    they arrive (the drain adds none). Chat cells: the publishers publish from their
    connect until the runner stops them — warm-up, window, the whole drain
    (:func:`.drain.cap_s`) and :data:`CHAT_EDGES_S` for their own connection ramp before
    the window and the stop after the drain (they start after every other worker:
    :func:`start_order`)."""
    span = cell.warmup_s + cell.duration_s + outage.tail_s(cell)  # h32: a fault's tail
    if cell.publishers:
        span += drain.cap_s(cell) + CHAT_EDGES_S
    return span


def receipt_capacity(cell: Cell, connections: int) -> int:
    """Receipts one worker of ``cell`` with ``connections`` connections must have room for:
    every connection receives every message of the topic (a chat publisher its own too),
    for :func:`receiving_s`, with :data:`CAPACITY_MARGIN` for duplicates and jitter.

    What does not fit is counted as ``overflow`` by the worker, and the runner fails the
    repeat with it (:mod:`.counters`) rather than counting those messages lost."""
    need = cell.rate * receiving_s(cell) * connections
    return math.ceil(need * CAPACITY_MARGIN) + CAPACITY_SLACK


def start_order(plan: Sequence[tuple[int, bool]]) -> list[int]:
    """The order the workers of ``plan`` (:func:`plan_workers`) start in: the publishing
    ones last, so nothing is published while the other workers start (a publisher's
    receipts before the window are bounded by its own ramp: :func:`receiving_s`)."""
    return sorted(range(len(plan)), key=lambda k: plan[k][1])


def worker_spec(
    cell: Cell,
    base_url: str,
    connections: int,
    first_conn: int,
    publishes: bool,
    status: Path,
    stage: int = 0,
    ca_file: Path | None = None,
    later_s: float = 0.0,
) -> WorkerSpec:
    """The spec of one worker process of ``cell``: its connections, their ids, whether they
    publish, and a run long enough for the window (the runner stops it after the drain);
    ``stage``: connections to open before pausing for a memory reading (0: none);
    ``ca_file``: the run's CA, for a TLS cell."""
    capacity = receipt_capacity(cell, connections)
    publish = None
    if publishes:
        publish = PublishSpec(rate=cell.publish_rate_per_publisher, payload_size=cell.payload_size)
    locust_workers = 0
    if cell.client == "locust":
        n = cell.client_processes or 0
        locust_workers = n if n > 1 else 0
    return WorkerSpec(
        transport=cell.transport,
        base_url=base_url,
        topic=TOPIC,
        connections=connections,
        # h44: + later_s, the paced ramps of the workers started after this one
        duration_s=cell.duration_s + TICKER_DELAY_S + drain.cap_s(cell) + WORKER_SLACK_S + later_s,
        warmup_s=cell.warmup_s,
        poll_interval_s=cell.poll_interval_s or 0.1,
        poll_timeout_s=cell.poll_timeout_s or 30.0,
        capacity=capacity,
        publish=publish,
        token=None,
        loop=cell.loop,
        compression=cell.compression or "off",  # h25 (compression)
        first_conn=first_conn,
        status_path=str(status),
        locust_workers=locust_workers,
        faults=cell.checks.client_faults(),
        stage_connections=stage,
        churn=cell.churn,  # issue 17 item 6 (soak)
        ca_file=None if ca_file is None else str(ca_file),
        # issue 18 item 2: a paced ramp (each worker in turn, so each at the cell's rate)
        # and the client source addresses past connections_per_source
        connect_rate=cell.connect_rate,
        source_addresses=scale.source_addresses(cell) if scale.binds_sources(cell) else (),
    )


def stage_size(cell: Cell, k: int, connections: int) -> int:
    """Connections worker ``k`` opens before the runner's mid-way memory reading: half of
    the first asyncio worker's (a second point for the slope); 0 (no stage) otherwise."""
    if k != 0 or cell.client != "python" or connections < 2:
        return 0
    return connections // 2


def _http(
    method: str,
    url: str,
    control_token: str | None = None,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """A JSON request to the cell's server. ``control_token``: the control-scope token
    (:func:`pushbench.auth.make_control_token`) a server started with an auth secret
    requires on ``/control/*``, sent as ``Authorization: Bearer``; the runner's cells run
    without auth today, so it sends none. ``context``: a TLS cell's client context (the
    run's CA)."""
    headers = {"Authorization": f"Bearer {control_token}"} if control_token else {}
    data = b"" if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S, context=context) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body


def _final_stats(
    http: Callable[[str, str], dict[str, Any]], base_url: str, external: bool
) -> dict[str, Any]:
    """The server's ``/stats`` after the drain; an external target's may be missing (its
    cells that need it were skipped by the probe): then none, the counters empty."""
    try:
        return http("GET", f"{base_url}/stats")
    except (OSError, ValueError):
        if not external:
            raise
        return {}


def _mark_window(workers: Sequence[WorkerRun], edge: str) -> None:
    """Tell every worker that the measured window starts or ends (``edge``): each reads
    its CPU and counters at once. A worker gone meanwhile is the next check's concern."""
    for w in workers:
        with contextlib.suppress(ProcessLookupError):
            w.started.proc.send_signal(WINDOW_SIGNALS[edge])


def _wait(
    group: ProcessGroup,
    until: float,
    progress: Progress,
    stopping: Sequence[Started] = (),
    soak: SoakProbe | None = None,
) -> None:
    """Sleep until ``until`` (time.monotonic) in small steps, failing on a crashed process;
    ``soak``: a churn cell's probe, sampling the server meanwhile."""
    while True:
        alive.check(group, stopping)
        now = time.monotonic()
        if now >= until:
            return
        progress.poll()
        if soak is not None:
            soak.poll()
        time.sleep(min(0.1, until - now))


def _tls_files(cell: Cell, run_dir: Path) -> TlsFiles | None:
    """A TLS cell's certificate: the run's, made once into ``run_dir/tls`` (issue 12 item
    2); None for a plaintext cell."""
    if not cell.tls:
        return None
    try:
        return generate(run_dir / TLS_DIR)
    except TlsError as exc:
        raise CellFailed(str(exc)) from None


def _measure(
    cell: Cell,
    repeat: int,
    name: str,
    group: ProcessGroup,
    run_dir: Path,
    pinning: Pinning,
    options: RunOptions,
    progress: Progress,
    servers: dict[str, Any],
    *,
    target: str | None = None,
) -> dict[str, Any]:
    """Measure one cell × repeat; ``target``: an external server's URL (nothing of the
    server is started or sampled: no CPU, RSS or memory readings)."""
    work = run_dir / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    tls_files = _tls_files(cell, run_dir)
    context = None if tls_files is None else client_context(tls_files.ca)
    http = functools.partial(_http, context=context)
    handle: Server | None = None
    memory: MemoryProbe | None = None
    if target is None:
        # issue 12 item 2: behind a proxy TLS terminates there and the server runs
        # plaintext, unless tls_at = "end-to-end" (h42): then the server serves TLS too
        at_server = proxies.server_tls(cell.via, cell.tls, cell.tls_at)
        handle = start_server(group, cell, pinning, tls_files if at_server else None)
        base_url = handle.base_url
        if options.on_server_started is not None:
            options.on_server_started(handle.started)
        if cell.servers == 1:  # scale-out: the probe reads one process (no memory columns)
            memory = MemoryProbe(handle.started.pid, server_port(base_url))
        elif handle.shared_url is not None:  # h44: nodes on one port, RSS summed, ss on it
            pids = tuple(started.pid for started, _ in handle.nodes[1:])
            memory = MemoryProbe(handle.started.pid, server_port(handle.shared_url), pids)
        if memory is not None:
            memory.idle()
    else:  # an external target (issue 12 item 7): nothing of the server is started
        base_url = target
    # h27: a proxy in front: the clients' URL is the proxy's; control and /stats go direct.
    proxy, client_url = None, base_url
    if handle is not None and handle.shared_url is not None:  # h44: the nodes' shared port
        client_url = handle.shared_url
    if cell.via != proxies.DIRECT:
        nodes = [] if handle is None else scaleout.node_urls(handle)  # issue 12 item 4
        proxy, client_url = start_proxy(
            group, cell, pinning, base_url, work / "proxy", nodes, tls=tls_files
        )
    # -- network conditions (issue 12 item 6): the workers connect through the relay (in
    # front of the proxy when there is one); the runner's own control requests
    # (/control/ticker, /stats) go to the server directly
    relay = None
    if profile(cell.net).relay:
        relay, client_url = netem.start_relay(group, cell.net, client_url, pinning, seed=repeat)
    # -- end network conditions --

    module = WORKER_MODULES[cell.client]
    plan = plan_workers(cell, pinning)
    firsts = [sum(conns for conns, _ in plan[:k]) for k in range(len(plan))]  # ids in plan order
    started_at: dict[int, WorkerRun] = {}
    order = start_order(plan)
    if memory is not None:
        memory.order = order  # its readings count workers in the order they start
    for position, k in enumerate(order):
        conns, publishes = plan[k]
        spec_path = work / f"worker{k}.spec.json"
        status = work / f"worker{k}.status.json"
        stage = stage_size(cell, k, conns)
        ca = None if tls_files is None else tls_files.ca
        later = scale.later_ramps_s(cell, [plan[j][0] for j in order[position + 1 :]])  # h44
        spec = worker_spec(cell, client_url, conns, firsts[k], publishes, status, stage, ca, later)
        atomic_write_json(spec_path, spec.to_dict())
        out = work / f"worker{k}"
        cpu = pinning.clients[k % len(pinning.clients)]
        timeout_s = READY_TIMEOUT_S * (4 if cell.client != "python" else 1)
        timeout_s = scale.ramp_timeout_s(cell, conns, timeout_s)  # issue 18 item 2
        started = group.start(
            f"worker{k}",
            [sys.executable, "-m", module, str(spec_path), str(out)],
            cpus=(cpu,),
            ready_prefix=STAGE_LINE if stage else "worker ready",
            timeout_s=timeout_s,
        )
        if stage:  # the first half is up and the worker waits: a point mid-way
            if memory is not None:
                memory.read(position, int(started.ready_line.split()[-1]))
            started.proc.send_signal(STAGE_SIGNAL)
            group.wait_line(started, "worker ready", timeout_s)
        if memory is not None:
            memory.read(position + 1)
        started_at[k] = WorkerRun(started, out, conns, publishes)
    workers = [started_at[k] for k in range(len(plan))]  # plan order: publishers stop first
    alive.check(group)
    if memory is not None:
        memory.kernel_up = memory.kernel()
    progress.watch([work / f"worker{k}.status.json" for k in range(len(workers))])

    if cell.publishers or not cell.rate:  # chat: the clients publish from their first
        window_start = time.monotonic() + cell.warmup_s  # connect on; idle: nobody does
    else:
        span = cell.warmup_s + cell.duration_s + outage.tail_s(cell)  # h32: + a fault's tail
        count = max(1, round(cell.rate * span))
        posted = time.monotonic()
        http("POST", f"{base_url}/control/ticker?{_ticker_query(cell, count)}")
        window_start = posted + TICKER_DELAY_S + cell.warmup_s
    broker = None if handle is None else handle.broker  # hub = "redis": CPU like the server's
    _wait(group, window_start, progress)
    cores = (*pinning.server, *pinning.clients)
    stolen0, at0 = steal.read(cores), time.monotonic()  # the hypervisor's share: .steal
    nodes0 = [] if handle is None else scaleout.sample_nodes(handle)  # scale-out: N nodes
    cpu0 = scaleout.total(nodes0) if nodes0 else None
    broker0 = sample(broker.pid) if broker is not None else None
    relay0 = sample(relay.pid) if relay is not None else None
    proxy0 = sample(proxy.pid) if proxy is not None else None
    _mark_window(workers, "start")
    soak = None  # issue 17 item 6: a churn cell's server sampled through the window
    if cell.churn is not None and handle is not None:
        server = handle.started
        soak = SoakProbe.for_window(server.pid, cell.churn, server.log_path, cell.duration_s)
    # --- h32 (issue 12 item 5): the fault, at_s into the window, lifted down_s later ---
    fault_run = None
    if cell.fault is not None:
        _wait(group, window_start + cell.fault.at_s, progress)

        def repost() -> None:  # the killed server's ticker died with it: the rest
            now = time.monotonic()  # to the window's end, and its tail past the restart
            left = max(window_start + cell.duration_s, now) + outage.tail_s(cell) - now
            left -= TICKER_DELAY_S
            query = _ticker_query(cell, max(1, round(cell.rate * left)))
            http("POST", f"{base_url}/control/ticker?{query}")

        fault_run, handle, proxy = outage.inject(
            cell,
            group,
            pinning,
            handle,
            proxy,
            base_url,
            work / "proxy",
            lambda until: _wait(group, until, progress),
            repost,
            tls=tls_files,
            node_stats=lambda url: http("GET", f"{url}/stats"),  # h41: a node of N
        )
        nodes0 = outage.rebase(nodes0, fault_run)  # h41: a killed node's CPU before it
        if fault_run.kind == "server-kill":  # one server: CPU across two is not one figure
            cpu0 = None if cell.servers == 1 else scaleout.total(nodes0)
        if fault_run.kind == "proxy-restart":
            proxy0 = None
    # --- end h32 ---
    _wait(group, window_start + cell.duration_s, progress, soak=soak)
    stolen = steal.fraction_max(stolen0, steal.read(cores), time.monotonic() - at0)
    nodes1 = [] if handle is None else scaleout.sample_nodes(handle)
    cpu1 = scaleout.total(nodes1) if nodes1 else None
    broker1 = sample(broker.pid) if broker is not None else None
    relay1 = sample(relay.pid) if relay is not None else None
    proxy1 = sample(proxy.pid) if proxy is not None else None
    _mark_window(workers, "end")
    if fault_run is not None:  # h32: the clients' way back runs on past the window's end
        _wait(group, fault_run.back_ns / 1e9 + outage.tail_s(cell), progress)
    if memory is not None:
        memory.kernel_load = memory.kernel()
    window_end_ns = int((window_start + cell.duration_s) * 1e9)
    ticker_cell = bool(cell.rate) and not cell.publishers  # the ticker's schedule: /stats
    drain_plan = drain.plan(
        cell, window_end_ns, http("GET", f"{base_url}/stats") if ticker_cell else {}
    )
    drained = drain.drain(
        drain_plan,
        [work / f"worker{k}.status.json" for k in range(len(workers))],
        lambda until: _wait(group, until, progress),
    )
    alive.check(group)
    stats = _final_stats(http, base_url, target is not None)
    per_node = [stats]  # issue 12 item 4 (scale-out): every node's /stats, node 0 first
    if handle is not None:
        per_node += [http("GET", f"{url}/stats") for _, url in handle.nodes[1:]]
    per_node = outage.with_killed(per_node, fault_run)  # h41: its counters before the kill
    stats = scaleout.merge_stats(per_node)
    if isinstance(stats.get("server"), dict):
        servers.setdefault(cell.stack, stats["server"])
    for w in workers:
        group.stop(w.started, grace_s=5.0 if cell.client == "python" else 15.0)
    for w in workers:
        code = w.started.proc.returncode
        if code not in (0, None):
            raise CellFailed(f"{w.started.name} exited with {code} after SIGTERM")
    alive.check(group, [w.started for w in workers])
    window_ns = int(window_start * 1e9) if cell.publishers or not cell.rate else None
    if cell.fault is not None:  # h32: the seq range from the receipts (a restart renumbers
        window_ns = int(window_start * 1e9)  # nothing on Redis, but starts a new ticker)
    fault_cols = outage.columns(cell, fault_run, workers, (int(window_start * 1e9), window_end_ns))
    row = compute(
        cell,
        repeat,
        name,
        run_dir,
        workers,
        stats,
        cpu0,
        cpu1,
        None,
        window_ns,
        drained,
        broker_cpu=(broker0, broker1),
        memory=memory,
        soak=soak,
        relay_cpu=(relay0, relay1),
        proxy_cpu=(proxy0, proxy1),
    )
    row["steal_fraction_max"] = stolen
    node_cols = scaleout.node_columns(per_node, nodes0, nodes1, row.get("msgs_delivered"))
    if handle is not None:  # h44: what each server process had (the fd limit, its cap)
        row.update(sharedport.columns(cell, per_node))
    return {**row, **node_cols, **fault_cols}


def _ticker_query(cell: Cell, count: int) -> str:
    """``POST /control/ticker``'s query: ``count`` messages at the cell's rate and size."""
    return urllib.parse.urlencode(
        {
            "topic": TOPIC,
            "rate": repr(cell.rate),
            "size": cell.payload_size,
            "kind": cell.payload_kind,  # h25 (compression)
            "count": count,
            "delay": TICKER_DELAY_S,
        }
    )
