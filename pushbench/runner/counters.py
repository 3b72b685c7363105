"""Every counter the workers and the server report beside the receipts: read, none dropped.

The receipts say what each connection received; the counters say what the harness could
not record or the server threw away before anyone asked. Each is read here, and each
either fails the repeat or lands in its row — never turned silently into "lost" messages:

- :func:`harness_faults` → the reasons a repeat is **failed** instead of measured:
  a worker's receipt arrays were full (``overflow``: those messages *were* received), it
  could not read what it got (``parse_errors``: not envelopes, not recorded), a
  connection was never up during the whole run (its messages were never asked for), or
  the server evicted messages from its history before a subscriber fetched them
  (``/stats`` ``history_gap_messages``: the history was too small for the cell). Each
  would otherwise read as loss of the transport.
- :func:`counter_columns` → the row's columns for what is worth knowing but measures
  the run as it was: connections whose first attempt failed (they came up later),
  envelopes read by the slow path, short-poll slots skipped, failed client publishes, and
  how full the fullest receipt recorder got (its headroom).

A counter one worker kind does not report is None in its column (not measured), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pushbench.scenario import Cell
from pushbench.schema.worker import WorkerResult

__all__ = ["COUNTER_COLUMNS", "counter_columns", "harness_faults"]

#: The row's columns filled by :func:`counter_columns` (cells.csv, schema.cells).
COUNTER_COLUMNS: tuple[str, ...] = (
    "connect_failures",
    "slow_parses",
    "missed_polls",
    "publish_errors",
    "recorder_fill_max",
)


def harness_faults(
    names: Sequence[str], results: Sequence[WorkerResult], stats: Mapping[str, Any]
) -> list[str]:
    """Why the repeat cannot be measured (empty: it can): one reason per fault, naming the
    worker (``names``, in the order of ``results``) and the count."""
    reasons = []
    for name, r in zip(names, results, strict=True):
        if r.overflow:
            reasons.append(
                f"{name}'s receipt recorder overflowed: {r.overflow:,} received messages not "
                f"recorded (capacity {r.capacity:,}); the repeat is failed, not counted as loss"
            )
        if r.parse_errors:
            reasons.append(
                f"{name} could not read {r.parse_errors:,} inputs (parse_errors: not "
                "envelopes, so not recorded)"
            )
        never = r.never_connected()
        if never:
            last = [str(c["last_error"]) for c in r.per_connection if c.get("last_error")]
            why = f" (last error: {last[-1][:200]})" if last else ""
            reasons.append(
                f"{name}: {never:,} of {r.connections:,} connections never connected{why}"
            )
    evicted = int(stats.get("history_gap_messages") or 0)
    if evicted:
        reasons.append(
            f"the server evicted {evicted:,} messages from its history (size "
            f"{stats.get('history', '?')}) before a subscriber fetched them "
            f"(history_gap_messages): the history is too small for this cell"
        )
    return reasons


def counter_columns(cell: Cell, results: Sequence[WorkerResult]) -> dict[str, Any]:
    """The row's :data:`COUNTER_COLUMNS` from every worker's output."""

    def summed(key: str) -> int | None:
        values = [r.total_or_none(key) for r in results]
        return None if any(v is None for v in values) else sum(v for v in values if v)

    polling = cell.poll_interval_s is not None
    fill = [r.messages / r.capacity for r in results if r.capacity > 0]
    return {
        "connect_failures": sum(int(r.connect_failures) for r in results),
        "slow_parses": sum(int(r.slow_parses) for r in results),
        "missed_polls": summed("missed_polls") if polling else None,
        "publish_errors": summed("publish_errors") if cell.publishers else None,
        "recorder_fill_max": max(fill, default=None),
    }
