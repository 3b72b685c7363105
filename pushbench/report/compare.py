"""``pushbench compare RUN_A RUN_B``: per-cell changes of the headline figures, tested.

For every cell id present in both runs and each headline figure
(:data:`~.load.HEADLINE`: p50 and p99 latency, delivered msgs/s, server CPU
µs per message, bytes received per message) the ok repeats of run A and of
run B are compared with a two-sample t test on their logarithms
(:func:`pushbench.report.stats.ratio_test`: pooled within-run spread, null
hypothesis "B is within ±2 % of A"), and the p-values of all figures
compared are adjusted with Holm's step-down correction, so the chance that
*any* figure is called changed when nothing changed stays ≤ 5 %
(:data:`~.stats.ALPHA`). :mod:`.stats` says why this test and not a rank or
bootstrap test. Each figure gets a verdict:

- **worse** / **better**: the Holm-adjusted p ≤ 5 %, direction by the
  figure (lower latency, CPU and bytes are better; higher delivered msgs/s);
- **no change**: no change beyond ±2 % and the measured noise was found —
  the *detectable* column says how large a change would have been caught
  (80 % of the time, at the per-figure level 5 % ÷ figures);
- **undecidable: too few repeats**: one repeat on each side leaves no spread
  to test against;
- **not comparable**: the figure is missing on either side.

Beside each verdict: the medians of A and B, the ratio B ÷ A of geometric
means with its simultaneous interval (each at 1 − 5 % ÷ figures, Bonferroni,
so all intervals hold together at 95 %), the adjusted p and the detectable
change; a summary line counts the figures and those changed beyond noise, and a
last line names what differed between the runs' conditions (host, CPU, kernel,
Python, PM QoS latency, idle states: :func:`conditions`).

The exit status is 0 whatever the verdicts (a comparison is information),
1 with ``--fail-on-worse`` when any figure got worse, 2 when a run cannot be
read. Text goes to stdout; ``--html OUT`` also writes the comparison as a
self-contained HTML page, and ``pushbench report RUN --compare BASE`` adds it
as a section of the run's report.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushbench import cpuidle, metrics
from pushbench.exitcodes import ExitCode
from pushbench.results import atomic_write_text

from . import doc, html, stats
from .load import HEADLINE, METRICS, Run, load_run

__all__ = [
    "ALPHA",
    "MIN_CHANGE",
    "Change",
    "Comparison",
    "add_arguments",
    "compare_runs",
    "conditions",
    "format_text",
    "judge",
    "run",
    "section",
    "summary",
]

ALPHA = stats.ALPHA
MIN_CHANGE = stats.MIN_CHANGE

BETTER, WORSE, NOISE = "better", "worse", "no change"
UNDECIDABLE, NA = "undecidable: too few repeats", "not comparable"
NO_CHANGE = NOISE  # the verdict's name; NOISE kept for callers of the earlier rule
_BAND = f"±{MIN_CHANGE * 100:.0f} %"
_ALPHA_PCT = f"{ALPHA * 100:.0f} %"
_DIFFERS = "the runs' conditions differ (a change may be the machine's, not the code's): "


@dataclass(frozen=True)
class Change:
    """One headline figure of one cell, in run A and in run B, the test and the verdict."""

    cell_id: str
    metric: str
    a: metrics.RepeatStats | None
    b: metrics.RepeatStats | None
    verdict: str
    rel_change: float | None  # B ÷ A − 1 (geometric means), None when not comparable
    rule: str  # how the verdict was reached, said in words
    test: stats.RatioTest | None = None
    p_adjusted: float | None = None  # Holm over the comparison's decidable figures
    interval: tuple[float, float] | None = None  # of B ÷ A, simultaneous
    detectable: float | None = None  # smallest change caught with 80 % power (fraction)


@dataclass(frozen=True)
class Comparison:
    run_a: str
    run_b: str
    changes: tuple[Change, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    figures: int = 0  # decidable figures: the size of the Holm family
    #: What differed between the two runs' conditions (:func:`conditions`): a change
    #: found across them may be the machine's, not the code's.
    differs: tuple[str, ...] = ()

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.changes if c.verdict == verdict)

    @property
    def level(self) -> float:
        """The per-figure level of the intervals and the detectable change: α ÷ figures."""
        return ALPHA / max(self.figures, 1)


def _verdict(metric: str, test: stats.RatioTest | None, p_adjusted: float | None) -> str:
    if test is None:
        return NA
    if not test.decidable or p_adjusted is None:
        return UNDECIDABLE
    if p_adjusted > ALPHA:
        return NOISE
    lower_better = METRICS[metric].lower_is_better if metric in METRICS else True
    return WORSE if (test.diff > 0) == lower_better else BETTER


def _rule(test: stats.RatioTest | None) -> str:
    if test is None:
        return "missing in one run"
    if not test.decidable:
        return "one repeat a side: no spread to test against"
    scale = "log t-test" if test.log_scale else "t-test"
    t = "inf" if math.isinf(test.t) else f"{test.t:+.1f}"
    return (
        f"{scale}: (|change| − {MIN_CHANGE * 100:.0f} %) ÷ SE = {t}, spread "
        f"±{test.spread * 100:.1f} %, {test.df} df, raw p {_p(test.p)}"
    )


def _test(a: Sequence[float] | None, b: Sequence[float] | None) -> stats.RatioTest | None:
    return stats.ratio_test(a, b) if a and b else None


def _change(
    cell_id: str,
    metric: str,
    a: Sequence[float] | None,
    b: Sequence[float] | None,
    test: stats.RatioTest | None,
    p_adjusted: float | None,
    level: float,
) -> Change:
    decided = test is not None and test.decidable
    return Change(
        cell_id,
        metric,
        metrics.repeat_stats(a or ()),
        metrics.repeat_stats(b or ()),
        _verdict(metric, test, p_adjusted),
        None if test is None else test.ratio - 1.0,
        _rule(test),
        test,
        p_adjusted,
        test.interval(level) if test is not None and decided else None,
        test.detectable(level) if test is not None and decided else None,
    )


def judge(
    metric: str, a: Sequence[float] | None, b: Sequence[float] | None
) -> tuple[str, float | None, str]:
    """(verdict, relative change, rule) of one figure on its own, from the per-repeat
    values of each side: a family of one, so no correction (the module doc states the rule)."""
    test = _test(a, b)
    p = test.p if test is not None and test.decidable else None
    c = _change("", metric, a, b, test, p, ALPHA)
    return c.verdict, c.rel_change, c.rule


def compare_runs(a: Run, b: Run, columns: Sequence[str] = HEADLINE) -> Comparison:
    """Test every headline figure of every cell both runs measured, Holm-corrected."""
    ids_a = list(dict.fromkeys(a.cells["cell_id"]))
    ids_b = list(dict.fromkeys(b.cells["cell_id"]))
    common = [c for c in ids_a if c in ids_b]
    found = []
    for cell_id in common:
        for col in columns:
            va, vb = _values(a, cell_id, col), _values(b, cell_id, col)
            found.append((cell_id, col, va, vb, _test(va, vb)))
    tested = {i: f[4] for i, f in enumerate(found) if f[4] is not None and f[4].decidable}
    adjusted = dict(zip(tested, stats.holm([t.p for t in tested.values()]), strict=True))
    level = ALPHA / max(len(tested), 1)
    changes = tuple(_change(*f, adjusted.get(i), level) for i, f in enumerate(found))
    return Comparison(
        a.run_id,
        b.run_id,
        changes,
        tuple(c for c in ids_a if c not in ids_b),
        tuple(c for c in ids_b if c not in ids_a),
        len(tested),
        conditions(a.meta, b.meta),
    )


def _idle(meta: dict[str, Any]) -> tuple[str, str]:
    """(PM QoS held, idle states) of a run's ``cpu_idle``; a run without the record held none."""
    record = meta.get("cpu_idle")
    if not isinstance(record, dict):
        return "not held", ""
    idle = cpuidle.IdleStates.from_dict(record)
    held = "not held" if idle.held_latency_us is None else f"held at {idle.held_latency_us} µs"
    states = str(idle.driver) + (f" ({'/'.join(idle.states)})" if idle.states else "")
    if idle.guest_halt_poll_ns is not None:
        states += f", halt poll {idle.guest_halt_poll_ns} ns"
    return held, states


def conditions(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, ...]:
    """What differs between two runs' ``metadata.json`` that moves every figure: host, CPU,
    kernel, Python, PM QoS latency and idle states (the latter only when both recorded)."""
    cpu_a, cpu_b = a.get("cpu") or {}, b.get("cpu") or {}
    py_a, py_b = a.get("python") or {}, b.get("python") or {}
    (held_a, states_a), (held_b, states_b) = _idle(a), _idle(b)
    pairs = [
        ("host", a.get("hostname"), b.get("hostname")),
        ("CPU", cpu_a.get("model"), cpu_b.get("model")),
        ("kernel", a.get("kernel"), b.get("kernel")),
        ("Python", py_a.get("version"), py_b.get("version")),
        ("PM QoS CPU latency", held_a, held_b),
        ("idle states", states_a or None, states_b or None),
    ]
    return tuple(
        f"{what}: A {va}, B {vb}"
        for what, va, vb in pairs
        if va is not None and vb is not None and va != vb
    )


def _values(run: Run, cell_id: str, column: str) -> tuple[float, ...] | None:
    """The ok repeats' values of ``column`` in ``cell_id`` (missing ones left out), or None."""
    if column not in run.cells.columns:
        return None
    rows = run.ok[run.ok["cell_id"] == cell_id]
    xs = tuple(float(v) for v in rows[column].tolist() if v is not None and not math.isnan(v))
    return xs or None


# --- output ------------------------------------------------------------------------------


def _p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "—"
    return f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def _ratio(c: Change) -> str:
    """``×1.52 [1.31, 1.77]``: B ÷ A and its simultaneous interval."""
    if c.test is None or c.rel_change is None:
        return "—"
    text = f"×{c.rel_change + 1:#.3g}"
    if c.interval is not None:
        lo, hi = c.interval
        text += f" [{lo:#.3g}, {hi:#.3g}]"
    return text


def _size(d: float) -> str:
    """A relative change for people: ``24 %`` below 2×, ``×37`` above, ``inf``."""
    if math.isinf(d):
        return "inf"
    return f"{d * 100:.0f} %" if d < 1.0 else f"×{1.0 + d:.2g}"


def _detectable(c: Change) -> str:
    return "—" if c.detectable is None else _size(c.detectable)


def _value(s: metrics.RepeatStats | None) -> str:
    if s is None:
        return "—"
    v = s.median
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return f"{text} (n={s.n})"


def _label(column: str) -> str:
    m = METRICS.get(column)
    return f"{m.label} ({m.unit})" if m else column


def _shown(verdict: str) -> str:
    return verdict.upper() if verdict in (BETTER, WORSE) else verdict


def summary(cmp: Comparison) -> list[str]:
    """The summary lines: figures compared, how many changed beyond noise, what was detectable."""
    changed = cmp.count(WORSE) + cmp.count(BETTER)
    lines = [
        f"{len(cmp.changes)} figures, {cmp.figures} tested (Holm-corrected, family-wise "
        f"α = {_ALPHA_PCT}): {changed} changed beyond noise — {cmp.count(WORSE)} worse, "
        f"{cmp.count(BETTER)} better; {cmp.count(NOISE)} no change, "
        f"{cmp.count(UNDECIDABLE)} undecidable (too few repeats), {cmp.count(NA)} not comparable"
    ]
    mdes = [c.detectable for c in cmp.changes if c.detectable is not None]
    if mdes:
        lines.append(
            f"smallest change detectable (80 % power, each figure at α ÷ {cmp.figures} = "
            f"{cmp.level:.2g}): median {_size(statistics.median(mdes))} over figures, "
            f"from {_size(min(mdes))} to {_size(max(mdes))}"
        )
    return lines


_HEADER = ("cell", "figure", "A", "B", "B/A [interval]", "p (Holm)", "detectable", "verdict")


def _row(c: Change) -> tuple[str, ...]:
    return (
        c.cell_id,
        _label(c.metric),
        _value(c.a),
        _value(c.b),
        _ratio(c),
        _p(c.p_adjusted),
        _detectable(c),
        _shown(c.verdict),
    )


def format_text(cmp: Comparison) -> str:
    """The comparison as aligned plain text (what the command prints)."""
    lines = [f"pushbench compare: A = {cmp.run_a}, B = {cmp.run_b}", ""]
    rows = [_row(c) for c in cmp.changes]
    widths = [max(len(r[i]) for r in [_HEADER, *rows]) for i in range(len(_HEADER))]
    for r in [_HEADER, *rows]:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    lines.append("")
    lines.extend(summary(cmp))
    if cmp.only_a:
        lines.append("only in A: " + ", ".join(cmp.only_a))
    if cmp.only_b:
        lines.append("only in B: " + ", ".join(cmp.only_b))
    if not cmp.changes:
        lines.append("the runs have no cell in common")
    if cmp.differs:
        lines.append(_DIFFERS + "; ".join(cmp.differs))
    return "\n".join(lines) + "\n"


def section(cmp: Comparison) -> doc.Section:
    """The comparison as a report section (table rows flagged red when worse, green better)."""
    rows, flags = [], []
    for c in cmp.changes:
        r = _row(c)
        verdict = f"**{c.verdict}**" if c.verdict in (BETTER, WORSE) else c.verdict
        rows.append((*r[:-1], verdict, c.rule))
        flags.append({WORSE: "failed", BETTER: "better"}.get(c.verdict, ""))
    blocks: list[doc.Block] = [
        doc.Paragraph(
            f"A = `{cmp.run_a}` (baseline), B = `{cmp.run_b}`: {cmp.count(WORSE)} figures "
            f"worse, {cmp.count(BETTER)} better, {cmp.count(NOISE)} no change, "
            f"{cmp.count(UNDECIDABLE)} undecidable (too few repeats), {cmp.count(NA)} not "
            f"comparable. Each figure's repeats in A and B are compared by a t test on their "
            f"logarithms (pooled within-run spread; no change means within {_BAND} and the "
            f"noise), and the p-values are Holm-corrected over the {cmp.figures} figures "
            f"tested, so the chance of any false verdict is ≤ {_ALPHA_PCT}. B/A is the ratio "
            f"of geometric means with its simultaneous interval (each at 1 − {_ALPHA_PCT} ÷ "
            f"{cmp.figures}); *detectable* is the smallest change the test "
            "catches 4 times in 5 at that figure's noise and repeats."
        ),
        doc.Bullets(tuple(summary(cmp))),
        doc.Table(
            (*_HEADER[:2], "A median", "B median", *_HEADER[4:], "why"),
            tuple(rows),
            flags=tuple(flags),
        ),
    ]
    if cmp.differs:
        blocks.append(doc.Note(_DIFFERS + "; ".join(cmp.differs) + "."))
    if cmp.only_a or cmp.only_b:
        blocks.append(
            doc.Note(
                f"Only in A: {', '.join(cmp.only_a) or 'none'}. "
                f"Only in B: {', '.join(cmp.only_b) or 'none'}."
            )
        )
    return doc.Section(f"Comparison with {cmp.run_a}", "comparison", tuple(blocks))


# --- command -----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compare the headline figures of two stored scenario runs, cell by cell, with a "
        "verdict (worse / better / no change / undecidable: too few repeats) from their "
        "repeats: a t test on the log of the repeats, Holm-corrected over the figures "
        "compared (docs/report.md). Nothing is re-run. Exit status 0, or 1 with "
        "--fail-on-worse when a figure got worse; "
        "2 when a run cannot be read."
    )
    add = parser.add_argument
    add(
        "run_a",
        type=Path,
        metavar="RUN_A",
        help="baseline run: a run directory, a results base, or `latest` (= results/latest)",
    )
    add("run_b", type=Path, metavar="RUN_B", help="run to judge against the baseline (the same)")
    add(
        "--html",
        type=Path,
        default=None,
        metavar="OUT",
        help="also write the comparison as a self-contained HTML file",
    )
    add("--fail-on-worse", action="store_true", help="exit 1 when any figure is worse (for CI)")


def run(args: argparse.Namespace) -> int:
    try:
        a, b = load_run(args.run_a), load_run(args.run_b)
    except FileNotFoundError as exc:
        print(f"pushbench compare: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    cmp = compare_runs(a, b)
    sys.stdout.write(format_text(cmp))
    if args.html is not None:
        page = doc.Document(
            f"pushbench compare — {cmp.run_a} → {cmp.run_b}", sections=(section(cmp),)
        )
        atomic_write_text(args.html, html.render(page))
        print(f"wrote {args.html}", file=sys.stderr)
    return ExitCode.INCOMPLETE if args.fail_on_worse and cmp.count(WORSE) else ExitCode.OK
