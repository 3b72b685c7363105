"""Protocol verdicts: which wire protocol leads on one figure, judged against the run's noise.

The decision guide compares *protocols* (WebSocket, SSE, long poll, short poll:
:attr:`pushbench.registry.Transport.protocol`), never two clients or two stacks
of one protocol: each protocol is represented by its best cell (the lowest
median of the figure over its stacks and client variants), and the protocol
with the lowest median leads. Whether it *wins* is the rule of ``pushbench
compare`` (:mod:`.stats`): its ok repeats against each other protocol's best
cell's repeats, a t test on the logarithms (no change within ±2 %), the
p-values Holm-corrected over those comparisons; the leader wins only when every
other protocol is behind it beyond the noise. Otherwise the protocols whose
distance from it is within the rerun margin *tie*; so do those further than the
margin but not beyond the noise (*not told apart*, :attr:`Versus.undecided`: more
repeats would tell). A tie is broken by a stated order: simplicity (the registry's
rank of each protocol), then the cost figure, then the figure itself — so two runs
whose repeats differ only by noise name the same protocol. The lowest median alone
names nobody: a leader that "led" a protocol it was not told apart from was a
verdict within the noise, and two back-to-back `make bench` runs of the same code
(2026-12-07) read chat's p99 as "WebSocket leads; SSE not told apart" (+108 %) and
"tie between SSE, WebSocket; SSE by simplicity" (+0 %): the named protocol flipped
on noise. The verdict line therefore says the same words whether the others in the
tie are within the margin or not told apart; :meth:`Decision.evidence` says which
(and how many repeats would tell), and the leader wins only when every other
protocol is behind it beyond the noise.

:class:`Decision` keeps both: :meth:`Decision.line` is the verdict in words
that hold across reruns (protocols, winner or tie, the tie-breaker), and
:meth:`Decision.evidence` the figures behind it (medians, cells, distances,
the repeats a side that would tell a tie apart), which move with the noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pushbench import registry

from . import stats

__all__ = [
    "ONLY",
    "RERUN_MARGINS",
    "TIE",
    "WINNER",
    "Contender",
    "Decision",
    "Versus",
    "decide",
    "protocol_label",
    "protocol_simplicity",
]

WINNER, TIE, ONLY = "winner", "tie", "only candidate"
_UNRANKED = 9

#: The rerun margin of each kind of figure (relative, by column prefix; the first match):
#: how far one protocol's best cell may sit from another's and still be called a tie, on
#: top of the repeats' noise. A run's repeats see the drift *within* a run; two runs of the
#: same code on the same machine differ by more. Measured on this project's 2-core machine
#: by two back-to-back `make bench` runs (quick, 3 interleaved repeats, 19 cells compared):
#: a cell's median moved by up to ×1.32 (p99), ×1.40 (server CPU per message) and ×1.12
#: (marginal memory per connection). A verdict compares two cells, each of which may move
#: that far, so the margin is that factor squared, rounded up: ×1.75, ×2 and ×1.25. The
#: guide's test asks whether a protocol is behind by *more than this margin* beyond the
#: noise (the equivalence band of :func:`~.stats.ratio_test`), so what it declares holds
#: on a rerun; closer protocols tie, and the tie-breaker (simplicity) names one.
RERUN_MARGINS: tuple[tuple[str, float], ...] = (
    ("lat_", 0.75),
    ("server_cpu", 1.00),
    ("mem_", 0.25),
    ("server_rss", 0.25),
)


def rerun_margin(column: str) -> float:
    """The rerun margin of ``column`` (:data:`RERUN_MARGINS`; the test's 2 % otherwise)."""
    return next((m for prefix, m in RERUN_MARGINS if column.startswith(prefix)), stats.MIN_CHANGE)


def protocol_label(protocol: str) -> str:
    """``WebSocket``, ``SSE``, … (the registry's name of the protocol)."""
    return registry.PROTOCOL_LABELS.get(protocol, protocol)


def protocol_simplicity(protocol: str) -> tuple[int, str]:
    """(rank, why) of ``protocol``, 1 the simplest: the registry row named like the
    protocol (its variants share its rank), else its simplest variant; 9 when unknown."""
    rows = [t for t in registry.transports() if t.protocol == protocol]
    if not rows:
        return (_UNRANKED, "unranked")
    row = next((t for t in rows if t.name == protocol), min(rows, key=lambda t: t.simplicity))
    return (row.simplicity, row.simplicity_why)


def _protocol(transport: str) -> str:
    try:
        return registry.transport(transport).protocol
    except registry.RegistryError:
        return transport


def _order(protocol: str) -> int:
    names = registry.protocol_names()
    return names.index(protocol) if protocol in names else len(names)


@dataclass(frozen=True)
class Contender:
    """A protocol at its best: the cell (summary record) with its lowest median, and that
    cell's ok repeats of the figure."""

    protocol: str
    rec: dict[str, Any]
    values: tuple[float, ...]

    @property
    def label(self) -> str:
        return protocol_label(self.protocol)


@dataclass(frozen=True)
class Versus:
    """The leader against one other protocol: the test of ``pushbench compare``."""

    protocol: str
    test: stats.RatioTest | None  # None: a side has no repeat values
    p_holm: float | None  # None: undecidable (one repeat a side) or not tested
    beyond: bool  # behind the leader beyond the noise
    needed: int | None  # repeats a side that would tell this distance from noise

    @property
    def undecided(self) -> bool:
        """Not behind beyond the noise, yet further from the leader than the rerun margin:
        neither a tie nor behind (more repeats would tell)."""
        return not self.beyond and self.test is not None and self.test.diff > self.test.margin

    @property
    def rel(self) -> float | None:
        """This protocol's figure ÷ the leader's − 1 (geometric means of the repeats)."""
        return None if self.test is None else self.test.ratio - 1.0


@dataclass(frozen=True)
class Decision:
    """One figure's verdict among protocols (see the module doc)."""

    column: str
    contenders: tuple[Contender, ...]  # the leader first, then by median
    versus: tuple[Versus, ...]  # the leader against contenders[1:], in that order
    tied: tuple[str, ...]  # protocols not behind the leader beyond the noise, tie-break order
    chosen: Contender
    broken_by: str  # "" (no tie), "simplicity", "cost" or the figure's own median

    @property
    def leader(self) -> Contender:
        return self.contenders[0]

    @property
    def undecided(self) -> tuple[str, ...]:
        """Protocols not told apart from the leader (:attr:`Versus.undecided`): in the tie,
        like those within the margin; the evidence tells them apart."""
        return tuple(sorted((v.protocol for v in self.versus if v.undecided), key=_order))

    @property
    def outcome(self) -> str:
        if len(self.contenders) == 1:
            return ONLY
        return TIE if len(self.tied) > 1 else WINNER

    def line(self) -> str:
        """The verdict in words that hold across reruns: which protocol, winner or tie
        (and with which protocols), and the tie-breaker; no figures."""
        name = f"**{self.chosen.label}**"
        if self.outcome == ONLY:
            return f"{name} (the only protocol that qualified)"
        behind = sorted((v.protocol for v in self.versus if v.beyond), key=_order)
        ahead = ", ".join(protocol_label(p) for p in behind)
        if self.outcome == WINNER:
            return (
                f"{name} wins: ahead of {ahead} "
                "by more than the rerun margin, beyond the repeats' noise"
            )
        tied = ", ".join(protocol_label(p) for p in self.tied)
        beyond = (
            f"; ahead of {ahead} by more than the rerun margin, beyond the repeats' noise"
            if ahead
            else ""
        )
        return (
            f"tie between {tied} (none of them behind the best by more than the rerun "
            f"margin, beyond the repeats' noise); {name} by {self.broken_by}{beyond}"
        )

    def evidence(self, fmt: Callable[[str, Any], str]) -> str:
        """The figures behind :meth:`line`: each protocol at its best cell, and the others'
        distance from the leader (Holm-corrected p; the repeats a side a tie would need).
        Empty when one protocol qualified."""
        if len(self.contenders) == 1:
            return ""
        parts = [
            f"{self.leader.label} {fmt(self.column, self.leader.rec[self.column])} "
            f"({_variant(self.leader.rec)})"
        ]
        for c, v in zip(self.contenders[1:], self.versus, strict=True):
            parts.append(
                f"{c.label} {fmt(self.column, c.rec[self.column])} ({_variant(c.rec)}{_how(v)})"
            )
        return "Each protocol at its best: " + "; ".join(parts)


def _variant(rec: dict[str, Any]) -> str:
    label = f"{rec['transport']} · {rec['stack']}"
    client = rec.get("client") or "python"
    return label if client == "python" else f"{label} · {client}"


def _how(v: Versus) -> str:
    """``: +35 %, Holm p 0.003, beyond noise`` (within noise: the repeats a tie would need)."""
    if v.test is None:
        return ": not comparable"
    rel = f"{(v.rel or 0.0) * 100:+.0f} %"
    if v.p_holm is None:
        return f": {rel}, one repeat a side: too few to tell from noise"
    p = f"{v.p_holm:.2g}" if v.p_holm < 0.01 else f"{v.p_holm:.2f}"
    if v.beyond:
        return f": {rel}, Holm p {p}, beyond noise"
    told = "not told apart" if v.undecided else "within noise"
    if abs(v.test.diff) <= v.test.margin:
        band = math.expm1(v.test.margin) if v.test.log_scale else v.test.margin
        need = f"within the ±{band:.0%} rerun margin: no number of repeats separates them"
    elif v.needed is None:
        need = f"more than {stats.MOST_REPEATS} repeats a side would be needed to tell"
    else:
        need = f"{v.needed} repeats a side would tell it at this spread"
    return f": {rel}, Holm p {p}, {told}; {need}"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) else v


def decide(
    column: str,
    records: Sequence[dict[str, Any]],
    repeats: Callable[[dict[str, Any], str], tuple[float, ...]],
    cost: str | None = None,
) -> Decision | None:
    """The verdict on ``column`` (lower is better) among the protocols of ``records`` (the
    summary records that qualified), each at its best cell; ``repeats(rec, column)`` gives
    a cell's ok repeats' values. None when no record has the figure."""
    best: dict[str, dict[str, Any]] = {}
    for r in records:
        v = _number(r.get(column))
        if v is None:
            continue
        p = _protocol(str(r["transport"]))
        cur = best.get(p)
        key = (v, _number(r.get("lat_p50_us")) or 0.0, str(r["cell_id"]))
        if cur is None or key < (
            float(cur[column]),
            _number(cur.get("lat_p50_us")) or 0.0,
            str(cur["cell_id"]),
        ):
            best[p] = r
    if not best:
        return None
    ranked = sorted(best, key=lambda p: (float(best[p][column]), _order(p)))
    contenders = tuple(Contender(p, best[p], repeats(best[p], column)) for p in ranked)
    leader, others = contenders[0], contenders[1:]
    margin = rerun_margin(column)
    tests = [
        stats.ratio_test(leader.values, c.values, margin=margin)
        if leader.values and c.values
        else None
        for c in others
    ]
    decidable = [i for i, t in enumerate(tests) if t is not None and t.decidable]
    adjusted = dict(
        zip(decidable, stats.holm([tests[i].p for i in decidable]), strict=True)  # type: ignore[union-attr]
    )
    level = stats.ALPHA / max(len(decidable), 1)
    versus = []
    for i, (c, t) in enumerate(zip(others, tests, strict=True)):
        p_holm = adjusted.get(i)
        beyond = t is not None and p_holm is not None and p_holm <= stats.ALPHA and t.diff > 0
        needed = None if t is None or beyond else stats.repeats_needed(t, level)
        versus.append(Versus(c.protocol, t, p_holm, beyond, needed))
    in_tie = [leader, *(c for c, v in zip(others, versus, strict=True) if not v.beyond)]

    def cost_of(c: Contender) -> float:
        v = _number(c.rec.get(cost)) if cost else None
        return math.inf if v is None else v

    order = sorted(
        in_tie,
        key=lambda c: (protocol_simplicity(c.protocol)[0], cost_of(c), float(c.rec[column])),
    )
    broken_by = ""
    if len(order) > 1:
        first, second = order[0], order[1]
        if protocol_simplicity(first.protocol)[0] != protocol_simplicity(second.protocol)[0]:
            broken_by = "simplicity"
        elif cost and cost != column and cost_of(first) != cost_of(second):
            broken_by = "cost"
        else:
            broken_by = "its median"
    return Decision(
        column,
        contenders,
        tuple(versus),
        tuple(c.protocol for c in order),
        order[0],
        broken_by,
    )
