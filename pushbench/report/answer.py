"""The report's opening: per situation of the decision guide, the recommended protocol
(at its best stack and client), the figure that decided it, how sure, and a link to the
evidence.

:func:`verdicts` reads the guide's answer as data (:class:`Verdict`): the same
situations (:data:`~.guide.SITUATIONS`), the same cells (measured, delivered
≥ :data:`~.guide.MIN_DELIVERED`, no row flag) and the same decision as the
guide's latency verdict (:func:`~.guide.judge_situation`; its cost verdict when
a situation has no latency requirement): the protocol that wins beyond the
repeats' noise, or the tie and the protocol its tie-breaker picks — so the
answer table and the guide never disagree (``tests/test_report.py`` checks
that they agree). :func:`section` renders them as the report's first table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import doc
from .doc import NBSP
from .guide import (  # and the guide's own selection and citation
    MIN_DELIVERED,
    SITUATIONS,
    Situation,
    _deciding,
    _summary,
    judge_situation,
)
from .load import METRICS, Run, variant_label
from .situation import cite as _cite
from .verdict import ONLY, TIE, WINNER, protocol_label

__all__ = ["Verdict", "section", "verdicts"]


@dataclass(frozen=True)
class Verdict:
    """One situation's answer as data: the protocol the guide's first verdict picks (p99;
    cost when the situation has no latency requirement) and its best cell (``variant``,
    ``cell_id``), the figure of that cell, and how sure.

    ``sure`` is ``beyond noise`` (every other protocol behind beyond the repeats' noise),
    ``tie`` (``broken_by`` the stated tie-breaker), ``only candidate`` or ``not
    measured``; ``runner_up`` names the next protocol (``change`` its distance) or the
    protocols tied with it; ``anchor`` is the guide section holding the evidence."""

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
    protocol: str = ""
    broken_by: str = ""


def verdicts(run: Run) -> tuple[Verdict, ...]:
    """The answer of every situation of :data:`SITUATIONS` for ``run``, in order, chosen
    from the same cells and by the same rules as :func:`section`'s verdict lines."""
    summary = _summary(run)
    return tuple(_verdict(sit, run, summary) for sit in SITUATIONS)


def _verdict(sit: Situation, run: Run, summary: Any) -> Verdict:
    base = Verdict(sit.key, sit.title, f"guide-{sit.key}", sit.scenario)
    rows = _deciding(sit, summary)
    if not len(rows) or not (rows["ok"] > 0).any():
        return base
    judged = judge_situation(sit, run, rows)
    d = judged.latency if sit.latency else judged.cost
    if d is None:
        return Verdict(sit.key, sit.title, base.anchor, sit.scenario, sure="no cell qualified")
    best = d.chosen.rec
    sure = {WINNER: "beyond noise", TIE: "tie", ONLY: "only candidate"}[d.outcome]
    runner_up, change = "", None
    if d.outcome == WINNER:
        runner_up, change = d.contenders[1].label, d.versus[0].rel
    elif d.outcome == TIE:
        runner_up = ", ".join(protocol_label(p) for p in d.tied if p != d.chosen.protocol)
    return Verdict(
        sit.key,
        sit.title,
        base.anchor,
        sit.scenario,
        variant=variant_label(best["stack"], best["transport"], best["client"]),
        transport=str(best["transport"]),
        column=d.column,
        figure=f"{METRICS[d.column].label} {_cite(best, d.column)}",
        cell_id=str(best["cell_id"]),
        sure=sure,
        runner_up=runner_up,
        change=change,
        protocol=d.chosen.label,
        broken_by=d.broken_by,
    )


def _how_sure(v: Verdict) -> str:
    """``beyond noise`` or ``tie`` with the other protocols and the tie-breaker."""
    if not v.runner_up:
        return v.sure
    if v.sure == "tie":
        return f"tie with {v.runner_up} (within the repeats' noise; chosen by {v.broken_by})"
    change = "" if v.change is None else f", {v.change * 100:+.0f}{NBSP}%"
    return f"beyond noise (next: {v.runner_up}{change})"


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
            (
                f"[{v.title}](#{v.anchor})",
                f"**{v.protocol}** ({v.variant})",
                v.figure,
                _how_sure(v),
                evidence,
            )
        )
        flags.append("better" if v.sure == "beyond noise" else "")
    table = doc.Table(
        ("situation", "recommended", "the figure that decided it", "how sure", "evidence"),
        tuple(rows),
        caption="Per situation, the protocol (at its best transport · stack) with the lowest "
        f"p99 among unflagged cells that delivered ≥ {MIN_DELIVERED:.0%} (the lowest memory "
        "per connection when nothing is pushed). How sure: beyond noise when every other "
        "protocol is behind it beyond the repeats' noise (the rule of `pushbench compare`); "
        "otherwise a tie, and the protocol the stated tie-breaker (simplicity, then cost) "
        "picks. The decision guide below adds the cheapest and the simplest protocol and the "
        "caveats; the tables and figures after it are the evidence.",
        flags=tuple(flags),
        numeric=False,
    )
    return doc.Section("The answer", "answer", (table,))
