"""Latency by proxy and by network profile (issue 12 item 8): one line per transport ·
stack across the values of ``via`` or ``net``, p50 and p99 side by side.

A line joins the cells that differ only in that dimension (same transport, stack,
client and load), so its slope is what the proxy or the network did to that
transport. A cell that failed (a naive proxy refusing the upgrade) or delivered
nothing leaves a gap and is marked ✗ on the axis; the tables of the report say why.
A run without proxied (or relayed) cells gets no figure.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from pushbench import proxies
from pushbench.netem import PROFILES

from .figure import Plot, axis_label, format_axes, line_kw, new_figure, save, variants
from .load import IDENTITY, Run, point_label
from .pairs import number, same_but, twin_key

__all__ = ["latency_by_net", "latency_by_proxy"]

_PERCENTILES = (("lat_p50_us", "p50"), ("lat_p99_us", "p99"))
_GAP = float("nan")


def _lines(run: Run, dimension: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(first row, the rows of one line) per transport · stack · load varying ``dimension``."""
    summary = run.summary()
    if dimension not in summary.columns:
        return []
    if "probe" in summary.columns:
        summary = summary[~summary["probe"].astype(bool)]
    key = same_but(dimension, *IDENTITY)
    groups: dict[tuple[Hashable, ...], list[dict[str, Any]]] = {}
    for r in variants(summary[summary["rate_msgs_per_s"] > 0]):
        groups.setdefault(twin_key(r, key), []).append(r)
    return [(rows[0], rows) for rows in groups.values() if len({r[dimension] for r in rows}) > 1]


def _draw(
    run: Run,
    out: Path,
    *,
    dimension: str,
    order: Callable[[Any], float],
    tick: Callable[[Any], str],
    key: str,
    title: str,
    caption: str,
    xlabel: str,
) -> list[Plot]:
    lines = _lines(run, dimension)
    if not lines:
        return []
    values = sorted({r[dimension] for _, rows in lines for r in rows}, key=order)
    x_of = {v: i for i, v in enumerate(values)}
    points = {point_label({**first, dimension: None}) for first, _ in lines}
    fig = new_figure(11, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (column, name) in zip(axes, _PERCENTILES, strict=True):
        failed_x: list[int] = []
        for first, rows in lines:
            rows = sorted(rows, key=lambda r: order(r[dimension]))
            kw = line_kw(first)
            if len(points) > 1:
                kw["label"] += f" — {point_label({**first, dimension: None})}"
            xs = [x_of[r[dimension]] for r in rows]  # NaN where a cell failed: a gap
            ys = [(number(r.get(column)) if r.get("ok") else None) or _GAP for r in rows]
            failed_x += [x_of[r[dimension]] for r in rows if not r.get("ok")]
            ax.plot(xs, ys, lw=1.6, **kw)
        if failed_x:
            ax.plot(
                failed_x,
                [0.02] * len(failed_x),
                "x",
                color="#cc0000",
                ms=9,
                transform=ax.get_xaxis_transform(),
                label="failed (see the tables)",
            )
        ax.set_yscale("log")
        format_axes(ax, "y")
        ax.set_xticks(range(len(values)), [tick(v) for v in values])
        ax.set_xlabel(xlabel)
        ax.set_title(f"{name} latency")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(axis_label("corrected latency", "µs", log=True))
    axes[1].legend(fontsize="small")
    fig.suptitle(title)
    return [Plot(key, title, caption, save(fig, out / f"{key}.png"))]


def _via_order(via: Any) -> float:
    names = proxies.via_names()
    return float(names.index(via)) if via in names else float(len(names))


def latency_by_proxy(run: Run, out: Path) -> list[Plot]:
    """p50 and p99 per transport · stack across ``via``: direct, each proxy good, naive."""
    return _draw(
        run,
        out,
        dimension="via",
        order=_via_order,
        tick=lambda v: str(v).replace("-naive", "\nnaive"),
        key="latency-by-proxy",
        title="Latency by proxy in front",
        caption="Median p50 (left) and p99 (right) over the ok repeats of each cell, log µs, "
        "one line per transport · stack across direct, each proxy configured for push, and "
        "each proxy's naive config; ✗: a cell that failed there (the 'Behind a proxy' table "
        "gives the reason). The slope from direct is what the proxy added.",
        xlabel="via (the proxy in front)",
    )


def latency_by_net(run: Run, out: Path) -> list[Plot]:
    """p50 and p99 per transport · stack across the ``net`` profiles, by round trip."""

    def rtt(net: Any) -> float:
        p = PROFILES.get(str(net))
        return 0.0 if p is None else p.rtt_ms

    return _draw(
        run,
        out,
        dimension="net",
        order=rtt,
        tick=lambda v: f"{v}\n{rtt(v):g} ms RTT",
        key="latency-by-net",
        title="Latency by network profile",
        caption="Median p50 (left) and p99 (right) over the ok repeats of each cell, log µs, "
        "one line per transport · stack across the network profiles in order of their round "
        "trip (pushbench.netem; the relay's calibration is in the Network conditions "
        "section). WebSocket and SSE should rise by the one-way delay, long polling by up "
        "to a round trip, short polling by its interval on top.",
        xlabel="network profile (declared round trip)",
    )
