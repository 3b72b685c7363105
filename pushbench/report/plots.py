"""The report's figures, drawn from a stored run (never by re-running anything).

Each function takes a :class:`~.load.Run` and an output directory and returns
:class:`Plot` records: a PNG with its title and a caption saying how to read
it, or, when the run holds no data for it, no file and a ``missing`` text
naming what is absent and which scenario produces it. Colours follow the
transport and line styles the stack (:mod:`.style`); latency axes are
logarithmic because latencies span decades (a WebSocket's 1 ms next to a
short poll's 50 ms next to a stall's second).

matplotlib is imported inside the functions and used through its
object-oriented ``Figure`` API (no pyplot, no global state, no display).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pushbench.results import atomic_write_bytes

from . import floors, style
from .load import Run, point_label, variant_label
from .saturation import SWEEP_KEY, mark_for, saturation_marks, sweeps

__all__ = ["MAX_POINT_FIGURES", "PLOTS", "Plot", "render_all"]

#: At most this many scenario points get their own percentile figure (the notebook draws any).
MAX_POINT_FIGURES = 6
DPI = 100


@dataclass(frozen=True)
class Plot:
    """One figure of the report, or the reason it could not be drawn."""

    key: str
    title: str
    caption: str
    path: Path | None = None
    missing: str = ""


# --- helpers -------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def png_bytes(fig: Any, *, dpi: int = DPI, **savefig: Any) -> bytes:
    """The figure as a PNG with a 256-colour palette: plots use a few colours, so this
    loses nothing visible and makes the files (and the HTML that embeds them) about a
    third the size."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, **savefig)
    buf.seek(0)
    with Image.open(buf) as image:
        palette = image.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _save(fig: Any, path: Path) -> Path:
    atomic_write_bytes(path, png_bytes(fig))
    return path


def _variants(rows: Any) -> list[dict[str, Any]]:
    """Summary rows as dicts, in the transport × stack order of every table and legend."""
    recs: list[dict[str, Any]] = rows.to_dict("records")
    return sorted(recs, key=lambda r: style.order_key(r["transport"], r["stack"], r["client"]))


def _label(rec: dict[str, Any]) -> str:
    return variant_label(rec["stack"], rec["transport"], rec["client"])


def _line_kw(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "color": style.color(rec["transport"]),
        "linestyle": style.linestyle(rec["stack"]),
        "marker": style.marker(rec["stack"]),
        "label": _label(rec),
    }


def _points(run: Run, summary: Any) -> list[tuple[dict[str, Any], Any]]:
    """(point, summary rows measured there) for each scenario point of the grid."""
    grid = summary[~summary["probe"]] if "probe" in summary else summary
    return [(p, run.at(p, grid)) for p in run.points()]


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _log_if_wide(ax: Any, values: Sequence[float], axis: str = "y", decades: float = 1.5) -> None:
    vals = [v for v in values if _finite(v) and v > 0]
    if vals and max(vals) / min(vals) >= 10**decades:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


# --- latency percentiles per point ---------------------------------------------


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
    points = _points(run, run.summary())
    for i, (point, rows) in enumerate(points[:MAX_POINT_FIGURES]):
        fig = _figure(9, 5)
        ax = fig.subplots()
        drawn = 0
        for rec in _variants(rows):
            hist = run.histogram(rec["cell_id"])
            if hist is None or not hist.get_total_count():
                continue
            xs, ys = _percentile_curve(hist)
            kw = _line_kw(rec)
            kw.pop("marker")
            ax.plot(xs, ys, lw=1.8, **kw)
            ax.plot(xs[-1:], ys[-1:], marker=style.marker(rec["stack"]), color=kw["color"])
            drawn += 1
        title = f"Latency percentiles — {point_label(point)}"
        if not drawn:
            plots.append(Plot(f"latency-pct-{i}", title, caption, missing=_no_latency(rows)))
            continue
        ax.set_yscale("log")
        ax.set_xticks(list(_NINES_TICKS), [f"{v} %" for v in _NINES_TICKS.values()])
        ax.set_xlim(0, max(ax.get_xlim()[1], 2.2))
        ax.set_xlabel("percentile (log scale of 1 − p; last point: max)")
        ax.set_ylabel("corrected latency (µs, log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small", ncol=2)
        ax.set_title(title)
        plots.append(
            Plot(f"latency-pct-{i}", title, caption, _save(fig, out / f"latency-pct-{i}.png"))
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


# --- rate sweeps ---------------------------------------------------------------


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
        fig = _figure(12, 4.8)
        axes = fig.subplots(1, 2, sharey=True)
        for key, rows in sorted(
            items, key=lambda kr: style.order_key(kr[0][1], kr[0][0], kr[0][2])
        ):
            rec0 = rows.iloc[0].to_dict()
            kw = _line_kw(rec0)
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
            ax.set_xlabel("offered rate (msgs/s published, log)")
            ax.set_title(f"{what} latency")
            ax.grid(True, which="both", alpha=0.3)
        slos = {m.slo.p99_us for m in marks if _finite(m.slo.p99_us)}
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
        axes[0].set_ylabel("corrected latency (µs, log)")
        axes[0].legend(fontsize="small")
        t = f"{title} — {_sweep_title((None, None, None, *rest))}"
        fig.suptitle(t)
        plots.append(
            Plot(
                f"latency-vs-rate-{i}",
                t,
                caption + _mark_source(marks),
                _save(fig, out / f"latency-vs-rate-{i}.png"),
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
    fig = _figure(8, 5.5)
    ax = fig.subplots()
    lo, hi = math.inf, 0.0
    for items in groups.values():
        for _, rows in items:
            rec0 = rows.iloc[0].to_dict()
            xs = rows["rate_msgs_per_s"] * rows["subscribers"]
            ax.plot(xs, rows["delivered_msgs_per_s"], **_line_kw(rec0))
            lo, hi = min(lo, float(xs.min())), max(hi, float(xs.max()))
    ax.plot([lo, hi], [lo, hi], color="k", ls="--", lw=1, label="all delivered")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered deliveries (msgs/s × subscribers, log)")
    ax.set_ylabel("delivered (msgs/s, log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title)
    return [Plot("throughput", title, caption, _save(fig, out / "throughput.png"))]


# --- bytes on the wire -----------------------------------------------------------


def _floor(rec: dict[str, Any]) -> floors.Floor | None:
    if rec.get("publishers"):
        return None  # clients publish too: client → server bytes are not push overhead
    rpm = rec.get("requests_per_msg")
    return floors.floor(
        rec["transport"],
        int(rec["payload_bytes"]),
        requests_per_msg=float(rpm) if rpm is not None and _finite(rpm) else None,
    )


def bytes_per_message(run: Run, out: Path) -> list[Plot]:
    """Bytes on the wire per delivered message against payload size, with the protocol floor."""
    title = "Bytes on the wire per message"
    env = floors.envelope_overhead()
    caption = (
        "TCP payload bytes per delivered message, both directions (received by clients plus "
        "sent by them: poll requests, pongs), from the kernel's TCP counters, handshakes not "
        "included; median over repeats. The floor (open marks / thin lines) is the fewest bytes "
        "the protocol allows for the payload (see docs/report.md; polling floors use the "
        "measured requests per message). Between floor and measurement: pushbench's own "
        f"envelope (≈ {env} B of JSON: topic, sequence number, two timestamps), "
        "and what each stack adds (headers, CRLF line ends, batch wrappers). IP/TCP headers "
        "(40–52 B per segment) are not counted."
    )
    summary = run.summary()
    if "bytes_in_per_msg" not in summary or summary["bytes_in_per_msg"].isna().all():
        return [Plot("bytes", title, caption, missing="no byte counts in this run")]
    rows = summary[summary["bytes_in_per_msg"].notna() & (summary["rate_msgs_per_s"] > 0)]
    if not len(rows):
        return [Plot("bytes", title, caption, missing="no pushed messages in this run (idle)")]
    sizes = sorted(rows["payload_bytes"].unique())
    recs = _variants(rows)
    if len(sizes) >= 2:
        fig = _figure(9, 5.5)
        ax = fig.subplots()
        for key in dict.fromkeys((r["stack"], r["transport"], r["client"]) for r in recs):
            mine = [r for r in recs if (r["stack"], r["transport"], r["client"]) == key]
            by_size: dict[int, list[dict[str, Any]]] = {}
            for r in mine:
                by_size.setdefault(int(r["payload_bytes"]), []).append(r)
            xs = sorted(by_size)
            ys = [float(np.median([_total(r) for r in by_size[x]])) for x in xs]
            ax.plot(xs, ys, **_line_kw(mine[0]))
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
        ax.set_xlabel("payload (bytes, log)")
        ax.set_ylabel("bytes on the wire per message (log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(title)
    else:
        size = int(sizes[0])
        fig = _figure(9, 0.42 * len(recs) + 1.6)
        ax = fig.subplots()
        labels = [_label(r) for r in recs]
        ins = [float(r["bytes_in_per_msg"]) for r in recs]
        outs = [
            float(r["bytes_out_per_msg"]) if _finite(r.get("bytes_out_per_msg")) else 0.0
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
                f"{total:,.0f}",
                (total, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
            )
            f = _floor(r)
            if f is not None:
                ax.plot([f.total, f.total], [y - 0.4, y + 0.4], color="k", lw=2)
        ax.plot([], [], color="k", lw=2, label="protocol floor")
        ax.axvline(size, color="k", ls=":", lw=1, label=f"payload ({size} B)")
        ax.set_yticks(ypos, labels)
        ax.invert_yaxis()
        ax.set_xlabel("bytes on the wire per delivered message")
        ax.legend(fontsize="small", loc="lower right")
        title = f"{title} — {size} B payload"
        ax.set_title(title)
    return [Plot("bytes", title, caption, _save(fig, out / "bytes.png"))]


def _total(rec: dict[str, Any]) -> float:
    out = rec.get("bytes_out_per_msg")
    return float(rec["bytes_in_per_msg"]) + (
        float(out) if out is not None and _finite(out) else 0.0
    )


# --- grouped bars: CPU and memory ----------------------------------------------


def _grouped_bars(
    run: Run, out: Path, key: str, column: str, ylabel: str, title: str, caption: str, missing: str
) -> list[Plot]:
    summary = run.summary()
    if column not in summary or summary[column].isna().all():
        return [Plot(key, title, caption, missing=missing)]
    points = [(p, rows) for p, rows in _points(run, summary) if rows[column].notna().any()]
    shown = points[:MAX_POINT_FIGURES]
    fig = _figure(min(4.2 * len(shown) + 1, 14), 4.6)
    axes = np.atleast_1d(fig.subplots(1, len(shown), squeeze=False)[0])
    for ax, (point, rows) in zip(axes, shown, strict=True):
        recs = [r for r in _variants(rows) if _finite(r[column])]
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
                hatch={"raw": "..", "starlette": "//"}.get(stack, ""),
                edgecolor="k",
                lw=0.5,
                label=stack if client == "python" else f"{stack} · {client}",
            )
            ax.bar_label(bars, labels=[_short(y) for y in ys], fontsize=7, padding=1)
        ax.set_xticks(range(len(transports)), transports)
        ax.set_title(point_label(point), fontsize="medium")
        ax.grid(True, axis="y", alpha=0.3)
        _log_if_wide(ax, [float(r[column]) for r in recs])
    axes[0].set_ylabel(ylabel)
    handles = [
        _stack_patch(s)
        for s in dict.fromkeys(r["stack"] for _, rows in shown for r in _variants(rows))
    ]
    axes[-1].legend(handles=handles, fontsize="small", title="stack (hatch)")
    fig.suptitle(title)
    note = ""
    if len(points) > len(shown):
        note = f" {len(points) - len(shown)} more points are in the tables."
    return [Plot(key, title, caption + note, _save(fig, out / f"{key}.png"))]


def _stack_patch(stack: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(
        facecolor="white",
        edgecolor="k",
        hatch={"raw": "..", "starlette": "//"}.get(stack, ""),
        label=stack,
    )


def _short(y: float) -> str:
    if y >= 1e6:
        return f"{y / 1e6:.3g}M"
    if y >= 1e4:
        return f"{y / 1e3:.3g}k"
    return f"{y:.3g}"


def cpu_per_message(run: Run, out: Path) -> list[Plot]:
    return _grouped_bars(
        run,
        out,
        "cpu-per-msg",
        "server_cpu_us_per_msg",
        "server CPU per delivered message (µs)",
        "Server CPU per delivered message",
        "Server process CPU (user + system) over the measured window ÷ messages delivered to "
        "all subscribers; median over repeats, bars span the repeats. Colour: transport; "
        "hatch: stack. Lower is cheaper.",
        "no server CPU measured in this run",
    )


def memory_per_connection(run: Run, out: Path) -> list[Plot]:
    if run.has("server_rss_growth_bytes_per_conn"):
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
        "bytes per connection",
        "Server memory per connection",
        f"Memory per connection: {what}. Median over repeats, bars span the repeats.",
        "no server memory measured in this run",
    )


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
    for point, rows in _points(run, summary):
        found = []
        for rec in _variants(rows):
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
    fig = _figure(4.2 * cols, 2.6 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, (rec, s) in zip(axes, found, strict=False):
        c = style.color(rec["transport"])
        ax.plot(s["t_s"], s["max_us"], color=c, alpha=0.35, lw=0.8, label="max")
        ax.plot(
            s["t_s"], s["p50_us"], color=c, lw=1.4, ls=style.linestyle(rec["stack"]), label="p50"
        )
        ax.set_yscale("log")
        ax.set_title(_label(rec), fontsize="medium")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[-cols:]:
        ax.set_xlabel("time in window (s)")
    for ax in axes[::cols]:
        ax.set_ylabel("latency (µs, log)")
    axes[0].legend(fontsize="small")
    t = f"{title} — {point_label(point)}"
    fig.suptitle(t)
    return [Plot("latency-time", t, caption, _save(fig, out / "latency-time.png"))]


#: Every figure of a scenario report, in report order (the codec figures come from their run).
PLOTS: tuple[Callable[[Run, Path], list[Plot]], ...] = (
    latency_percentiles,
    latency_vs_rate,
    throughput_vs_rate,
    bytes_per_message,
    cpu_per_message,
    memory_per_connection,
    latency_over_time,
)


def render_all(run: Run, out: Path) -> list[Plot]:
    """Draw every figure of :data:`PLOTS` into ``out``."""
    plots: list[Plot] = []
    for draw in PLOTS:
        plots.extend(draw(run, out))
    return plots
