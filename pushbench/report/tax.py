"""The report's "Framework and harness tax" table: pushbench's server over its twin.

A *twin* is a hand-written minimal server on the same framework (registry rows
with ``twin_of``, ``servers/minimal``): a ticker writing the same envelope bytes
to a set of connections, no hub, no service, no checks. A cell of stack S and the
cell of S's twin with every other parameter equal (transport, client, load,
poll and heartbeat settings) measured the same thing on both servers, in the
same run, interleaved round by round; their ratios are what pushbench's server
costs beyond the framework itself: server CPU per delivered message, p50 and p99
latency (corrected, from the schedule). Ratios are of the medians over the ok
repeats; where the two sides' repeat ranges overlap the ratio is marked "within
spread" (the repeats do not separate the two servers).

Reads stored cells only (the run's summary); a run without a twin pair gets no
section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pushbench import registry
from pushbench.metrics.flags import SERVER_BUSY

from . import doc, style
from .load import POINT, Run, point_label
from .pairs import number, same_but, twin_key

__all__ = ["RATIOS", "TaxRow", "section", "tax_rows", "twin_of"]

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
    """One pair: ``ours`` (pushbench's stack) and ``twin`` (its summary row, each a dict)."""

    ours: dict[str, Any]
    twin: dict[str, Any]

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

    def within_spread(self, column: str) -> bool:
        """Whether the two sides' repeat ranges (min..max) overlap: not separated."""
        lo_a, hi_a = number(self.ours.get(f"{column}_min")), number(self.ours.get(f"{column}_max"))
        lo_b, hi_b = number(self.twin.get(f"{column}_min")), number(self.twin.get(f"{column}_max"))
        if None in (lo_a, hi_a, lo_b, hi_b):
            return False
        return bool(lo_a <= hi_b and lo_b <= hi_a)  # type: ignore[operator]


def tax_rows(run: Run) -> list[TaxRow]:
    """Every (pushbench stack, its twin) pair of cells of the run's grid, in report order."""
    summary = run.summary()
    if "probe" in summary:
        summary = summary[~summary["probe"].astype(bool)]
    recs = summary.to_dict("records")
    twins = {(str(r["stack"]), twin_key(r, _SAME)): r for r in recs if twin_of(str(r["stack"]))}
    if not twins:
        return []
    out = []
    for r in recs:
        for (twin_stack, key), t in twins.items():
            if twin_of(twin_stack) == r["stack"] and key == twin_key(r, _SAME):
                out.append(TaxRow(r, t))
    out.sort(key=lambda p: (style.order_key(p.ours["transport"], p.ours["stack"]), _load(p.ours)))
    return out


def _load(rec: dict[str, Any]) -> tuple[float, ...]:
    return tuple(number(rec.get(c)) or 0.0 for c in ("subscribers", "rate_msgs_per_s"))


def _fmt_ratio(row: TaxRow, column: str) -> str:
    r = row.ratio(column)
    if r is None:
        return "—"
    text = f"{r:.2f}×"
    return f"{text} (within spread)" if row.within_spread(column) else text


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
        body[-1] += ({(): "—", ("ours",): "ours", ("twin",): "twin"}.get(full, "both"),)
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
            "saturated",
        ),
        tuple(body),
        caption="pushbench's server ÷ its hand-written twin (servers/minimal), same cell, same "
        "run: medians over the ok repeats. Above 1: what the hub, service and checks cost "
        "beyond the framework. “within spread”: the two sides' repeat ranges overlap. Red: a "
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
