"""``pushbench bench-client``: how many messages per second a client receives on one core.

What is measured. A *feeder* process answers the WebSocket upgrade
(:mod:`pushbench.wire.handshake`) and then sends pre-encoded text frames, each
one envelope (:mod:`pushbench.contract`) with a ``--payload``-byte payload,
on every connection: back to back (``saturation``: written as fast as the
socket takes them) or at an offered total rate (``offered``: each connection
gets its share, sent every 10 ms, the connections' ticks staggered). The
client under test is the real worker process, ``python -m pushbench.clients.worker
SPEC OUT``, running ``--connections`` connections of one transport on one
event loop: ``ws`` (our light client on :mod:`pushbench.wire`) and
``ws-aiohttp`` (aiohttp's ``ws_connect``, the reference). The feeder and the
worker are pinned to different CPUs (:func:`pushbench.procs.plan_pinning`).

Per repeat, from the worker's own output (``OUT.json`` and ``OUT.npz``):
messages received per second over the timed window (receipts whose receive
time lies between the end of the warm-up and the end of the run), the
worker's CPU fraction (``cpu_*_run`` over ready → end), its garbage
collections and longest collection pause, and its longest event-loop lag.
From ``/proc``: the feeder's CPU fraction and how busy each side's CPU was
(all processes counted, so other load on the machine shows). The side whose
CPU was ≥ 90 % busy is the one that *saturated*; if the feeder's did, the
client's figure is only a lower bound of what it can take, and the output
says so (so it does when the worker's arrays overflowed).

Three parts, as for ``bench-codec``: the cases are data (:func:`build_cases`,
client × mode), one runner measures them (:func:`measure_case`, repeats
interleaved so a change in machine load spreads over every case), and the
results are stored as data (``client.json``, ``client.csv``, written
atomically into a run directory of :mod:`pushbench.results`). This module owns
those three, the target and its evaluation, and the command line; the two
other sides live apart so each stays small and does one thing:

- :mod:`pushbench.bench.feeder`: the feeder process
  (``python -m pushbench.bench.feeder JSON``), started here;
- :mod:`pushbench.report.client`: the table, the target line and
  ``client-report.md``, rendered from the stored files alone (so an old run
  re-renders without re-running: ``python -m pushbench.report.client RUN_DIR``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pushbench.bench.feeder import FEEDER_READY, TOPIC, FeederSpec

if TYPE_CHECKING:
    from pushbench.procs import Pinning, ProcessGroup, Started

__all__ = [
    "CASE_COLUMNS",
    "CLIENTS",
    "TARGET",
    "Case",
    "CaseResult",
    "Sample",
    "Target",
    "add_arguments",
    "build_cases",
    "evaluate_target",
    "main",
    "measure_case",
    "run",
    "saturated_side",
    "summarize",
    "write_results",
]

#: The clients compared: worker transport → what it is.
CLIENTS: dict[str, str] = {
    "ws": "light WebSocket client (pushbench.wire, asyncio.BufferedProtocol)",
    "ws-aiohttp": "aiohttp ws_connect (the reference)",
}

DEFAULT_CONNECTIONS = 100
DEFAULT_PAYLOAD = 100
DEFAULT_DURATION_S = 3.0
DEFAULT_WARMUP_S = 0.5
DEFAULT_REPEATS = 3
DEFAULT_OFFERED: tuple[int, ...] = (200_000,)
QUICK_DURATION_S = 1.0
QUICK_WARMUP_S = 0.3
QUICK_REPEATS = 1
QUICK_OFFERED: tuple[int, ...] = ()

SATURATED_FRACTION = 0.9  # a CPU this busy over the window is saturated (as pushbench.runner)
# At saturation the client must have had data waiting in at least this fraction of the
# window's queue samples for its figure to be its own ceiling, not the feeder's.
FED_FRACTION = 0.9
KEPT_UP_FRACTION = 0.97  # offered mode: received at least this share of the offered rate
QUEUE_SAMPLE_S = 0.1  # how often the window samples the bytes waiting for the client
# Worker capacity (rows of its preallocated arrays, 36 bytes each): room for this many
# msgs/s over warm-up + window; more is counted as overflow and makes the figure a bound.
CAPACITY_RATE = 1_000_000
READY_TIMEOUT_S = 60.0
WORKER_EXIT_TIMEOUT_S = 30.0  # after its window: stop the clients (≤ 10 s) and write

DISTRIBUTIONS: tuple[str, ...] = ("aiohttp", "numpy", "uvloop")


# --- cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One client in one mode: ``offered`` 0 means saturation (frames back to back)."""

    client: str
    offered: int = 0  # total msgs/s over all connections

    @property
    def mode(self) -> str:
        return "offered" if self.offered else "saturation"

    @property
    def id(self) -> str:
        return f"{self.client}/{self.mode}" + (f"-{self.offered}" if self.offered else "")


def build_cases(clients: Sequence[str], offered: Sequence[int]) -> list[Case]:
    """The benchmark table: every client at saturation, then at every offered rate."""
    return [Case(c) for c in clients] + [Case(c, rate) for rate in offered for c in clients]


# --- the target ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The issue's goal, and the conditions under which a measurement speaks to it."""

    client: str
    reference: str
    min_rate: float
    connections: int
    payload: int
    text: str


TARGET = Target(
    client="ws",
    reference="ws-aiohttp",
    min_rate=250_000,
    connections=100,
    payload=100,
    text="the light WebSocket client receives ≥ 250,000 msgs/s on one core "
    "(100 connections, 100-byte messages)",
)


# --- records ------------------------------------------------------------------------------


@dataclass
class Sample:
    """One repeat of one case: the figures of one feeder + worker pair.

    Fractions are of one CPU (1.0 = one core fully used over the window).
    ``client_core_busy`` / ``feeder_core_busy``: how busy the CPU each side was
    pinned to was, whoever used it (``/proc/stat``); ``None`` where unknown.
    """

    case: str
    client: str
    mode: str
    offered: int
    repeat: int
    status: str  # "ok" | "failed"
    reason: str = ""
    msgs_per_s: float | None = None
    messages: int = 0  # received inside the window
    window_s: float | None = None
    client_cpu: float | None = None
    feeder_cpu: float | None = None
    client_core_busy: float | None = None
    feeder_core_busy: float | None = None
    msgs_per_client_cpu_s: float | None = None
    gc_collections: int | None = None
    gc_pause_max_ms: float | None = None
    gc_pause_sum_ms: float | None = None
    max_loop_lag_ms: float | None = None
    connected: int = 0
    reconnects: int = 0
    errors: int = 0
    overflow: int = 0
    queue_samples: int = 0
    fed_fraction: float | None = None  # share of queue samples with bytes waiting for the client
    queued_median_kib: float | None = None  # bytes waiting for the client, all connections
    saturated: str = ""  # "client" | "feeder" | "both" | "neither"
    lower_bound: bool = False
    verdict: str = ""
    # Its CPU was >= 90 % busy but the client had less than 90 % of it: other processes
    # took the rest, so msgs/s understates what the client takes on a core of its own.
    contended: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class CaseResult:
    """The repeats of one case summarised: median with min and max of the rate."""

    case: str
    client: str
    mode: str
    offered: int
    connections: int
    payload: int
    repeats: int  # successful repeats
    failed: int
    msgs_per_s_median: float | None = None
    msgs_per_s_min: float | None = None
    msgs_per_s_max: float | None = None
    client_cpu_median: float | None = None
    feeder_cpu_median: float | None = None
    client_core_busy_median: float | None = None
    feeder_core_busy_median: float | None = None
    msgs_per_client_cpu_s_median: float | None = None
    gc_collections_median: float | None = None
    gc_pause_max_ms: float | None = None  # the longest over every repeat
    max_loop_lag_ms: float | None = None  # the longest over every repeat
    overflow: int = 0
    fed_fraction_min: float | None = None
    saturated: str = ""  # the most frequent side over the repeats
    lower_bound: bool = False  # some repeat was feeder-bound or its arrays overflowed
    verdict: str = ""  # the repeats' verdict, or each verdict with its count when they differ
    contended: int = 0  # repeats in which other processes took part of the client's CPU

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


#: Columns of client.csv: one row per case (the repeats are in client.json).
CASE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CaseResult))


def saturated_side(client_busy: float | None, feeder_busy: float | None) -> str:
    """Which side's CPU was ≥ 90 % busy: client, feeder, both or neither."""
    client = client_busy is not None and client_busy >= SATURATED_FRACTION
    feeder = feeder_busy is not None and feeder_busy >= SATURATED_FRACTION
    return {(True, True): "both", (True, False): "client", (False, True): "feeder"}.get(
        (client, feeder), "neither"
    )


def verdict(
    case: Case, rate: float, fed_fraction: float | None, feeder_side: bool, overflow: int
) -> str:
    """What a repeat's figure is.

    Saturation: ``client-bound`` when data was waiting for the client nearly all
    the time (so the client, not the feeder, set the pace), else ``lower bound``
    (the feeder did not keep it supplied, or the arrays overflowed; without queue
    samples, a saturated feeder core decides). Offered: ``kept up`` or ``fell behind``.
    """
    if overflow > 0:
        return "lower bound"
    if case.offered:
        return "kept up" if rate >= KEPT_UP_FRACTION * case.offered else "fell behind"
    if fed_fraction is None:
        return "lower bound" if feeder_side else "client-bound"
    return "client-bound" if fed_fraction >= FED_FRACTION else "lower bound"


def _round(x: float | None, digits: int = 4) -> float | None:
    """``digits`` significant digits: more would be noise at these resolutions."""
    if x is None or x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _median(values: Sequence[float | int | None]) -> float | None:
    got = [v for v in values if v is not None]
    return _round(float(statistics.median(got))) if got else None


def _max(values: Sequence[float | int | None]) -> float | None:
    got = [v for v in values if v is not None]
    return _round(float(max(got))) if got else None


def summarize(case: Case, samples: Sequence[Sample], connections: int, payload: int) -> CaseResult:
    """Median (min, max) of the rate and medians or maxima of the rest, over ``samples``."""
    ok = [s for s in samples if s.status == "ok"]
    out = CaseResult(
        case=case.id,
        client=case.client,
        mode=case.mode,
        offered=case.offered,
        connections=connections,
        payload=payload,
        repeats=len(ok),
        failed=len(samples) - len(ok),
    )
    if not ok:
        return out
    rates = [s.msgs_per_s for s in ok if s.msgs_per_s is not None]
    out.msgs_per_s_median = _median(rates)
    out.msgs_per_s_min = _round(min(rates)) if rates else None
    out.msgs_per_s_max = _round(max(rates)) if rates else None
    out.client_cpu_median = _median([s.client_cpu for s in ok])
    out.feeder_cpu_median = _median([s.feeder_cpu for s in ok])
    out.client_core_busy_median = _median([s.client_core_busy for s in ok])
    out.feeder_core_busy_median = _median([s.feeder_core_busy for s in ok])
    out.msgs_per_client_cpu_s_median = _median([s.msgs_per_client_cpu_s for s in ok])
    out.gc_collections_median = _median([s.gc_collections for s in ok])
    out.gc_pause_max_ms = _max([s.gc_pause_max_ms for s in ok])
    out.max_loop_lag_ms = _max([s.max_loop_lag_ms for s in ok])
    out.overflow = sum(s.overflow for s in ok)
    fed = [s.fed_fraction for s in ok if s.fed_fraction is not None]
    out.fed_fraction_min = min(fed) if fed else None
    out.contended = sum(1 for s in ok if s.contended)
    out.saturated = Counter(s.saturated for s in ok).most_common(1)[0][0]
    out.lower_bound = any(s.lower_bound for s in ok)
    # One verdict when the repeats agree; else each with its count, a lower bound first.
    counts = Counter(s.verdict for s in ok).most_common()
    counts.sort(key=lambda vc: vc[0] != "lower bound")
    out.verdict = (
        counts[0][0] if len(counts) == 1 else ", ".join(f"{v} {c}/{len(ok)}" for v, c in counts)
    )
    return out


# --- measuring one repeat -----------------------------------------------------------------


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
        return math.ceil(rate * (self.warmup_s + self.duration_s)) + 10_000


def _cpu_times(cpus: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Busy and total clock ticks so far of each CPU in ``cpus`` (``/proc/stat``)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        text = Path("/proc/stat").read_text()
    except OSError:
        return out
    wanted = {f"cpu{c}": c for c in cpus}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name in wanted:
            # user nice system idle iowait irq softirq steal (guest is inside user)
            v = [int(x) for x in rest.split()[:8]]
            idle = v[3] + v[4]
            total = sum(v)
            out[wanted[name]] = (total - idle, total)
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

    feeder_spec = FeederSpec(options.connections, options.payload, float(case.offered))
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
    atomic_write_json(
        spec_path,
        {
            "transport": case.client,
            "base_url": f"http://127.0.0.1:{port}",
            "topic": TOPIC,
            "connections": options.connections,
            "warmup_s": options.warmup_s,
            "duration_s": options.duration_s,
            "capacity": options.capacity(case),
            "loop": options.loop,
        },
    )
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
        msgs_per_s=_round(rate),
        messages=messages,
        window_s=_round(window_s),
        client_cpu=_round(client_cpu, 3),
        feeder_cpu=_round(feeder_cpu, 3),
        client_core_busy=_round(client_busy, 3),
        feeder_core_busy=_round(feeder_busy, 3),
        msgs_per_client_cpu_s=_round(rate / client_cpu) if client_cpu > 0 else None,
        gc_collections=int(result["gc_collections"]),
        gc_pause_max_ms=_round(result["gc_pause_ns_max"] / 1e6, 3),
        gc_pause_sum_ms=_round(result["gc_pause_ns_sum"] / 1e6, 3),
        max_loop_lag_ms=_round(result["max_loop_lag_ns"] / 1e6, 3),
        connected=int(result["connected"]),
        reconnects=int(totals.get("reconnects", 0)),
        errors=int(totals.get("errors", 0)),
        overflow=overflow,
        queue_samples=len(queued),
        fed_fraction=_round(fed, 3),
        queued_median_kib=_round(statistics.median(queued) / 1024, 3) if queued else None,
        saturated=side,
        lower_bound=kind == "lower bound",
        contended=client_busy is not None
        and client_busy >= SATURATED_FRACTION
        and client_cpu < SATURATED_FRACTION,
        verdict=kind,
    )


# --- storage ----------------------------------------------------------------------------------


def write_results(
    run_dir: Path,
    options: dict[str, Any],
    cases: Sequence[Case],
    samples: Sequence[Sample],
) -> tuple[Path, Path, list[CaseResult]]:
    """Store the repeats and their summaries: ``client.json`` (all) and ``client.csv``
    (one row per case), each atomically."""
    from pushbench.results import atomic_write_json, atomic_write_text

    summaries = [
        summarize(
            case,
            [s for s in samples if s.case == case.id],
            options["connections"],
            options["payload"],
        )
        for case in cases
    ]
    target = evaluate_target(summaries)
    json_path = run_dir / "client.json"
    csv_path = run_dir / "client.csv"
    atomic_write_json(
        json_path,
        {
            "schema": 1,
            "options": options,
            "target": target,
            "cases": [asdict(s) for s in summaries],
            "samples": [asdict(s) for s in samples],
        },
    )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CASE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for summary in summaries:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(summary).items()})
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path, summaries


def evaluate_target(summaries: Sequence[CaseResult], target: Target = TARGET) -> dict[str, Any]:
    """The target against the light client's saturation median, the reference's beside it.

    ``met`` is None when the light client's saturation case was not measured.
    ``conditions_match`` is False when the run used other connections or payload
    than the target names (the verdict then speaks to those conditions only).
    """
    by_case = {s.case: s for s in summaries}
    mine = by_case.get(Case(target.client).id)
    ref = by_case.get(Case(target.reference).id)
    median = mine.msgs_per_s_median if mine is not None else None
    return {
        "text": target.text,
        "min_rate": target.min_rate,
        "client": target.client,
        "median": median,
        "min": mine.msgs_per_s_min if mine is not None else None,
        "max": mine.msgs_per_s_max if mine is not None else None,
        "met": None if median is None else median >= target.min_rate,
        "lower_bound": bool(mine is not None and mine.lower_bound),
        "saturated": mine.saturated if mine is not None else "",
        "conditions_match": bool(
            mine is not None
            and mine.connections == target.connections
            and mine.payload == target.payload
        ),
        "connections": mine.connections if mine is not None else None,
        "payload": mine.payload if mine is not None else None,
        "reference": target.reference,
        "reference_median": ref.msgs_per_s_median if ref is not None else None,
        "reference_lower_bound": bool(ref is not None and ref.lower_bound),
        "contended": mine.contended if mine is not None else 0,
        "repeats": mine.repeats if mine is not None else 0,
        "client_cpu_median": mine.client_cpu_median if mine is not None else None,
        "per_client_cpu_s_median": mine.msgs_per_client_cpu_s_median if mine is not None else None,
    }


# --- command line ---------------------------------------------------------------------------


def _client_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CLIENTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown client {', '.join(unknown) or '(none)'}; choose from {', '.join(CLIENTS)}"
        )
    return names


def _rate_list(text: str) -> list[int]:
    if text.strip().lower() in ("", "0", "none"):
        return []
    try:
        rates = [int(float(r)) for r in text.split(",") if r.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of rates: {text!r}") from exc
    if any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("offered rates must be > 0 (or 'none')")
    return rates


_EPILOG = f"""\
cases: every client at saturation (the feeder writes frames back to back), then at
every --offered rate (total msgs/s, spread over the connections, sent every 10 ms).
clients:
{chr(10).join(f"  {k:<11} {v}" for k, v in CLIENTS.items())}

Each repeat starts a feeder process pinned to one CPU and one client worker
(python -m pushbench.clients.worker) pinned to another, and measures over the window:
msgs/s received, the worker's CPU, GC collections and longest pause, longest
loop lag; the feeder's CPU; how busy each CPU was (>= 90 %: saturated); and how
often data was waiting for the client. At saturation a client that always had
data waiting is "client-bound" (the figure is its ceiling); otherwise the figure
is a "lower bound" (the feeder did not keep up) and the output says so.

Results go to a new run directory under --out: metadata.json, client.json (every
repeat), client.csv (one row per case), client-report.md; logs/ (stderr of every
process) and work/ (worker specs and outputs).

target: {TARGET.text};
printed as MET / NOT MET from the median, with the aiohttp client's figure beside it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pushbench bench-client``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "--connections",
        type=int,
        default=DEFAULT_CONNECTIONS,
        metavar="N",
        help=f"connections of the client worker (one process, one core; default "
        f"{DEFAULT_CONNECTIONS})",
    )
    parser.add_argument(
        "--payload",
        type=int,
        default=DEFAULT_PAYLOAD,
        metavar="BYTES",
        help=f"payload bytes per message, inside the JSON envelope (default {DEFAULT_PAYLOAD})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"timed window per repeat (default {DEFAULT_DURATION_S}, {QUICK_DURATION_S} "
        "with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"untimed warm-up before the window, once every connection is up (default "
        f"{DEFAULT_WARMUP_S}, {QUICK_WARMUP_S} with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help=f"repeats per case; the median is reported with min and max (default "
        f"{DEFAULT_REPEATS}, {QUICK_REPEATS} with --quick)",
    )
    parser.add_argument(
        "--clients",
        type=_client_list,
        default=None,
        metavar="NAME[,NAME]",
        help=f"clients to measure (default {','.join(CLIENTS)})",
    )
    parser.add_argument(
        "--offered",
        type=_rate_list,
        default=None,
        metavar="RATE[,RATE]|none",
        help="offered-rate cases, total msgs/s over all connections (default "
        f"{','.join(map(str, DEFAULT_OFFERED))}; none with --quick)",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the worker's event loop (default asyncio)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="results base directory; each run gets a new subdirectory (default results/)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="saturation cases only, one short repeat: a smoke run, not a measurement",
    )


def _pick(value: Any, quick: bool, quick_value: Any, default: Any) -> Any:
    return value if value is not None else (quick_value if quick else default)


def run(args: argparse.Namespace) -> int:
    """Measure every case × repeat, store, render, print the table and the target line."""
    from pushbench import results
    from pushbench.procs import plan_pinning

    # Here, not at the top: pushbench.report.client imports this module.
    from pushbench.report.client import format_table, format_target, render_report

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    quick: bool = args.quick
    duration: float = _pick(args.duration, quick, QUICK_DURATION_S, DEFAULT_DURATION_S)
    warmup: float = _pick(args.warmup, quick, QUICK_WARMUP_S, DEFAULT_WARMUP_S)
    repeats: int = _pick(args.repeats, quick, QUICK_REPEATS, DEFAULT_REPEATS)
    offered: list[int] = list(_pick(args.offered, quick, QUICK_OFFERED, DEFAULT_OFFERED))
    clients: list[str] = args.clients or list(CLIENTS)
    if args.connections < 1 or args.payload < 0 or repeats < 1 or duration <= 0 or warmup < 0:
        print(
            "bench-client: --connections and --repeats must be >= 1, --payload and --warmup "
            ">= 0, --duration > 0",
            file=sys.stderr,
        )
        return 2
    cases = build_cases(clients, offered)
    options = Options(args.connections, args.payload, duration, warmup, args.loop)
    pinning = plan_pinning(1)
    _, frame_len = FeederSpec(args.connections, args.payload).frames(1)

    run_dir = results.new_run_dir(args.out)
    stored = {
        "quick": quick,
        "connections": args.connections,
        "payload": args.payload,
        "frame_bytes": frame_len,
        "duration_s": duration,
        "warmup_s": warmup,
        "repeats": repeats,
        "clients": clients,
        "offered": offered,
        "loop": args.loop,
        "cases": [c.id for c in cases],
        "pinning": {
            "feeder_cpus": list(pinning.server),
            "client_cpus": list(pinning.clients[:1]),
            "available_cpus": list(pinning.available),
            "note": "only one CPU: feeder and client share it"
            if len(pinning.available) < 2
            else "",
        },
    }
    meta = results.collect_metadata(
        command=args.command_line,
        settings=args.settings,
        distributions=DISTRIBUTIONS,
        started=started,
        extra={"benchmark": "client", "run_id": run_dir.name, "options": stored},
    )
    results.atomic_write_json(run_dir / "metadata.json", meta)
    total = len(cases) * repeats
    print(
        f"bench-client: {len(cases)} cases × {repeats} repeats, {args.connections} connections, "
        f"{args.payload}-byte payloads, {warmup:g} + {duration:g} s each → {run_dir}",
        flush=True,
    )
    print(
        f"feeder on CPU {list(pinning.server)}, client worker on CPU {list(pinning.clients[:1])}"
        f"{'; ' + stored['pinning']['note'] if stored['pinning']['note'] else ''}; "
        f"load average {meta.get('loadavg_start')}",
        flush=True,
    )
    load = meta.get("loadavg_start")
    if load and load[0] > 0.5 * len(pinning.available):
        print(
            f"warning: load average {load[0]} on {len(pinning.available)} CPUs: other processes "
            "compete for the cores (see the core-busy columns)",
            file=sys.stderr,
            flush=True,
        )

    samples: list[Sample] = []
    try:
        # Repeats interleaved (every case once, then again): drift in machine load
        # spreads over every case instead of biasing one.
        for repeat in range(repeats):
            for case in cases:
                s = measure_case(case, repeat, options, pinning, run_dir)
                samples.append(s)
                _print_sample(len(samples), total, s)
                write_results(run_dir, stored, cases, samples)
        _, _, summaries = write_results(run_dir, stored, cases, samples)
        results.atomic_write_json(run_dir / "metadata.json", results.finish_metadata(meta))
        report = render_report(run_dir)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {exc!r}"
        results.atomic_write_json(
            run_dir / "metadata.json", results.finish_metadata(meta, status=status)
        )
        raise
    results.update_latest(run_dir)

    print()
    print(format_table(summaries))
    print()
    print(format_target(evaluate_target(summaries)))
    print()
    failed = [s for s in samples if s.status != "ok"]
    end_load = results.read_json(run_dir / "metadata.json").get("loadavg_end")
    print(
        f"{total} repeats ({len(failed)} failed) in {time.perf_counter() - t0:.0f} s, load "
        f"average at the end {end_load}; wrote client.json, client.csv, {report.name} to {run_dir}",
        flush=True,
    )
    return 1 if failed else 0


def _print_sample(i: int, n: int, s: Sample) -> None:
    from pushbench.report.client import _ms, _pct, _rate

    head = f"[{i:>{len(str(n))}}/{n}] {s.case:<28} r{s.repeat}"
    if s.status != "ok":
        print(f"{head} FAILED: {s.reason}", flush=True)
        return
    print(
        f"{head} {_rate(s.msgs_per_s):>10} msgs/s  client CPU {_pct(s.client_cpu):>4} "
        f"(core {_pct(s.client_core_busy)})  feeder CPU {_pct(s.feeder_cpu):>4} "
        f"(core {_pct(s.feeder_core_busy)})  GC {s.gc_collections} max {_ms(s.gc_pause_max_ms)} ms"
        f"  lag {_ms(s.max_loop_lag_ms)} ms  saturated: {s.saturated}"
        f"{' (lower bound)' if s.lower_bound else ''}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pushbench.bench.client``: the same as ``pushbench bench-client``."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="pushbench bench-client",
        description="benchmark how many messages per second a client receives on one core",
    )
    add_arguments(parser)
    return run(parser.parse_args(args))


if __name__ == "__main__":
    sys.exit(main())
