"""The report's "Network conditions" section: each profile as declared, the relay's
calibration as measured, and beside them what each transport's latency became.

Reads the run's stored ``netem.json`` (written by the runner before its first cell:
profiles, where the relay ran, the calibration records of
:class:`pushbench.netem.probe.Calibration`) and its cells; runs nothing. A run without
relayed cells gets no section.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pushbench.netem.probe import TOLERANCE_MS, Calibration

from . import doc, style
from .load import Run

__all__ = ["NETEM_FILE", "latency_rows", "section"]

NETEM_FILE = "netem.json"


def _ms(us: Any) -> str:
    try:
        v = float(us)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(v) else f"{v / 1000:.2f}"


def _num(v: Any, fmt: str = ".2f") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(f) else format(f, fmt)


def _profile_rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    cal = {c["net"]: Calibration.from_dict(c) for c in data.get("calibration", [])}
    rows: list[tuple[str, ...]] = []
    for name, p in data.get("profiles", {}).items():
        up, down = p["up"], p["down"]
        cap = "/".join(
            f"{d['rate_bytes_per_s'] / 1000:g} kB/s" if d["rate_bytes_per_s"] else "—"
            for d in (up, down)
        )
        c = cal.get(name)
        measured = ("—",) * 4
        if c is not None:
            verdict = "yes" if c.within_tolerance else "NO"
            measured = (
                f"{c.up.mean_ms:.2f} (p99 {c.up.p99_ms:.2f})",
                f"{c.down.mean_ms:.2f} (p99 {c.down.p99_ms:.2f})",
                f"{c.rtt_added_mean_ms:.2f} ({c.error_ms:+.2f})",
                f"{verdict} ({c.probes} probes)",
            )
        rows.append(
            (
                str(name),
                f"{up['delay_ms']:g} ± {up['jitter_ms']:g}",
                f"{down['delay_ms']:g} ± {down['jitter_ms']:g}",
                f"{p['rtt_ms']:g}",
                cap,
                *measured,
            )
        )
    return rows


def latency_rows(run: Run) -> list[tuple[str, ...]]:
    """(transport · stack, net, p50 ms, p99 ms, p50 shift over loopback ms, relay CPU/msg)
    for every cell of the grid that has a ``net`` column, medians over ok repeats."""
    if not run.has("net"):
        return []
    summary = run.summary()
    if "probe" in summary:
        summary = summary[~summary["probe"].astype(bool)]
    ok = run.ok
    recs = summary.to_dict("records")
    base: dict[tuple[Any, ...], float] = {}
    key_cols = ("stack", "transport", "client", "subscribers", "rate_msgs_per_s", "payload_bytes")
    for r in recs:
        if r.get("net") == "loopback" and r.get("lat_p50_us") is not None:
            base[tuple(r.get(c) for c in key_cols)] = float(r["lat_p50_us"])
    rows: list[tuple[str, ...]] = []
    recs.sort(key=lambda r: style.order_key(str(r["transport"]), str(r["stack"])))
    for r in recs:
        b = base.get(tuple(r.get(c) for c in key_cols))
        p50 = r.get("lat_p50_us")
        shift = "—" if b is None or p50 is None or r.get("net") == "loopback" else _ms(p50 - b)
        relay = "—"
        if "relay_cpu_us_per_msg" in ok:
            values = ok[ok["cell_id"] == r["cell_id"]]["relay_cpu_us_per_msg"].dropna()
            relay = _num(values.median()) if len(values) else "—"
        rows.append(
            (
                f"{r['transport']} · {r['stack']}",
                str(r.get("net")),
                _ms(p50),
                _ms(r.get("lat_p99_us")),
                shift,
                relay,
            )
        )
    return rows


def section(run: Run) -> list[doc.Section]:
    """``[Section]`` for a run with relayed cells (its ``netem.json``), else ``[]``."""
    path = run.path / NETEM_FILE
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    blocks: list[doc.Block] = [
        doc.Paragraph(
            "Cells with a `net` other than loopback ran through pushbench's userspace relay "
            "(this kernel has no netem): delays are **one-way, per direction** (up: client → "
            "server, down: server → client), jitter uniform and seeded, never reordering "
            "bytes; caps are token buckets. A pushed message pays the down delay; a poll "
            "request the up delay and its answer the down delay. The relay ran pinned to "
            f"CPUs {data.get('relay_cpus')} ({data.get('relay_pinning', '')}). Measured: the "
            "calibration before the first cell, probes on an echo path through the relay "
            f"minus the same probes without it; the bar is ±{TOLERANCE_MS:g} ms on the round "
            "trip."
        ),
        doc.Table(
            (
                "net",
                "up ms",
                "down ms",
                "RTT ms",
                "cap up/down",
                "measured up ms",
                "measured down ms",
                "measured RTT ms (error)",
                f"within ±{TOLERANCE_MS:g} ms",
            ),
            tuple(_profile_rows(data)),
            caption="Profiles as declared (one-way delay ± jitter) and the relay's calibration",
        ),
    ]
    rows = latency_rows(run)
    if rows:
        blocks.append(
            doc.Table(
                ("transport", "net", "p50 ms", "p99 ms", "p50 − loopback ms", "relay CPU µs/msg"),
                tuple(rows),
                caption="Corrected latency by network profile (medians over ok repeats): "
                "long polling pays a round trip per batch, short polling its interval, "
                "WebSocket and SSE the one-way delay",
            )
        )
    return [doc.Section("Network conditions", "network", tuple(blocks))]
