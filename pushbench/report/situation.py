"""A situation of the decision guide as data, and the cell selections they share.

:class:`Situation` is one question a designer asks and how a run answers it: which
cells decide it (``select``), which columns rank latency and cost, the scenario that
measures it when the run does not, its caveats, and optionally ``notes``: facts
computed from the run beside the verdicts (what the proxies, TLS, the network or the
scale-out did) that replace the static caveat saying it was not measured. The guide
(:mod:`.guide`) renders and judges them; the situations about the production
topology live in :mod:`.guide_topology`. Both read the helpers here (the run's
Python-client cells, the pushed cells, one point of a grid, the figures as cited),
so this module has no other report module above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pushbench import registry

from .load import METRICS, Run
from .saturation import SWEEP_KEY

__all__ = [
    "LOW_RATE_MAX",
    "MIN_DELIVERED",
    "Notes",
    "Situation",
    "cite",
    "fmt",
    "low_rate",
    "one_point",
    "pushed",
    "python_cells",
]

MIN_DELIVERED = 0.99
LOW_RATE_MAX = 1000.0  # msgs/s: "low rate" up to here, "high rate" from here


@dataclass(frozen=True)
class Notes:
    """What a situation's own cells say beside the verdicts: ``facts`` (lines, each
    citing its cells) and ``caveats`` (None: the situation's static caveats stand)."""

    facts: tuple[str, ...] = ()
    caveats: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Situation:
    """One question a designer asks, and how this run answers it."""

    key: str
    title: str
    need: str
    select: Callable[[Any], Any]  # the run's per-cell summary → the cells that decide
    scenario: str  # the scenario that measures it (`make bench SCENARIO=…`)
    caveats: tuple[str, ...]
    latency: str | None = "lat_p99_us"
    cost: str = "server_cpu_us_per_msg"
    # Restrict to the transports whose registry row this admits (None: all).
    admits: Callable[[registry.Transport], bool] | None = None
    # Facts from the run beside the verdicts (run, the per-cell summary → Notes).
    notes: Callable[[Run, Any], Notes] | None = None

    def transports(self) -> tuple[str, ...] | None:
        """The transports this situation considers, from the registry now (None: all)."""
        if self.admits is None:
            return None
        return tuple(t.name for t in registry.transports() if self.admits(t))


def python_cells(rows: Any) -> Any:
    """Our Python clients' cells when there are any (browser cells are another question)."""
    py = rows[rows["client"] == "python"]
    return py if len(py) else rows


def pushed(rows: Any) -> Any:
    """Cells where the server pushed at a rate and no client published."""
    return rows[(rows["publishers"] == 0) & (rows["rate_msgs_per_s"] > 0)]


def one_point(rows: Any, prefer_high: bool = False, ignore: tuple[str, ...] = ()) -> Any:
    """The cells of one point: the lowest (or highest) rate, then the most cells measured.
    Columns in ``ignore`` do not split points (e.g. ``via``: every proxy at one load)."""
    if not len(rows):
        return rows
    keys = [c for c in SWEEP_KEY[3:] if c in rows.columns and c not in ignore]
    keys.append("rate_msgs_per_s")
    best = None
    for _, group in rows.groupby(keys, sort=False, dropna=False):
        rate = float(group["rate_msgs_per_s"].iloc[0])
        score = (rate if prefer_high else -rate, len(group))
        if best is None or score > best[0]:
            best = (score, group)
    assert best is not None
    return best[1]


def low_rate(s: Any) -> Any:
    """The pushed cells of one point below :data:`LOW_RATE_MAX`."""
    rows = python_cells(pushed(s))
    return one_point(rows[rows["rate_msgs_per_s"] < LOW_RATE_MAX])


def fmt(column: str, value: Any) -> str:
    """A figure with its unit as the guide writes it (``—`` when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    m = METRICS.get(column)
    unit = m.unit if m else ""
    v = float(value)
    if unit == "fraction":
        return f"{v * 100:.2f} %"
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return f"{text} {unit}".strip()


def cite(rec: dict[str, Any], column: str) -> str:
    """``1,234 µs (median of 3 repeats, cell `id`)``: a figure with its cell."""
    n = rec.get(f"{column}_n") or 0
    return (
        f"{fmt(column, rec[column])} (median of {n} repeat{'s' if n != 1 else ''}, "
        f"cell `{rec['cell_id']}`)"
    )
