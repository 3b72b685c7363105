"""A scenario in words and seconds: what varies, which cells, how many runs, how long.

``pushbench describe SCENARIO`` and ``pushbench run SCENARIO --dry-run`` print
:func:`describe`; the estimates in ``scenarios/README.md`` (and the budget
comments of the shipped files) come from here; they count the saturation probes
an ``[slo]`` allows, the most a search may add. :func:`narrow` applies ``run``'s
``--only`` and ``--repeats`` so a dry run describes exactly what would run.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from typing import Any

from .floorplan import floor_loads, floor_seconds
from .model import CELL_OVERHEAD_S, REMEASURE_AT, STEAL_AT, Cell, Scenario, remeasure_limit
from .params import FIELDS, PARAMS, num_id

__all__ = ["describe", "estimate_seconds", "format_duration", "narrow"]


def _probe_groups(scenario: Scenario) -> dict[tuple[Any, ...], Cell]:
    """Cells with an SLO, grouped by everything but the rate: one search per group."""
    groups: dict[tuple[Any, ...], Cell] = {}
    for c in scenario.cells():
        if c.slo is not None and c.slo.probes:
            key = tuple(getattr(c, f) for f in FIELDS if f != "rate")
            groups.setdefault(key, c)
    return groups


def estimate_seconds(scenario: Scenario, overhead_s: float = CELL_OVERHEAD_S) -> float:
    """Wall time of the whole scenario: Σ repeats × (warm-up + duration + overhead).

    Saturation probes count too: ``slo.probes`` extra runs (× repeats) per
    group of cells that differ only in rate, the most a search may add.
    """
    grid = sum(c.repeats * c.run_seconds(overhead_s) for c in scenario.cells())
    probes = sum(
        c.slo.probes * c.repeats * c.run_seconds(overhead_s)
        for c in _probe_groups(scenario).values()
        if c.slo is not None
    )
    return grid + probes


def narrow(scenario: Scenario, only: str | None = None, repeats: int | None = None) -> Scenario:
    """The scenario as ``pushbench run --only SUBSTRING --repeats N`` would run it.

    Cells whose id does not contain ``only`` are left out (possibly all of them: the
    caller says so); ``repeats`` replaces every cell's repeats.
    """
    cells = tuple(
        replace(c, repeats=repeats or c.repeats)
        for c in scenario.cells()
        if not only or only in c.cell_id
    )
    return replace(scenario, expanded=cells)


def format_duration(seconds: float) -> str:
    """``22 s``, ``6 min 03 s``, ``3 h 21 min``: how long, as a person says it."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _cell_lines(scenario: Scenario, overhead_s: float) -> list[str]:
    """One line per cell: its id, repeats and the seconds of one repeat (probes not included:
    the SLO line and the total count them)."""
    width = max(len(c.cell_id) for c in scenario.cells())
    return [
        f"  {c.cell_id:<{width}}  {c.repeats} × {num_id(round(c.run_seconds(overhead_s), 1))} s"
        for c in scenario.cells()
    ]


def describe(scenario: Scenario, overhead_s: float = CELL_OVERHEAD_S) -> str:
    """A human summary: what varies, every cell, how many runs, how long it will take."""
    cells = scenario.cells()
    lines = [f"scenario {scenario.name} ({scenario.source})"]
    if scenario.description:
        lines += textwrap.wrap(
            scenario.description, 96, initial_indent="  ", subsequent_indent="  "
        )
    repeats = "/".join(str(r) for r in sorted({c.repeats for c in cells}))
    lines.append(
        f"{len(cells)} cells × {repeats} repeat{'s' * (repeats != '1')} = {scenario.runs} runs"
    )
    for p in PARAMS:
        seen = dict.fromkeys(getattr(c, p.field) for c in cells)
        if p.key == "client_processes":
            shown = ["auto" if v is None else str(v) for v in seen]
        else:  # None: not applicable to those cells' transport
            shown = [num_id(v) if isinstance(v, float) else str(v) for v in seen if v is not None]
        if shown:
            varies = "  (varies)" if len(shown) > 1 else ""
            lines.append(f"  {p.key}: {', '.join(shown)}{varies}")
    for slo in dict.fromkeys(c.slo for c in cells if c.slo is not None):
        lines.append(
            f"  SLO: p99 ≤ {num_id(slo.p99_ms)} ms and ≥ {slo.min_delivered_fraction:.2%} "
            f"delivered; up to {slo.probes} bisection probes per rate sweep"
        )
    checks = [c for c in cells if c.checks.active]
    if checks:
        lines.append("  self-checks: " + ", ".join(c.cell_id for c in checks))
    lines.append(f"cells ({len(cells)}; id, repeats × seconds each):")
    lines += _cell_lines(scenario, overhead_s)
    total = estimate_seconds(scenario, overhead_s)
    probes = len(_probe_groups(scenario))
    lines.append(
        f"estimated duration: {format_duration(total)} ({total:.0f} s, counting "
        f"~{num_id(overhead_s)} s of process start-up per run"
        + (f" and the probes of {probes} searches" * bool(probes))
        + ")"
    )
    most = remeasure_limit(sum(c.repeats for c in cells))
    longest = max((c.run_seconds(overhead_s) for c in cells), default=0.0)
    lines.append(
        f"  plus at most {most} re-measure(s) of ≤ {longest:.0f} s (≤ {most * longest:.0f} s):"
        f" repeats whose CPU per message was ≥ {REMEASURE_AT}× their cell's usual or that"
        f" lost ≥ {STEAL_AT:.0%} of a core to the hypervisor"
        "\n  (the machine slower during them; --no-remeasure: none)"
    )
    if loads := floor_loads(cells):
        lines.append(
            f"  plus ~{floor_seconds(cells):.0f} s before the first cell and after the last: the"
            f" kernel's loopback floor at {len(loads)} load(s) (pushbench net-floor;"
            " --no-kernel-floor: none)"
        )
    return "\n".join(lines)
