"""Rate-sweep figures: latency against offered rate (saturation marked), delivered against
offered throughput. A run without a rate sweep gets a ``missing`` text naming the scenario
that makes one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import style
from .figure import (
    Plot,
    axis_label,
    finite,
    format_axes,
    line_kw,
    new_figure,
    save,
)
from .load import Run, point_label
from .saturation import SWEEP_KEY, mark_for, saturation_marks, sweeps

__all__ = ["latency_vs_rate", "throughput_vs_rate"]


_NO_SWEEP = (
    "this run measures one rate per transport; the `latency-vs-rate` scenario sweeps the rate "
    "(run `make bench SCENARIO=latency-vs-rate`)"
)


def _sweep_title(key: tuple[Any, ...]) -> str:
    rest = dict(zip(SWEEP_KEY, key, strict=True))
    rest["rate_msgs_per_s"] = float("nan")
    return point_label(rest).replace("nan msg/s · ", "")


def _sweep_groups(run: Run) -> dict[tuple[Any, ...], list[tuple[tuple[Any, ...], Any]]]:
    """Sweeps grouped by their load (everything but identity and rate): one figure each."""
    n_id = 3
    groups: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], Any]]] = {}
    for key, rows in sweeps(run.summary()):
        groups.setdefault(key[n_id:], []).append((key, rows))
    return groups


def latency_vs_rate(run: Run, out: Path) -> list[Plot]:
    """p50 and p99 against offered rate per sweep, the saturation point marked."""
    caption = (
        "Median over repeats of p50 (left) and p99 (right) corrected latency against the "
        "rate published into the topic; bars span the repeats. A filled ★ marks the saturation "
        "point (the highest rate meeting the SLO, dotted line, below a rate that failed it); a "
        "hollow ☆ marks the highest rate measured when the SLO held at every rate (saturation "
        "not reached); no star: the SLO failed at every rate."
    )
    title = "Latency against offered rate"
    groups = _sweep_groups(run)
    if not groups:
        return [Plot("latency-vs-rate", title, caption, missing=_NO_SWEEP)]
    marks = saturation_marks(run)
    plots = []
    for i, (rest, items) in enumerate(groups.items()):
        fig = new_figure(12, 4.8)
        axes = fig.subplots(1, 2, sharey=True)
        for key, rows in sorted(
            items, key=lambda kr: style.order_key(kr[0][1], kr[0][0], kr[0][2])
        ):
            rec0 = rows.iloc[0].to_dict()
            kw = line_kw(rec0)
            for ax, col in zip(axes, ("lat_p50_us", "lat_p99_us"), strict=True):
                r = rows[rows[col].notna()]
                err = [r[col] - r[f"{col}_min"], r[f"{col}_max"] - r[col]]
                ax.errorbar(r["rate_msgs_per_s"], r[col], yerr=err, capsize=2, lw=1.5, **kw)
            mark = mark_for(marks, key)
            if mark is not None and mark.max_rate is not None:
                at = rows[rows["rate_msgs_per_s"] == mark.max_rate]["lat_p99_us"]
                y = float(at.iloc[0]) if len(at) else mark.slo.p99_us
                reached = mark.lowest_failing is not None  # hollow: the SLO held at every rate
                axes[1].plot(
                    [mark.max_rate],
                    [y],
                    marker="*",
                    ms=15,
                    mec="k",
                    color=kw["color"],
                    mfc=kw["color"] if reached else "none",
                )
        for ax, what in zip(axes, ("p50", "p99"), strict=True):
            ax.set_xscale("log")
            ax.set_yscale("log")
            format_axes(ax)
            ax.set_xlabel(axis_label("offered rate, published", "msgs/s", log=True))
            ax.set_title(f"{what} latency")
            ax.grid(True, which="both", alpha=0.3)
        slos = {m.slo.p99_us for m in marks if finite(m.slo.p99_us)}
        for slo in slos:
            axes[1].axhline(slo, color="k", ls=":", lw=1)
            axes[1].annotate(
                f"SLO p99 {slo / 1000:g} ms",
                (1, slo),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize="small",
            )
        axes[0].set_ylabel(axis_label("corrected latency", "µs", log=True))
        axes[0].legend(fontsize="small")
        t = f"{title} — {_sweep_title((None, None, None, *rest))}"
        fig.suptitle(t)
        plots.append(
            Plot(
                f"latency-vs-rate-{i}",
                t,
                caption + _mark_source(marks),
                save(fig, out / f"latency-vs-rate-{i}.png"),
            )
        )
    return plots


def _mark_source(marks: Sequence[Any]) -> str:
    if not marks:
        return " No saturation point: the scenario declares no [slo]."
    if marks[0].source == "runner":
        return " Saturation points from the runner's search (saturation.csv)."
    return (
        " Saturation points computed by the report from the measured grid (no probe rates "
        "in this run), so they are only as fine as the grid."
    )


def throughput_vs_rate(run: Run, out: Path) -> list[Plot]:
    """Delivered messages/s against offered deliveries/s, the ideal diagonal drawn."""
    caption = (
        "Messages delivered per second (all subscribers together, median over repeats) "
        "against what was offered (rate × subscribers). On the dashed diagonal every "
        "message arrived; below it the transport, the server or the client fell behind."
    )
    title = "Delivered throughput against offered load"
    groups = _sweep_groups(run)
    if not groups:
        return [Plot("throughput", title, caption, missing=_NO_SWEEP)]
    fig = new_figure(8, 5.5)
    ax = fig.subplots()
    lo, hi = math.inf, 0.0
    for items in groups.values():
        for _, rows in items:
            rec0 = rows.iloc[0].to_dict()
            xs = rows["rate_msgs_per_s"] * rows["subscribers"]
            ax.plot(xs, rows["delivered_msgs_per_s"], **line_kw(rec0))
            lo, hi = min(lo, float(xs.min())), max(hi, float(xs.max()))
    ax.plot([lo, hi], [lo, hi], color="k", ls="--", lw=1, label="all delivered")
    ax.set_xscale("log")
    ax.set_yscale("log")
    format_axes(ax)
    ax.set_xlabel(axis_label("offered deliveries: rate × subscribers", "msgs/s", log=True))
    ax.set_ylabel(axis_label("delivered", "msgs/s", log=True))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title)
    return [Plot("throughput", title, caption, save(fig, out / "throughput.png"))]
