"""The client benchmark's runner: one feeder and one worker per repeat, pinned apart, measured.

:func:`measure_case` starts a feeder (:mod:`pushbench.bench.feeder`) and a
client worker (``python -m pushbench.clients.worker``, its spec a
:class:`~pushbench.schema.worker.WorkerSpec`) through
:class:`pushbench.procs.ProcessGroup`, samples the feeder's CPU, both cores
(``/proc/stat``) and the bytes waiting for the client (``/proc/net/tcp``)
inside the worker's window, and turns the worker's output into a
:class:`~pushbench.schema.client_bench.Sample`. :func:`run_repeats` measures
every case × repeat, interleaved, storing the results after each one. The
cases and the rules that judge a repeat are :mod:`.client`.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pushbench.cputime import cpu_ticks
from pushbench.schema.client_bench import QUEUE_SAMPLE_S, SATURATED_FRACTION, CaseResult, Sample

from .client import POLL_BATCH, Case, saturated_side, significant, verdict, write_results
from .feeder import FEEDER_READY, TOPIC, FeederSpec

if TYPE_CHECKING:
    from pushbench.procs import Pinning, ProcessGroup, Started

__all__ = ["Failed", "Options", "measure_case", "run_repeats"]

# Worker capacity (rows of its preallocated arrays, 36 bytes each): room for this many
# msgs/s over warm-up + window; more is counted as overflow and makes the figure a bound.
# The compiled light clients take several million msgs/s on one core (the epoll receive
# loop: ~3.9 M for SSE, ~3.3 M for WebSocket here; a 10-connection tiny run overflowed
# 3 M/s), and record from their connection until their stop: CAPACITY_MARGIN_S covers the
# time outside warm-up + window (≈ 1.3 GB of rows for the defaults).
CAPACITY_RATE = 8_000_000
CAPACITY_MARGIN_S = 1.0
READY_TIMEOUT_S = 60.0
WORKER_EXIT_TIMEOUT_S = 30.0  # after its window: stop the clients (≤ 10 s) and write


class Failed(RuntimeError):
    """A repeat could not be measured (a process died, an output is missing)."""


@dataclass(frozen=True)
class Options:
    """Everything a run needs besides its cases."""

    connections: int
    payload: int
    duration_s: float
    warmup_s: float
    loop: str

    def capacity(self, case: Case) -> int:
        rate = max(CAPACITY_RATE, 2 * case.offered)
        return math.ceil(rate * (self.warmup_s + self.duration_s + CAPACITY_MARGIN_S)) + 10_000


def _cpu_times(cpus: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Busy and total clock ticks so far of each CPU in ``cpus`` (``/proc/stat``)."""
    out: dict[int, tuple[int, int]] = {}
    for cpu, v in (cpu_ticks(cpus) or {}).items():
        idle = v[3] + v[4]  # idle, iowait
        total = sum(v)
        out[cpu] = (total - idle, total)
    return out


def _busy(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpus: Sequence[int]
) -> float | None:
    """Fraction of ``cpus``' time spent busy between two :func:`_cpu_times` readings
    (over several CPUs: the busiest one, since one saturated core is enough)."""
    fractions = []
    for cpu in cpus:
        if cpu in before and cpu in after:
            busy = after[cpu][0] - before[cpu][0]
            total = after[cpu][1] - before[cpu][1]
            if total > 0:
                fractions.append(busy / total)
    return max(fractions) if fractions else None


def _queued_bytes(port: int) -> int | None:
    """Bytes on their way to the client over the feeder's connections: unread in the
    client sockets' receive queues plus unacknowledged in the feeder's send queues
    (``/proc/net/tcp``, established IPv4 sockets whose local or remote port is ``port``)."""
    try:
        text = Path("/proc/net/tcp").read_text()
    except OSError:
        return None
    suffix = f":{port:04X}"
    total = 0
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5 or parts[3] != "01":  # 01: ESTABLISHED
            continue
        tx, _, rx = parts[4].partition(":")
        if parts[1].endswith(suffix):
            total += int(tx, 16)
        elif parts[2].endswith(suffix):
            total += int(rx, 16)
    return total


def _sleep_until(group: ProcessGroup, until: float) -> None:
    """Sleep until ``until`` (time.monotonic), failing as soon as a process died."""
    while True:
        for entry in group.dead():
            raise Failed(f"{entry.name} exited with {entry.proc.returncode}: {_tail(entry)}")
        now = time.monotonic()
        if now >= until:
            return
        time.sleep(min(0.05, until - now))


def _tail(entry: Started) -> str:
    if entry.log_path is None or not entry.log_path.exists():
        return ""
    return entry.log_path.read_text(errors="replace").strip()[-500:]


def measure_case(
    case: Case, repeat: int, options: Options, pinning: Pinning, run_dir: Path
) -> Sample:
    """Start a feeder and a worker, pinned apart; measure one window → a :class:`Sample`.

    Every process started is stopped before this returns, whatever happens.
    """
    from pushbench.procs import ProcessGroup

    name = f"{case.id.replace('/', '-')}-r{repeat}"
    group = ProcessGroup(run_dir / "logs" / name)
    try:
        return _measure(case, repeat, name, options, pinning, run_dir, group)
    except Exception as exc:  # a crash, a timeout, a missing output: recorded, the run goes on
        return Sample(
            case.id,
            case.client,
            case.mode,
            case.offered,
            repeat,
            "failed",
            f"{type(exc).__name__}: {exc}"[:2000],
        )
    finally:
        group.stop_all()


def _measure(
    case: Case,
    repeat: int,
    name: str,
    options: Options,
    pinning: Pinning,
    run_dir: Path,
    group: ProcessGroup,
) -> Sample:
    import numpy as np

    from pushbench.clients.worker import READY_LINE, output_paths
    from pushbench.procs import sample
    from pushbench.results import atomic_write_json, read_json
    from pushbench.schema.worker import WorkerSpec

    feeder_spec = FeederSpec(
        options.connections, options.payload, float(case.offered), batch=POLL_BATCH
    )
    feeder = group.start(
        "feeder",
        [sys.executable, "-m", "pushbench.bench.feeder", json.dumps(asdict(feeder_spec))],
        cpus=pinning.server,
        ready_prefix=FEEDER_READY,
        timeout_s=READY_TIMEOUT_S,
    )
    port = int(feeder.ready_line[len(FEEDER_READY) :].strip())
    work = run_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    spec_path = work / f"{name}.spec.json"
    out = work / name
    spec = WorkerSpec(
        transport=case.client,
        base_url=f"http://127.0.0.1:{port}",
        topic=TOPIC,
        connections=options.connections,
        warmup_s=options.warmup_s,
        duration_s=options.duration_s,
        capacity=options.capacity(case),
        loop=options.loop,
    )
    atomic_write_json(spec_path, spec.to_dict())
    client_cpus = pinning.clients[:1]
    worker = group.start(
        "worker",
        [sys.executable, "-m", "pushbench.clients.worker", str(spec_path), str(out)],
        cpus=client_cpus,
        ready_prefix=READY_LINE,
        timeout_s=READY_TIMEOUT_S,
    )
    # The feeder's CPU and both cores, sampled inside the worker's window (which
    # starts warmup_s after its ready line), a little short of its end; meanwhile,
    # every 0.1 s, the bytes waiting for the client (was it ever left without data?).
    ready = time.monotonic()
    margin = min(0.1, options.duration_s / 10)
    window_end = ready + options.warmup_s + options.duration_s - margin
    _sleep_until(group, ready + options.warmup_s)
    cpus = sorted({*pinning.server, *client_cpus})
    feeder0, cores0 = sample(feeder.pid), _cpu_times(cpus)
    queued: list[int] = []
    while (now := time.monotonic()) < window_end:
        _sleep_until(group, min(window_end, now + QUEUE_SAMPLE_S))
        got = _queued_bytes(port)
        if got is not None:
            queued.append(got)
    feeder1, cores1 = sample(feeder.pid), _cpu_times(cpus)
    try:
        code = worker.proc.wait(options.duration_s + WORKER_EXIT_TIMEOUT_S)
    except Exception as exc:
        raise Failed(f"the worker did not finish: {exc}") from exc
    if code != 0:
        raise Failed(f"the worker exited with {code}: {_tail(worker)}")
    if feeder.proc.poll() is not None:
        raise Failed(f"the feeder exited with {feeder.proc.returncode}: {_tail(feeder)}")

    npz_path, json_path = output_paths(out)
    result: dict[str, Any] = read_json(json_path)
    if not result.get("complete"):
        raise Failed(f"the worker's run is incomplete: {result.get('reason')}")
    with np.load(npz_path) as npz:
        recv = npz["recv_ns"]
    start_ns, end_ns = int(result["warmup_end_ns"]), int(result["end_ns"])
    messages = int(np.count_nonzero((recv >= start_ns) & (recv < end_ns)))
    del recv
    npz_path.unlink()  # the receipts of repeated frames: only their count matters here
    window_s = (end_ns - start_ns) / 1e9
    run_s = (end_ns - int(result["ready_ns"])) / 1e9
    client_cpu = (result["cpu_user_s_run"] + result["cpu_sys_s_run"]) / run_s
    feeder_cpu = None
    if feeder0 is not None and feeder1 is not None and feeder1.at_ns > feeder0.at_ns:
        feeder_cpu = (feeder1.cpu_s - feeder0.cpu_s) / ((feeder1.at_ns - feeder0.at_ns) / 1e9)
    client_busy = _busy(cores0, cores1, client_cpus)
    feeder_busy = _busy(cores0, cores1, pinning.server)
    rate = messages / window_s
    # Without /proc/stat, the processes' own CPU shares stand in for their cores'.
    side = saturated_side(
        client_busy if client_busy is not None else client_cpu,
        feeder_busy if feeder_busy is not None else feeder_cpu,
    )
    overflow = int(result["overflow"])
    totals = result.get("totals") or {}
    fed = sum(1 for q in queued if q > 0) / len(queued) if queued else None
    kind = verdict(case, rate, fed, side in ("feeder", "both"), overflow)
    return Sample(
        case=case.id,
        client=case.client,
        mode=case.mode,
        offered=case.offered,
        repeat=repeat,
        status="ok",
        msgs_per_s=significant(rate),
        messages=messages,
        window_s=significant(window_s),
        client_cpu=significant(client_cpu, 3),
        feeder_cpu=significant(feeder_cpu, 3),
        client_core_busy=significant(client_busy, 3),
        feeder_core_busy=significant(feeder_busy, 3),
        msgs_per_client_cpu_s=significant(rate / client_cpu) if client_cpu > 0 else None,
        gc_collections=int(result["gc_collections"]),
        gc_pause_max_ms=significant(result["gc_pause_ns_max"] / 1e6, 3),
        gc_pause_sum_ms=significant(result["gc_pause_ns_sum"] / 1e6, 3),
        max_loop_lag_ms=significant(result["max_loop_lag_ns"] / 1e6, 3),
        connected=int(result["connected"]),
        reconnects=int(totals.get("reconnects", 0)),
        errors=int(totals.get("errors", 0)),
        overflow=overflow,
        queue_samples=len(queued),
        fed_fraction=significant(fed, 3),
        queued_median_kib=significant(statistics.median(queued) / 1024, 3) if queued else None,
        saturated=side,
        lower_bound=kind == "lower bound",
        contended=client_busy is not None
        and client_busy >= SATURATED_FRACTION
        and client_cpu < SATURATED_FRACTION,
        verdict=kind,
    )


def run_repeats(
    cases: Sequence[Case],
    repeats: int,
    options: Options,
    pinning: Pinning,
    run_dir: Path,
    stored: dict[str, Any],
    progress: Callable[[int, int, Sample], None] | None = None,
) -> tuple[list[Sample], list[CaseResult]]:
    """Measure every case ``repeats`` times → (every sample, one summary per case).

    Repeats are interleaved (every case once, then again): drift in machine load
    spreads over every case instead of biasing one. The results are stored
    (``stored`` being the run's options) after every repeat, so an interrupted
    run keeps what it measured.
    """
    samples: list[Sample] = []
    total = len(cases) * repeats
    for repeat in range(repeats):
        for case in cases:
            s = measure_case(case, repeat, options, pinning, run_dir)
            samples.append(s)
            if progress is not None:
                progress(len(samples), total, s)
            write_results(run_dir, stored, cases, samples)
    _, _, summaries = write_results(run_dir, stored, cases, samples)
    return samples, summaries
