"""The row's clock columns: how far the workers' clocks were from the server's (issue 18).

Each worker kind measures its clock offset to the server's at start (``GET /clock``,
:mod:`pushbench.clocksync`) and writes every time already corrected by it, with the offset
and its error bound in its record (``clock_offset_ns``, ``clock_bound_ns``). The row keeps
the widest bound over the cell's workers — every latency of the row is exact to within it
— and that worker's offset; both empty when one worker did not measure (a browser, a
server without ``/clock``): no bound can then be claimed for the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pushbench.schema.worker import WorkerResult

__all__ = ["clock_columns"]


def clock_columns(results: Sequence[WorkerResult]) -> dict[str, Any]:
    """``clock_offset_us`` and ``clock_bound_us`` of cells.csv from the workers' records."""
    measured = [
        (r.clock_offset_ns, r.clock_bound_ns)
        for r in results
        if r.clock_offset_ns is not None and r.clock_bound_ns is not None
    ]
    if not measured or len(measured) != len(results):
        return {"clock_offset_us": None, "clock_bound_us": None}
    offset, bound = max(measured, key=lambda m: m[1])
    return {"clock_offset_us": offset / 1e3, "clock_bound_us": bound / 1e3}
