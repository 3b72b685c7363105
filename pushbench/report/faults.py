"""The report's "Faults" section (issue 12 item 5, h32): fault cells, from cells.csv alone.

Two tables from the fault columns (:mod:`pushbench.schema.outage`): the reconnect time
distribution per fault × transport × client (the medians of the repeats' p50, p99 and max
from the fault to each client's first message after it was lifted), with loss and
duplicates across the resume and the storm's peak; then every fault cell × repeat. Each
row names how its client comes back: our WebSocket and polling clients' exponential back-off
with full jitter, our SSE client's EventSource rule (the server's ``retry:``, no jitter),
or Chromium's own EventSource.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import doc
from .load import Run

__all__ = ["COLUMNS", "comeback", "label", "section"]

#: (column, header, format of the value): the per-repeat table, table-driven.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("fault_restored_ms", "lifted after ms", "{:,.0f}"),
    ("reconnect_p50_ms", "reconnect p50 ms", "{:,.0f}"),
    ("reconnect_p99_ms", "reconnect p99 ms", "{:,.0f}"),
    ("reconnect_max_ms", "reconnect max ms", "{:,.0f}"),
    ("reconnected_clients", "clients back", "{:,.0f}"),
    ("fault_msgs_lost", "lost", "{:,.0f}"),
    ("fault_msgs_duplicated", "duplicated", "{:,.0f}"),
    ("storm_peak_per_100ms", "storm peak /100 ms", "{:,.0f}"),
)
_MUST_BE_ZERO = ("fault_msgs_lost",)
_SUMMARY_HEADER = (
    "transport · client",
    "fault",
    "comes back by",
    "reconnect p50 ms",
    "p99 ms",
    "max ms",
    "lost",
    "duplicated",
    "storm peak /100 ms",
)


def comeback(transport: str, client: str) -> str:
    """How a client of ``transport`` and ``client`` reconnects after a fault."""
    if client == "browser":
        sse = "Chromium EventSource (its retry, Last-Event-ID)"
        return sse if transport.startswith("sse") else "the page's back-off"
    if transport.startswith("sse"):
        return "EventSource rule (server's retry:, no jitter)"
    return "exponential back-off, full jitter"


def _fmt(fmt: str, value: Any) -> str:
    if value is None or value != value:
        return "—"
    return fmt.format(float(value))


def _who(r: dict[str, Any]) -> str:
    return f"{r['transport']} · {r['client']} · {r['stack']}"


def label(r: dict[str, Any], clients: bool = True) -> str:
    """The fault as the tables show it: cells.csv's ``fault``, and for a server-kill of
    one node of several (h41) which node of how many (and the clients it had)."""
    node = r.get("fault_node")
    if node is None or node != node:  # empty: not a node kill (or an older run)
        return str(r["fault"])
    n = r.get("fault_node_clients") if clients else None
    had = "" if n is None or n != n else f", {n:,.0f} clients on it"
    return f"{r['fault']} · node {node:.0f} of {r.get('servers', '?')}{had}"


def section(run: Run) -> list[doc.Section]:
    """``[Section]`` with the faults tables, or ``[]`` when the run has no fault cell."""
    cells = run.cells
    if "fault" not in cells:
        return []
    faulty = cells["fault"].fillna("").astype(str) != ""
    if not faulty.any():
        return []
    ok = cells[faulty & (cells["status"] == "ok")]
    ok = ok.assign(shown=[label(r, clients=False) for r in ok.to_dict("records")])  # h41
    blocks: list[doc.Block] = [
        doc.Paragraph(
            "A fault in the measured window: server-kill (SIGKILL, the same server started "
            "again on its port), proxy-restart (the proxy in front killed and started again) "
            "or broker-pause (Redis stopped, then continued). Reconnect times run per client "
            "from the fault to its first message after the fault was lifted, so they include "
            "the outage itself ('lifted after'). Lost and duplicated count the window's seq "
            "range on every connection (0 expected where resume applies: the Redis hub keeps "
            "the history across a server restart; the in-process hub does not, and its "
            "server-kill cells are skipped saying so). The storm peak is the most connections "
            "the clients established in any 100 ms after the fault (from the first messages "
            "for the browser, which reports no connection times). A server-kill of one "
            "node of several behind nginx names the node and the clients it had; those "
            "clients alone are timed and counted back (from the fault to their first message "
            "after their reconnect, through nginx to a live node, which resumes them from "
            "the broker's history), the others never stopped receiving."
        )
    ]
    skipped = cells[faulty & (cells["status"] != "ok")]
    if not ok.empty:
        groups = ok.groupby(["shown", "transport", "client"], sort=True)
        summary, summary_flags = [], []
        for (fault, transport, client), g in groups:
            med = g[["reconnect_p50_ms", "reconnect_p99_ms", "reconnect_max_ms"]].median()
            lost = pd.to_numeric(g["fault_msgs_lost"]).sum()
            summary_flags.append("failed" if lost > 0 else "")
            summary.append(
                (
                    f"{transport} · {client}",
                    str(fault),
                    comeback(str(transport), str(client)),
                    *(_fmt("{:,.0f}", med[c]) for c in med.index),
                    _fmt("{:,.0f}", lost),
                    _fmt("{:,.0f}", pd.to_numeric(g["fault_msgs_duplicated"]).sum()),
                    _fmt("{:,.0f}", pd.to_numeric(g["storm_peak_per_100ms"]).max()),
                )
            )
        blocks.append(
            doc.Table(
                _SUMMARY_HEADER,
                tuple(summary),
                caption="Reconnect time per transport: medians over the repeats of each "
                "cell's p50, p99 and max over its clients; lost and duplicated summed over "
                "the repeats; the highest storm peak.",
                flags=tuple(summary_flags),
            )
        )
        rows, flags = [], []
        for r in ok.to_dict("records"):
            rows.append(
                (
                    _who(r),
                    label(r),  # h41: a node kill's node and its clients
                    *(_fmt(f, r.get(c)) for c, _, f in COLUMNS),
                    str(r.get("storm_source") or "—"),
                )
            )
            flags.append("failed" if any((r.get(c) or 0) > 0 for c in _MUST_BE_ZERO) else "")
        blocks.append(
            doc.Table(
                ("transport · client · stack", "fault", *(h for _, h, _ in COLUMNS), "storm from"),
                tuple(rows),
                caption="One row per fault cell × repeat; failed: it lost messages.",
                flags=tuple(flags),
            )
        )
    else:
        blocks.append(doc.Missing("Faults", "no fault cell measured (every repeat failed)"))
    if not skipped.empty:
        reasons = sorted({f"{_who(r)}: {r['reason']}" for r in skipped.to_dict("records")})
        blocks.append(doc.Bullets(tuple(f"not measured — {x}" for x in reasons)))
    return [doc.Section("Faults: reconnect and resume", "faults", tuple(blocks))]
