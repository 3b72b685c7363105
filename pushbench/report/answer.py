"""The report's opening: per situation of the decision guide, the recommended transport,
the figure that decided it, how sure, and a link to the evidence.

:func:`verdicts` reads the guide's answer as data (:class:`Verdict`): the same
situations (:data:`~.guide.SITUATIONS`), the same cells and the same rules as
the guide's verdict lines — the lowest median p99 among cells that delivered
≥ :data:`~.guide.MIN_DELIVERED` (ties: p50), the lowest cost when a situation
has no latency requirement, and the next transport judged by the rule of
``pushbench compare`` — through the guide's own helpers, so the answer table
and the guide never disagree (``tests/test_report.py`` checks that they
agree). :func:`section` renders them as the report's first table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import doc
from .compare import NA, NOISE, UNDECIDABLE, judge
from .doc import NBSP
from .guide import (  # and the guide's own citation, cost column and repeat statistics
    MIN_DELIVERED,
    SITUATIONS,
    Situation,
    _cite,
    _cost_column,
    _repeats,
)
from .load import METRICS, Run, variant_label

__all__ = ["Verdict", "section", "verdicts"]


@dataclass(frozen=True)
class Verdict:
    """One situation's answer as data: the transport the guide's first verdict picks
    (lowest p99; lowest cost when the situation has no latency requirement), the figure
    that decided it, and whether its lead over the next transport is beyond the repeats'
    noise (the rule of ``pushbench compare``, as the guide's "Next transport" line says).

    ``sure`` is ``beyond noise``, ``tie``, ``only candidate`` or ``not measured``;
    ``runner_up`` names the next transport's best cell and ``change`` its relative
    distance; ``anchor`` is the guide section holding the evidence."""

    key: str
    title: str
    anchor: str
    scenario: str
    variant: str = ""
    transport: str = ""
    column: str = ""
    figure: str = ""
    cell_id: str = ""
    sure: str = "not measured"
    runner_up: str = ""
    change: float | None = None


def verdicts(run: Run) -> tuple[Verdict, ...]:
    """The answer of every situation of :data:`SITUATIONS` for ``run``, in order, chosen
    from the same cells and by the same rules as :func:`section`'s verdict lines."""
    summary = run.summary()
    if "probe" in summary.columns:
        summary = summary[~summary["probe"].astype(bool)]
    return tuple(_verdict(sit, run, summary) for sit in SITUATIONS)


def _verdict(sit: Situation, run: Run, summary: Any) -> Verdict:
    base = Verdict(sit.key, sit.title, f"guide-{sit.key}", sit.scenario)
    rows = sit.select(summary)
    allowed = sit.transports()
    if allowed is not None and len(rows):
        rows = rows[rows["transport"].isin(allowed)]
    if not len(rows) or not (rows["ok"] > 0).any():
        return base
    good = []
    for r in rows.to_dict("records"):
        frac = r.get("delivered_fraction")
        short = frac is None or frac != frac or frac < MIN_DELIVERED
        if r["ok"] > 0 and not (sit.latency and short):
            good.append(r)
    column = sit.latency or _cost_column(sit, rows)
    if column is None:
        return base
    pool = [r for r in good if r.get(column) is not None and r[column] == r[column]]
    if not pool:
        return Verdict(sit.key, sit.title, base.anchor, sit.scenario, sure="no cell qualified")
    if sit.latency:
        best = min(pool, key=lambda r: (r[column], r["lat_p50_us"]))
    else:
        best = min(pool, key=lambda r: r[column])
    sure, runner_up, change = "only candidate", "", None
    others = [r for r in pool if r["transport"] != best["transport"]]
    if others:
        second = min(others, key=lambda r: r[column])
        verdict, change, _ = judge(
            column, _repeats(run, best, column), _repeats(run, second, column)
        )
        sure = {NOISE: "tie", UNDECIDABLE: "too few repeats", NA: "not comparable"}.get(
            verdict, "beyond noise"
        )
        runner_up = variant_label(second["stack"], second["transport"], second["client"])
    return Verdict(
        sit.key,
        sit.title,
        base.anchor,
        sit.scenario,
        variant=variant_label(best["stack"], best["transport"], best["client"]),
        transport=str(best["transport"]),
        column=column,
        figure=f"{METRICS[column].label} {_cite(best, column)}",
        cell_id=str(best["cell_id"]),
        sure=sure,
        runner_up=runner_up,
        change=change,
    )


def _how_sure(v: Verdict) -> str:
    """``beyond noise`` or ``tie`` with the next transport and the distance to it."""
    if not v.runner_up:
        return v.sure
    change = "" if v.change is None else f"{v.change * 100:+.0f}{NBSP}%, "
    if v.sure == "tie":
        return f"tie with {v.runner_up} ({change}not beyond the repeats' noise)"
    if v.sure in ("too few repeats", "not comparable"):
        return f"{v.sure} to tell it from {v.runner_up}"
    return f"beyond noise (next: {v.runner_up}, {change.rstrip(', ')})"


def section(run: Run) -> doc.Section:
    """The report's opening: one row per situation of the decision guide — the transport
    it recommends, the figure that decided it, how sure, and a link to the evidence."""
    rows, flags = [], []
    for v in verdicts(run):
        evidence = f"[decision guide](#{v.anchor})"
        if not v.variant:
            why = "not measured in this run" if v.sure == "not measured" else v.sure
            rows.append(
                (
                    f"[{v.title}](#{v.anchor})",
                    "—",
                    why,
                    "—",
                    f"run `make bench SCENARIO={v.scenario}`; {evidence}",
                )
            )
            flags.append("")
            continue
        rows.append(
            (f"[{v.title}](#{v.anchor})", f"**{v.variant}**", v.figure, _how_sure(v), evidence)
        )
        flags.append("better" if v.sure == "beyond noise" else "")
    table = doc.Table(
        ("situation", "recommended", "the figure that decided it", "how sure", "evidence"),
        tuple(rows),
        caption="Per situation, the transport · stack with the lowest median p99 among cells "
        f"that delivered ≥ {MIN_DELIVERED:.0%} (the lowest memory per connection when "
        "nothing is pushed), from this run's medians. How sure: whether its lead over the next "
        "transport's best cell is beyond the repeats' noise or a tie (the rule of `pushbench "
        "compare`). The decision guide below adds the cheapest and the simplest transport and "
        "the caveats; the tables and figures after it are the evidence.",
        flags=tuple(flags),
        numeric=False,
    )
    return doc.Section("The answer", "answer", (table,))
