"""Cost figures: TCP payload bytes per message (beside the protocol floor and the
on-the-wire estimate), server CPU per
delivered message and server memory per connection (grouped bars: colour the transport,
hatch the stack).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pushbench import metrics

from . import floors, style
from .figure import (
    MAX_POINT_FIGURES,
    Plot,
    axis_label,
    cells_by_point,
    finite,
    format_axes,
    label,
    line_kw,
    log_if_wide,
    new_figure,
    save,
    tick_label,
    variants,
)
from .load import Run, point_label

__all__ = ["bytes_per_message", "cpu_per_message", "memory_per_connection"]


def _floor(rec: dict[str, Any]) -> floors.Floor | None:
    if rec.get("publishers"):
        return None  # clients publish too: client → server bytes are not push overhead
    rpm = rec.get("requests_per_msg")
    return floors.floor(
        rec["transport"],
        int(rec["payload_bytes"]),
        requests_per_msg=float(rpm) if rpm is not None and finite(rpm) else None,
    )


def bytes_per_message(run: Run, out: Path) -> list[Plot]:
    """TCP payload bytes per delivered message against payload size, with the protocol floor
    and (where the run has it) the estimate of the bytes on the wire."""
    title = "TCP payload bytes per message"
    env = floors.envelope_overhead()
    caption = (
        "TCP payload bytes per delivered message, both directions (received by clients plus "
        "sent by them: poll requests, pongs), from the kernel's TCP counters, handshakes not "
        "included; median over repeats. The floor (open marks / thin lines) is the fewest bytes "
        "the protocol allows for the payload (see docs/report.md; polling floors use the "
        "measured requests per message). Between floor and measurement: pushbench's own "
        f"envelope (≈ {env} B of JSON: topic, sequence number, two timestamps), "
        "and what each stack adds (headers, CRLF line ends, batch wrappers). IP/TCP headers "
        "are not in the payload; the × marks (dashed lines) are the estimate of the bytes on "
        f"the wire: payload plus {metrics.HEADER_BYTES_PER_SEGMENT} B (IPv4 + TCP + "
        "timestamps, loopback's defaults) per TCP segment the kernel counted, pure ACKs "
        "included."
    )
    summary = run.summary()
    if "bytes_in_per_msg" not in summary or summary["bytes_in_per_msg"].isna().all():
        return [Plot("bytes", title, caption, missing="no byte counts in this run")]
    rows = summary[summary["bytes_in_per_msg"].notna() & (summary["rate_msgs_per_s"] > 0)]
    if not len(rows):
        return [Plot("bytes", title, caption, missing="no pushed messages in this run (idle)")]
    sizes = sorted(rows["payload_bytes"].unique())
    recs = variants(rows)
    if len(sizes) >= 2:
        fig = new_figure(9, 5.5)
        ax = fig.subplots()
        for key in dict.fromkeys((r["stack"], r["transport"], r["client"]) for r in recs):
            mine = [r for r in recs if (r["stack"], r["transport"], r["client"]) == key]
            by_size: dict[int, list[dict[str, Any]]] = {}
            for r in mine:
                by_size.setdefault(int(r["payload_bytes"]), []).append(r)
            xs = sorted(by_size)
            ys = [float(np.median([_total(r) for r in by_size[x]])) for x in xs]
            ax.plot(xs, ys, **line_kw(mine[0]))
            wire = [(x, _wire(r)) for x in xs for r in by_size[x][:1]]
            wx, wy = [x for x, w in wire if w is not None], [w for _, w in wire if w is not None]
            if wx:
                ax.plot(wx, wy, color=style.color(key[1]), ls="--", lw=0.8, marker="x")
            fl = [_floor(by_size[x][0]) for x in xs]
            fx = [x for x, f in zip(xs, fl, strict=True) if f is not None]
            fy = [f.total for f in fl if f is not None]
            ax.plot(
                fx,
                fy,
                color=style.color(key[1]),
                lw=0.8,
                marker=style.marker(key[0]),
                mfc="none",
                ls="-",
            )
        ax.plot(sizes, sizes, color="k", ls=":", lw=1, label="payload alone")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        format_axes(ax)
        ax.set_xlabel(axis_label("payload", "B", log=True))
        ax.set_ylabel(axis_label("TCP payload bytes per delivered message", "B/msg", log=True))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(title)
    else:
        size = int(sizes[0])
        fig = new_figure(9, 0.42 * len(recs) + 1.6)
        ax = fig.subplots()
        labels = [label(r) for r in recs]
        ins = [float(r["bytes_in_per_msg"]) for r in recs]
        outs = [
            float(r["bytes_out_per_msg"]) if finite(r.get("bytes_out_per_msg")) else 0.0
            for r in recs
        ]
        colors = [style.color(r["transport"]) for r in recs]
        ypos = list(range(len(recs)))
        ax.barh(ypos, ins, color=colors, label="received by clients")
        ax.barh(ypos, outs, left=ins, color=colors, alpha=0.35, hatch="//", label="sent by clients")
        for y, r, total in zip(
            ypos, recs, (a + b for a, b in zip(ins, outs, strict=True)), strict=True
        ):
            ax.annotate(
                tick_label(total),
                (total, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
            )
            f, on_wire = _floor(r), _wire(r)
            if f is not None:
                ax.plot([f.total, f.total], [y - 0.4, y + 0.4], color="k", lw=2)
            if on_wire is not None:
                ax.plot([on_wire], [y], color="k", marker="x", ls="none")
        ax.plot([], [], color="k", lw=2, label="protocol floor")
        ax.plot([], [], color="k", marker="x", ls="none", label="on the wire (estimate)")
        ax.axvline(size, color="k", ls=":", lw=1, label=f"payload ({size} B)")
        ax.set_yticks(ypos, labels)
        ax.invert_yaxis()
        format_axes(ax, "x")
        ax.set_xlabel(axis_label("TCP payload bytes per delivered message", "B/msg"))
        ax.legend(fontsize="small", loc="lower right")
        title = f"{title} — {size} B payload"
        ax.set_title(title)
    return [Plot("bytes", title, caption, save(fig, out / "bytes.png"))]


def _wire(rec: dict[str, Any]) -> float | None:
    """The on-the-wire estimate, both directions (None where the run has none)."""
    wire_in, wire_out = rec.get("wire_bytes_in_per_msg"), rec.get("wire_bytes_out_per_msg")
    if wire_in is None or not finite(wire_in):
        return None
    return float(wire_in) + (float(wire_out) if wire_out is not None and finite(wire_out) else 0.0)


def _total(rec: dict[str, Any]) -> float:
    out = rec.get("bytes_out_per_msg")
    return float(rec["bytes_in_per_msg"]) + (float(out) if out is not None and finite(out) else 0.0)


# --- grouped bars: CPU and memory ----------------------------------------------


def _grouped_bars(
    run: Run,
    out: Path,
    key: str,
    column: str,
    axis: tuple[str, str],
    title: str,
    caption: str,
    missing: str,
) -> list[Plot]:
    """Grouped bars of ``column`` per scenario point; ``axis`` is the y axis's (what, unit)."""
    what, unit = axis
    summary = run.summary()
    if column not in summary or summary[column].isna().all():
        return [Plot(key, title, caption, missing=missing)]
    points = [(p, rows) for p, rows in cells_by_point(run, summary) if rows[column].notna().any()]
    shown = points[:MAX_POINT_FIGURES]
    fig = new_figure(min(4.2 * len(shown) + 1, 14), 4.6)
    axes = np.atleast_1d(fig.subplots(1, len(shown), squeeze=False)[0])
    for ax, (point, rows) in zip(axes, shown, strict=True):
        recs = [r for r in variants(rows) if finite(r[column])]
        transports = list(dict.fromkeys(r["transport"] for r in recs))
        stacks = list(dict.fromkeys((r["stack"], r["client"]) for r in recs))
        width = 0.8 / max(1, len(stacks))
        for j, (stack, client) in enumerate(stacks):
            mine = [r for r in recs if (r["stack"], r["client"]) == (stack, client)]
            xs = [
                transports.index(r["transport"]) + (j - (len(stacks) - 1) / 2) * width for r in mine
            ]
            ys = [float(r[column]) for r in mine]
            err = [
                [y - float(r[f"{column}_min"]) for y, r in zip(ys, mine, strict=True)],
                [float(r[f"{column}_max"]) - y for y, r in zip(ys, mine, strict=True)],
            ]
            bars = ax.bar(
                xs,
                ys,
                width,
                yerr=err,
                capsize=2,
                color=[style.color(r["transport"]) for r in mine],
                hatch=style.hatch(stack),
                edgecolor="k",
                lw=0.5,
                label=stack if client == "python" else f"{stack} · {client}",
            )
            ax.bar_label(bars, labels=[tick_label(y) for y in ys], fontsize=7, padding=1)
        ax.set_xticks(range(len(transports)), transports)
        ax.set_title(point_label(point), fontsize="medium")
        ax.grid(True, axis="y", alpha=0.3)
        log_if_wide(ax, [float(r[column]) for r in recs])
        format_axes(ax, "y")
    axes[0].set_ylabel(axis_label(what, unit, log=axes[0].get_yscale() == "log"))
    handles = [
        _stack_patch(s)
        for s in dict.fromkeys(r["stack"] for _, rows in shown for r in variants(rows))
    ]
    axes[-1].legend(handles=handles, fontsize="small", title="stack (hatch)")
    fig.suptitle(title)
    note = ""
    if len(points) > len(shown):
        note = f" {len(points) - len(shown)} more points are in the tables."
    return [Plot(key, title, caption + note, save(fig, out / f"{key}.png"))]


def _stack_patch(stack: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(
        facecolor="white",
        edgecolor="k",
        hatch=style.hatch(stack),
        label=stack,
    )


def cpu_per_message(run: Run, out: Path) -> list[Plot]:
    return _grouped_bars(
        run,
        out,
        "cpu-per-msg",
        "server_cpu_us_per_msg",
        ("server CPU per delivered message", "µs/msg"),
        "Server CPU per delivered message",
        "Server process CPU (user + system, all threads, to the ns) over the measured window "
        "÷ messages delivered to all subscribers, the in-server ticker included (its own "
        "share is the table's ticker column); median over repeats, bars span the repeats. "
        "Colour: transport; hatch: stack. Lower is cheaper.",
        "no server CPU measured in this run",
    )


def memory_per_connection(run: Run, out: Path) -> list[Plot]:
    if run.has("mem_marginal_bytes_per_conn"):
        column = "mem_marginal_bytes_per_conn"
        what = (
            "the marginal cost — slope of the server's resident memory over the connections "
            "open, read with half and with all of them up — so the fixed set-up of the first "
            "connections (cells.csv's mem_first_conn_bytes, often hundreds of KB) is left out, "
            "and every divisor counts the connections open, not those configured; the kernel's "
            "socket buffers are not in it (kernel_sock_bytes_per_conn)"
        )
    elif run.has("server_rss_growth_bytes_per_conn"):
        column = "server_rss_growth_bytes_per_conn"
        what = (
            "growth of the server's resident memory from before the first connection to "
            "all connected, ÷ connections"
        )
    else:
        column = "server_rss_bytes_per_conn"
        what = (
            "the server's whole resident memory ÷ connections — this run predates the "
            "growth measurement, so the interpreter's baseline (tens of MB) is included and "
            "small connection counts read as megabytes; the `idle` scenario measures many "
            "connections"
        )
    return _grouped_bars(
        run,
        out,
        "memory-per-conn",
        column,
        ("memory per connection", "B/conn"),
        "Server memory per connection",
        f"Memory per connection: {what}. Median over repeats, bars span the repeats.",
        "no server memory measured in this run",
    )
