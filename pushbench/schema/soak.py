"""The soak's columns of ``cells.csv`` (issue 17 item 6): churn cells only, empty elsewhere.

Kept apart from :mod:`pushbench.schema.cells` (which splices them into its
``EXTRA_COLUMNS``) so that module stays small; filled by
:mod:`pushbench.runner.soak`.
"""

from __future__ import annotations

from .column import Column

__all__ = ["SOAK_COLUMNS"]

_C = Column

#: The soak's columns, in order.
SOAK_COLUMNS: tuple[Column, ...] = (
    _C("soak_churn", "text", "the cell's churn: hold time range, longest time away, seed"),
    _C(
        "soak_reconnects",
        "count",
        "reconnects of all subscribers over the whole run (churn and any other)",
    ),
    _C(
        "soak_expected_msgs",
        "count",
        "the ticker's messages (the hub's seq range, warm-up included) × subscribers: every "
        "subscriber is subscribed from the first to the last, resumes included",
    ),
    _C(
        "soak_lost",
        "count",
        "seqs of that range a subscriber never received (a resume that skipped), all subscribers",
    ),
    _C(
        "soak_duplicates",
        "count",
        "receptions of a seq beyond its first on a subscriber (a resume that repeated)",
    ),
    _C("soak_reconnect_p50_ms", "ms", "median reconnect time: TCP connect → handshake done"),
    _C("soak_reconnect_p99_ms", "ms", "99th percentile reconnect time"),
    _C("soak_reconnect_max_ms", "ms", "longest reconnect time"),
    _C("soak_samples", "count", "server RSS / open fd samples over the measured window"),
    _C("soak_rss_end_bytes", "B", "server RSS at the last sample"),
    _C(
        "rss_slope_kib_per_min",
        "KiB/min",
        "least-squares slope of the server's RSS over the window's samples (≈ 0: flat)",
    ),
    _C("soak_fds_end", "count", "server open file descriptors at the last sample"),
    _C(
        "fd_slope_per_min",
        "1/min",
        "least-squares slope of the server's open file descriptors over the window's samples",
    ),
    _C(
        "log_errors",
        "count",
        "lines of the server's log reporting an error (traceback, ERROR, CRITICAL, "
        "'Error handling request') over the whole run",
    ),
)
