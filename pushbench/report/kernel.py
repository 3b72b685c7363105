"""The report's loopback floor: how much of each CPU-per-message figure is the kernel's.

Reads the run's ``metadata.json`` ``kernel_floor`` records (:mod:`pushbench.netfloor`,
measured before the first cell at each load the cells push) and the cells' stored CPU
figures; re-runs nothing. Two tables: the floor at each load (CPU per segment of a
compiled sender on the server's core and a compiled receiver on a client's), and each
probed cell's server and client CPU per message over it — 1.0× is a stack (or a client)
that costs nothing above the kernel. A client ÷ server ratio cannot go much below the
floor's receive ÷ send, however light the client.
"""

from __future__ import annotations

from typing import Any

from . import doc
from .load import Run

__all__ = ["blocks"]

_WHAT = (
    "What the kernel alone charges, measured before the first cell and after the last at "
    "each load the cells push: a compiled loop on the server's core sends one {seg}-byte "
    "segment (a WebSocket frame of a 100-byte payload in its envelope) to each connection "
    "every tick, a compiled "
    "epoll loop on a client's core reads them; CPU per segment on each side. On loopback the "
    "send includes the receiver's TCP input and the receive includes the ACKs it sends. "
    "These are the least CPU per message any server and any client could spend at that load "
    "on this machine; a poll also carries a request per answer, so its floor is higher."
)


def _us(ns: float) -> str:
    return f"{ns / 1000:,.2f}"


def blocks(run: Run) -> list[doc.Block]:
    floors: list[dict[str, Any]] = run.meta.get("kernel_floor") or []
    if not floors:
        return [
            doc.Missing(
                "Kernel floor",
                "this run has no kernel_floor record (runs before cells schema 23, or run "
                "with --no-kernel-floor); `pushbench net-floor` measures it alone",
            )
        ]
    rows, seg = [], 0
    order = {"start": 0, "end": 1}
    for f in sorted(
        floors, key=lambda f: (-f["connections"] * f["rate"], order.get(str(f.get("when")), 2))
    ):
        load = f"{f['connections']:,} × {f['rate']:,}/s"
        when = str(f.get("when", "—"))
        if "error" in f:
            rows.append((load, when, "—", "—", "—", f"failed: {f['error']}"))
            continue
        seg = f["segment_bytes"]
        how = "compiled" if f["compiled"] else "Python (upper bound)"
        rows.append(
            (
                load,
                when,
                _us(f["send_ns"]),
                _us(f["recv_ns"]),
                f"{f['recv_ns'] / f['send_ns']:.2f}",
                f"{how}, {f['received']:,}/{f['sent']:,} received",
            )
        )
    out: list[doc.Block] = [
        doc.Paragraph(_WHAT.format(seg=seg or "small")),
        doc.Table(
            (
                "connections × segments/s",
                "when",
                "send µs",
                "receive µs",
                "receive ÷ send",
                "loops",
            ),
            tuple(rows),
            caption="CPU per segment (user + system) of each side over its window, measured "
            "before the first cell and after the last: the difference is the host's drift over "
            "the run. The cells below are read against the mean of the two.",
        ),
    ]
    out += _cells(run)
    return out


def _cells(run: Run) -> list[doc.Block]:
    cells = run.cells
    need = ("kernel_floor_send_ns", "kernel_floor_recv_ns", "server_cpu_us_per_msg")
    if not all(c in cells for c in need):
        return []
    ok = cells[(cells["status"] == "ok") & cells["kernel_floor_send_ns"].notna()]
    if not len(ok):
        return []
    rows = []
    for cell_id, g in ok.groupby("cell_id", sort=False):
        server = float(g["server_cpu_us_per_msg"].median())
        send = float(g["kernel_floor_send_ns"].median()) / 1000
        recv = float(g["kernel_floor_recv_ns"].median()) / 1000
        rate = g.get("delivered_msgs_per_client_cpu_s")
        client = 1e6 / float(rate.median()) if rate is not None and rate.median() > 0 else None
        rows.append(
            (
                str(cell_id),
                f"{server:,.2f}",
                f"{server / send:.2f}×",
                "—" if client is None else f"{client:,.2f}",
                "—" if client is None else f"{client / recv:.2f}×",
                "—" if client is None or not server else f"{client / server:.2f}",
            )
        )
    return [
        doc.Table(
            (
                "cell",
                "server µs/msg",
                "÷ send floor",
                "client µs/msg",
                "÷ receive floor",
                "client ÷ server",
            ),
            tuple(rows),
            caption="Medians over the ok repeats. 1.0× is nothing above the kernel for a "
            "transport that sends each message in a segment of its own (WebSocket, SSE, a "
            "long poll answering one message); one that batches (a short poll, a long poll "
            "that fell behind) shares a segment among messages and can read below 1; a "
            "server saturated near 100 % of its core reads 1 ÷ its rate.",
        )
    ]
