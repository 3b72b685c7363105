"""``pushbench compare RUN_A RUN_B``: per-cell changes of the headline figures, noise-aware.

For every cell id present in both runs and each headline figure
(:data:`~.load.HEADLINE`: p50 and p99 latency, delivered msgs/s, server CPU
µs per message, bytes received per message) the ok repeats of each run give
a median, a range and a relative spread (:func:`pushbench.metrics.repeat_stats`).
The change from A to B is relative to A's median. The verdict:

- **with at least two repeats on both sides**, B is *better* or *worse*
  only when the two ranges of repeats do not overlap **and** the change
  exceeds the larger relative spread of the two runs **and** it exceeds
  :data:`MIN_CHANGE` (2 %: below that, exact counters such as bytes per
  message would flag rounding); otherwise *within noise*;
- **with a single repeat on either side** there is no spread to judge by,
  so the change must exceed the stated :data:`SINGLE_REPEAT_THRESHOLD` (10 %);
- better or worse follows the figure's direction (lower latency, CPU and
  bytes are better; higher delivered msgs/s is better); a figure missing on
  either side is *not comparable*.

The exit status is 0 whatever the verdicts (a comparison is information),
1 with ``--fail-on-worse`` when any figure got worse, 2 when a run cannot be
read. Text goes to stdout; ``--html OUT`` also writes the comparison as a
self-contained HTML page, and ``pushbench report RUN --compare BASE`` adds it
as a section of the run's report.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pushbench import metrics
from pushbench.exitcodes import ExitCode
from pushbench.results import atomic_write_text

from . import doc, html
from .load import HEADLINE, METRICS, Run, load_run

__all__ = [
    "MIN_CHANGE",
    "SINGLE_REPEAT_THRESHOLD",
    "Change",
    "Comparison",
    "add_arguments",
    "compare_runs",
    "format_text",
    "judge",
    "run",
    "section",
]

MIN_CHANGE = 0.02
SINGLE_REPEAT_THRESHOLD = 0.10

BETTER, WORSE, NOISE, NA = "better", "worse", "within noise", "not comparable"


@dataclass(frozen=True)
class Change:
    """One headline figure of one cell, in run A and in run B, and the verdict."""

    cell_id: str
    metric: str
    a: metrics.RepeatStats | None
    b: metrics.RepeatStats | None
    verdict: str
    rel_change: float | None  # (B − A) ÷ |A|, None when not comparable
    rule: str  # how the verdict was reached, said in words


@dataclass(frozen=True)
class Comparison:
    run_a: str
    run_b: str
    changes: tuple[Change, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.changes if c.verdict == verdict)


def judge(
    metric: str, a: metrics.RepeatStats | None, b: metrics.RepeatStats | None
) -> tuple[str, float | None, str]:
    """(verdict, relative change, rule) of one figure (the module doc states the rule)."""
    if a is None or b is None:
        return NA, None, "missing in one run"
    if a.median == 0:
        rel = 0.0 if b.median == 0 else math.copysign(math.inf, b.median)
    else:
        rel = (b.median - a.median) / abs(a.median)
    if a.n >= 2 and b.n >= 2:
        noise = max(a.rel_spread, b.rel_spread)
        apart = b.min > a.max or b.max < a.min
        changed = apart and abs(rel) > max(noise, MIN_CHANGE)
        rule = (
            f"ranges {'apart' if apart else 'overlap'}, change {_pct(rel)} vs spread "
            f"±{noise * 100:.1f} %"
        )
    else:
        changed = abs(rel) > SINGLE_REPEAT_THRESHOLD
        rule = f"single repeat: change {_pct(rel)} vs threshold {SINGLE_REPEAT_THRESHOLD:.0%}"
    if not changed:
        return NOISE, rel, rule
    lower_better = METRICS[metric].lower_is_better if metric in METRICS else True
    return (WORSE if (rel > 0) == lower_better else BETTER), rel, rule


def _pct(rel: float) -> str:
    return "±inf" if math.isinf(rel) else f"{rel * 100:+.1f} %"


def compare_runs(a: Run, b: Run, columns: Sequence[str] = HEADLINE) -> Comparison:
    """Judge every headline figure of every cell both runs measured."""
    ids_a = list(dict.fromkeys(a.cells["cell_id"]))
    ids_b = list(dict.fromkeys(b.cells["cell_id"]))
    common = [c for c in ids_a if c in ids_b]
    changes = []
    for cell_id in common:
        for col in columns:
            sa = _stats(a, cell_id, col)
            sb = _stats(b, cell_id, col)
            verdict, rel, rule = judge(col, sa, sb)
            changes.append(Change(cell_id, col, sa, sb, verdict, rel, rule))
    return Comparison(
        a.run_id,
        b.run_id,
        tuple(changes),
        tuple(c for c in ids_a if c not in ids_b),
        tuple(c for c in ids_b if c not in ids_a),
    )


def _stats(run: Run, cell_id: str, column: str) -> metrics.RepeatStats | None:
    if column not in run.cells.columns:
        return None
    rows = run.ok[run.ok["cell_id"] == cell_id]
    return metrics.repeat_stats(rows[column].tolist())


def _value(s: metrics.RepeatStats | None) -> str:
    if s is None:
        return "—"
    v = s.median
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return f"{text} (n={s.n})"


def _label(column: str) -> str:
    m = METRICS.get(column)
    return f"{m.label} ({m.unit})" if m else column


def format_text(cmp: Comparison) -> str:
    """The comparison as aligned plain text (what the command prints)."""
    lines = [f"pushbench compare: A = {cmp.run_a}, B = {cmp.run_b}", ""]
    header = ("cell", "figure", "A", "B", "change", "verdict")
    rows = [
        (
            c.cell_id,
            _label(c.metric),
            _value(c.a),
            _value(c.b),
            "—" if c.rel_change is None else _pct(c.rel_change),
            c.verdict.upper() if c.verdict in (BETTER, WORSE) else c.verdict,
        )
        for c in cmp.changes
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    lines.append("")
    lines.append(
        f"{cmp.count(WORSE)} worse, {cmp.count(BETTER)} better, {cmp.count(NOISE)} within noise, "
        f"{cmp.count(NA)} not comparable"
    )
    if cmp.only_a:
        lines.append("only in A: " + ", ".join(cmp.only_a))
    if cmp.only_b:
        lines.append("only in B: " + ", ".join(cmp.only_b))
    if not cmp.changes:
        lines.append("the runs have no cell in common")
    return "\n".join(lines) + "\n"


def section(cmp: Comparison) -> doc.Section:
    """The comparison as a report section (table rows flagged red when worse, green better)."""
    rows, flags = [], []
    for c in cmp.changes:
        rows.append(
            (
                c.cell_id,
                _label(c.metric),
                _value(c.a),
                _value(c.b),
                "—" if c.rel_change is None else _pct(c.rel_change),
                f"**{c.verdict}**" if c.verdict in (BETTER, WORSE) else c.verdict,
                c.rule,
            )
        )
        flags.append({WORSE: "failed", BETTER: "better"}.get(c.verdict, ""))
    blocks: list[doc.Block] = [
        doc.Paragraph(
            f"A = `{cmp.run_a}` (baseline), B = `{cmp.run_b}`: {cmp.count(WORSE)} figures "
            f"worse, {cmp.count(BETTER)} better, {cmp.count(NOISE)} within noise, "
            f"{cmp.count(NA)} not comparable. A change counts only when the repeats' ranges do "
            f"not overlap and it exceeds both the larger relative spread and {MIN_CHANGE:.0%}; "
            f"with one repeat it must exceed {SINGLE_REPEAT_THRESHOLD:.0%}."
        ),
        doc.Table(
            ("cell", "figure", "A median", "B median", "change", "verdict", "why"),
            tuple(rows),
            flags=tuple(flags),
        ),
    ]
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
        "noise-aware verdict (better / worse / within noise) from their repeats. "
        "Nothing is re-run. Exit status 0, or 1 with --fail-on-worse when a figure got worse; "
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
