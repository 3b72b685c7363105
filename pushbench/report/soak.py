"""The report's "Soak" section (issue 17 item 6): churn cells, from cells.csv alone.

One row per churn cell × repeat (``soak_churn`` set): reconnects, loss and duplicates
across resumes against the hub's seq range, reconnect times, the server's RSS and open
file descriptors at the end and their fitted slopes per minute, and error lines in the
server's log. A row that lost, repeated or logged an error is marked failed.
"""

from __future__ import annotations

from typing import Any

from . import doc
from .load import Run

__all__ = ["COLUMNS", "section"]

#: (column, header, format of the value): the table, table-driven.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("soak_reconnects", "reconnects", "{:,.0f}"),
    ("soak_lost", "lost", "{:,.0f}"),
    ("soak_duplicates", "duplicates", "{:,.0f}"),
    ("soak_reconnect_p50_ms", "reconnect p50 ms", "{:.2f}"),
    ("soak_reconnect_p99_ms", "reconnect p99 ms", "{:.2f}"),
    ("soak_reconnect_max_ms", "reconnect max ms", "{:.2f}"),
    ("soak_rss_end_bytes", "RSS end MiB", "{:.1f}"),
    ("rss_slope_kib_per_min", "RSS slope KiB/min", "{:+.1f}"),
    ("soak_fds_end", "fds end", "{:.0f}"),
    ("fd_slope_per_min", "fd slope /min", "{:+.2f}"),
    ("log_errors", "log errors", "{:.0f}"),
)
_SCALE = {"soak_rss_end_bytes": 1 / 2**20}
_MUST_BE_ZERO = ("soak_lost", "soak_duplicates", "log_errors")


def _fmt(column: str, fmt: str, value: Any) -> str:
    if value is None or value != value:
        return "—"
    return fmt.format(float(value) * _SCALE.get(column, 1.0))


def section(run: Run) -> list[doc.Section]:
    """``[Section]`` with the soak table, or ``[]`` when the run has no churn cell."""
    cells = run.cells
    if "soak_churn" not in cells:
        return []
    churn = cells["soak_churn"].fillna("").astype(str) != ""  # text: "" when not a churn cell
    if not churn.any():
        return []
    soak = cells[churn & (cells["status"] == "ok")]
    rows, flags = [], []
    for r in soak.to_dict("records"):
        values = [_fmt(c, f, r.get(c)) for c, _, f in COLUMNS]
        rows.append((f"{r['transport']} · {r['stack']}", str(r["soak_churn"]), *values))
        bad = any((r.get(c) or 0) > 0 for c in _MUST_BE_ZERO)
        flags.append("failed" if bad else "")
    blocks: list[doc.Block] = [
        doc.Paragraph(
            "Every subscriber keeps leaving and coming back, resuming from the last message "
            "it received (`since=`, `Last-Event-ID`, the poll cursor). Lost and duplicates "
            "count, per subscriber, the ticker's whole seq range against what it received "
            "across all its resumes: both must be 0. Reconnect times run from the TCP connect "
            "to the handshake; the slopes are least-squares fits over the samples of the "
            "measured window (≈ 0: flat). Log errors: error lines in the server's log."
        )
    ]
    if rows:
        blocks.append(
            doc.Table(
                ("transport · stack", "churn", *(h for _, h, _ in COLUMNS)),
                tuple(rows),
                caption="One row per churn cell × repeat; failed: it lost, repeated a "
                "message or logged an error.",
                flags=tuple(flags),
            )
        )
    else:
        blocks.append(doc.Missing("Soak", "no churn cell measured (every repeat failed)"))
    return [doc.Section("Soak: churn and resume", "soak", tuple(blocks))]
