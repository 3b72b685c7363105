"""The report's "Robustness" section: the stored abuse records of a run
(:mod:`pushbench.schema.abuse`, written by ``pushbench run`` for a scenario with an
``[abuse]`` table) as a side-by-side summary of the stacks and one table per stack, and
the memory per idle connection the decision guide cites. Reads stored data only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pushbench.schema.abuse import ProbeRecord, read_records

from . import doc

__all__ = ["idle_memory_line", "section", "stack_table", "summary_table", "text"]

MIB = 1024 * 1024


def _num(v: float | None, fmt: str = "{:.3g}", unit: str = "") -> str:
    return "—" if v is None else f"{fmt.format(v)}{unit}"


def _finding(r: ProbeRecord) -> str:
    """One probe's own finding as text."""
    o = r.outcome
    if r.status != "ok":
        return f"failed: {r.reason}"
    if r.probe == "slowloris":
        return f"dropped after {_num(o.drop_s, unit=' s')} (median); {o.answer}"
    if r.probe == "slow-consumer":
        closed = _num(o.tcp_close_s, unit=" s") if o.tcp_close_s is not None else "not closed"
        return f"close code {o.close_code or 'none'}; TCP closed after {closed}"
    if r.probe == "idle":
        return (
            f"{_num(o.bytes_per_conn, '{:,.0f}', ' B')} RSS per idle connection, kernel "
            f"{_num(o.kernel_bytes_per_conn, '{:,.0f}', ' B')}; {o.answer}"
        )
    return o.answer


def _health(r: ProbeRecord) -> str:
    h = r.health
    text = f"{_num(h.p50_ms)} / {_num(h.p99_ms)} / {_num(h.max_ms)}"
    return text + (f" ({h.errors} failed)" if h.errors else "")


def _rss(r: ProbeRecord) -> str:
    parts = (r.rss_before_bytes, r.rss_under_bytes, r.rss_after_bytes)
    return " → ".join(_num(None if v is None else v / MIB, "{:.1f}") for v in parts)


def stack_table(stack: str, records: Sequence[ProbeRecord]) -> doc.Table:
    """One stack's probes: size, finding, /health latency during it, RSS, log bytes."""
    rows = tuple(
        (r.probe, f"{r.size:,}", _finding(r), _health(r), _rss(r), f"{r.log_bytes or 0:,}")
        for r in records
        if r.stack == stack
    )
    return doc.Table(
        (
            "probe",
            "size",
            "finding",
            "/health p50 / p99 / max (ms)",
            "RSS before → peak → after (MiB)",
            "log (B)",
        ),
        rows,
        caption=f"{stack}: each probe against a freshly started server, auth on",
        flags=tuple("failed" if r.status != "ok" else "" for r in records if r.stack == stack),
        numeric=False,
    )


def _pick(records: Sequence[ProbeRecord], stack: str, probe: str) -> ProbeRecord | None:
    return next(
        (r for r in records if r.stack == stack and r.probe == probe and r.status == "ok"), None
    )


#: The summary's columns: (header, probe, what of its record) — table-driven.
_SUMMARY: tuple[tuple[str, str, Callable[[ProbeRecord], str]], ...] = (
    ("stalled head dropped after", "slowloris", lambda r: _num(r.outcome.drop_s, unit=" s")),
    ("oversized header", "oversized-header", lambda r: r.outcome.answer),
    ("slow consumer close code", "slow-consumer", lambda r: str(r.outcome.close_code or "none")),
    ("its TCP closed after", "slow-consumer", lambda r: _num(r.outcome.tcp_close_s, unit=" s")),
    ("forged / absent / subscriber token", "token-forgery", lambda r: r.outcome.answer),
    (
        "memory per idle connection",
        "idle",
        lambda r: _num(r.outcome.bytes_per_conn, "{:,.0f}", " B"),
    ),
)


def summary_table(records: Sequence[ProbeRecord]) -> doc.Table:
    """The stacks side by side: the figures the issue asks for, one row per stack."""
    stacks = list(dict.fromkeys(r.stack for r in records))
    rows = []
    for stack in stacks:
        cells = []
        for _, probe, get in _SUMMARY:
            rec = _pick(records, stack, probe)
            cells.append("—" if rec is None else get(rec))
        worst = max((r.health.p99_ms or 0.0 for r in records if r.stack == stack), default=0.0)
        log = sum(r.log_bytes or 0 for r in records if r.stack == stack)
        rows.append((stack, *cells, f"{worst:.3g}", f"{log:,}"))
    header = ("stack", *(h for h, _, _ in _SUMMARY), "worst /health p99 (ms)", "log (B)")
    return doc.Table(
        header, tuple(rows), caption="—: not measured or the probe failed", numeric=False
    )


def section(run_dir: Path) -> doc.Section | None:
    """The "Robustness" section, or None when the run has no abuse records."""
    records = read_records(run_dir)
    if not records:
        return None
    intro = doc.Paragraph(
        "Abuse probes against each stack (`[abuse]` of the scenario; docs/report.md, "
        "“Robustness”): slowloris, an oversized header, an upgrade flood, a slow consumer, "
        "forged tokens and idle WebSockets, each against the same freshly started server, "
        "with `/health` sampled and the server's RSS and log measured while it ran."
    )
    stacks = dict.fromkeys(r.stack for r in records)
    subs = tuple(
        doc.Section(f"Robustness — {s}", f"robustness-{s}", (stack_table(s, records),))
        for s in stacks
    )
    return doc.Section("Robustness", "robustness", (intro, summary_table(records)), subs)


def idle_memory_line(run_dir: Path) -> str | None:
    """The guide's citation: memory per idle connection of each stack from the abuse run,
    or None when the run has none."""
    found = [
        r
        for r in read_records(run_dir)
        if r.probe == "idle" and r.status == "ok" and r.outcome.bytes_per_conn is not None
    ]
    if not found:
        return None
    each = ", ".join(
        f"{r.stack} {r.outcome.bytes_per_conn / 1024:.1f} KiB"
        for r in found
        if r.outcome.bytes_per_conn is not None
    )
    return (
        f"Memory per idle WebSocket from the robustness probes ({found[0].size:,} connections, "
        f"RSS growth ÷ connections): {each}; table “Robustness”."
    )


def text(run_dir: Path) -> str:
    """The summary as plain text for a terminal (an abuse-only run has no report)."""
    records = read_records(run_dir)
    if not records:
        return ""
    table = summary_table(records)
    lines = ["Robustness (abuse probes):"]
    for row in table.rows:
        lines.append(
            "  "
            + row[0]
            + ": "
            + "; ".join(f"{h}: {v}" for h, v in zip(table.header[1:], row[1:], strict=True))
        )
    failed = [f"{r.stack}/{r.probe}: {r.reason}" for r in records if r.status != "ok"]
    lines += [f"  failed {f}" for f in failed]
    return "\n".join(lines)
