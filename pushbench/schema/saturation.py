"""The columns of ``saturation.csv``: one row per group of ``[slo]`` cells that differ
only in rate (:mod:`pushbench.runner.saturation` fills them).

Kept apart from :mod:`pushbench.schema.cells` (which re-exports it and documents both
files) so that module stays small.
"""

from __future__ import annotations

from .column import Column, columns_of

__all__ = ["SATURATION_COLUMNS"]

_C = Column

#: Columns of saturation.csv: one row per group of [slo] cells differing only in rate.
SATURATION_COLUMNS: dict[str, Column] = columns_of(
    _C("group_id", "text", "the group's cell id with the rate left out"),
    _C("stack", "text", "server stack"),
    _C("transport", "text", "transport"),
    _C("ws_client", "text", "WebSocket client"),
    _C("client", "text", "who receives"),
    _C("subscribers", "count", "connections receiving"),
    _C("publishers", "count", "publishing connections (0: server ticker)"),
    _C("payload_bytes", "B", "payload size"),
    _C("hub", "text", "hub backend"),
    _C(
        "slo_p99_us",
        "µs",
        "the SLO's bound on the median repeat's corrected p99 over all expected messages "
        "(lat_all_p99_us: lost ones as infinitely late)",
    ),
    _C("min_delivered_fraction", "fraction", "the SLO's delivery bound"),
    _C("max_rate", "msgs/s", "highest rate meeting the SLO below every failing rate"),
    _C("highest_passing", "msgs/s", "highest rate meeting the SLO at all"),
    _C("lowest_failing", "msgs/s", "lowest failing rate above max_rate (empty: none failed)"),
    _C("monotonic", "bool", "max_rate == highest_passing (no noisy pass above a failure)"),
    _C(
        "saturated_side",
        "text",
        "at lowest_failing: server (its CPU >= 90 %), client (a client core >= 90 % "
        "busy: client_core_busy_max), both, or neither (the SLO failed for another "
        "reason); empty when nothing failed",
    ),
    _C("rates_tried", "text", "every rate measured (msgs/s), ascending, ';'-separated"),
)
