"""The summary table a run prints at its end: one line per cell, like k6's end-of-test summary.

Built from the run's rows in memory (the same values ``cells.csv`` holds), so it
needs nothing beyond the standard library and is printed with or without the
report. Per cell: how many repeats were measured, the median over the ok repeats
of p50 and p99 latency, the highest max of any repeat, the median delivered
fraction and msgs/s, server CPU per message, and flags:

- ``failed n/m`` and ``skipped``: repeats that measured nothing (the reasons are
  listed under the table);
- the row flags of :mod:`pushbench.metrics.flags`, each naming its figures
  (``harness-bound``, ``client-loop-stall``, ``server-busy``, ``publisher-late``,
  ``under-rate``): the reported number may be the harness's or an overloaded
  server's, and the decision guide leaves the cell out of its verdicts;
- ``lost``: a repeat lost messages;
- ``probe``: a rate the saturation search added.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pushbench.metrics.flags import cell_flags, rule_text

__all__ = ["CellSummary", "format_table", "summarize"]

_REASON_CHARS = 160


@dataclass(frozen=True)
class CellSummary:
    """One cell's line of the end-of-run table (``None``: not measured)."""

    cell_id: str
    runs: int
    ok: int
    p50_us: float | None
    p99_us: float | None
    max_us: float | None
    delivered_fraction: float | None
    delivered_msgs_per_s: float | None
    server_cpu_us_per_msg: float | None
    flags: tuple[str, ...]
    reasons: tuple[str, ...]


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    v = float(value)
    return None if math.isnan(v) else v


def _over(
    rows: Sequence[dict[str, Any]], column: str, pick: Callable[[list[float]], float]
) -> float | None:
    values = [v for r in rows if (v := _number(r.get(column))) is not None]
    return pick(values) if values else None


def summarize(rows: Sequence[dict[str, Any]]) -> list[CellSummary]:
    """One :class:`CellSummary` per cell id, in the order the cells first ran."""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_cell.setdefault(str(row["cell_id"]), []).append(row)
    out = []
    for cell_id, runs in by_cell.items():
        ok = [r for r in runs if r["status"] == "ok"]
        timed = [r for r in ok if (_number(r.get("lat_count")) or 0) > 0]
        failed = sum(1 for r in runs if r["status"] == "failed")
        flags = []
        if failed:
            flags.append(f"failed {failed}/{len(runs)}")
        if any(r["status"] == "skipped" for r in runs):
            flags.append("skipped")
        flags.extend(str(f) for f in cell_flags(ok))
        if any((_number(r.get("msgs_lost")) or 0) > 0 for r in ok):
            flags.append("lost")
        if any(r.get("probe") is True for r in runs):
            flags.append("probe")
        reasons = dict.fromkeys(
            str(r["reason"]).splitlines()[0][:_REASON_CHARS] for r in runs if r.get("reason")
        )
        out.append(
            CellSummary(
                cell_id=cell_id,
                runs=len(runs),
                ok=len(ok),
                p50_us=_over(timed, "lat_p50_us", statistics.median),
                p99_us=_over(timed, "lat_p99_us", statistics.median),
                max_us=_over(timed, "lat_max_us", max),
                delivered_fraction=_over(ok, "delivered_fraction", statistics.median),
                delivered_msgs_per_s=_over(ok, "delivered_msgs_per_s", statistics.median),
                server_cpu_us_per_msg=_over(ok, "server_cpu_us_per_msg", statistics.median),
                flags=tuple(flags),
                reasons=tuple(reasons),
            )
        )
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


#: (header, right-aligned, the text of one summary): the table's columns, in order.
_COLUMNS: tuple[tuple[str, bool, Callable[[CellSummary], str]], ...] = (
    ("cell", False, lambda s: s.cell_id),
    ("ok", True, lambda s: f"{s.ok}/{s.runs}"),
    ("p50 µs", True, lambda s: _fmt(s.p50_us, ",.0f")),
    ("p99 µs", True, lambda s: _fmt(s.p99_us, ",.0f")),
    ("max µs", True, lambda s: _fmt(s.max_us, ",.0f")),
    ("delivered", True, lambda s: _percent(s.delivered_fraction)),
    ("msgs/s", True, lambda s: _fmt(s.delivered_msgs_per_s, ",.0f")),
    ("CPU µs/msg", True, lambda s: _fmt(s.server_cpu_us_per_msg, ",.1f")),
    ("flags", False, lambda s: ", ".join(s.flags)),
)


def format_table(summaries: Sequence[CellSummary]) -> str:
    """The table as aligned plain text, with a legend and the reasons of failed and
    skipped cells under it."""
    table = [[text(s) for _, _, text in _COLUMNS] for s in summaries]
    header = [name for name, _, _ in _COLUMNS]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if right else c.ljust(w)
            for c, w, (_, right, _) in zip(cells, widths, _COLUMNS, strict=True)
        ).rstrip()

    lines = [line(header), *(line(r) for r in table)]
    lines += textwrap.wrap(
        "p50, p99: median over the ok repeats; max: the highest of any repeat; latency from "
        "the scheduled send time; CPU: the server's, per delivered message; " + rule_text(),
        100,
    )
    for s in summaries:
        lines.extend(f"  {s.cell_id}: {reason}" for reason in s.reasons)
    return "\n".join(lines)
