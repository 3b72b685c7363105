"""``pushbench run SCENARIO``: measure every cell of a scenario (``docs/runner-design.md``).

For each cell × repeat: a fresh server (``pushbench serve --port 0``) pinned to
the server CPUs, client workers pinned to the client CPUs (``pushbench.clients.worker``;
``pushbench.clients.browser_worker`` or ``pushbench.clients.locust_worker`` when the cell's
``client`` says so — all write the same output), then the load: the server's
ticker (``POST /control/ticker`` for ``rate × (warm-up + duration)``
messages), or for chat cells (``publishers > 0``) the publishing clients
themselves. Server RSS is read before the first connection and once all are
up (memory per connection); server CPU at the start and end of the measured
window. After a short drain the workers are stopped (SIGTERM) and their
receipts and counters read. Everything started is stopped in a ``finally``:
on success, on a crash, on Ctrl-C and on SIGTERM.

``cells.csv`` (the :data:`~pushbench.metrics.COLUMNS` plus :data:`EXTRA_COLUMNS`)
is rewritten atomically after every cell, so an interrupted run keeps what it
measured; ``series/<cell>-r<k>.csv`` keeps the latency over time. Self-check
cells pass their faults to the server (``serve --faults``). Cells with an
``[slo]`` are grouped by everything but the rate; after the listed rates the
runner bisects towards the highest rate meeting the SLO (``probes`` extra
rates, rows marked ``probe``) and writes ``saturation.csv`` with which side
(server or client) had saturated at the first failing rate.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import importlib.util
import io
import json
import math
import re
import signal
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .browser import MISSING_HINT, chromium_path
from .procs import Pinning, ProcessGroup, ProcSample, Started, plan_pinning, sample
from .results import (
    atomic_write_json,
    atomic_write_text,
    collect_metadata,
    finish_metadata,
    new_run_dir,
    update_latest,
)
from .scenario import Cell, Scenario, ScenarioError, load
from .settings import Settings

__all__ = [
    "EXTRA_COLUMNS",
    "CellFailed",
    "RunOptions",
    "RunResult",
    "add_arguments",
    "run",
    "run_scenario",
]

#: Columns the runner adds after :data:`metrics.COLUMNS`.
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
ALL_COLUMNS = [*metrics.COLUMNS, *EXTRA_COLUMNS]

TOPIC = "bench"
TICKER_DELAY_S = 0.2  # between POST /control/ticker and the first message
DRAIN_S = 0.5  # after the window, for the last messages to arrive
WORKER_SLACK_S = 30.0  # workers run this much past the window; the runner stops them
HARNESS_BOUND_FRACTION = 0.9
CONNECTIONS_PER_WORKER = 1000  # "auto" client processes
READY_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 5.0
_SERVE_READY = re.compile(r"listening on (http://\S+)")
_DISTRIBUTIONS = (
    "aiohttp",
    "starlette",
    "uvicorn",
    "sse-starlette",
    "uvloop",
    "numpy",
    "hdrhistogram",
    "redis",
    "locust",
    "playwright",
)
#: The worker module each ``client`` runs (same spec, same output contract).
WORKER_MODULES: dict[str, str] = {
    "python": "pushbench.clients.worker",
    "browser": "pushbench.clients.browser_worker",
    "locust": "pushbench.clients.locust_worker",
}
SERVER_SATURATED_FRACTION = 0.9  # server CPU over the window, one core = 1.0


class CellFailed(RuntimeError):
    """A cell could not be measured (a process crashed, a request failed); the run goes on."""


@dataclass
class RunOptions:
    out: Path = Path("results")
    repeats: int | None = None  # overrides every cell's repeats
    only: str | None = None  # substring of the cell id
    progress: bool = True
    #: The command line and settings the CLI read (recorded in metadata.json).
    command: tuple[str, ...] = ()
    settings: Settings = field(default_factory=Settings)
    #: Called with the server process of each cell once it is ready (tests use it).
    on_server_started: Callable[[Started], None] | None = None


@dataclass
class RunResult:
    run_dir: Path
    status: str  # complete / incomplete
    rows: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""


# --- CLI -------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("scenario", help="a scenario file, or the name of one in scenarios/")
    add("--out", type=Path, default=Path("results"), help="results base (default %(default)s)")
    add("--repeats", type=int, default=None, metavar="N", help="override every cell's repeats")
    add("--only", default=None, metavar="SUBSTRING", help="run only cells whose id contains it")
    add("--no-progress", action="store_true", help="no live progress line on stderr")


def run(args: argparse.Namespace) -> int:
    if args.repeats is not None and args.repeats < 1:
        print("pushbench run: error: --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        print(f"pushbench run: error: {exc}", file=sys.stderr)
        return 2
    options = RunOptions(
        out=args.out,
        repeats=args.repeats,
        only=args.only,
        progress=not args.no_progress and sys.stderr.isatty(),
        command=tuple(args.command_line),
        settings=args.settings,
    )
    if not _selected(scenario, options):
        print(f"pushbench run: error: no cell id contains {args.only!r}", file=sys.stderr)
        return 2
    result = run_scenario(scenario, options)
    print(f"pushbench run: {result.status}: {result.run_dir}", file=sys.stderr)
    if result.reason == "interrupted":
        return 130
    if result.reason.startswith("terminated"):
        return 143
    return 0 if result.status == "complete" else 1


# --- the run ---------------------------------------------------------------


def _selected(scenario: Scenario, options: RunOptions) -> list[tuple[Cell, int]]:
    runs = []
    for cell in scenario.cells():
        if options.only and options.only not in cell.cell_id:
            continue
        for repeat in range(options.repeats or cell.repeats):
            runs.append((cell, repeat))
    return runs


def run_scenario(scenario: Scenario, options: RunOptions) -> RunResult:
    """Measure every selected cell × repeat into a new run directory under ``options.out``."""
    runs = _selected(scenario, options)
    run_dir = new_run_dir(options.out)
    pinning = plan_pinning()
    source = Path(scenario.source)
    meta = collect_metadata(
        command=options.command,
        settings=options.settings,
        distributions=_DISTRIBUTIONS,
        extra={
            "scenario": scenario.name,
            "scenario_file": str(source),
            "scenario_text": source.read_text(encoding="utf-8") if source.is_file() else None,
            "pinning": pinning.as_dict(),
            "runs_planned": len(runs),
            "servers": {},
        },
    )
    atomic_write_json(run_dir / "metadata.json", meta)
    result = RunResult(run_dir, "incomplete")
    started = time.monotonic()
    progress = _Progress(options.progress, len(runs), started)
    saturation: list[dict[str, Any]] = []

    def measure(cell: Cell, repeat: int, probe: bool) -> dict[str, Any]:
        progress.cell(len(result.rows), cell.cell_id)
        row = _run_one(cell, repeat, run_dir, pinning, options, progress, meta["servers"])
        row["probe"] = probe
        result.rows.append(row)
        _write_csv(run_dir / "cells.csv", result.rows)
        return row

    try:
        with _sigterm_as_interrupt():
            for cell, repeat in runs:
                measure(cell, repeat, probe=False)
            for group, cells in _slo_groups(runs).items():
                saturation.append(_search(group, cells, result.rows, measure, options, progress))
                _write_saturation(run_dir / "saturation.csv", saturation)
    except KeyboardInterrupt as exc:
        result.reason = str(exc) or "interrupted"
    finally:
        progress.done()
        result.reason = result.reason or _incomplete_reason(result.rows)
        result.status = "incomplete" if result.reason else "complete"
        meta["reason"] = result.reason
        meta["runs_done"] = len(result.rows)
        meta["runs_by_status"] = {
            s: sum(1 for r in result.rows if r["status"] == s) for s in ("ok", "failed", "skipped")
        }
        _write_csv(run_dir / "cells.csv", result.rows)
        if saturation:
            _write_saturation(run_dir / "saturation.csv", saturation)
        atomic_write_json(run_dir / "metadata.json", finish_metadata(meta, status=result.status))
        update_latest(run_dir)
    return result


def _incomplete_reason(rows: Sequence[dict[str, Any]]) -> str:
    """Why a run that went to its end is still incomplete ("" when it is complete)."""
    failed = [r["cell_id"] for r in rows if r["status"] == "failed"]
    if failed:
        return f"{len(failed)} cell run(s) failed: {', '.join(failed)}"
    if rows and not any(r["status"] == "ok" for r in rows):
        reasons = sorted({str(r["reason"]) for r in rows})
        return f"nothing measured: all {len(rows)} cell run(s) skipped ({'; '.join(reasons)})"
    return ""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI timeout, ``kill``) ends the run like Ctrl-C: processes stopped,
    partial results written, the run marked incomplete with the signal as reason."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("terminated (SIGTERM)")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _unsupported(cell: Cell) -> str:
    if cell.checks.active and cell.hub != "memory":
        return "self-check faults need the in-process hub (hub = memory)"
    if cell.client == "browser" and chromium_path() is None:
        return f"client = 'browser' needs Chromium: {MISSING_HINT}"
    module = WORKER_MODULES[cell.client]
    if importlib.util.find_spec(module) is None:
        return f"client = {cell.client!r} needs {module}, which is not installed"
    return ""


def _run_one(
    cell: Cell,
    repeat: int,
    run_dir: Path,
    pinning: Pinning,
    options: RunOptions,
    progress: _Progress,
    servers: dict[str, Any],
) -> dict[str, Any]:
    skip = _unsupported(cell)
    if skip:
        return _bare_row(cell, repeat, "skipped", skip)
    name = f"{cell.cell_id}-r{repeat}"
    group = ProcessGroup(run_dir / "logs" / name)
    try:
        return _measure(cell, repeat, name, group, run_dir, pinning, options, progress, servers)
    except CellFailed as exc:
        return _bare_row(cell, repeat, "failed", str(exc))
    except Exception as exc:  # a ReadyTimeout, an HTTP error, unreadable output: go on
        return _bare_row(cell, repeat, "failed", f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        group.stop_all()


# --- saturation search ------------------------------------------------------


def _slo_groups(runs: Sequence[tuple[Cell, int]]) -> dict[Cell, list[Cell]]:
    """Cells with an ``[slo]``, grouped by everything but the rate (key: rate 0)."""
    groups: dict[Cell, list[Cell]] = {}
    for cell, repeat in runs:
        if cell.slo is not None and repeat == 0:
            groups.setdefault(cell.with_rate(0.0), []).append(cell)
    return groups


def _rate_points(group: Cell, rows: Sequence[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    by_rate: dict[float, list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] == "skipped" or _group_of(row) != group.with_rate(0.0).cell_id:
            continue
        by_rate.setdefault(float(row["rate_msgs_per_s"]), []).append(row)
    return by_rate


def _group_of(row: dict[str, Any]) -> str:
    return str(row.get("_group", ""))


def _point(rate: float, rows: Sequence[dict[str, Any]]) -> metrics.RatePoint:
    """The median repeat at one rate; a failed repeat counts as nothing delivered."""
    fractions = [
        float(r["delivered_fraction"] or 0.0) if r["status"] == "ok" else 0.0 for r in rows
    ]
    p99s = [float(r["lat_p99_us"]) if r["status"] == "ok" else math.inf for r in rows]
    return metrics.RatePoint(rate, float(np.median(fractions)), float(np.median(p99s)))


def _search(
    group: Cell,
    cells: Sequence[Cell],
    rows: list[dict[str, Any]],
    measure: Callable[[Cell, int, bool], dict[str, Any]],
    options: RunOptions,
    progress: _Progress,
) -> dict[str, Any]:
    """Bisect between the last rate meeting the SLO and the first failing one."""
    slo = group.slo
    assert slo is not None
    repeats = options.repeats or group.repeats
    search = functools.partial(
        metrics.saturation_search,
        slo_p99_us=slo.p99_ms * 1000,
        min_delivered_fraction=slo.min_delivered_fraction,
    )
    gid = group.with_rate(0.0).cell_id
    for row in rows:  # tag this group's rows (listed rates)
        if any(row["cell_id"] == c.cell_id for c in cells):
            row["_group"] = gid
    probes = 0
    while True:
        by_rate = _rate_points(group, rows)
        if not by_rate:
            break
        found = search(_point(rate, rs) for rate, rs in by_rate.items())
        if found.next_rate is None or probes >= slo.probes:
            break
        probes += 1
        probe = group.with_rate(found.next_rate)
        progress.total += repeats
        for repeat in range(repeats):
            row = measure(probe, repeat, True)
            row["_group"] = gid
    by_rate = _rate_points(group, rows)
    out: dict[str, Any] = {
        "group_id": gid,
        "stack": group.stack,
        "transport": group.transport,
        "ws_client": group.ws_client,
        "client": group.client,
        "subscribers": group.subscribers,
        "publishers": group.publishers,
        "payload_bytes": group.payload_size,
        "hub": group.hub,
        "slo_p99_us": slo.p99_ms * 1000,
        "min_delivered_fraction": slo.min_delivered_fraction,
        "rates_tried": ";".join(f"{r:g}" for r in sorted(by_rate)),
    }
    if not by_rate:
        return out | {"saturated_side": ""}
    found = search(_point(rate, rs) for rate, rs in by_rate.items())
    side = ""
    if found.lowest_failing is not None:
        failing = [r for r in by_rate[found.lowest_failing] if r["status"] == "ok"]
        server = any((r["server_cpu_fraction"] or 0) >= SERVER_SATURATED_FRACTION for r in failing)
        client = any(bool(r["harness_bound"]) for r in failing)
        side = {(True, True): "both", (True, False): "server", (False, True): "client"}.get(
            (server, client), "neither"
        )
    return out | {
        "max_rate": found.max_rate,
        "highest_passing": found.highest_passing,
        "lowest_failing": found.lowest_failing,
        "monotonic": found.monotonic,
        "saturated_side": side,
    }


def _write_saturation(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SATURATION_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in SATURATION_COLUMNS})
    atomic_write_text(path, buf.getvalue())


# --- one cell -----------------------------------------------------------------


@dataclass
class _Worker:
    started: Started
    out: Path
    connections: int
    publishes: bool = False


def _server_argv(cell: Cell) -> list[str]:
    argv = [sys.executable, "-m", "pushbench.cli", "serve", "--stack", cell.stack]
    argv += ["--host", "127.0.0.1", "--port", "0", "--hub", cell.hub, "--loop", cell.loop]
    argv += ["--max-connections", str(max(cell.subscribers + 100, 1000))]
    if cell.heartbeat_s is not None:
        hb = str(cell.heartbeat_s)
        argv += ["--heartbeat-interval", hb, "--ping-interval", hb]
    checks = cell.checks
    if checks.active:
        # The server counts the pause from ticker start; the scenario from the
        # start of the measured window (default: its middle).
        into_window = checks.pause_at_s if checks.pause_at_s is not None else cell.duration_s / 2
        pause_at = TICKER_DELAY_S + cell.warmup_s + into_window
        argv += [
            "--faults",
            f"delay_ms={checks.delay_ms},pause_ms={checks.pause_ms},"
            f"pause_at_s={pause_at},drop_every={checks.drop_every}",
        ]
    return argv


def _plan_workers(cell: Cell, pinning: Pinning) -> list[tuple[int, bool]]:
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
        plan += [(conns // n + (1 if k < conns % n else 0), publishes) for k in range(n)]
    return plan


def _spec(
    cell: Cell, base_url: str, connections: int, first_conn: int, publishes: bool, status: Path
) -> dict[str, Any]:
    capacity = math.ceil(cell.rate * (cell.warmup_s + cell.duration_s) * connections * 1.1) + 1000
    spec: dict[str, Any] = {
        "transport": cell.transport,
        "base_url": base_url,
        "topic": TOPIC,
        "connections": connections,
        "duration_s": cell.duration_s + TICKER_DELAY_S + DRAIN_S + WORKER_SLACK_S,
        "warmup_s": cell.warmup_s,
        "poll_interval_s": cell.poll_interval_s or 0.1,
        "poll_timeout_s": cell.poll_timeout_s or 30.0,
        "capacity": capacity,
        "publish": None,
        "token": None,
        "loop": cell.loop,
        "first_conn": first_conn,
        "status_path": str(status),
    }
    if publishes:
        spec["publish"] = {
            "rate": cell.publish_rate_per_publisher,
            "payload_size": cell.payload_size,
        }
    if cell.client == "locust":
        n = cell.client_processes or 0
        spec["locust_workers"] = n if n > 1 else 0
    return spec


def _http(method: str, url: str) -> dict[str, Any]:
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body


def _check_alive(group: ProcessGroup, stopping: Sequence[Started] = ()) -> None:
    for entry in group.dead():
        if entry in stopping:
            continue
        code = entry.proc.returncode
        if entry.name != "server" and code == 0:
            continue  # a worker that ended its run by itself wrote its output
        tail = ""
        if entry.log_path is not None and entry.log_path.exists():
            tail = entry.log_path.read_text(errors="replace").strip()[-300:]
        raise CellFailed(f"{entry.name} (pid {entry.pid}) exited with {code}: {tail}".strip())


def _wait(
    group: ProcessGroup,
    until: float,
    progress: _Progress,
    stopping: Sequence[Started] = (),
) -> None:
    """Sleep until ``until`` (time.monotonic) in small steps, failing on a crashed process."""
    while True:
        _check_alive(group, stopping)
        now = time.monotonic()
        if now >= until:
            return
        progress.poll()
        time.sleep(min(0.1, until - now))


def _measure(
    cell: Cell,
    repeat: int,
    name: str,
    group: ProcessGroup,
    run_dir: Path,
    pinning: Pinning,
    options: RunOptions,
    progress: _Progress,
    servers: dict[str, Any],
) -> dict[str, Any]:
    work = run_dir / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    server = group.start(
        "server",
        _server_argv(cell),
        cpus=pinning.server,
        ready_prefix="pushbench serve:",
        timeout_s=READY_TIMEOUT_S,
    )
    match = _SERVE_READY.search(server.ready_line)
    if match is None:
        raise CellFailed(f"server ready line without a URL: {server.ready_line!r}")
    base_url = match.group(1)
    if options.on_server_started is not None:
        options.on_server_started(server)
    rss_before = sample(server.pid)

    workers: list[_Worker] = []
    first = 0
    module = WORKER_MODULES[cell.client]
    for k, (conns, publishes) in enumerate(_plan_workers(cell, pinning)):
        spec_path = work / f"worker{k}.spec.json"
        status = work / f"worker{k}.status.json"
        atomic_write_json(spec_path, _spec(cell, base_url, conns, first, publishes, status))
        out = work / f"worker{k}"
        cpu = pinning.clients[k % len(pinning.clients)]
        started = group.start(
            f"worker{k}",
            [sys.executable, "-m", module, str(spec_path), str(out)],
            cpus=(cpu,),
            ready_prefix="worker ready",
            timeout_s=READY_TIMEOUT_S * (4 if cell.client != "python" else 1),
        )
        workers.append(_Worker(started, out, conns, publishes))
        first += conns
    _check_alive(group)
    rss_after = sample(server.pid)
    progress.watch([work / f"worker{k}.status.json" for k in range(len(workers))])

    if cell.publishers or not cell.rate:  # chat: the clients publish from their first
        window_start = time.monotonic() + cell.warmup_s  # connect on; idle: nobody does
    else:
        count = max(1, round(cell.rate * (cell.warmup_s + cell.duration_s)))
        query = urllib.parse.urlencode(
            {
                "topic": TOPIC,
                "rate": repr(cell.rate),
                "size": cell.payload_size,
                "count": count,
                "delay": TICKER_DELAY_S,
            }
        )
        posted = time.monotonic()
        _http("POST", f"{base_url}/control/ticker?{query}")
        window_start = posted + TICKER_DELAY_S + cell.warmup_s
    _wait(group, window_start, progress)
    cpu0 = sample(server.pid)
    _wait(group, window_start + cell.duration_s, progress)
    cpu1 = sample(server.pid)
    _wait(group, window_start + cell.duration_s + DRAIN_S, progress)
    _check_alive(group)
    stats = _http("GET", f"{base_url}/stats")
    if isinstance(stats.get("server"), dict):
        servers.setdefault(cell.stack, stats["server"])
    for w in workers:
        group.stop(w.started, grace_s=5.0 if cell.client == "python" else 15.0)
    for w in workers:
        code = w.started.proc.returncode
        if code not in (0, None):
            raise CellFailed(f"{w.started.name} exited with {code} after SIGTERM")
    _check_alive(group, [w.started for w in workers])
    memory = None
    if rss_before is not None and rss_after is not None:
        memory = rss_after.rss_bytes - rss_before.rss_bytes
    window_ns = int(window_start * 1e9) if cell.publishers or not cell.rate else None
    return _compute(cell, repeat, name, run_dir, workers, stats, cpu0, cpu1, memory, window_ns)


def _window(
    cell: Cell, stats: dict[str, Any], window_start_ns: int | None, all_r: metrics.Receipts
) -> tuple[tuple[int, int], int, int, dict[str, Any]]:
    """The measured window (CLOCK_MONOTONIC ns) and the first and last seq published in it.

    Ticker cells: from the ticker's own start and schedule. Chat cells: from the
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
    return (start_ns + warm_ns, start_ns + end_rel_ns), first_i + 1, last_i + 1, ticker


def _compute(
    cell: Cell,
    repeat: int,
    name: str,
    run_dir: Path,
    workers: Sequence[_Worker],
    stats: dict[str, Any],
    cpu0: ProcSample | None,
    cpu1: ProcSample | None,
    memory_growth: int | None = None,
    window_start_ns: int | None = None,
) -> dict[str, Any]:
    outs = []
    for w in workers:
        json_path = w.out.with_name(w.out.name + ".json")
        if not json_path.exists():
            raise CellFailed(f"{w.started.name} wrote no output ({json_path.name})")
        info = json.loads(json_path.read_text())
        if "totals" not in info:
            raise CellFailed(f"{w.started.name} failed: {info.get('reason')}")
        receipts = metrics.Receipts.load(w.out.with_name(w.out.name + ".npz"))
        outs.append((info, receipts))

    all_r = metrics.Receipts(
        *(
            np.concatenate([getattr(r, k) for _, r in outs])
            for k in ("conn", "seq", "sched_ns", "pub_ns", "recv_ns")
        )
    )
    window, first_seq, last_seq, ticker = _window(cell, stats, window_start_ns, all_r)
    lat = metrics.latency_histograms(all_r, *window)
    corrected, uncorrected = lat.summaries()
    (run_dir / "hist").mkdir(exist_ok=True)
    metrics.save_histograms(
        run_dir / "hist" / f"{name}.hlog",
        {"corrected": lat.corrected, "uncorrected": lat.uncorrected},
    )
    _write_series(run_dir / "series" / f"{name}.csv", all_r, window)
    deliv = metrics.delivery(
        all_r.conn,
        all_r.seq,
        first_seq=first_seq,
        last_seq=last_seq,
        connections=cell.subscribers,
    )
    tput = metrics.throughput(deliv, cell.duration_s)

    totals = [info["totals"] for info, _ in outs]

    def total(key: str) -> int:
        return int(sum(t.get(key, 0) for t in totals))

    def total_max(key: str) -> int:
        return int(max((t.get(key, 0) for t in totals), default=0))

    connect = [
        c["connect_ns"]
        for info, _ in outs
        for c in info.get("per_connection", [])
        if c.get("connect_ns", -1) >= 0
    ]
    fractions = []
    client_cpu = 0.0
    for info, _ in outs:
        cpu = float(info.get("cpu_user_s_run", 0.0)) + float(info.get("cpu_sys_s_run", 0.0))
        client_cpu += cpu
        wall = (int(info.get("end_ns", 0)) - int(info.get("ready_ns", 0))) / 1e9
        if wall > 0:
            fractions.append(cpu / wall)
    sources = {str(info.get("bytes_source")) for info, _ in outs}
    max_lag_ns = max(float(info.get("max_loop_lag_ns", 0)) for info, _ in outs)
    overhead = metrics.Overhead(
        server_cpu_s=None if cpu0 is None or cpu1 is None else cpu1.cpu_s - cpu0.cpu_s,
        server_rss_bytes=None if cpu1 is None else cpu1.rss_bytes,
        server_rss_growth_bytes=memory_growth,
        client_cpu_s=client_cpu,
        bytes_in=total("bytes_in"),
        bytes_out=total("bytes_out"),
        handshake_bytes_in=total("handshake_bytes_in"),
        handshake_bytes_out=total("handshake_bytes_out"),
        bytes_source=sources.pop() if len(sources) == 1 else "mixed",
        connect_p50_us=float(np.median(connect)) / 1e3 if connect else None,
        requests=total("requests") if cell.protocol in ("longpoll", "shortpoll") else None,
        errors=total("errors"),
        reconnects=total("reconnects"),
        client_max_loop_lag_us=max_lag_ns / 1e3,
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
    # Byte and request counters cover the whole run (warm-up too): per message received.
    received = total("messages")
    for column, key in (
        ("bytes_in_per_msg", "bytes_in"),
        ("bytes_out_per_msg", "bytes_out"),
        ("requests_per_msg", "requests"),
    ):
        if row[column] is not None:
            row[column] = total(key) / received if received else None
    frac = max(fractions) if fractions else None
    walls = [(int(i.get("end_ns", 0)) - int(i.get("ready_ns", 0))) / 1e9 for i, _ in outs]
    conn_s = sum(w.connections * wall for w, wall in zip(workers, walls, strict=True) if wall > 0)
    row.update(
        status="ok",
        reason="",
        client_processes=len(workers),
        client_cpu_fraction_max=frac,
        harness_bound=frac is not None and frac >= HARNESS_BOUND_FRACTION,
        publish_lag_max_us=ticker.get("lag_max_us"),
        publish_lag_p50_us=ticker.get("lag_p50_us"),
        publish_lag_p99_us=ticker.get("lag_p99_us"),
        probe=False,
        bytes_per_conn_per_s=(total("bytes_in") + total("bytes_out")) / conn_s if conn_s else None,
    )
    if cell.publishers:
        row["publish_lag_max_us"] = total_max("publish_lag_max_ns") / 1e3
    return row


def _write_series(path: Path, receipts: metrics.Receipts, window: tuple[int, int]) -> None:
    """Corrected latency over the window in ≤ 2,000 time buckets (median and max each)."""
    series = metrics.latency_series(receipts, *window)
    buf = io.StringIO()
    buf.write("t_s,width_s,count,p50_us,max_us\n")
    for t, n, p50, mx in zip(series.t_s, series.count, series.p50_us, series.max_us, strict=True):
        buf.write(f"{t:.6f},{series.bucket_s:.6f},{n},{p50:.1f},{mx:.1f}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


_PARAM_COLUMNS = list(metrics.COLUMNS)[: list(metrics.COLUMNS).index("lat_count")]


def _bare_row(cell: Cell, repeat: int, status: str, reason: str) -> dict[str, Any]:
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
    row: dict[str, Any] = {k: (full[k] if k in _PARAM_COLUMNS else None) for k in full}
    row.update(
        status=status,
        reason=reason,
        client_processes=None,
        client_cpu_fraction_max=None,
        harness_bound=None,
        publish_lag_max_us=None,
        publish_lag_p50_us=None,
        publish_lag_p99_us=None,
        probe=False,
        bytes_per_conn_per_s=None,
    )
    return row


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ALL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in ALL_COLUMNS})
    atomic_write_text(path, buf.getvalue())


# --- progress --------------------------------------------------------------


class _Progress:
    """One live line on stderr: run i/n, cell, elapsed, delivered msgs/s and the p99 of the
    last second, both from the workers' status files (nothing asks the server during the
    window: the display must not add load to what it shows)."""

    def __init__(self, enabled: bool, total: int, started: float) -> None:
        self.enabled = enabled
        self.total = total
        self.started = started
        self.index = 0
        self.cell_id = ""
        self.rate: float | None = None
        self.p99_us: float | None = None
        self.status_files: list[Path] = []
        self._last: tuple[int, int] | None = None  # (t_ns, messages) of the last reading
        self._next_poll = 0.0

    def cell(self, index: int, cell_id: str) -> None:
        self.index, self.cell_id = index, cell_id
        self.rate = self.p99_us = self._last = None
        self.status_files = []
        self._show()

    def watch(self, status_files: list[Path]) -> None:
        self.status_files = status_files

    def poll(self) -> None:
        if not self.enabled or time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + 1.0
        readings = []
        for path in self.status_files:
            with contextlib.suppress(OSError, ValueError):
                readings.append(json.loads(path.read_text()))
        if not readings:
            return
        now = max(int(r["t_ns"]) for r in readings)
        messages = sum(int(r["messages"]) for r in readings)
        if self._last is not None and now > self._last[0]:
            self.rate = (messages - self._last[1]) / ((now - self._last[0]) / 1e9)
        self._last = (now, messages)
        p99s = [float(r["p99_us"]) for r in readings if r.get("p99_us") is not None]
        self.p99_us = max(p99s) if p99s else None
        self._show()

    def _show(self) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        rate = "" if self.rate is None else f"  {self.rate:,.0f} msgs/s delivered"
        p99 = "" if self.p99_us is None else f"  p99 {self.p99_us:,.0f} µs (last s)"
        line = (
            f"run {self.index + 1}/{self.total} {self.cell_id}  {elapsed:.0f} s elapsed{rate}{p99}"
        )
        sys.stderr.write("\r\x1b[K" + line[:200])
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
