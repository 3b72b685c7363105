"""The decision guide's production situations (issue 12 item 8): behind proxies, TLS,
unreliable networks and scale-out, computed from the run's ``via``, ``tls``, ``net`` and
``servers`` cells.

Each situation is a :class:`~.situation.Situation` the guide judges like the others
(protocols at their best cell, the rerun margin beyond the repeats' noise) plus
:class:`~.situation.Notes`: facts that cite their cells —

- **behind restrictive proxies**: the verdict is among each transport's cells at its
  *worst* naive proxy config (``via = "<proxy>-naive"``: a refused upgrade or a withheld
  stream leaves the transport out, with the reason); the notes say which transports
  survived each naive config (idle cuts included) and what each good config added to
  p50 and p99 over the direct twin, with the proxy's CPU per message. Without proxied
  cells the old reading stands: the plain-HTTP transports, direct on loopback;
- **production (TLS)**: the verdict among the TLS cells; the notes give each pair's
  handshake (TCP connect, TLS, bytes) and server and client CPU per message on against
  off (:mod:`.tls_cost`'s pairs);
- **unreliable networks**: the verdict at the measured profile with the longest round
  trip; the notes give each transport's p50 and p99 per profile and the p50's growth in
  round trips of the profile (``pushbench.netem.PROFILES``);
- **scale-out**: cells with ``servers`` > 1 (the dimension h31 adds; absent: not
  measured, ``pushbench run scaleout``), each against its one-server twin.

Every "added" figure is judged by the guide's rule: the log t test of
:func:`~.stats.ratio_test` with the column's rerun margin
(:func:`~.verdict.rerun_margin`), Holm-corrected over the comparisons of one list.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from pushbench import registry
from pushbench.netem import PROFILES

from . import http2, stats
from .load import IDENTITY, METRICS, Run, variant_label
from .pairs import number, same_but, twin_key
from .proxies import proxy_rows
from .situation import (
    MIN_DELIVERED,
    Notes,
    Situation,
    fmt,
    low_rate,
    one_point,
    pushed,
    python_cells,
)
from .tls_cost import tls_pairs
from .verdict import rerun_margin

__all__ = ["added", "plain_http", "rtt_ms", "situations", "with_servers"]

SCALEOUT_COMMAND = "pushbench run scaleout"


def _naive(via: Any) -> bool:
    return isinstance(via, str) and via.endswith("-naive")


def _proxied(via: Any) -> bool:
    return isinstance(via, str) and via not in ("", "direct")


def rtt_ms(net: Any) -> float:
    """The round trip a ``net`` profile adds (0 for loopback or an unknown name)."""
    p = PROFILES.get(str(net)) if net else None
    return 0.0 if p is None else p.rtt_ms


def _label(r: dict[str, Any]) -> str:
    return variant_label(r["stack"], r["transport"], r["client"])


def _ok(r: dict[str, Any]) -> bool:
    frac = number(r.get("delivered_fraction"))
    return bool(r.get("ok")) and frac is not None and frac >= MIN_DELIVERED


def _repeats(run: Run, rec: dict[str, Any], column: str) -> list[float]:
    rows = run.ok[run.ok["cell_id"] == rec["cell_id"]]
    return [float(v) for v in rows[column].tolist() if v == v and v is not None]


Pair = tuple[dict[str, Any], dict[str, Any]]


def added(run: Run, pairs: Sequence[Pair], column: str) -> list[str]:
    """For each (base, other) summary-row pair: ``other − base`` of ``column`` and whether
    it is beyond the repeats' noise and the column's rerun margin (log t test,
    Holm-corrected over ``pairs``) — the guide's rule, so a rerun says the same."""
    margin = rerun_margin(column)
    tests: list[stats.RatioTest | None] = []
    for base, other in pairs:
        a, b = _repeats(run, base, column), _repeats(run, other, column)
        tests.append(stats.ratio_test(a, b, margin=margin) if a and b else None)
    decidable = [i for i, t in enumerate(tests) if t is not None and t.decidable]
    holm = dict(zip(decidable, stats.holm([tests[i].p for i in decidable]), strict=True))  # type: ignore[union-attr]
    out = []
    for i, ((base, other), t) in enumerate(zip(pairs, tests, strict=True)):
        va, vb = number(base.get(column)), number(other.get(column))
        if va is None or vb is None or t is None:
            out.append("not comparable")
            continue
        diff = f"{vb - va:+,.3g}" if abs(vb - va) < 100 else f"{vb - va:+,.0f}"
        head = f"{diff} {METRICS[column].unit} (×{t.ratio:.2f}"
        p = holm.get(i)
        if p is None:
            out.append(f"{head}; one repeat a side: too few to tell from noise)")
        elif abs(t.diff) <= t.margin:
            out.append(f"{head}; within the ±{margin:.0%} rerun margin)")
        elif p <= stats.ALPHA:
            out.append(f"{head}; beyond the rerun margin and the noise, Holm p {p:.2g})")
        else:
            out.append(f"{head}; within the noise, Holm p {p:.2f})")
    return out


# --- behind restrictive proxies -----------------------------------------------------------


def plain_http() -> tuple[str, ...]:
    """The transports that need no protocol upgrade (registry rows with ``upgrade=False``):
    what a run without naive proxy cells judges behind proxies."""
    return tuple(t.name for t in registry.transports() if not t.upgrade)


def _badness(r: dict[str, Any]) -> tuple[bool, bool, bool, float]:
    p99 = number(r.get("lat_p99_us"))
    return (not r.get("ok"), not _ok(r), bool(r.get("excluding_flags")), p99 or 0.0)


def _behind_proxies(s: Any) -> Any:
    """Each transport at its worst naive proxy config, at one load; without naive cells
    the plain-HTTP transports at the low-rate point (what direct cells can say)."""
    rows = python_cells(pushed(s))
    naive = rows[rows["via"].map(_naive)] if "via" in rows.columns else rows.iloc[0:0]
    if not len(naive):  # direct cells only: what the run can say without a proxy
        direct = s[~s["via"].map(_proxied)] if "via" in s.columns else s
        low = low_rate(direct)
        return low[low["transport"].isin(plain_http())]
    point = one_point(naive, ignore=("via",))
    worst: dict[tuple[Hashable, ...], dict[str, Any]] = {}
    for r in point.to_dict("records"):
        key = tuple(r[c] for c in IDENTITY)
        if key not in worst or _badness(r) > _badness(worst[key]):
            worst[key] = r
    return point[point["cell_id"].isin([r["cell_id"] for r in worst.values()])]


def _fate(r: dict[str, Any]) -> str:
    cell = f"cell `{r['cell_id']}`"
    if not r.get("ok"):
        return f"{_label(r)} failed: {str(r.get('reasons') or 'no ok repeat')[:140]} ({cell})"
    if not number(r.get("rate_msgs_per_s")):
        cut = (number(r.get("reconnects")) or 0) + (number(r.get("errors")) or 0)
        held = "idle connections cut" if cut else "idle connections held"
        return f"{_label(r)} {held} ({number(r.get('reconnects')) or 0:g} reconnects, {cell})"
    frac = fmt("delivered_fraction", r.get("delivered_fraction"))
    if not _ok(r):
        return f"{_label(r)} delivered only {frac} ({cell})"
    return f"{_label(r)} delivered {frac}, p99 {fmt('lat_p99_us', r.get('lat_p99_us'))} ({cell})"


def _proxy_notes(run: Run, rows: Any) -> Notes:
    summary = run.summary()
    if "via" not in summary.columns or not summary["via"].map(_proxied).any():
        facts = [
            f"{_label(r)} {'delivered' if _ok(r) else 'did NOT deliver'} "
            f"{fmt('delivered_fraction', r.get('delivered_fraction'))} over plain HTTP/1.1, "
            "direct on loopback"
            for r in rows.to_dict("records")
        ]
        return Notes(tuple(facts))
    summary = python_cells(summary[~summary["probe"].astype(bool)])
    facts = []
    for via in dict.fromkeys(v for v in summary["via"] if _naive(v)):
        cells = sorted(
            summary[summary["via"] == via].to_dict("records"),
            key=lambda r: (-(number(r.get("rate_msgs_per_s")) or 0), _label(r)),
        )
        survived = sorted({_label(r) for r in cells if _ok(r)})
        facts.append(
            f"Naive **{via}** (defaults, short idle timeout): "
            + "; ".join(_fate(r) for r in cells)
            + f" — got through under load: {', '.join(survived) or 'none'}"
        )
    good = [
        p
        for p in proxy_rows(run)
        if p.direct is not None and not _naive(p.proxied.get("via")) and p.proxied.get("ok")
    ]
    pairs = [(p.direct, p.proxied) for p in good if p.direct is not None]
    p50, p99 = added(run, pairs, "lat_p50_us"), added(run, pairs, "lat_p99_us")
    for p, a50, a99 in zip(good, p50, p99, strict=True):
        r, d = p.proxied, p.direct or {}
        facts.append(
            f"**{r['via']}** (configured for push) in front of {_label(r)}: p50 {a50}, "
            f"p99 {a99}; proxy CPU {fmt('server_cpu_us_per_msg', r.get('proxy_cpu_us_per_msg'))}"
            f" beside the server's {fmt('server_cpu_us_per_msg', r.get('server_cpu_us_per_msg'))}"
            f" (cells `{r['cell_id']}` vs `{d.get('cell_id')}`)"
        )
    if not any(_naive(v) for v in summary["via"]):
        caveat = (
            "no naive proxy config ran here, so the verdict reads the direct plain-HTTP "
            "cells; `make bench SCENARIO=proxies` records what a naive proxy refuses, "
            "buffers or cuts"
        )
        return Notes(tuple(facts), (caveat,))
    return Notes(
        tuple(facts),
        (
            "each transport is judged at its worst naive config (a refusal or a lost "
            "message there leaves it out); the naive configs are each proxy's defaults plus a "
            "short idle timeout (pushbench.proxies) — a corporate proxy can be stricter "
            "(TLS interception, no long-lived responses at all)",
        ),
    )


def _proxy_and_h2_notes(run: Run, rows: Any) -> Notes:
    """The proxies' facts, then (issue 18 item 4) HTTP/2 beside HTTP/1.1 where the run has
    both: a proxy that speaks HTTP/2 to clients carries every stream on one connection."""
    notes = _proxy_notes(run, rows)
    return Notes((*notes.facts, *http2.h2_pair_facts(run)), notes.caveats)


# --- production (TLS) ---------------------------------------------------------------------


def _tls(s: Any) -> Any:
    if "tls" not in s.columns:
        return s.iloc[0:0]
    rows = python_cells(pushed(s))
    return one_point(rows[rows["tls"].astype(bool)])


def _tls_notes(run: Run, rows: Any) -> Notes:
    pairs = [p for p in tls_pairs(run) if p.on.get("ok") and p.off.get("ok")]
    if not len(rows):
        return Notes()
    caveats = (
        "TLS here is end to end (the server terminates it; a certificate made for the run, "
        "verified by every client); terminated at a proxy, its CPU moves to the proxy",
        "every reconnect pays the handshake again: a reconnect storm after a restart is "
        "a handshake storm",
    )
    if not pairs:
        return Notes(("no TLS cell has a measured plaintext twin here: cost not shown",), caveats)
    cpu = added(run, [(p.off, p.on) for p in pairs], "server_cpu_us_per_msg")
    facts = []
    for p, server in zip(pairs, cpu, strict=True):
        client = [p.client_cpu_us_per_msg(side) for side in ("on", "off")]
        facts.append(
            f"{_label(p.on)}: handshake TCP connect "
            f"{fmt('lat_p50_us', p.get('on', 'tcp_connect_p50_us'))} + TLS "
            f"{fmt('lat_p50_us', p.get('on', 'tls_handshake_p50_us'))} (p50s; connect to "
            f"ready {fmt('lat_p50_us', p.get('on', 'connect_p50_us'))} against "
            f"{fmt('lat_p50_us', p.get('off', 'connect_p50_us'))} in plaintext), "
            f"{fmt('handshake_bytes_per_conn', p.get('on', 'handshake_bytes_per_conn'))} "
            f"against {fmt('handshake_bytes_per_conn', p.get('off', 'handshake_bytes_per_conn'))};"
            f" server CPU per message {server}; client CPU per message "
            f"{' against '.join(fmt('server_cpu_us_per_msg', c) for c in client)} "
            f"(cells `{p.on['cell_id']}` vs `{p.off['cell_id']}`)"
        )
    return Notes(tuple(facts), caveats)


# --- unreliable networks ------------------------------------------------------------------


def _relayed(s: Any) -> Any:
    if "net" not in s.columns:
        return s.iloc[0:0]
    rows = python_cells(pushed(s))
    return rows[rows["net"].map(rtt_ms) > 0]


def _worst_network(s: Any) -> Any:
    rows = _relayed(s)
    measured = rows[rows["ok"] > 0]
    if not len(measured):
        return rows
    worst = max(measured["net"], key=rtt_ms)
    return one_point(rows[rows["net"] == worst])


def _net_notes(run: Run, rows: Any) -> Notes:
    summary = python_cells(pushed(run.summary()))
    summary = summary[~summary["probe"].astype(bool)]
    if "net" not in summary.columns:
        return Notes()
    key = same_but("net", *IDENTITY)
    groups: dict[tuple[Hashable, ...], list[dict[str, Any]]] = {}
    for r in summary[summary["ok"] > 0].to_dict("records"):
        groups.setdefault(twin_key(r, key), []).append(r)
    groups = {k: v for k, v in groups.items() if any(rtt_ms(r["net"]) for r in v)}
    pairs: list[Pair] = []
    for cells in groups.values():
        base = next((r for r in cells if not rtt_ms(r["net"])), None)
        pairs += [(base, r) for r in cells if base is not None and rtt_ms(r["net"])]
    verdicts = dict(
        zip(
            ((a["cell_id"], b["cell_id"]) for a, b in pairs),
            added(run, pairs, "lat_p50_us"),
            strict=True,
        )
    )
    if not groups:
        return Notes()
    facts = []
    for cells in sorted(groups.values(), key=lambda c: _label(c[0])):
        cells = sorted(cells, key=lambda r: rtt_ms(r["net"]))
        base = cells[0] if not rtt_ms(cells[0]["net"]) else None
        parts = []
        for r in cells:
            rtt = rtt_ms(r["net"])
            part = (
                f"{r['net'] or 'loopback'} (RTT {rtt:g} ms): p50 "
                f"{fmt('lat_p50_us', r['lat_p50_us'])}, p99 {fmt('lat_p99_us', r['lat_p99_us'])}"
            )
            p50 = number(r.get("lat_p50_us"))
            b50 = None if base is None else number(base.get("lat_p50_us"))
            if base is not None and rtt and p50 is not None and b50 is not None:
                grown = (p50 - b50) / (rtt * 1000.0)
                why = verdicts[(base["cell_id"], r["cell_id"])]
                part += f", p50 grew by {grown:.2f} RTT ({why})"
            parts.append(f"{part} (cell `{r['cell_id']}`)")
        facts.append(f"{_label(cells[0])}: " + "; ".join(parts))
    return Notes(
        tuple(facts),
        (
            "the relay is pushbench's userspace one on the client cores (its calibration is "
            "in the Network conditions section); WebSocket and SSE pay the one-way delay "
            "once per message, long polling a round trip per batch, short polling its "
            "interval on top",
        ),
    )


# --- scale-out ----------------------------------------------------------------------------


def with_servers(run: Run, summary: Any) -> Any:
    """``summary`` with the cells' ``servers`` column when the run has one (h31's
    scale-out dimension; not a point column here, so the summary lacks it)."""
    if "servers" not in run.cells.columns or "servers" in summary.columns:
        return summary
    first = run.cells.groupby("cell_id", sort=False)["servers"].first()
    summary["servers"] = summary["cell_id"].map(first)
    return summary


def _scaled(s: Any) -> Any:
    if "servers" not in s.columns:
        return s.iloc[0:0]
    rows = python_cells(pushed(s))
    return one_point(rows[rows["servers"].fillna(1) > 1])


def _scale_notes(run: Run, rows: Any) -> Notes:
    summary = with_servers(run, run.summary())
    key = tuple(c for c in same_but("servers", *IDENTITY) if c != "hub")
    single = {
        twin_key(r, key): r
        for r in summary.to_dict("records")
        if (number(r.get("servers")) or 1) <= 1 and r.get("ok")
    }
    scaled = [r for r in rows.to_dict("records") if r.get("ok")]
    pairs = [(single[twin_key(r, key)], r) for r in scaled if twin_key(r, key) in single]
    p99 = dict(zip((b["cell_id"] for _, b in pairs), added(run, pairs, "lat_p99_us"), strict=True))
    facts = []
    for r in scaled:
        servers = number(r.get("servers")) or 1
        line = (
            f"{_label(r)} on {servers:g} servers, hub {r.get('hub')}: delivered "
            f"{fmt('delivered_fraction', r.get('delivered_fraction'))}, p99 "
            f"{fmt('lat_p99_us', r.get('lat_p99_us'))} (cell `{r['cell_id']}`)"
        )
        if r["cell_id"] in p99:
            base = single[twin_key(r, key)]
            line += f"; against one server (cell `{base['cell_id']}`): p99 {p99[r['cell_id']]}"
        facts.append(line)
    if not facts:
        return Notes()
    return Notes(
        tuple(facts),
        (
            "a long poll or SSE resume that lands on another node needs the history "
            "shared through the hub (or sticky sessions)",
        ),
    )


# --- the situations -----------------------------------------------------------------------


def situations(reconnect: str, shortpoll: str) -> tuple[Situation, ...]:
    """The four production situations, in guide order; ``reconnect`` and ``shortpoll`` are
    the guide's shared caveats."""
    return (
        Situation(
            "proxies",
            "Clients behind restrictive proxies",
            "clients reach the server through a proxy nobody configured for push (the "
            "WebSocket upgrade not forwarded, responses buffered, idle connections cut)",
            _behind_proxies,
            "proxies",
            (
                "not measured here: real proxies. Some block the WebSocket upgrade, some "
                "buffer streamed responses (SSE arrives late or in lumps unless the proxy "
                "flushes), most close idle connections (heartbeats help); long and short "
                "polling get through nearly everything",
                shortpoll,
            ),
            notes=_proxy_and_h2_notes,
        ),
        Situation(
            "tls",
            "Production (TLS)",
            "wss:// and https:// as deployed: every connection pays a TLS handshake and every "
            "message its encryption",
            _tls,
            "tls",
            (
                "not measured here: TLS. It adds a handshake per connection (again on every "
                "reconnect) and CPU per byte on both sides",
                reconnect,
            ),
            notes=_tls_notes,
        ),
        Situation(
            "network",
            "Unreliable networks",
            "clients far away or on mobile links: round trips of tens of milliseconds, "
            "jitter, capped bandwidth",
            _worst_network,
            "network",
            (
                "not measured here: network delay. Long polling pays a round trip per batch, "
                "short polling its interval; WebSocket and SSE pay the one-way delay only",
                reconnect,
            ),
            notes=_net_notes,
        ),
        Situation(
            "scale-out",
            "Scale-out (several server processes)",
            "more subscribers than one process serves: N processes behind a proxy, a "
            "pub/sub hub (Redis, NATS) between them",
            _scaled,
            "scaleout",
            (
                f"not measured in this run: `{SCALEOUT_COMMAND}` (servers = N behind nginx, "
                "hub redis or nats)",
                "a long poll or SSE resume that lands on another node needs the history "
                "shared through the hub (or sticky sessions)",
            ),
            notes=_scale_notes,
        ),
    )
