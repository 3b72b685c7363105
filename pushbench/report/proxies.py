"""The report's "Behind a proxy" table (h27, issue 12 item 1): each proxied cell beside
its direct twin.

A cell with ``via`` other than ``direct`` and the cell with every other parameter equal
and ``via = "direct"`` measured the same load with and without the proxy, in the same
run: the table gives what the proxy added to the p50 and p99 latency (medians over the
ok repeats, proxied − direct), the proxy's own CPU per delivered message
(``proxy_cpu_us_per_msg``), the server's CPU per message on both sides, the client's
TCP payload bytes per message on both sides, and the status line the WebSocket upgrade
got. A proxied cell that failed shows its reason (a naive proxy that refused the
upgrade, a stream it withheld). Reads stored cells only; a run without proxied cells
gets no section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import doc, style
from .load import IDENTITY, POINT, Run, point_label, summarize
from .pairs import number, same_but, twin_key

__all__ = ["ProxyRow", "proxy_rows", "section"]

#: The columns the table reads, medians over the ok repeats.
COLUMNS: tuple[str, ...] = (
    "lat_p50_us",
    "lat_p99_us",
    "proxy_cpu_us_per_msg",
    "server_cpu_us_per_msg",
    "bytes_in_per_msg",
    "delivered_fraction",
    "errors",
    "reconnects",
)
#: What must be equal for a proxied cell and its direct twin (``via`` aside).
#: tls_at (h42: TLS end to end behind a proxy) goes with via: direct TLS has no such value.
_SAME: tuple[str, ...] = tuple(c for c in same_but("via", *IDENTITY) if c != "tls_at")


def _proxied(via: Any) -> bool:
    """Whether a row's ``via`` names a proxy (a run older than the column: direct)."""
    return isinstance(via, str) and via not in ("", "direct")


@dataclass(frozen=True)
class ProxyRow:
    """A proxied cell (``proxied``: its summary row) and its direct twin's (or None)."""

    proxied: dict[str, Any]
    direct: dict[str, Any] | None
    upgrade_status: str

    def added(self, column: str) -> float | None:
        """Proxied median − direct median of ``column`` (None when either is missing)."""
        if self.direct is None:
            return None
        a, b = number(self.proxied.get(column)), number(self.direct.get(column))
        return None if a is None or b is None else a - b


def proxy_rows(run: Run) -> list[ProxyRow]:
    """Every proxied cell of the run (``via`` not direct) with its direct twin."""
    cells = run.cells
    if "via" not in cells.columns or not cells["via"].map(_proxied).any():
        return []
    if "probe" in cells.columns:
        cells = cells[~cells["probe"].astype(bool)]
    recs = summarize(cells, COLUMNS).to_dict("records")
    status: dict[str, str] = {}
    if "upgrade_status" in cells.columns:
        for cell_id, value in zip(cells["cell_id"], cells["upgrade_status"], strict=True):
            if isinstance(value, str) and value:
                status.setdefault(str(cell_id), value)
    direct = {twin_key(r, _SAME): r for r in recs if not _proxied(r.get("via"))}
    out = [
        ProxyRow(r, direct.get(twin_key(r, _SAME)), status.get(str(r["cell_id"]), ""))
        for r in recs
        if _proxied(r.get("via"))
    ]
    out.sort(key=lambda p: style.order_key(p.proxied["transport"], p.proxied["stack"]))
    return out


def _us(v: float | None) -> str:
    return "—" if v is None else f"{v:+,.0f}"


def _pair(row: ProxyRow, column: str) -> str:
    a = number(row.proxied.get(column))
    b = None if row.direct is None else number(row.direct.get(column))
    return f"{'—' if a is None else f'{a:.3g}'} / {'—' if b is None else f'{b:.3g}'}"


def section(run: Run) -> list[doc.Section]:
    """``[Section]`` with the proxy table, or ``[]`` when no cell had a proxy in front."""
    rows = proxy_rows(run)
    if not rows:
        return []
    body, flags = [], []
    for p in rows:
        r = p.proxied
        point = {c: r.get(c) for c in POINT if c in r and c != "via"}
        cpu = number(r.get("proxy_cpu_us_per_msg"))
        failed = not r.get("ok")
        body.append(
            (
                f"{r['transport']} · {r['stack']}",
                str(r["via"]),
                point_label(point),
                _us(p.added("lat_p50_us")),
                _us(p.added("lat_p99_us")),
                "—" if cpu is None else f"{cpu:.3g}",
                _pair(p, "server_cpu_us_per_msg"),
                _pair(p, "bytes_in_per_msg"),
                p.upgrade_status or "—",
                f"{r.get('ok', 0)}/{r.get('runs', 0)}"
                + (f": {str(r.get('reasons', ''))[:160]}" if failed else ""),
            )
        )
        flags.append("failed" if failed else "")
    table = doc.Table(
        (
            "transport · stack",
            "via",
            "load",
            "added p50 µs",
            "added p99 µs",
            "proxy CPU µs/msg",
            "server CPU µs/msg (proxied / direct)",
            "bytes in/msg (proxied / direct)",
            "upgrade answer",
            "ok/runs",
        ),
        tuple(body),
        caption="Each cell with a proxy in front beside the same cell direct, same run: "
        "medians over the ok repeats; added = proxied − direct. Proxy CPU: the proxy "
        "process on the server CPUs, per delivered message. Upgrade answer: the status "
        "line (and Server header) the WebSocket clients got. Red: failed (the reason "
        "follows the count).",
        flags=tuple(flags),
        numeric=False,
    )
    intro = doc.Paragraph(
        "nginx, Caddy and HAProxy started by the runner for every cell, configured for push "
        "(via = the proxy) or naive (via = proxy-naive: the defaults and a short idle "
        "timeout; pushbench.proxies). Direct cells have no proxy."
    )
    return [doc.Section("Behind a proxy", "proxies", (intro, table))]
