"""Assemble the report of a scenario run as a :class:`~.doc.Document`.

Order: warnings first (banner), then the answer (one table: per situation the
recommended transport, the figure that decided it and how sure, linked to its
evidence in the decision guide), the overview, the thresholds (if the run stored
any), the summary tables, the framework and harness tax (if the run has twins:
:mod:`.tax`), TLS against plaintext (if the run has TLS pairs: :mod:`.tls_cost`),
the decision guide, the figures, the codec benchmark, an optional comparison, the
failures and flags, and the environment. Everything comes from the stored run (and
the stored codec run); nothing is measured here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pushbench import cpuidle
from pushbench.metrics.flags import rule_text
from pushbench.results import atomic_write_bytes

from . import (
    answer,
    contention,
    doc,
    faults,  # h32 (issue 12 item 5)
    guide,
    http2,  # h43: the [browser_streams] probe
    kernel,
    netem,
    paths,
    proxies,
    robustness,
    soak,
    style,
    tax,
    thresholds,
    tls_cost,
)
from .doc import NBSP
from .figure import Plot
from .load import METRICS, TAIL_COLUMNS, Run, point_label, variant_label
from .saturation import SWEEP_KEY, run_slo, saturation_marks

__all__ = ["NBSP", "SUMMARY_COLUMNS", "banners", "document", "fmt_value"]

#: Columns of the summary table, after the transport · stack and repeats columns.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "lat_p50_us",
    "lat_p99_us",
    "lat_p999_us",
    "lat_max_us",
    "delivered_fraction",
    "delivered_msgs_per_s",
    "server_cpu_us_per_msg",
    "server_cpu_us_per_request",
    "ticker_cpu_us_per_msg",
    "bytes_in_per_msg",
    "bytes_out_per_msg",
    "wire_bytes_in_per_msg",
    "mem_marginal_bytes_per_conn",
)
#: The memory column of a run that predates the marginal figure, best first.
MEMORY_FALLBACKS: tuple[str, ...] = (
    "server_rss_growth_bytes_per_conn",
    "server_rss_bytes_per_conn",
)


def fmt_value(column: str, value: Any, spread: Any = None) -> str:
    """A median for a table: 3 significant digits or thousands, ``±x %`` when repeats differ
    (joined by non-breaking spaces: ``1,234 ±5 %`` never wraps at the ±)."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    v = float(value)
    if METRICS.get(column) and METRICS[column].unit == "fraction":
        text = f"{v * 100:.2f}{NBSP}%"
    elif abs(v) >= 1000:
        text = f"{v:,.0f}"
    elif v == 0:
        text = "0"
    else:
        text = f"{v:.3g}"
    if spread is not None and spread == spread and spread > 0:
        text += f"{NBSP}±{spread * 100:.0f}{NBSP}%" if spread >= 0.01 else f"{NBSP}±<1{NBSP}%"
    return text


def banners(run: Run) -> list[str]:
    """The warnings a reader must see before any figure."""
    out = []
    if run.status != "complete":
        reason = run.meta.get("reason") or "no reason recorded"
        out.append(f"This run is {run.status.upper()}: {reason}. Figures cover what it measured.")
    cells = run.cells
    hb = cells[(cells["status"] == "ok") & cells["harness_bound"]]
    if len(hb):
        ids = ", ".join(dict.fromkeys(hb["cell_id"]))
        out.append(
            f"{len(hb)} repeat(s) were HARNESS-BOUND (a client process used ≥ 90 % of its core, "
            f"so they measure the load generator as much as the server): {ids}."
        )
    summary = run.summary()
    flagged = summary[summary["excluding_flags"] != ""]
    if len(flagged):
        out.append(
            f"{len(flagged)} cell(s) are FLAGGED — their figure may be the harness's or an "
            "overloaded server's, not the transport's — and left out of the decision guide's "
            "verdicts: " + ", ".join(flagged["cell_id"]) + " (the flags are in the summary rows)."
        )
    stolen = contention.stolen(cells, run.meta.get("speed"))
    if stolen:
        out.append(stolen)
    bad = cells[cells["status"] != "ok"]
    if len(bad):
        counts = bad["status"].value_counts().to_dict()
        text = ", ".join(f"{n} {s}" for s, n in counts.items())
        out.append(f"{text} repeat(s) — listed under “Failures and flags”, never averaged in.")
    return out


def _summary_tables(run: Run) -> list[doc.Block]:
    summary = run.summary()
    grid = summary[~summary["probe"]] if "probe" in summary else summary
    cols = [c for c in SUMMARY_COLUMNS if c in grid.columns and grid[c].notna().any()]
    if "mem_marginal_bytes_per_conn" not in cols:
        older = [c for c in MEMORY_FALLBACKS if c in grid.columns and grid[c].notna().any()]
        cols += older[:1]
    header = (
        "transport · stack",
        "ok / runs",
        *(f"{METRICS[c].label} ({METRICS[c].unit})" for c in cols),
        "flags",
    )
    blocks: list[doc.Block] = []
    for point in run.points():
        rows = run.at(point, grid)
        recs = sorted(
            rows.to_dict("records"),
            key=lambda r: style.order_key(r["transport"], r["stack"], r["client"]),
        )
        table_rows, flags = [], []
        clocked = any(_clock_bound(r) for r in recs)
        for r in recs:
            notes = [r["flags"]] if r.get("flags") else []
            if r["failed"] or r["skipped"]:
                notes.append(f"{r['failed']} failed, {r['skipped']} skipped: {r['reasons']}")
            table_rows.append(
                (
                    variant_label(r["stack"], r["transport"], r["client"]),
                    f"{r['ok']} / {r['runs']}",
                    *(_summary_value(c, r) for c in cols),
                    "; ".join(notes),
                )
            )
            flags.append("failed" if r["ok"] == 0 else "flagged" if notes else "")
        blocks.append(
            doc.Table(
                header,
                tuple(table_rows),
                caption=f"{point_label(point)} — median over ok repeats, ±: largest distance "
                "of a repeat from the median; p99.9 and max are those of every repeat's "
                "histogram merged, the repeats' own range beside them. Latency is corrected "
                "(from the scheduled send time)."
                + (PER_REQUEST_NOTE if "server_cpu_us_per_request" in cols else "")
                + " Red rows measured nothing; yellow rows are "
                f"flagged ({rule_text()})." + (CLOCK_NOTE if clocked else ""),
                flags=tuple(flags),
            )
        )
    return blocks


#: The summary caption's note when polls are in the table.
PER_REQUEST_NOTE = (
    " Server CPU per request (polls): server CPU per message ÷ requests per message, what "
    "one answer costs however many messages it carries; a saturated server's CPU per "
    "message reads 1 ÷ the rate whatever the stack, its CPU per request does not."
)

#: The summary caption's note when a row's workers read another clock (issue 18).
CLOCK_NOTE = (
    " “clock ±”: the client workers read another clock than the server's (another host); "
    "their receive times were mapped onto the server's by an NTP-style GET /clock exchange, "
    "so each latency is exact only to within ± this bound (half the best round trip, the "
    "widest over workers and repeats; docs/distributed.md)."
)


def _clock_bound(r: dict[str, Any]) -> float:
    """The widest clock error bound of a summary row's repeats, µs (0: one clock)."""
    bound = r.get("clock_bound_us_max")
    return float(bound) if bound is not None and bound == bound and bound > 0 else 0.0


def _summary_value(column: str, r: dict[str, Any]) -> str:
    """A summary cell: the median ±spread, or a merged tail with the repeats' range beside
    it; a latency measured across clocks with its error bound after it (``clock ±``)."""
    text = _summary_text(column, r)
    bound = _clock_bound(r)
    if column.startswith("lat_") and bound and text != "—":
        text += f" (clock{NBSP}±{fmt_value(column, bound)})"
    return text


def _summary_text(column: str, r: dict[str, Any]) -> str:
    if column in TAIL_COLUMNS and r.get("tail_merged"):
        text = fmt_value(column, r[column])
        lo, hi, n = r.get(f"{column}_min"), r.get(f"{column}_max"), r.get(f"{column}_n") or 0
        if n > 1 and lo is not None and hi is not None and lo == lo and hi == hi:
            text += f" (repeats {fmt_value(column, lo)}–{fmt_value(column, hi)})"
        return text
    return fmt_value(column, r[column], r.get(f"{column}_spread"))


def _saturation_blocks(run: Run) -> list[doc.Block]:
    marks = saturation_marks(run)
    if not marks:
        slo = run_slo(run)
        why = "the scenario declares no [slo]" if slo is None else "no rate sweep in this run"
        return [
            doc.Missing(
                "Saturation not measured",
                f"{why}; run `make bench SCENARIO=latency-vs-rate` (a rate sweep with an SLO)",
            )
        ]
    rows, flags = [], []
    for m in sorted(marks, key=lambda m: style.order_key(m.key[1], m.key[0], m.key[2] or "python")):
        ident = dict(zip(SWEEP_KEY, m.key, strict=True))
        held = m.max_rate is not None and m.lowest_failing is None
        rows.append(
            (
                variant_label(
                    str(ident["stack"]), str(ident["transport"]), ident["client"] or "python"
                ),
                point_label({**ident, "rate_msgs_per_s": float("nan")}).replace("nan msg/s · ", ""),
                "—"
                if m.max_rate is None
                else f"{m.max_rate:,.0f}" + (" (SLO held at all)" if held else ""),
                "—" if m.lowest_failing is None else f"{m.lowest_failing:,.0f}",
                m.saturated_side or "not recorded",
            )
        )
        flags.append("failed" if m.max_rate is None else "")
    slo = marks[0].slo
    source = (
        "the runner's search (saturation.csv)"
        if marks[0].source == "runner"
        else "the measured grid, computed by the report (no probes: as fine as the grid)"
    )
    return [
        doc.Table(
            ("transport · stack", "load", "max rate (msgs/s)", "lowest failing", "saturated side"),
            tuple(rows),
            caption=f"Highest rate with p99 ≤ {slo.p99_us / 1000:g} ms and ≥ "
            f"{slo.min_delivered_fraction:.0%} delivered, from {source}. Red: the SLO failed at "
            "every rate tried.",
            flags=tuple(flags),
        )
    ]


def _figure_blocks(plots: Sequence[Plot], keys: Sequence[str]) -> list[doc.Block]:
    out: list[doc.Block] = []
    for p in plots:
        if not any(p.key.startswith(k) for k in keys):
            continue
        if p.path is not None:
            out.append(doc.Figure(p.path, p.title, p.caption))
        else:
            out.append(doc.Missing(p.title, p.missing))
    return out


def _codec_section(codec_run: Path | None, how_found: str, out: Path | None) -> doc.Section:
    """The codec run's targets, plots and profile; its plots are copied into ``out`` (the
    report's folder) so the report's folder stands alone."""
    if codec_run is None:
        return doc.Section(
            "Codec benchmark and hot-path profile",
            "codec",
            (
                doc.Missing(
                    "No codec run found",
                    "no run under results/ holds codec.json; make one with `make bench-codec` "
                    "(or `pushbench bench-codec`), then re-render with `pushbench report RUN "
                    "--codec CODEC_RUN`",
                ),
            ),
        )
    from pushbench.schema.codec import load_records

    from . import codec, codec_targets

    blocks: list[doc.Block] = [
        doc.Paragraph(
            f"From codec run `{codec_run.name}` ({how_found}); its own report is "
            f"`{codec_run.name}/codec-report.md`, the interactive call trees "
            f"`{codec_run.name}/codec-profile.html` (compiled) and "
            f"`codec-profile-pure.html` (pure Python)."
        )
    ]
    records = load_records(codec_run)
    targets = codec.evaluate_targets(records)
    blocks.append(
        doc.Table(
            ("target", "measured", "required", "result"),
            tuple(
                (t.name, f"{codec_targets._fmt(t.value)} {t.unit}", t.requirement, t.verdict)
                for t in targets
            ),
            caption="Judged on the records of that run; ratios against peers are in "
            "codec-report.md.",
            flags=tuple("flagged" if t.met is False else "" for t in targets),
        )
    )
    titles = {
        "codec-decode.png": (
            "Codec decode throughput",
            "payload MB/s against frame size, "
            "our codec against wsproto, websockets and aiohttp, log-log",
        ),
        "codec-encode.png": ("Codec encode throughput", "payload MB/s against frame size"),
        "codec-125b.png": ("Codec time per 125-byte frame", "µs per frame, lower is better"),
        "codec-unmask.png": ("XOR-unmask 1 MiB", "GB/s of the masking kernels and copy floors"),
    }
    for name, (title, caption) in titles.items():
        path = codec_run / name
        if path.exists():
            if out is not None and out.resolve() != codec_run.resolve():
                copy = out / name
                atomic_write_bytes(copy, path.read_bytes())
                path = copy
            blocks.append(doc.Figure(path, title, caption))
        else:
            blocks.append(
                doc.Missing(
                    title,
                    f"{name} not rendered; run `python -m pushbench.report.codec "
                    f"{paths.run_label(codec_run)}`",
                )
            )
    profile = codec._profile_top(codec_run)
    if profile:
        blocks.append(
            doc.Paragraph(
                "Hot path: our decoder on 125-byte masked frames, top "
                "functions by own time (cProfile):"
            )
        )
        blocks.append(doc.Pre("\n".join(profile.splitlines()[:40])))
    else:
        blocks.append(doc.Missing("Hot-path profile", "the codec run has no codec-profile.txt"))
    return doc.Section("Codec benchmark and hot-path profile", "codec", tuple(blocks))


#: The harness's own figures per cell (worst repeat): (column, header, scale, format).
_HARNESS: tuple[tuple[str, str, float, str], ...] = (
    ("client_core_busy_max", "client core busy (max)", 100.0, "{:.0f} %"),
    ("client_cpu_fraction_max", "busiest client process (max)", 100.0, "{:.0f} %"),
    ("client_max_loop_lag_us", "client loop stall (max, ms)", 1e-3, "{:,.1f}"),
    ("steal_fraction_max", "stolen by the hypervisor (max)", 100.0, "{:.1f} %"),
    ("publish_lag_p99_us", "publisher late p99 (µs)", 1.0, "{:,.0f}"),
    ("publish_lag_max_us", "publisher late max (µs)", 1.0, "{:,.0f}"),
    ("ticker_lag_max_us", "publisher late max (µs)", 1.0, "{:,.0f}"),  # runs before 2026-11-26
)


def _harness(run: Run) -> list[doc.Block]:
    """The instrument's own pauses and load, shown rather than assumed away: how busy the
    client cores were, the longest stall of a client's event loop (GC included), and how
    late the publisher ran behind its schedule (already inside the corrected latency)."""
    ok = run.cells[run.cells["status"] == "ok"]
    cols = [spec for spec in _HARNESS if spec[0] in ok and ok[spec[0]].notna().any()]
    if not len(ok) or not cols:
        return [doc.Missing("Harness figures", "this run's cells.csv has no harness columns")]
    rows = []
    for cell_id, group in ok.groupby("cell_id", sort=False):
        values = []
        for column, _, scale, fmt in cols:
            worst = group[column].max()
            values.append("—" if worst != worst else fmt.format(float(worst) * scale))
        rows.append((str(cell_id), *values))
    header = ("cell", *dict.fromkeys(h for _, h, _, _ in cols))
    return [
        doc.Table(
            header,
            tuple(rows),
            caption="The worst repeat of each cell. A client core ≥ 90 % busy flags the cell "
            "harness-bound; publisher lateness is measured from the schedule, so it is part of "
            "the corrected latency, never hidden. Stolen: the largest share of the window the "
            "hypervisor took from one of the run's cores (steal time; ≥ 5 % is re-measured).",
        )
    ]


def _failures(run: Run) -> list[doc.Block]:
    cells = run.cells
    bad = cells[(cells["status"] != "ok") | cells["harness_bound"]]
    summary = run.summary()
    flagged = summary[(summary["flags"] != "") & (summary["ok"] > 0)]
    if not len(bad) and not len(flagged):
        return [doc.Paragraph("Every repeat measured; no cell was flagged.")]
    rows, flags = [], []
    for r in flagged.to_dict("records"):
        rows.append((r["cell_id"], "all ok", "flagged", r["flags"]))
        flags.append("flagged")
    for r in bad.to_dict("records"):
        what = r["status"] if r["status"] != "ok" else "harness-bound"
        cpu = r.get("client_core_busy_max")
        if cpu is None or cpu != cpu:  # runs before the per-core figure: the busiest process
            cpu = r.get("client_cpu_fraction_max")
        detail = r["reason"] or (f"client CPU {cpu:.0%} of a core" if cpu == cpu and cpu else "")
        rows.append((r["cell_id"], str(int(r["repeat"])), what, detail))
        flags.append("failed" if r["status"] != "ok" else "flagged")
    return [doc.Table(("cell", "repeat", "status", "reason"), tuple(rows), flags=tuple(flags))]


def _idle_line(record: object) -> str:
    """The run's ``cpu_idle`` record as one line (runs before it: not recorded)."""
    if not isinstance(record, dict):
        return "not recorded (a run before pushbench recorded its idle states)"
    return cpuidle.IdleStates.from_dict(record).line()


def _environment(run: Run) -> list[doc.Block]:
    m = run.meta
    cpu = m.get("cpu") or {}
    pin = m.get("pinning") or {}
    git = m.get("git") or {}
    py = m.get("python") or {}
    versions = m.get("versions") or {}
    rows = [
        ("run", f"{run.run_id} ({run.status})"),
        ("scenario", f"{m.get('scenario')} — `{paths.shown_path(m.get('scenario_file') or '')}`"),
        ("date", f"{m.get('started')} → {m.get('finished')} ({m.get('duration_s')} s)"),
        ("machine", f"{m.get('hostname')}, {m.get('platform')}, {m.get('machine')}"),
        ("CPU", f"{cpu.get('model')}, {cpu.get('count')} cores, governor {cpu.get('governor')}"),
        (
            "pinning",
            f"server on {pin.get('server_cpus')}, clients on {pin.get('client_cpus')}"
            f"{' — ' + pin['pinning_note'] if pin.get('pinning_note') else ''}",
        ),
        ("load average", f"{m.get('loadavg_start')} at start, {m.get('loadavg_end')} at end"),
        ("CPU idle", _idle_line(m.get("cpu_idle"))),
        ("Python", f"{py.get('implementation')} {py.get('version')} ({py.get('compiler')})"),
        ("libraries", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))),
        (
            "git",
            f"{git.get('commit')} on {git.get('branch')}"
            f"{' (DIRTY: uncommitted changes)' if git.get('dirty') else ''}",
        ),
        ("command", f"`{paths.shown_command(m.get('command') or [])}`"),
    ]
    if m.get("order_seed") is not None:  # runs before rounds have no seed: ran back to back
        rows.append(
            (
                "order",
                f"{m.get('rounds')} rounds, every cell once per round, shuffled with seed "
                f"{m['order_seed']} (`pushbench run … --seed {m['order_seed']}` repeats it)",
            )
        )
    server = m.get("server")
    if isinstance(server, dict) and server:
        rows.append(("server", ", ".join(f"{k}={v}" for k, v in sorted(server.items()))))
    blocks: list[doc.Block] = [doc.Table(("", ""), tuple(rows))]
    if m.get("scenario_text"):
        blocks.append(doc.Paragraph("Scenario file as run:"))
        blocks.append(doc.Pre(str(m["scenario_text"])))
    return blocks


def document(
    run: Run,
    plots: Sequence[Plot],
    *,
    codec_run: Path | None,
    codec_how: str = "",
    comparison: doc.Section | None = None,
    out: Path | None = None,
) -> doc.Document:
    """The report of ``run`` with its drawn ``plots`` (written to ``out``)."""
    description = " ".join(str(_scenario_description(run)).split())
    overview: list[doc.Block] = [
        doc.Paragraph(
            f"Scenario **{run.scenario}**: {description}"
            if description
            else f"Scenario **{run.scenario}**."
        ),
        doc.Paragraph(
            f"{len(run.cells['cell_id'].unique())} cells, {len(run.cells)} repeats "
            f"({int((run.cells['status'] == 'ok').sum())} ok). Every figure below is drawn from "
            "the stored results of this run; re-render with `pushbench report "
            f"{paths.run_label(run.path)}`. How to read it: docs/report.md."
        ),
    ]
    sections = [
        answer.section(run),
        doc.Section("Overview", "overview", tuple(overview)),
        *thresholds.section(run),  # the CI gate's verdict, as stored by `pushbench run`
        doc.Section("Summary", "summary", tuple(_summary_tables(run))),
        *tax.section(run),  # pushbench's servers over their hand-written twins, when run
        *soak.section(run),  # issue 17 item 6: churn cells, when run
        *faults.section(run),  # h32 (issue 12 item 5): fault cells, when run
        *netem.section(run),  # network conditions (issue 12 item 6), when relayed cells ran
        *tls_cost.section(run),  # issue 12 item 2: TLS cells beside their plaintext twins
        *proxies.section(run),  # h27: cells behind a proxy beside direct, when run
        doc.Section("Saturation", "saturation", tuple(_saturation_blocks(run))),
        guide.section(run),
        *filter(None, [robustness.section(run.path)]),  # the [abuse] probes, when run
        *filter(None, [http2.section(run.path)]),  # h43: Chromium's streams per origin
        doc.Section(
            "Latency",
            "latency",
            tuple(
                _figure_blocks(
                    plots,
                    ("latency-pct", "latency-vs-rate", "latency-time", "latency-by-"),  # h33
                )
            ),
        ),
        doc.Section(
            "Throughput and cost",
            "cost",
            tuple(_figure_blocks(plots, ("throughput", "bytes", "cpu-per-msg", "memory-per"))),
        ),
        _codec_section(codec_run, codec_how, out),
    ]
    if comparison is not None:
        sections.append(comparison)
    sections += [
        doc.Section(
            "The harness itself",
            "harness",
            tuple(_harness(run)),
            (doc.Section("The kernel's floor", "kernel-floor", tuple(kernel.blocks(run))),),
        ),
        doc.Section("Failures and flags", "flags", tuple(_failures(run))),
        doc.Section("Environment", "environment", tuple(_environment(run))),
    ]
    return doc.Document(
        f"pushbench report — {run.scenario} — {run.run_id}",
        tuple(banners(run)),
        tuple(sections),
    )


def _scenario_description(run: Run) -> str:
    import tomllib

    text = run.meta.get("scenario_text")
    if not text:
        return ""
    try:
        return str(tomllib.loads(text).get("description", ""))
    except tomllib.TOMLDecodeError:
        return ""
