"""Row flags: the conditions under which a cell's reported number is not the server's.

A flag is raised where the figure is wrong, not in an appendix: the runner's
summary table, the report's rows and the decision guide all read
:func:`cell_flags`, and the guide leaves every flagged cell out of its
verdicts (saying which and why). Each flag names the figures that raised it,
so a reader can judge it: ``client-loop-stall(lag 4,752 µs > ½ max 4,755 µs)``.

The conditions, each with its stated threshold:

- ``harness-bound``: a client core was ≥ 90 % busy (the runner's
  ``harness_bound`` column): the load generator may be the limit;
- ``client-loop-stall``: the longest stall of a client's own event loop is
  more than :data:`LOOP_STALL_SHARE` of the reported max latency, so the max
  and p99.9 may be the client's pause, not the server's. This flag marks the
  row's *tail* only (``excludes`` False): a stall of a few milliseconds moves
  the messages that arrive during it — a few per thousand at most — so the
  p50 and p99 the verdicts read stand, and the row stays in them with the flag
  shown beside its max;
- ``server-busy``: the server process used ≥ :data:`SERVER_BUSY` of a core
  over the window: its latency is queueing in an overloaded server;
- ``publisher-late``: the in-server publisher's p99 lateness behind its
  schedule exceeds :data:`PUBLISHER_LATE_SHARE` of the reported p99 (the
  corrected latency includes it, so the p99 measures the ticker's delay) and
  :data:`PUBLISHER_LATE_FLOOR_US`: lateness under a millisecond is a loop turn
  and the timer's slack, what any server on one core pays, not an overloaded
  one (a 110 µs late ticker under a 419 µs p99 flagged a healthy WebSocket
  cell and took it out of the high-rate verdict);
- ``under-rate``: the achieved publish rate is under :data:`MIN_ACHIEVED` of
  the offered (scheduled) one: the cell did not run the load it names.

Per cell (:func:`cell_flags`) the figures are those the tables report: the
medians over the ok repeats, the worst client stall of any repeat against the
max of all repeats (the merged histogram's when the caller has it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HARNESS_BUSY",
    "LOOP_STALL_SHARE",
    "MIN_ACHIEVED",
    "PUBLISHER_LATE_FLOOR_US",
    "PUBLISHER_LATE_SHARE",
    "SERVER_BUSY",
    "Flag",
    "FlagFigures",
    "cell_flags",
    "excluding",
    "figures_of",
    "flags",
    "rule_text",
]

HARNESS_BUSY = 0.9  # a client core this busy: the runner's harness_bound
LOOP_STALL_SHARE = 0.5  # client loop stall > this × the reported max latency
SERVER_BUSY = 0.9  # server CPU ≥ this many cores (its one pinned core)
PUBLISHER_LATE_SHARE = 0.25  # publisher p99 lateness > this × the reported p99
PUBLISHER_LATE_FLOOR_US = 1_000.0  # … and more than this: a loop turn is no overload
MIN_ACHIEVED = 0.98  # achieved publish rate < this × the offered one


@dataclass(frozen=True)
class Flag:
    """One raised condition: its name and the figures that raised it."""

    name: str
    detail: str
    excludes: bool = True  # False: only the row's tail (max, p99.9) is in doubt

    def __str__(self) -> str:
        return f"{self.name}({self.detail})"


@dataclass(frozen=True)
class FlagFigures:
    """The figures the conditions read (``None``: not measured, the condition is not judged)."""

    harness_bound: bool = False
    client_core_busy: float | None = None  # cores, the busiest client core
    loop_lag_us: float | None = None  # the longest client loop stall
    lat_max_us: float | None = None  # the reported max latency
    lat_p99_us: float | None = None  # the reported p99 latency
    server_cpu_fraction: float | None = None  # cores
    publish_lag_p99_us: float | None = None  # the in-server publisher's p99 lateness
    rate_msgs_per_s: float | None = None  # offered: the schedule's rate
    offered_msgs_per_s: float | None = None  # achieved: published in the window


def _us(v: float) -> str:
    return f"{v:,.0f} µs"


def flags(f: FlagFigures) -> tuple[Flag, ...]:
    """Every condition ``f`` meets, in the order of the module doc."""
    out: list[Flag] = []
    if f.harness_bound:
        busy = "" if f.client_core_busy is None else f"client core {f.client_core_busy:.0%}"
        out.append(Flag("harness-bound", busy or f"client core ≥ {HARNESS_BUSY:.0%}"))
    if (
        f.loop_lag_us is not None
        and f.lat_max_us
        and f.loop_lag_us > LOOP_STALL_SHARE * f.lat_max_us
    ):
        out.append(
            Flag(
                "client-loop-stall",
                f"lag {_us(f.loop_lag_us)} > ½ max {_us(f.lat_max_us)}; tail only",
                excludes=False,
            )
        )
    if f.server_cpu_fraction is not None and f.server_cpu_fraction >= SERVER_BUSY:
        out.append(Flag("server-busy", f"{f.server_cpu_fraction:.0%} of a core"))
    if (
        f.publish_lag_p99_us is not None
        and f.lat_p99_us
        and f.publish_lag_p99_us > PUBLISHER_LATE_SHARE * f.lat_p99_us
        and f.publish_lag_p99_us > PUBLISHER_LATE_FLOOR_US
    ):
        out.append(
            Flag(
                "publisher-late",
                f"p99 {_us(f.publish_lag_p99_us)} late > {PUBLISHER_LATE_SHARE:.0%} of p99 "
                f"{_us(f.lat_p99_us)} and > {_us(PUBLISHER_LATE_FLOOR_US)}",
            )
        )
    if (
        f.rate_msgs_per_s
        and f.offered_msgs_per_s is not None
        and f.offered_msgs_per_s < MIN_ACHIEVED * f.rate_msgs_per_s
    ):
        share = f.offered_msgs_per_s / f.rate_msgs_per_s
        out.append(
            Flag(
                "under-rate",
                f"published {f.offered_msgs_per_s:,.0f} of {f.rate_msgs_per_s:,.0f} msgs/s, "
                f"{share:.0%} < {MIN_ACHIEVED:.0%}",
            )
        )
    return tuple(out)


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, bool):
        return value
    return bool(_number(value))


def _values(rows: Iterable[Mapping[str, Any]], column: str) -> list[float]:
    return [v for r in rows if (v := _number(r.get(column))) is not None]


def _median(rows: Sequence[Mapping[str, Any]], column: str) -> float | None:
    xs = _values(rows, column)
    return statistics.median(xs) if xs else None


def _max(rows: Sequence[Mapping[str, Any]], column: str) -> float | None:
    xs = _values(rows, column)
    return max(xs) if xs else None


def figures_of(ok: Sequence[Mapping[str, Any]], *, lat_max_us: float | None = None) -> FlagFigures:
    """A cell's figures from its ok repeats' rows (``cells.csv`` columns): medians, the
    worst client stall and busiest client core of any repeat, and the max latency
    ``lat_max_us`` when given (the merged histogram's), else the highest repeat's."""
    busy = _max(ok, "client_core_busy_max")
    if busy is None:
        busy = _max(ok, "client_cpu_fraction_max")
    return FlagFigures(
        harness_bound=any(_truthy(r.get("harness_bound")) for r in ok),
        client_core_busy=busy,
        loop_lag_us=_max(ok, "client_max_loop_lag_us"),
        lat_max_us=lat_max_us if lat_max_us is not None else _max(ok, "lat_max_us"),
        lat_p99_us=_median(ok, "lat_p99_us"),
        server_cpu_fraction=_median(ok, "server_cpu_fraction"),
        publish_lag_p99_us=_median(ok, "publish_lag_p99_us"),
        rate_msgs_per_s=_median(ok, "rate_msgs_per_s"),
        offered_msgs_per_s=_median(ok, "offered_msgs_per_s"),
    )


def cell_flags(
    ok: Sequence[Mapping[str, Any]], *, lat_max_us: float | None = None
) -> tuple[Flag, ...]:
    """The flags of a cell from its ok repeats' rows (:func:`figures_of`, :func:`flags`)."""
    return flags(figures_of(ok, lat_max_us=lat_max_us)) if ok else ()


def excluding(found: Iterable[Flag]) -> tuple[Flag, ...]:
    """The flags of ``found`` that take a row out of the verdicts (all but tail-only ones)."""
    return tuple(f for f in found if f.excludes)


def rule_text() -> str:
    """The conditions and their thresholds, in one sentence for a caption or a legend."""
    return (
        f"flags: harness-bound (a client core ≥ {HARNESS_BUSY:.0%} busy), client-loop-stall "
        f"(a client loop stalled > {LOOP_STALL_SHARE:.0%} of the max latency), server-busy "
        f"(server ≥ {SERVER_BUSY:.0%} of a core), publisher-late (publisher p99 lateness > "
        f"{PUBLISHER_LATE_SHARE:.0%} of the p99 and > {PUBLISHER_LATE_FLOOR_US:,.0f} µs), "
        f"under-rate (published < {MIN_ACHIEVED:.0%} "
        "of the offered rate); a flagged cell is left out of the decision guide's verdicts"
    )
