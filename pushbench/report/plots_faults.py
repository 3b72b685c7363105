"""Reconnect times under a fault (issue 12 items 5 and 8): per fault, per transport ·
stack · client, each repeat's distribution over the clients — median, p99 and slowest.

One column of markers per variant, one panel per fault: a line from the median to the
slowest client, p99 marked on it, one line per repeat side by side. The times run from
the fault to each client's first message after it was lifted, so they include the outage
(the Faults section's "lifted after"); a variant whose clients come back by themselves
(EventSource's retry) sits beside one whose clients do it in our code (back-off with
jitter). A run without fault cells gets no figure.
"""

from __future__ import annotations

from pathlib import Path

from .figure import Plot, axis_label, format_axes, label, new_figure, save, variants
from .load import Run
from .pairs import number
from .style import color

__all__ = ["reconnect_times"]

_COLUMNS = ("reconnect_p50_ms", "reconnect_p99_ms", "reconnect_max_ms")


def reconnect_times(run: Run, out: Path) -> list[Plot]:
    """The figure ``reconnect-times.png``, or ``[]`` when no fault cell ran ok."""
    cells = run.cells
    if "fault" not in cells.columns or not set(_COLUMNS) <= set(cells.columns):
        return []
    ok = cells[(cells["fault"].astype(str) != "") & (cells["status"] == "ok")]
    if ok.empty:
        return []
    faults = sorted(set(ok["fault"].astype(str)))
    fig = new_figure(max(6.0, 4.2 * len(faults)), 4.8)
    axes = fig.subplots(1, len(faults), sharey=True, squeeze=False)[0]
    for ax, fault in zip(axes, faults, strict=True):
        rows = variants(ok[ok["fault"].astype(str) == fault])
        names: list[str] = []
        for rec in rows:  # one per repeat: grouped by variant, repeats side by side
            name = label(rec)
            if name not in names:
                names.append(name)
        seen: dict[str, int] = {}
        for rec in rows:
            name = label(rec)
            k = seen.get(name, 0)
            seen[name] = k + 1
            x = names.index(name) + 0.12 * k
            p50, p99, top = (number(rec.get(c)) for c in _COLUMNS)
            if p50 is None or top is None:
                continue
            c = color(str(rec["transport"]))
            ax.plot([x, x], [p50, top], color=c, lw=2, alpha=0.7)
            ax.plot([x], [p50], "o", color=c, ms=6)
            if p99 is not None:
                ax.plot([x], [p99], "s", color=c, ms=5, mfc="white")
            ax.plot([x], [top], "^", color=c, ms=6)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize="small")
        ax.set_yscale("log")
        format_axes(ax, "y")
        ax.set_title(fault, fontsize="medium")
        ax.grid(True, which="both", axis="y", alpha=0.3)
    axes[0].set_ylabel(axis_label("fault → the client's first message after it", "ms", log=True))
    fig.suptitle("Reconnect times under a fault (● median, □ p99, ▲ slowest client)")
    caption = (
        "Per fault and transport · stack · client, each repeat's reconnect times over its "
        "clients: the median (●), p99 (□) and the slowest client (▲), from the fault to the "
        "first message after it was lifted (the outage included). Repeats side by side."
    )
    title = "Reconnect times under a fault"
    return [Plot("reconnect-times", title, caption, save(fig, out / "reconnect-times.png"))]
