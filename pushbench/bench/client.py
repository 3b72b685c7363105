"""The client benchmark's cases, rules and summaries: what ``bench-client`` measures, as data.

What is measured. A *feeder* process (:mod:`pushbench.bench.feeder`) serves the
client's protocol by the request's path — the WebSocket upgrade then text frames,
an SSE event stream (chunked), or keep-alive poll answers — each message one
pre-encoded envelope (:mod:`pushbench.contract`) with a ``--payload``-byte
payload, on every connection: back to back (``saturation``: streams written as
fast as the socket takes them, every poll answered at once with
:data:`POLL_BATCH` message, so a poll client's msgs/s is its answers/s) or at an
offered total rate (``offered``: each connection gets its share, streams sent
every 10 ms with the connections' ticks staggered, polls held until a message
is due and answered with all that are). The client under test is the real
worker process, ``python -m pushbench.clients.worker SPEC OUT``, running
``--connections`` connections of one transport on one event loop: each
protocol's light client (:mod:`pushbench.clients.ws_light`, ``.sse``, ``.poll``)
and its aiohttp variant, the reference (:data:`CLIENTS`). The feeder and the
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

Three parts, as for ``bench-codec``, each in a module of its own:

- this module: the cases (:func:`build_cases`, client × mode), the target,
  the rules that judge a repeat (:func:`saturated_side`, :func:`verdict`) and
  the summaries stored per case (:func:`summarize`, :func:`write_results`);
- :mod:`.client_runner`: the runner, which starts a feeder and a worker per
  repeat and measures them (repeats interleaved so a change in machine load
  spreads over every case);
- the records and their files (``client.json``, ``client.csv``) are
  :mod:`pushbench.schema.client_bench`; :mod:`pushbench.report.client` renders
  the table, the target line and ``client-report.md`` from those files alone.
  ``pushbench bench-client`` (:mod:`pushbench.commands.bench_client`) runs the
  one, then the other.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushbench.schema.client_bench import (
    FED_FRACTION,
    KEPT_UP_FRACTION,
    SATURATED_FRACTION,
    CaseResult,
    Sample,
    write_client_results,
)

__all__ = [
    "CLIENTS",
    "POLL_BATCH",
    "TARGET",
    "TARGETS",
    "Case",
    "Target",
    "build_cases",
    "evaluate_target",
    "evaluate_targets",
    "saturated_side",
    "significant",
    "summarize",
    "verdict",
    "write_results",
]

#: The clients compared: worker transport → what it is.
CLIENTS: dict[str, str] = {
    "ws": "light WebSocket client (pushbench.wire, asyncio.BufferedProtocol)",
    "ws-aiohttp": "aiohttp ws_connect (the reference)",
    "sse": "light SSE client (asyncio.BufferedProtocol, pushbench.sse.EventParser)",
    "sse-aiohttp": "SSE over an aiohttp streaming GET (the reference)",
    "longpoll": "light long-poll client (asyncio.BufferedProtocol, prepared requests)",
    "longpoll-aiohttp": "long polling with aiohttp GETs (the reference)",
}
#: Messages per poll answer at saturation: one, so a poll client's msgs/s is the answers
#: per second it handles (its per-answer cost, the figure that decides long polling).
POLL_BATCH = 1

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
    """The issue's goal, and the conditions under which a measurement speaks to it.

    ``min_ratio``, when set, is a second condition: the client's median at least
    that many times the reference client's, measured in the same run.
    """

    client: str
    reference: str
    min_rate: float
    connections: int
    payload: int
    text: str
    min_ratio: float | None = None


TARGET = Target(
    client="ws",
    reference="ws-aiohttp",
    min_rate=250_000,
    connections=100,
    payload=100,
    text="the light WebSocket client receives ≥ 250,000 msgs/s on one core and ≥ 1.5× "
    "what aiohttp's client does (100 connections, 100-byte messages)",
    min_ratio=1.5,
)

#: Every client target ``bench-client`` judges: the WebSocket one first, then SSE and
#: long polling (each against its aiohttp variant, shown beside it).
TARGETS: tuple[Target, ...] = (
    TARGET,
    Target(
        client="sse",
        reference="sse-aiohttp",
        min_rate=250_000,
        connections=100,
        payload=100,
        text="the light SSE client receives ≥ 250,000 msgs/s on one core "
        "(100 connections, 100-byte messages)",
    ),
    Target(
        client="longpoll",
        reference="longpoll-aiohttp",
        min_rate=50_000,
        connections=100,
        payload=100,
        text="the light long-poll client handles ≥ 50,000 answers/s on one core "
        "(100 connections, 100-byte messages, one per answer)",
    ),
)


# --- the rules that judge a repeat, and the summary of a case -----------------------------


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


def significant(x: float | None, digits: int = 4) -> float | None:
    """``digits`` significant digits: more would be noise at these resolutions."""
    if x is None or x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _median(values: Sequence[float | int | None]) -> float | None:
    got = [v for v in values if v is not None]
    return significant(float(statistics.median(got))) if got else None


def _max(values: Sequence[float | int | None]) -> float | None:
    got = [v for v in values if v is not None]
    return significant(float(max(got))) if got else None


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
    out.msgs_per_s_min = significant(min(rates)) if rates else None
    out.msgs_per_s_max = significant(max(rates)) if rates else None
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


# --- storage ----------------------------------------------------------------------------------


def write_results(
    run_dir: Path,
    options: dict[str, Any],
    cases: Sequence[Case],
    samples: Sequence[Sample],
) -> tuple[Path, Path, list[CaseResult]]:
    """Summarise the repeats per case, judge the target, and store it all
    (``client.json`` and ``client.csv``, :mod:`pushbench.schema.client_bench`)."""
    summaries = [
        summarize(
            case,
            [s for s in samples if s.case == case.id],
            options["connections"],
            options["payload"],
        )
        for case in cases
    ]
    json_path, csv_path = write_client_results(
        run_dir,
        options,
        evaluate_target(summaries),
        summaries,
        samples,
        evaluate_targets(summaries),
    )
    return json_path, csv_path, summaries


def evaluate_target(summaries: Sequence[CaseResult], target: Target = TARGET) -> dict[str, Any]:
    """The target against the light client's saturation median, the reference's beside it.

    ``met`` is None when the light client's saturation case was not measured, or
    when it reached the rate but a ``min_ratio`` could not be judged (no
    reference measured). ``conditions_match`` is False when the run used other
    connections or payload than the target names (the verdict then speaks to
    those conditions only).
    """
    by_case = {s.case: s for s in summaries}
    mine = by_case.get(Case(target.client).id)
    ref = by_case.get(Case(target.reference).id)
    median = mine.msgs_per_s_median if mine is not None else None
    ref_median = ref.msgs_per_s_median if ref is not None else None
    ratio = median / ref_median if median is not None and ref_median else None
    met: bool | None = None if median is None else median >= target.min_rate
    if met and target.min_ratio is not None:
        met = None if ratio is None else ratio >= target.min_ratio
    return {
        "text": target.text,
        "min_rate": target.min_rate,
        "min_ratio": target.min_ratio,
        "ratio": significant(ratio, 3),
        "client": target.client,
        "median": median,
        "min": mine.msgs_per_s_min if mine is not None else None,
        "max": mine.msgs_per_s_max if mine is not None else None,
        "met": met,
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
        "reference_median": ref_median,
        "reference_lower_bound": bool(ref is not None and ref.lower_bound),
        "contended": mine.contended if mine is not None else 0,
        "repeats": mine.repeats if mine is not None else 0,
        "client_cpu_median": mine.client_cpu_median if mine is not None else None,
        "per_client_cpu_s_median": mine.msgs_per_client_cpu_s_median if mine is not None else None,
    }


def evaluate_targets(summaries: Sequence[CaseResult]) -> list[dict[str, Any]]:
    """Every target of :data:`TARGETS` whose client ran, judged (:func:`evaluate_target`)."""
    ran = {s.client for s in summaries}
    return [evaluate_target(summaries, t) for t in TARGETS if t.client in ran]
