"""The report's "HTTP/2 — streams per origin in Chromium" section (issue 18 item 3, h43):
the stored ``browser_streams.json`` of a run whose scenario has a ``[browser_streams]``
table (:mod:`pushbench.schema.browser_streams`), as two small tables — per protocol (how
many of N EventSources opened, waited, received) and per stream (time to its first
message, messages in the hold). Reads stored data only; renders nothing when absent."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pushbench.schema.browser_streams import StreamsRecord, read_records

from . import doc
from .load import Run
from .pairs import number, same_but, twin_key
from .situation import fmt

__all__ = [
    "BROWSER_LIMIT_CAVEAT",
    "browser_facts",
    "h2_pair_facts",
    "per_stream_table",
    "protocol_table",
    "section",
    "text",
]

#: The guide's static caveat that a run with the browser probe replaces by its figures.
BROWSER_LIMIT_CAVEAT = (
    "browsers allow about 6 HTTP/1.1 connections per origin: many EventSource or "
    "long-poll tabs queue behind each other (HTTP/2 lifts this)"
)


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def protocol_table(records: Sequence[StreamsRecord]) -> doc.Table:
    """One row per protocol: streams opened / waiting / receiving of N, the slowest open."""
    rows = []
    for r in records:
        if r.status != "ok":
            rows.append((r.asked, "—", f"failed: {r.reason}", "", "", ""))
            continue
        opens = [s.open_ms for s in r.per_stream if s.open_ms is not None]
        slowest = _ms(max(opens)) if opens else "—"
        rows.append(
            (
                r.asked,
                r.protocol or "?",
                f"{r.open} of {r.streams}",
                str(r.waiting),
                f"{r.receiving} of {r.streams}",
                slowest,
            )
        )
    header = (
        "asked",
        "negotiated (nextHopProtocol)",
        "streams open",
        "waiting (CONNECTING)",
        "receiving",
        "slowest open (ms)",
    )
    hold = records[0].hold_s if records else 0.0
    caption = (
        f"Chromium (headless) opens N EventSources to one origin at once and holds them "
        f"{hold:g} s while the server publishes; HTTP/1.1 allows six connections per origin"
    )
    flags = tuple("failed" if r.status != "ok" else "" for r in records)
    return doc.Table(header, tuple(rows), caption=caption, flags=flags, numeric=False)


def per_stream_table(records: Sequence[StreamsRecord]) -> doc.Table | None:
    """One row per stream: its time to first message (ms from its creation) and message
    count under each protocol — a stream that never opened shows —."""
    ok = [r for r in records if r.status == "ok" and r.per_stream]
    if not ok:
        return None
    n = max(len(r.per_stream) for r in ok)
    rows = []
    for i in range(n):
        row = [str(i + 1)]
        for r in ok:
            s = r.per_stream[i] if i < len(r.per_stream) else None
            row += ["—", "0"] if s is None else [_ms(s.first_message_ms), str(s.messages)]
        rows.append(tuple(row))
    header = ["stream"]
    for r in ok:
        header += [f"{r.asked}: first message (ms)", f"{r.asked}: messages"]
    caption = f"per stream, at {ok[0].rate:g} msg/s on the stream's topic"
    return doc.Table(tuple(header), tuple(rows), caption=caption)


def section(run_dir: Path) -> doc.Section | None:
    """The section, or None when the run has no browser-streams records."""
    records = read_records(run_dir)
    if not records:
        return None
    intro = doc.Paragraph(
        "The browser's connection limit per origin, measured (`[browser_streams]` of the "
        "scenario): over HTTP/1.1 Chromium opens at most six connections to an origin, so "
        "an EventSource past the sixth waits for one to close; over HTTP/2 (TLS, h2 by "
        "ALPN) every stream shares one connection."
    )
    blocks: list[doc.Block] = [intro, protocol_table(records)]
    streams = per_stream_table(records)
    if streams is not None:
        blocks.append(streams)
    return doc.Section("HTTP/2 — streams per origin in Chromium", "http2-streams", tuple(blocks))


def text(run_dir: Path) -> str:
    """The protocol table as plain text (a probe-only run's console output)."""
    records = read_records(run_dir)
    table = protocol_table(records)
    lines = [" | ".join(table.header)]
    lines += [" | ".join(row) for row in table.rows]
    return "\n".join(lines)


# --- what the decision guide cites (issue 18 item 4) ----------------------------------------


def browser_facts(run: Run) -> tuple[str, ...]:
    """The measured six-connection limit, one line per protocol the probe ran (none when
    the run has no ``browser_streams.json``)."""
    out = []
    for r in read_records(run.path):
        if r.status != "ok":
            continue
        out.append(
            f"Chromium opening {r.streams} EventSources to one origin over "
            f"**{r.protocol or r.asked}**: {r.open} open, {r.waiting} waiting, {r.receiving} "
            f"receiving after {r.hold_s:g} s (`browser_streams.json`, {r.stack})"
        )
    return tuple(out)


def _base(transport: str) -> str | None:
    return transport[: -len("-h2")] if transport.endswith("-h2") else None


def h2_pair_facts(run: Run) -> tuple[str, ...]:
    """Each HTTP/2 cell beside its HTTP/1.1 twin (same stack and point, the transport
    without ``-h2``): p50, p99, TCP payload bytes and server CPU per message."""
    summary = run.summary()
    if "transport" not in summary.columns:
        return ()
    rows = summary[~summary["probe"].astype(bool)] if "probe" in summary else summary
    key_cols = same_but("transport", "stack")
    by_key = {
        (r["transport"], twin_key(r, key_cols)): r
        for r in rows.to_dict("records")
        if _base(str(r["transport"])) is None
    }
    out = []
    for r in rows.to_dict("records"):
        base = _base(str(r["transport"]))
        twin = by_key.get((base, twin_key(r, key_cols))) if base else None
        if twin is None or not number(r.get("lat_p50_us")) or not number(twin.get("lat_p50_us")):
            continue
        figs = ", ".join(
            f"{label} {fmt(c, r.get(c))} vs {fmt(c, twin.get(c))}"
            for label, c in (
                ("p50", "lat_p50_us"),
                ("p99", "lat_p99_us"),
                ("bytes in", "bytes_in_per_msg"),
                ("server CPU", "server_cpu_us_per_msg"),
            )
        )
        where = f" via {r['via']}" if r.get("via") not in (None, "", "direct") else ""
        out.append(
            f"{base} on {r['stack']}{where} over HTTP/2 vs HTTP/1.1: {figs} "
            f"(cells `{r['cell_id']}` vs `{twin['cell_id']}`)"
        )
    return tuple(out)
