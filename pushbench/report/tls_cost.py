"""The report's "TLS" table: each TLS cell beside its plaintext twin (issue 12 item 2).

A cell with ``tls`` true and the cell with every other parameter equal but ``tls``
false (its id without ``-tls``) ran in the same run, interleaved round by round, so
their difference is TLS's: the handshake (TCP connect, then the TLS handshake, both
medians over connections; the whole connect time to ready; the handshake's TCP payload
bytes per connection, the TLS records and certificate included) and the CPU per
delivered message of the server and of the clients, on against off. Figures are the
medians over the ok repeats (the run's summary); nothing is measured here.

A run without a TLS pair gets no section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import doc, style
from .load import IDENTITY, POINT, Run, point_label
from .pairs import number, same_but, twin_key

__all__ = ["TlsPair", "section", "tls_pairs"]

#: What must be equal for two cells to be a pair (``tls`` aside).
#: tls_at (h42: end to end behind a proxy) goes with tls: its plaintext twin has none.
_SAME: tuple[str, ...] = tuple(c for c in same_but("tls", *IDENTITY) if c != "tls_at")


@dataclass(frozen=True)
class TlsPair:
    """One TLS cell (``on``) and its plaintext twin (``off``): summary rows."""

    on: dict[str, Any]
    off: dict[str, Any]

    def get(self, side: str, column: str) -> float | None:
        return number((self.on if side == "on" else self.off).get(column))

    def client_cpu_us_per_msg(self, side: str) -> float | None:
        """Client CPU per delivered message: the inverse of the client capacity column."""
        capacity = self.get(side, "delivered_msgs_per_client_cpu_s")
        return None if not capacity else 1e6 / capacity


def tls_pairs(run: Run) -> list[TlsPair]:
    """Every (TLS cell, plaintext twin) pair of the run's grid, in report order."""
    summary = run.summary()
    if "tls" not in summary or not summary["tls"].astype(bool).any():
        return []
    if "probe" in summary:
        summary = summary[~summary["probe"].astype(bool)]
    recs = summary.to_dict("records")
    plain = {twin_key(r, _SAME): r for r in recs if not bool(r.get("tls"))}
    out = [
        TlsPair(r, plain[twin_key(r, _SAME)])
        for r in recs
        if bool(r.get("tls")) and twin_key(r, _SAME) in plain
    ]
    out.sort(key=lambda p: (style.order_key(p.on["transport"], p.on["stack"]), _load(p.on)))
    return out


def _load(rec: dict[str, Any]) -> tuple[float, ...]:
    return tuple(number(rec.get(c)) or 0.0 for c in ("subscribers", "rate_msgs_per_s"))


def _fmt(v: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "—" if v is None else f"{v / scale:.{digits}g}"


def _off_on(off: float | None, on: float | None, scale: float = 1.0) -> str:
    """``off → on (×ratio)``."""
    text = f"{_fmt(off, scale)} → {_fmt(on, scale)}"
    if off and on is not None:
        text += f" (×{on / off:.2f})"
    return text


def _row(p: TlsPair) -> tuple[str, ...]:
    point = {c: p.on.get(c) for c in POINT if c in p.on and c != "tls"}
    hs_off, hs_on = (
        p.get("off", "handshake_bytes_per_conn"),
        p.get("on", "handshake_bytes_per_conn"),
    )
    extra = "—" if hs_off is None or hs_on is None else f"+{hs_on - hs_off:,.0f}"
    return (
        f"{p.on['transport']} · {p.on['stack']}",
        point_label(point),
        _fmt(p.get("on", "tcp_connect_p50_us"), 1e3),
        _fmt(p.get("on", "tls_handshake_p50_us"), 1e3),
        _off_on(p.get("off", "connect_p50_us"), p.get("on", "connect_p50_us"), 1e3),
        f"{_fmt(hs_off, 1, 4)} → {_fmt(hs_on, 1, 4)} ({extra})",
        _off_on(p.get("off", "server_cpu_us_per_msg"), p.get("on", "server_cpu_us_per_msg")),
        _off_on(p.client_cpu_us_per_msg("off"), p.client_cpu_us_per_msg("on")),
        _off_on(p.get("off", "bytes_in_per_msg"), p.get("on", "bytes_in_per_msg")),
        f"{p.on.get('ok', 0)}/{p.on.get('runs', 0)} · {p.off.get('ok', 0)}/{p.off.get('runs', 0)}",
    )


def section(run: Run) -> list[doc.Section]:
    """``[Section]`` with the TLS table, or ``[]`` when the run has no TLS pair."""
    pairs = tls_pairs(run)
    if not pairs:
        return []
    flags = []
    for p in pairs:
        bad = not p.on.get("ok") or not p.off.get("ok")
        bound = bool(p.on.get("harness_bound")) or bool(p.off.get("harness_bound"))
        flags.append("failed" if bad else "flagged" if bound else "")
    table = doc.Table(
        (
            "transport · stack",
            "load",
            "TCP connect p50 (ms)",
            "TLS handshake p50 (ms)",
            "connect to ready p50 (ms, off → on)",
            "handshake TCP payload (B/conn, off → on)",
            "server CPU (µs/msg, off → on)",
            "client CPU (µs/msg, off → on)",
            "TCP payload in (B/msg, off → on)",
            "ok/runs (on · off)",
        ),
        tuple(_row(p) for p in pairs),
        caption="Each TLS cell beside its plaintext twin (same parameters, same run): medians "
        "over the ok repeats. TCP connect and TLS handshake: the connect's two first phases "
        "(our light clients time them; — for the aiohttp clients); connect to ready: up to the "
        "101 or the first response. The handshake bytes' difference is TLS's (records, the "
        "server's certificate, session tickets). Client CPU: 1 ÷ client capacity. Red: a side "
        "measured nothing; yellow: a side was harness-bound.",
        flags=tuple(flags),
    )
    intro = doc.Paragraph(
        "TLS 1.3 with Python's `ssl` defaults on both sides; the server holds an ECDSA P-256 "
        "certificate made for the run (`pushbench.tls`: a throwaway CA, no intermediate) and "
        "every client verifies it against that CA. Loopback: the handshake's round trips cost "
        "almost nothing here, so its time is mostly the two sides' cryptography."
    )
    return [doc.Section("TLS", "tls", (intro, table))]
