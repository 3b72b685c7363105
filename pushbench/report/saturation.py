"""Rate sweeps of a run and where each one saturates.

A *sweep* is a group of cells that differ only in their rate (same stack,
transport, client, subscribers, payload, …). Its saturation point is the
highest rate meeting the scenario's SLO (p99 and delivered fraction):

- from the runner's ``saturation.csv`` when the run has one (it searched
  with extra probe rates, ``source = "runner"``);
- else, when the scenario declares ``[slo]``, computed here with
  :func:`pushbench.metrics.saturation_search` on the medians of the measured
  rates (``source = "report"``: no probes, so the bracket is only as fine as
  the grid);
- else there is none, and the report says which scenario measures it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from typing import Any

from pushbench import metrics

from .load import IDENTITY, POINT, Run

__all__ = ["SWEEP_KEY", "SaturationMark", "Slo", "run_slo", "saturation_marks", "sweeps"]

#: What stays fixed along a sweep: everything but the rate.
SWEEP_KEY: tuple[str, ...] = (*IDENTITY, *(c for c in POINT if c != "rate_msgs_per_s"))


@dataclass(frozen=True)
class Slo:
    p99_us: float
    min_delivered_fraction: float


@dataclass(frozen=True)
class SaturationMark:
    """The saturation point of one sweep (rates in msgs/s published into the topic)."""

    key: tuple[Any, ...]  # values of SWEEP_KEY
    max_rate: float | None  # highest rate meeting the SLO below every failing one
    lowest_failing: float | None
    saturated_side: str  # "server", "client", "neither" or "" (unknown)
    slo: Slo
    source: str  # "runner" (saturation.csv) or "report" (computed from the grid)


def run_slo(run: Run) -> Slo | None:
    """The ``[slo]`` of the run's scenario text, if it declares one."""
    text = run.meta.get("scenario_text")
    if not text:
        return None
    try:
        slo = tomllib.loads(text).get("slo")
    except tomllib.TOMLDecodeError:
        return None
    if not isinstance(slo, dict) or "p99_ms" not in slo:
        return None
    return Slo(float(slo["p99_ms"]) * 1000, float(slo.get("min_delivered_fraction", 0.99)))


def _key(row: Any, columns: tuple[str, ...] = SWEEP_KEY) -> tuple[Any, ...]:
    out = []
    for col in columns:
        v = row.get(col) if hasattr(row, "get") else row[col]
        out.append(None if isinstance(v, float) and math.isnan(v) else v)
    return tuple(out)


def sweeps(summary: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """``(key, rows sorted by rate)`` for each sweep with at least two measured rates."""
    cols = [c for c in SWEEP_KEY if c in summary.columns]
    out = []
    for _, rows in summary.groupby(cols, sort=False, dropna=False):
        measured = rows[rows["lat_p99_us"].notna()] if "lat_p99_us" in rows else rows
        if measured["rate_msgs_per_s"].nunique() >= 2:
            out.append((_key(rows.iloc[0]), rows.sort_values("rate_msgs_per_s")))
    return out


def _from_csv(run: Run) -> list[SaturationMark]:
    sat = run.saturation
    if sat is None:
        return []
    marks = []
    for rec in sat.to_dict("records"):
        key = tuple(
            rec.get(c, "python" if c == "client" else None) if c in rec or c == "client" else None
            for c in SWEEP_KEY
        )
        slo = Slo(
            float(rec.get("slo_p99_us") or math.nan),
            float(rec.get("min_delivered_fraction") or 0.99),
        )
        marks.append(
            SaturationMark(
                key,
                _num(rec.get("max_rate")),
                _num(rec.get("lowest_failing")),
                str(rec.get("saturated_side") or ""),
                slo,
                "runner",
            )
        )
    return marks


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def saturation_marks(run: Run) -> list[SaturationMark]:
    """Every sweep's saturation point (see the module doc for where it comes from)."""
    if run.saturation is not None and len(run.saturation):
        return _from_csv(run)
    slo = run_slo(run)
    if slo is None:
        return []
    marks = []
    for key, rows in sweeps(run.summary()):
        points = [
            metrics.RatePoint(
                float(r["rate_msgs_per_s"]),
                float(r["delivered_fraction"])
                if r["delivered_fraction"] == r["delivered_fraction"]
                else 0.0,
                _slo_p99(r),
            )
            for r in rows.to_dict("records")
        ]
        found = metrics.saturation_search(
            points, slo_p99_us=slo.p99_us, min_delivered_fraction=slo.min_delivered_fraction
        )
        marks.append(SaturationMark(key, found.max_rate, found.lowest_failing, "", slo, "report"))
    return marks


def mark_for(marks: list[SaturationMark], key: tuple[Any, ...]) -> SaturationMark | None:
    """The mark of the sweep ``key``; fields a mark does not know (None) match anything."""
    for m in marks:
        if all(a is None or b is None or a == b for a, b in zip(m.key, key, strict=True)):
            return m
    return None


def _slo_p99(r: dict[str, Any]) -> float:
    """The p99 the SLO judges, as the runner's search does: over every expected message (a
    lost one infinitely late); runs before that column had only the received p99."""
    for column in ("lat_all_p99_us", "lat_p99_us"):
        value = r.get(column)
        if value is not None and value == value:
            return float(value)
    return math.inf
