"""Table, target line and Markdown report of a ``bench-client`` run, from its stored files.

Reads ``client.json`` (records of :mod:`pushbench.schema.client_bench`: the
options, the per-case summaries and the target as evaluated when the run was
stored) and ``metadata.json`` of a run directory, and writes
``client-report.md`` beside them: the machine and its load, how the feeder and
the client were pinned, the options, the target line (MET / NOT MET with its
caveats), one table row per case and what every column means.
:func:`format_table` and :func:`format_target` are also what ``pushbench
bench-client`` prints at the end of a run, :func:`format_sample` the line it
prints per repeat.

Nothing here runs a benchmark (measuring is :mod:`pushbench.bench.client`,
which this module never imports):
re-rendering an old run is ``python -m pushbench.report.client RUN_DIR`` (or
:func:`render_report`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pushbench.results import atomic_write_text, read_json, resolve_run
from pushbench.schema.client_bench import (
    FED_FRACTION,
    KEPT_UP_FRACTION,
    QUEUE_SAMPLE_S,
    SATURATED_FRACTION,
    CaseResult,
    Sample,
    load_client_results,
)

__all__ = ["format_sample", "format_table", "format_target", "main", "render_report"]


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_sample(i: int, n: int, s: Sample) -> str:
    """The progress line of repeat ``i`` of ``n``: its rate, CPUs, GC, lag and saturated side."""
    head = f"[{i:>{len(str(n))}}/{n}] {s.case:<28} r{s.repeat}"
    if s.status != "ok":
        return f"{head} FAILED: {s.reason}"
    return (
        f"{head} {_rate(s.msgs_per_s):>10} msgs/s  client CPU {_pct(s.client_cpu):>4} "
        f"(core {_pct(s.client_core_busy)})  feeder CPU {_pct(s.feeder_cpu):>4} "
        f"(core {_pct(s.feeder_core_busy)})  GC {s.gc_collections} max {_ms(s.gc_pause_max_ms)} ms"
        f"  lag {_ms(s.max_loop_lag_ms)} ms  saturated: {s.saturated}"
        f"{' (lower bound)' if s.lower_bound else ''}"
    )


def format_target(target: dict[str, Any]) -> str:
    """The target line: MET / NOT MET from the median, with its caveats and the reference."""
    head = f"target: {target['text']}: "
    if target["median"] is None:
        return head + "not measured (the light client's saturation case did not run or failed)"
    word = "MET" if target["met"] else "NOT MET"
    ratio, min_ratio = target.get("ratio"), target.get("min_ratio")
    if target["met"] is None:
        word = "rate MET, ratio to aiohttp NOT MEASURED"
    elif min_ratio is not None and ratio is not None:
        word += f" ({ratio:g}× aiohttp's client, target {min_ratio:g}×)"
    if (target["lower_bound"] or target.get("contended")) and not target["met"]:
        word += " (inconclusive)"
    line = (
        f"{head}{word}, {_rate(target['median'])} msgs/s median "
        f"(min {_rate(target['min'])}, max {_rate(target['max'])})"
    )
    if target.get("contended"):
        line += (
            f"; CONTENDED in {target['contended']}/{target['repeats']} repeats: the client "
            f"had {_pct(target['client_cpu_median'])} of its CPU (median), other processes "
            "the rest, so it may take more on a core of its own (at its measured cost, one "
            f"full core ≈ {_rate(target['per_client_cpu_s_median'])} msgs/s: an "
            "extrapolation, not a measurement)"
        )
    if target["lower_bound"]:
        line += (
            "; a LOWER BOUND: the feeder did not keep the client supplied (or the worker's "
            "arrays overflowed), so the client may take more"
        )
    if not target["conditions_match"]:
        line += (
            f"; measured with {target['connections']} connections and "
            f"{target['payload']}-byte payloads, not the target's conditions"
        )
    if target["reference_median"] is not None:
        ref = f"{_rate(target['reference_median'])} msgs/s"
        if target["reference_lower_bound"]:
            ref += " (lower bound)"
        line += f"; aiohttp client ({target['reference']}): {ref}"
    return line


_TABLE_HEAD = (
    "case",
    "msgs/s median",
    "min",
    "max",
    "client CPU",
    "feeder CPU",
    "client core",
    "feeder core",
    "msgs/client-CPU-s",
    "GC n",
    "GC max ms",
    "loop lag max ms",
    "fed",
    "saturated CPU",
    "figure",
)


def _table_rows(summaries: Sequence[CaseResult]) -> list[tuple[str, ...]]:
    rows = []
    for s in summaries:
        if not s.repeats:
            rows.append((s.case, f"failed ({s.failed} repeats)", *("-",) * (len(_TABLE_HEAD) - 2)))
            continue
        figure = s.verdict + (f"; contended {s.contended}/{s.repeats}" if s.contended else "")
        figure += f"; {s.failed} repeat(s) failed" if s.failed else ""
        rows.append(
            (
                s.case,
                _rate(s.msgs_per_s_median),
                _rate(s.msgs_per_s_min),
                _rate(s.msgs_per_s_max),
                _pct(s.client_cpu_median),
                _pct(s.feeder_cpu_median),
                _pct(s.client_core_busy_median),
                _pct(s.feeder_core_busy_median),
                _rate(s.msgs_per_client_cpu_s_median),
                "-" if s.gc_collections_median is None else f"{s.gc_collections_median:g}",
                _ms(s.gc_pause_max_ms),
                _ms(s.max_loop_lag_ms),
                _pct(s.fed_fraction_min),
                s.saturated,
                figure,
            )
        )
    return rows


def format_table(summaries: Sequence[CaseResult]) -> str:
    """The summaries as an aligned plain-text table."""
    rows = [_TABLE_HEAD, *_table_rows(summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_TABLE_HEAD))]
    lines = []
    for k, row in enumerate(rows):
        cells = [
            c.ljust(w) if i in (0, len(row) - 2, len(row) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_report(run_dir: Path) -> Path:
    """``client-report.md`` from ``client.json`` and ``metadata.json`` only (no re-run)."""
    stored = load_client_results(run_dir)
    meta = read_json(run_dir / "metadata.json")
    opts = stored.options
    summaries = stored.cases
    cpu = meta.get("cpu") or {}
    pin = opts.get("pinning") or {}
    table = [
        "| " + " | ".join(_TABLE_HEAD) + " |",
        "|"
        + "|".join(
            "---" if i in (0, len(_TABLE_HEAD) - 2, len(_TABLE_HEAD) - 1) else "---:"
            for i in range(len(_TABLE_HEAD))
        )
        + "|",
        *("| " + " | ".join(row) + " |" for row in _table_rows(summaries)),
    ]
    note = f" ({pin['note']})" if pin.get("note") else ""
    text = f"""# Client receive throughput

Run `{meta.get("run_id", run_dir.name)}`, started {meta.get("started")}, status
{meta.get("status")}. {cpu.get("model")}, {cpu.get("count")} CPUs; load average (1, 5, 15 min)
{meta.get("loadavg_start")} at the start, {meta.get("loadavg_end")} at the end.

Feeder on CPU {pin.get("feeder_cpus")}, client worker on CPU {pin.get("client_cpus")}{note}.
{opts["connections"]} connections, {opts["payload"]}-byte payloads ({opts["frame_bytes"]}-byte
frames), {opts["loop"]} event loop; a {opts["duration_s"]} s window after {opts["warmup_s"]} s of
warm-up; {opts["repeats"]} repeat(s), interleaved: median, min and max.

{chr(10).join(f"**{format_target(t)}**" + chr(10) for t in stored.targets)}

{chr(10).join(table)}

- *msgs/s*: envelopes the worker recorded with a receive time inside the window, per second.
- *client CPU*, *feeder CPU*: each process's CPU time over the window, as a fraction of one core.
  *client core*, *feeder core*: how busy the CPU each was pinned to was, every process counted
  (`/proc/stat`); the difference is other load on the machine.
- *msgs/client-CPU-s*: msgs/s divided by the client's CPU fraction: what one fully used core
  would take at that efficiency (less sensitive to other load than msgs/s).
- *GC n*: the worker's collections over its run (median), *GC max ms* the longest; *loop lag*:
  how late a 1 ms sleep of the worker's event loop woke, at worst.
- *fed*: the share of the window's queue samples (every {QUEUE_SAMPLE_S} s, `/proc/net/tcp`) in
  which bytes were waiting for the client (unread in its sockets or unacknowledged in the
  feeder's), the lowest over the repeats. A client that always had data waiting set the pace
  itself.
- *saturated CPU*: the side whose CPU was ≥ {SATURATED_FRACTION:.0%} busy (the most frequent
  over the repeats), whoever used it.
- *figure*: at saturation, *client-bound* when data was waiting for the client in ≥
  {FED_FRACTION:.0%} of the samples: the figure is the client's ceiling on this machine, even if
  the feeder's core was busy too; otherwise a *lower bound* (the feeder did not keep it supplied,
  or the worker's arrays overflowed), and the client may take more. Offered-rate cases show what
  the client costs below saturation (*kept up*: ≥ {KEPT_UP_FRACTION:.0%} of the offered rate
  received), not its ceiling. *contended k/n*: in k repeats the client's CPU was ≥
  {SATURATED_FRACTION:.0%} busy while the client itself had less than that: other processes took
  the rest, and msgs/s understates what the client takes on a core of its own.
"""
    path = run_dir / "client-report.md"
    atomic_write_text(path, text)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pushbench.report.client [RUN_DIR]``: re-render a stored run."""
    parser = argparse.ArgumentParser(
        prog="python -m pushbench.report.client",
        description="Re-render client-report.md of a bench-client run from its files.",
    )
    parser.add_argument(
        "run_dir",
        nargs="?",
        type=Path,
        default=Path("results") / "latest",
        help="run directory, a `latest` link, or a results base (default results/latest)",
    )
    args = parser.parse_args(argv)
    try:
        run_dir = resolve_run(args.run_dir)
        report = render_report(run_dir)
    except FileNotFoundError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    stored = load_client_results(run_dir)
    print(format_table(stored.cases))
    print()
    for target in stored.targets:
        print(format_target(target))
    print()
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
