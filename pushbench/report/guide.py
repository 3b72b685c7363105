"""The decision guide: for a few stated situations, which protocol wins here, and by what figure.

Rules are data (:data:`SITUATIONS`): each situation says which cells of the
run decide it, which measured column ranks latency and which ranks cost, the
scenario that measures it when this run does not, and its caveats. Verdicts
compare *protocols* (WebSocket, SSE, long poll, short poll), each at its best
stack and client, never two clients or stacks of one protocol
(:mod:`.verdict`). A cell qualifies when it measured, delivered at least
:data:`MIN_DELIVERED` of its messages (when latency counts) and carries no
row flag (:mod:`pushbench.metrics.flags`: harness-bound, client loop stall,
busy server, late publisher, offered rate not reached) — the cells left out
are listed with why. Three verdicts per situation:

- **latency**: the protocol with the lowest median p99 wins only when every
  other protocol is behind it beyond the repeats' noise (the rule of
  ``pushbench compare``: log t test, Holm-corrected); otherwise a tie, broken
  by simplicity, then cost;
- **cost**: the same rule on the situation's cost column (server CPU per
  message; memory per connection when nothing is pushed);
- **simplicity**: the simplest protocol (the rank each row of
  :mod:`pushbench.registry` states, not a measurement) whose p99 is not behind
  the best beyond the repeats' noise — so simplicity never wins over a
  protocol that keeps up better, and never loses to a lead that is noise.

:func:`verdict_lines` gives the verdicts without their figures: two runs whose
repeats differ only by noise give the same lines.

When the run holds no cell for a situation the guide says so and names the
scenario to run instead of guessing. :func:`section` is the report's section;
:func:`text` the same verdicts as plain text, which ``pushbench run`` prints
at its end.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from pushbench import registry
from pushbench.metrics.flags import rule_text

from . import contention, doc, guide_topology, http2, style
from .load import METRICS, Run, point_label, variant_label
from .robustness import idle_memory_line
from .saturation import SWEEP_KEY, saturation_marks
from .scale import scale_lines
from .situation import LOW_RATE_MAX, MIN_DELIVERED, Notes, Situation
from .situation import cite as _cite
from .situation import fmt as _fmt
from .situation import low_rate as _low_rate
from .situation import one_point as _one_point
from .situation import pushed as _pushed
from .situation import python_cells as _python
from .verdict import Decision, decide, protocol_label, protocol_simplicity

__all__ = [
    "MIN_DELIVERED",
    "SITUATIONS",
    "Judged",
    "Situation",
    "judge_situation",
    "section",
    "simplicity",
    "text",
    "verdict_lines",
]

MANY_SUBSCRIBERS = 1000

_UNRANKED = 9  # below every stated rank: a transport the registry does not know


def simplicity(transport: str) -> tuple[int, str]:
    """(rank, why) of ``transport``, 1 the simplest: a property of the protocol its
    registry row states, not a measurement; ``(9, "unranked")`` for an unknown name."""
    try:
        row = registry.transport(transport)
    except registry.RegistryError:
        return (_UNRANKED, "unranked")
    return (row.simplicity, row.simplicity_why)


def _high_rate(s: Any) -> Any:
    rows = _python(_pushed(s))
    return _one_point(rows[rows["rate_msgs_per_s"] >= LOW_RATE_MAX], prefer_high=True)


def _chat(s: Any) -> Any:
    return _one_point(_python(s[(s["publishers"] > 0) & (s["ok"] > 0)]))


def _idle(s: Any) -> Any:
    rows = _python(s[(s["rate_msgs_per_s"] == 0) | (s["subscribers"] >= MANY_SUBSCRIBERS)])
    return _one_point(rows[rows["ok"] > 0], prefer_high=False)


_RECONNECT = (
    "SSE's EventSource reconnects by itself and resumes with Last-Event-ID; a WebSocket "
    "client needs its own reconnect and resume logic (pushbench's `since=` shows one way)"
)
_SHORTPOLL = "short polling's latency is set by its interval, not by the transport"

_IDLE_CAVEATS = (
    "heartbeats (WebSocket ping, SSE comment) keep proxies from closing idle "
    "connections, and cost bytes and CPU; short polling pays a request per interval "
    "per client even when nothing is new",
    http2.BROWSER_LIMIT_CAVEAT,
)


def _idle_notes(run: Run) -> Notes:
    """Issue 18 item 4: the browser's six-connection limit and HTTP/2 beside HTTP/1.1, as
    this run measured them; the static caveat on the limit goes when the probe ran."""
    browser = http2.browser_facts(run)
    facts = (*browser, *http2.h2_pair_facts(run))
    if not browser:
        return Notes(facts)
    return Notes(facts, tuple(c for c in _IDLE_CAVEATS if c != http2.BROWSER_LIMIT_CAVEAT))


SITUATIONS: tuple[Situation, ...] = (
    Situation(
        "low-rate",
        "Server-only push at a low rate",
        "a server tells clients about occasional events (notifications, dashboards)",
        _low_rate,
        "quick",
        (_SHORTPOLL, _RECONNECT),
    ),
    Situation(
        "high-rate",
        "High-rate ticker",
        f"the server streams ≥ {LOW_RATE_MAX:,.0f} messages/s to every subscriber (prices, "
        "telemetry)",
        _high_rate,
        "latency-vs-rate",
        (
            "long and short polling batch messages at high rates: cheaper per message, but each "
            "batch waits for the next request",
            _RECONNECT,
        ),
    ),
    Situation(
        "chat",
        "Chat (both ways)",
        "clients publish as well as receive",
        _chat,
        "chat",
        (
            "with SSE and polling every client message is a separate HTTP POST; a WebSocket "
            "carries both directions on one connection",
            _RECONNECT,
        ),
    ),
    Situation(
        "idle",
        "Many idle subscribers",
        "thousands of connections open, little to say (presence, rare alerts)",
        _idle,
        "idle",
        _IDLE_CAVEATS,
        latency=None,
        cost="mem_marginal_bytes_per_conn",
        notes=lambda run, rows: _idle_notes(run),
    ),
    # issue 12 item 8 (h33): behind proxies, production (TLS), unreliable networks, scale-out
    *guide_topology.situations(_RECONNECT, _SHORTPOLL),
)


# --- verdicts ------------------------------------------------------------------


def _name(rec: dict[str, Any]) -> str:
    return f"**{variant_label(rec['stack'], rec['transport'], rec['client'])}**"


def _cost_column(sit: Situation, rows: Any) -> str | None:
    fallbacks = ("server_rss_growth_bytes_per_conn", "server_rss_bytes_per_conn")
    for col in (sit.cost, *fallbacks, "server_cpu_us_per_msg"):
        if col in rows.columns and rows[col].notna().any():
            return col
    return None


@dataclass(frozen=True)
class Judged:
    """A situation's cells sorted out and its verdicts: the cells that qualified, the ones
    left out (with why), and the latency and cost :class:`~.verdict.Decision` among
    protocols (None: not judged here)."""

    good: tuple[dict[str, Any], ...]
    left_out: tuple[str, ...]
    latency: Decision | None
    cost: Decision | None
    cost_column: str | None


def judge_situation(sit: Situation, run: Run, rows: Any) -> Judged:
    """Qualify the cells ``rows`` of ``sit`` (measured; delivered ≥ :data:`MIN_DELIVERED`
    when latency counts; no row flag) and decide latency and cost among their protocols."""
    good, out = [], []
    for r in rows.to_dict("records"):
        frac = r.get("delivered_fraction")
        if r["ok"] == 0:
            out.append(f"{_name(r)}: not measured ({r['reasons'] or 'no ok repeat'})")
        elif sit.latency and (frac is None or frac != frac or frac < MIN_DELIVERED):
            out.append(f"{_name(r)}: delivered only {_cite(r, 'delivered_fraction')}")
        elif r.get("excluding_flags"):
            out.append(f"{_name(r)}: flagged {r['excluding_flags']}")
        else:
            good.append(r)
    cost = _cost_column(sit, rows)

    def repeats(rec: dict[str, Any], column: str) -> tuple[float, ...]:
        return _repeats(run, rec, column)

    latency = decide(sit.latency, good, repeats, cost) if sit.latency and good else None
    costed = decide(cost, good, repeats) if cost is not None and good else None
    return Judged(tuple(good), tuple(out), latency, costed, cost)


def _evidence(d: Decision) -> str:
    text = d.evidence(_fmt)
    return f" {text}." if text else ""


def _verdicts(sit: Situation, run: Run, rows: Any) -> tuple[list[str], list[str]]:
    """(verdict lines, left-out lines) for the cells ``rows`` of situation ``sit``."""
    j = judge_situation(sit, run, rows)
    if not j.good:
        return ["no cell qualified (see below)"], list(j.left_out)
    point = point_label({k: j.good[0].get(k) for k in (*SWEEP_KEY[3:], "rate_msgs_per_s")})
    lines: list[str] = []
    if j.latency is not None:
        best = j.latency.chosen.rec
        lines.append(
            f"Latency (p99): {j.latency.line()}. Best cell: {_name(best)} — p99 "
            f"{_cite(best, j.latency.column)}, p50 {_fmt('lat_p50_us', best['lat_p50_us'])}."
            f"{_evidence(j.latency)} Figure “Latency percentiles — {point}”."
        )
        if sit.key == "high-rate":
            lines.extend(_saturation_line(run))
    if j.cost is not None and j.cost_column is not None:
        cheap = j.cost.chosen.rec
        memory = "rss" in j.cost_column or j.cost_column.startswith("mem_")
        fig = "Server memory per connection" if memory else "Server CPU per delivered message"
        lines.append(
            f"Cost ({METRICS[j.cost_column].label}): {j.cost.line()}. Best cell: "
            f"{_name(cheap)} — {_cite(cheap, j.cost_column)}.{_evidence(j.cost)} "
            f"Figure “{fig}”."
        )
        if j.cost_column == "mem_marginal_bytes_per_conn":
            lines.append(
                "(memory here is marginal: what one more connection adds to the server's "
                "RSS, the first connections' fixed set-up left out)"
            )
        if sit.key == "idle" and (probes := idle_memory_line(run.path)):
            lines.append(probes)
        if sit.key == "idle":  # issue 18 item 2: the scale cells (report.scale)
            lines += scale_lines(run.cells)
        if j.cost_column == "server_rss_bytes_per_conn":
            lines.append(
                "(memory here is the server's whole RSS ÷ connections: this run predates "
                "the per-connection growth measurement)"
            )
    if j.latency is not None:
        lines.append(f"Simplicity: {_simplicity_line(j.latency)}.")
    else:
        lines.append(
            "Simplicity: not ranked without a latency requirement; see the properties below."
        )
    return lines, list(j.left_out)


def _simplicity_line(d: Decision) -> str:
    """The simplest protocol whose p99 is not behind the best beyond the rerun margin and
    the noise: the tie of :mod:`.verdict` (within the margin or not told apart)."""
    simplest = min(d.tied, key=lambda p: protocol_simplicity(p)[0])
    why = protocol_simplicity(simplest)[1]
    among = ", ".join(protocol_label(p) for p in d.tied)
    return (
        f"**{protocol_label(simplest)}** — the simplest protocol whose p99 is not behind "
        f"the best by more than the rerun margin beyond the noise (of {among}); {why}"
    )


def _repeats(run: Run, rec: dict[str, Any], column: str) -> tuple[float, ...]:
    """The ok repeats' values of ``column`` in the cell of summary row ``rec``."""
    rows = run.ok[run.ok["cell_id"] == rec["cell_id"]]
    return tuple(float(v) for v in rows[column].tolist() if v == v and v is not None)


def _saturation_line(run: Run) -> list[str]:
    marks = [m for m in saturation_marks(run) if m.max_rate is not None]
    if not marks:
        return [
            "Saturation: not known for this run (no rate sweep with an SLO); the "
            "`latency-vs-rate` scenario finds it."
        ]
    best = max(marks, key=lambda m: m.max_rate or 0.0)
    ident = dict(zip(SWEEP_KEY, best.key, strict=True))
    held = "" if best.lowest_failing is not None else " (the SLO held at every rate tried)"
    name = variant_label(ident["stack"], ident["transport"], ident["client"] or "python")
    return [
        f"Highest sustainable rate: **{name}** — "
        f"{best.max_rate:,.0f} msgs/s within p99 ≤ {best.slo.p99_us / 1000:g} ms and "
        f"≥ {best.slo.min_delivered_fraction:.0%} delivered{held}; figure “Latency against "
        "offered rate”."
    ]


def _per_transport_table(sit: Situation, rows: Any) -> doc.Table:
    """The best stack of each transport at the deciding point, with the deciding figures."""
    cost = _cost_column(sit, rows) or sit.cost
    cols = [
        c
        for c in ("lat_p50_us", "lat_p99_us", "server_cpu_us_per_msg", "bytes_in_per_msg", cost)
        if c in rows.columns
    ]
    cols = list(
        dict.fromkeys(
            cols if sit.latency else [cost, "server_cpu_fraction", "bytes_per_conn_per_s"]
        )
    )
    cols = [c for c in cols if c in rows.columns and rows[c].notna().any()]
    rank = cols[1] if sit.latency and len(cols) > 1 else (cols[0] if cols else None)
    best: dict[str, dict[str, Any]] = {}
    for r in rows[rows["ok"] > 0].to_dict("records"):
        cur = best.get(r["transport"])
        if rank is None or cur is None or (r[rank] == r[rank] and r[rank] < cur[rank]):
            best[r["transport"]] = r
    shown = sorted(best.values(), key=lambda r: style.order_key(r["transport"], r["stack"]))
    table_rows = [
        (variant_label(r["stack"], r["transport"], r["client"]), *(_fmt(c, r[c]) for c in cols))
        for r in shown
    ]
    header = (
        "best stack per transport",
        *(f"{METRICS[c].label} ({METRICS[c].unit})" for c in cols),
    )
    return doc.Table(
        header,
        tuple(table_rows),
        caption="medians over repeats; yellow: flagged, left out of the verdicts",
        flags=tuple("flagged" if r.get("excluding_flags") else "" for r in shown),
    )


def _deciding(sit: Situation, summary: Any) -> Any:
    """The cells of ``summary`` that decide ``sit`` (its selection, its transports)."""
    rows = sit.select(summary)
    allowed = sit.transports()
    if allowed is not None and len(rows):
        rows = rows[rows["transport"].isin(allowed)]
    return rows


def _situation(sit: Situation, run: Run, summary: Any) -> doc.Section:
    rows = _deciding(sit, summary)
    blocks: list[doc.Block] = [doc.Paragraph(f"Situation: {sit.need}.")]
    if not len(rows) or not (rows["ok"] > 0).any():
        skipped = _skipped(sit, summary)
        blocks.append(
            doc.Missing(
                "Not measured in this run",
                f"run `make bench SCENARIO={sit.scenario}`{skipped}",
            )
        )
    else:
        point = point_label(rows.iloc[0].to_dict())
        blocks.append(doc.Paragraph(f"Decided at **{point}** ({len(rows)} cells)."))
        lines, out = _verdicts(sit, run, rows)
        blocks.append(doc.Bullets(tuple(lines)))
        if out:
            blocks.append(doc.Note("Left out: " + "; ".join(out) + ".", warning=True))
        blocks.append(_per_transport_table(sit, rows))
    # issue 12 item 8 (h33): what the run's cells say beside the verdicts, measured or not
    notes = sit.notes(run, rows) if sit.notes is not None else None
    if notes is not None and notes.facts:
        blocks.append(doc.Bullets(notes.facts))
    static = sit.caveats if notes is None or notes.caveats is None else notes.caveats
    caveats = [*static, *_measured_caveats(sit, rows)]
    blocks.append(doc.Paragraph("Caveats: " + "; ".join(caveats) + "."))
    return doc.Section(sit.title, f"guide-{sit.key}", tuple(blocks))


def _skipped(sit: Situation, summary: Any) -> str:
    """Cells the run planned for this situation but could not measure (skipped or failed)."""
    if sit.key != "chat":
        return ""
    planned = summary[summary["publishers"] > 0]
    if not len(planned):
        return ""
    reasons = "; ".join(dict.fromkeys(r for r in planned["reasons"] if r))
    return f" — this run planned {len(planned)} such cells, none measured: {reasons}"


def _measured_caveats(sit: Situation, rows: Any) -> list[str]:
    out: list[str] = []
    if "poll_interval_s" not in rows.columns:
        return out
    # Transports that poll on an interval (their rows take poll_interval_s): the interval,
    # not the transport, sets their latency.
    for row in registry.transports():
        if "poll_interval_s" not in row.params:
            continue
        for r in rows[(rows["transport"] == row.name) & (rows["ok"] > 0)].to_dict("records"):
            iv = r.get("poll_interval_s")
            if iv == iv and iv:
                out.append(
                    f"here {row.label} ({r['stack']}) polls every {iv * 1000:g} ms and its "
                    f"p50 is {_fmt('lat_p50_us', r['lat_p50_us'])}: about half the interval"
                )
                break
    return out


def _summary(run: Run) -> Any:
    """The run's per-cell medians the guide reads: the listed cells, not the probes."""
    summary = guide_topology.with_servers(run, run.summary())  # h33: `servers` when run
    if "probe" in summary.columns:
        summary = summary[~summary["probe"].astype(bool)]
    return summary


def section(run: Run) -> doc.Section:
    """The whole decision guide of ``run``."""
    summary = _summary(run)
    intro = doc.Paragraph(
        "Computed from this run, not written in advance: a different machine or scenario can "
        "change every verdict. Protocols are compared, each at its best stack and client; a "
        "cell counts when it delivered "
        f"≥ {MIN_DELIVERED:.0%} and carries no flag ({rule_text()}). A protocol wins on "
        "latency (p99) or cost (server CPU per message; memory per connection when idle) "
        "only when every other protocol is behind it beyond the repeats' noise (the rule of "
        "`pushbench compare`: t test on the log repeats, Holm-corrected); the others tie "
        "with it — those within the rerun margin, and those further but not beyond the "
        "noise (*not told apart*: more repeats would tell; the evidence says which) — and "
        "the tie is broken by simplicity, then cost, never by the lowest median alone. "
        "Simplicity = the simplest protocol whose p99 is not behind the best by more than "
        "the rerun margin beyond the noise (the order SSE, short polling, long polling, "
        "WebSocket is a stated property, not measured)."
    )
    return doc.Section(
        "Decision guide",
        "guide",
        (intro,),
        tuple(_situation(s, run, summary) for s in SITUATIONS),
    )


def _plain(text: str) -> str:
    """Text without the document's inline marks (``**bold**``, backticks)."""
    return text.replace("**", "").replace("`", "")


def text(run: Run, width: int = 100) -> str:
    """The guide's verdicts as plain text for a terminal: per situation, the point that
    decided it and its latency, cost and simplicity verdicts (or the scenario that
    measures it), without the tables and caveats of the report."""
    summary = _summary(run)
    out = ["Decision guide (protocols compared beyond the repeats' noise; evidence in the report):"]
    stolen = contention.stolen(run.cells, run.meta.get("speed"))

    def say(line: str, indent: str = "  ") -> None:
        wrapped = textwrap.wrap(
            _plain(line),
            width,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_on_hyphens=False,  # cell ids stay whole
            break_long_words=False,
        )
        out.extend(wrapped)

    if stolen:
        say(f"Warning: {stolen}")
    for sit in SITUATIONS:
        rows = _deciding(sit, summary)
        if not len(rows) or not (rows["ok"] > 0).any():
            say(f"{sit.title}: not measured in this run (make bench SCENARIO={sit.scenario})")
            continue
        say(f"{sit.title}, decided at {point_label(rows.iloc[0].to_dict())}:")
        lines, left_out = _verdicts(sit, run, rows)
        for line in lines:
            say(line, "    ")
        if left_out:
            say("Left out: " + "; ".join(left_out), "    ")
    return "\n".join(out)


def verdict_lines(run: Run) -> list[str]:
    """Every situation's verdicts without their figures (:meth:`~.verdict.Decision.line`):
    what two runs of the same code whose repeats differ only by noise must agree on."""
    summary = _summary(run)
    out = []
    for sit in SITUATIONS:
        rows = _deciding(sit, summary)
        if not len(rows) or not (rows["ok"] > 0).any():
            out.append(f"{sit.key}: not measured")
            continue
        j = judge_situation(sit, run, rows)
        if not j.good:
            out.append(f"{sit.key}: no cell qualified")
            continue
        if j.latency is not None:
            out.append(f"{sit.key} latency: {_plain(j.latency.line())}")
            out.append(f"{sit.key} simplicity: {_plain(_simplicity_line(j.latency))}")
        if j.cost is not None:
            out.append(f"{sit.key} cost: {_plain(j.cost.line())}")
    return out
