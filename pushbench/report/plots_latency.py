"""Latency figures: percentiles per scenario point, and latency over time within a window.

Latency axes are logarithmic because latencies span decades (a WebSocket's
1 ms next to a short poll's 50 ms next to a stall's second).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from . import style
from .figure import (
    MAX_POINT_FIGURES,
    Plot,
    axis_label,
    cells_by_point,
    format_axes,
    label,
    line_kw,
    new_figure,
    save,
    variants,
)
from .load import Run, point_label

__all__ = ["latency_over_time", "latency_percentiles"]


_NINES_TICKS = {0: "0", 1: "90", 2: "99", 3: "99.9", 4: "99.99", 5: "99.999"}


def _percentile_curve(hist: Any) -> tuple[list[float], list[float]]:
    """(nines, µs): the histogram's percentiles on the ``-log10(1 − p)`` axis, then its max."""
    count = int(hist.get_total_count())
    top = max(1.0, math.log10(count)) if count else 1.0
    nines = np.linspace(0.0, top, 64)
    pcts = [float(100 * (1 - 10**-n)) for n in nines[:-1]]
    values = hist.get_percentile_to_value_dict(pcts)
    xs = [*nines[:-1].tolist(), top]
    ys = [float(values[p]) for p in pcts] + [float(hist.get_max_value())]
    return xs, ys


def latency_percentiles(run: Run, out: Path) -> list[Plot]:
    """Corrected latency by percentile, one figure per scenario point, all transports overlaid."""
    caption = (
        "Corrected latency (from each message's scheduled send time, so a late publisher "
        "cannot hide its lateness) at every percentile, repeats merged exactly; x is the "
        "percentile on a 'nines' scale (90, 99, 99.9 …, the last point is the maximum), "
        "y is log µs. Lower and flatter is better; a curve that turns up early has a heavy tail."
    )
    plots = []
    points = cells_by_point(run, run.summary())
    for i, (point, rows) in enumerate(points[:MAX_POINT_FIGURES]):
        fig = new_figure(9, 5)
        ax = fig.subplots()
        drawn = 0
        for rec in variants(rows):
            hist = run.histogram(rec["cell_id"])
            if hist is None or not hist.get_total_count():
                continue
            xs, ys = _percentile_curve(hist)
            kw = line_kw(rec)
            kw.pop("marker")
            ax.plot(xs, ys, lw=1.8, **kw)
            ax.plot(xs[-1:], ys[-1:], marker=style.marker(rec["stack"]), color=kw["color"])
            drawn += 1
        title = f"Latency percentiles — {point_label(point)}"
        if not drawn:
            plots.append(Plot(f"latency-pct-{i}", title, caption, missing=_no_latency(rows)))
            continue
        ax.set_yscale("log")
        format_axes(ax, "y")
        ax.set_xticks(list(_NINES_TICKS), [f"{v} %" for v in _NINES_TICKS.values()])
        ax.set_xlim(0, max(ax.get_xlim()[1], 2.2))
        ax.set_xlabel(axis_label("percentile", "%, on a scale of nines; last point: max"))
        ax.set_ylabel(axis_label("corrected latency", "µs", log=True))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small", ncol=2)
        ax.set_title(title)
        plots.append(
            Plot(f"latency-pct-{i}", title, caption, save(fig, out / f"latency-pct-{i}.png"))
        )
    if len(points) > MAX_POINT_FIGURES:
        plots.append(
            Plot(
                "latency-pct-more",
                "More scenario points",
                caption,
                missing=f"{len(points) - MAX_POINT_FIGURES} more points are in the summary "
                "tables; notebooks/analysis.ipynb draws this figure for any point",
            )
        )
    return plots


def _no_latency(rows: Any) -> str:
    if len(rows) and (rows["rate_msgs_per_s"] == 0).all():
        return "idle cells (rate 0) have no messages, hence no latency"
    return "no ok repeat with latency histograms (hist/) at this point"


# --- latency over time -----------------------------------------------------------


def latency_over_time(run: Run, out: Path) -> list[Plot]:
    """p50 and max per time bucket for one repeat of each cell at the first point."""
    title = "Latency over time (one repeat per cell)"
    caption = (
        "Corrected latency per time bucket of the measured window, by scheduled send time: "
        "median (line) and maximum (light) of each bucket, log µs. Server stalls, GC pauses "
        "and the client's own hiccups show as spikes where they happened."
    )
    if not run.has_series():
        return [
            Plot(
                "latency-time",
                title,
                caption,
                missing=(
                    "this run has no series/ (per-bucket latency); runs made since the runner "
                    "records it have one for every repeat — re-run the scenario"
                ),
            )
        ]
    summary = run.summary()
    chosen = None
    for point, rows in cells_by_point(run, summary):
        found = []
        for rec in variants(rows):
            reps = run.ok[run.ok["cell_id"] == rec["cell_id"]]["repeat"].astype(int).tolist()
            series = next(
                (
                    s
                    for s in (run.series(rec["cell_id"], k) for k in reps)
                    if s is not None and len(s)
                ),
                None,
            )
            if series is not None:
                found.append((rec, series))
        if found:
            chosen = (point, found)
            break
    if chosen is None:
        return [
            Plot("latency-time", title, caption, missing="series/ holds no data for ok repeats")
        ]
    point, found = chosen
    n = len(found)
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig = new_figure(4.2 * cols, 2.6 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, (rec, s) in zip(axes, found, strict=False):
        c = style.color(rec["transport"])
        ax.plot(s["t_s"], s["max_us"], color=c, alpha=0.35, lw=0.8, label="max")
        ax.plot(
            s["t_s"], s["p50_us"], color=c, lw=1.4, ls=style.linestyle(rec["stack"]), label="p50"
        )
        ax.set_yscale("log")
        format_axes(ax)
        ax.set_title(label(rec), fontsize="medium")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[-cols:]:
        ax.set_xlabel(axis_label("time in window", "s"))
    for ax in axes[::cols]:
        ax.set_ylabel(axis_label("corrected latency", "µs", log=True))
    axes[0].legend(fontsize="small")
    t = f"{title} — {point_label(point)}"
    fig.suptitle(t)
    return [Plot("latency-time", t, caption, save(fig, out / "latency-time.png"))]
