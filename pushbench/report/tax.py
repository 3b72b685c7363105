"""The report's "Framework and harness tax" table: pushbench's server over its twin.

A *twin* is a hand-written minimal server on the same framework (registry rows
with ``twin_of``, ``servers/minimal``): a ticker writing the same envelope bytes
to a set of connections, no hub, no service, no checks. A cell of stack S and the
cell of S's twin with every other parameter equal (transport, client, load,
poll and heartbeat settings) measured the same thing on both servers, in the
same run, interleaved round by round; their ratios are what pushbench's server
costs beyond the framework itself: server CPU per delivered message, p50 and p99
latency (corrected, from the schedule). Ratios are of the medians over the ok
repeats; beside each, the 95 % interval of the ratio of geometric means
(:func:`pushbench.report.stats.ratio_test` on the two sides' repeats, each figure on
its own), and the row's verdict against issue 16's bound (:data:`TOLERANCE`):
*within* when every interval ends at or below it, *beyond* when one starts above
it, *undecided* when one straddles it (the repeats cannot tell; more would).

Reads stored cells only (the run's summary); a run without a twin pair gets no
section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pushbench import registry
from pushbench.metrics.flags import SERVER_BUSY

from . import doc, stats, style
from .load import POINT, Run, point_label
from .pairs import number, same_but, twin_key

__all__ = ["RATIOS", "TOLERANCE", "TaxRow", "section", "tax_rows", "twin_of"]

#: Issue 16's bound: pushbench's server within this factor of its twin on every ratio.
TOLERANCE = 1.2

#: (column, header) of each ratio the table shows: pushbench's median ÷ the twin's.
RATIOS: tuple[tuple[str, str], ...] = (
    ("server_cpu_us_per_msg", "server CPU/msg ×"),
    ("lat_p50_us", "p50 ×"),
    ("lat_p99_us", "p99 ×"),
)
#: What must be equal for two cells to be a pair (the stack aside).
_SAME: tuple[str, ...] = same_but("", "transport", "client")


def twin_of(stack: str) -> str | None:
    """The stack ``stack`` is the twin of (its registry row's ``twin_of``), else None."""
    try:
        return registry.stack(stack).twin_of
    except registry.RegistryError:
        return None


@dataclass(frozen=True)
class TaxRow:
    """One pair: ``ours`` (pushbench's stack) and ``twin`` (its summary row, each a dict),
    and each side's ok repeats of every :data:`RATIOS` column."""

    ours: dict[str, Any]
    twin: dict[str, Any]
    ours_repeats: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    twin_repeats: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def ratio(self, column: str) -> float | None:
        a, b = number(self.ours.get(column)), number(self.twin.get(column))
        return None if a is None or b is None or b <= 0 else a / b

    def saturated(self) -> tuple[str, ...]:
        """The sides whose server used ≥ :data:`SERVER_BUSY` of its core (median)."""
        return tuple(
            side
            for side, rec in (("ours", self.ours), ("twin", self.twin))
            if (number(rec.get("server_cpu_fraction")) or 0.0) >= SERVER_BUSY
        )

    def test(self, column: str) -> stats.RatioTest | None:
        """Ours against the twin on ``column`` (None: fewer than two repeats on a side)."""
        a, b = self.twin_repeats.get(column, ()), self.ours_repeats.get(column, ())
        if len(a) < 2 or len(b) < 2:
            return None
        return stats.ratio_test(a, b)

    def interval(self, column: str) -> tuple[float, float] | None:
        """The 95 % interval of ours ÷ twin on ``column`` (None: not enough repeats)."""
        test = self.test(column)
        return None if test is None else test.interval()

    def verdict(self) -> str:
        """Against :data:`TOLERANCE` on every ratio: "within", "beyond: …" (the ratios
        whose interval starts above it), "undecided: …" (those straddling it) or "—"
        (a ratio without an interval)."""
        beyond, straddle = [], []
        for column, header in RATIOS:
            iv = self.interval(column)
            if iv is None:
                return "—"
            if iv[0] > TOLERANCE:
                beyond.append(header.removesuffix(" ×"))
            elif iv[1] > TOLERANCE:
                straddle.append(header.removesuffix(" ×"))
        if beyond:
            return "beyond: " + ", ".join(beyond)
        return "undecided: " + ", ".join(straddle) if straddle else "within"


def tax_rows(run: Run) -> list[TaxRow]:
    """Every (pushbench stack, its twin) pair of cells of the run's grid, in report order."""
    summary = run.summary()
    if "probe" in summary:
        summary = summary[~summary["probe"].astype(bool)]
    recs = summary.to_dict("records")
    ok = run.ok
    repeats = {
        cell_id: {c: tuple(float(v) for v in g[c].dropna()) for c, _ in RATIOS if c in g}
        for cell_id, g in ok.groupby("cell_id")
    }
    twins = {(str(r["stack"]), twin_key(r, _SAME)): r for r in recs if twin_of(str(r["stack"]))}
    if not twins:
        return []
    out = []
    for r in recs:
        for (twin_stack, key), t in twins.items():
            if twin_of(twin_stack) == r["stack"] and key == twin_key(r, _SAME):
                out.append(
                    TaxRow(r, t, repeats.get(r["cell_id"], {}), repeats.get(t["cell_id"], {}))
                )
    out.sort(key=lambda p: (style.order_key(p.ours["transport"], p.ours["stack"]), _load(p.ours)))
    return out


def _load(rec: dict[str, Any]) -> tuple[float, ...]:
    return tuple(number(rec.get(c)) or 0.0 for c in ("subscribers", "rate_msgs_per_s"))


def _fmt_ratio(row: TaxRow, column: str) -> str:
    r = row.ratio(column)
    if r is None:
        return "—"
    iv = row.interval(column)
    return f"{r:.2f}×" if iv is None else f"{r:.2f}× [{iv[0]:.2f}–{iv[1]:.2f}]"


def _fmt_pair(row: TaxRow, column: str) -> str:
    a, b = number(row.ours.get(column)), number(row.twin.get(column))
    return "—" if a is None or b is None else f"{a:.3g} / {b:.3g}"


def section(run: Run) -> list[doc.Section]:
    """``[Section]`` with the tax table, or ``[]`` when the run has no twin pair."""
    rows = tax_rows(run)
    if not rows:
        return []
    body, flags = [], []
    for p in rows:
        point = {c: p.ours.get(c) for c in POINT if c in p.ours}
        runs = f"{p.ours.get('ok', 0)}/{p.ours.get('runs', 0)} · {p.twin.get('ok', 0)}/"
        runs += str(p.twin.get("runs", 0))
        body.append(
            (
                f"{p.ours['transport']} · {p.ours['stack']}",
                point_label(point),
                *(_fmt_ratio(p, c) for c, _ in RATIOS),
                _fmt_pair(p, "server_cpu_us_per_msg"),
                runs,
            )
        )
        full = p.saturated()
        body[-1] += (
            "— (saturated)" if full else p.verdict(),
            {(): "—", ("ours",): "ours", ("twin",): "twin"}.get(full, "both"),
        )
        bad = not p.ours.get("ok") or not p.twin.get("ok")
        bound = bool(p.ours.get("harness_bound")) or bool(p.twin.get("harness_bound"))
        flags.append("failed" if bad else "flagged" if bound or full else "")
    table = doc.Table(
        (
            "transport · stack",
            "load",
            *(h for _, h in RATIOS),
            "server CPU µs/msg (ours / twin)",
            "ok/runs (ours · twin)",
            f"within {TOLERANCE}×?",
            "saturated",
        ),
        tuple(body),
        caption="pushbench's server ÷ its hand-written twin (servers/minimal), same cell, same "
        "run: medians over the ok repeats, and in brackets the 95 % interval of the ratio of "
        "geometric means (a t test on the logarithms of the two sides' repeats, each figure "
        "on its own). Above 1: what the hub, service and checks cost beyond the framework. "
        f"“within {TOLERANCE}×?”: within when every interval ends at or below "
        f"{TOLERANCE}, beyond when one starts above it, undecided when one straddles it "
        "(more repeats would tell). Red: a "
        "side measured nothing; yellow: a side was harness-bound or saturated (its server "
        f"used ≥ {SERVER_BUSY:.0%} of its core: its CPU per message is then 1 ÷ its rate and "
        "its latency mostly queueing, so the row does not measure the tax).",
        flags=tuple(flags),
    )
    intro = doc.Paragraph(
        "Each twin is one file on its framework alone (a ticker writing the same envelope "
        "bytes to a set of connections and a plain history for `since`; no hub, "
        "per-connection tasks, checks or counters), driven by the same clients and the same "
        "open-loop schedule as pushbench's server, so the ratio is the framework and harness "
        "tax."
    )
    return [doc.Section("Framework and harness tax", "tax", (intro, table))]
