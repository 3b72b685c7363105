"""Pairing a run's cells with their twins: the same point but for one dimension.

The report's side-by-side tables (pushbench's server over its hand-written twin,
:mod:`.tax`; TLS over plaintext, :mod:`.tls_cost`; behind a proxy over direct,
:mod:`.proxies`) each pair a summary row with the row that differs from it only in
the dimension the table is about. What "the same point" means and how a stored
value reads as a number are this module's, so the three tables cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from .load import POINT

__all__ = ["number", "same_but", "twin_key"]

#: What else must be equal for two cells to be the same point (beside :data:`POINT`).
_SETTINGS: tuple[str, ...] = ("ws_client", "poll_interval_s", "poll_timeout_s", "heartbeat_s")


def same_but(dimension: str, *first: str) -> tuple[str, ...]:
    """The columns two twins share: ``first`` (e.g. the stack and transport), every
    point column but ``dimension``, and the protocol settings."""
    return (*first, *(c for c in POINT if c != dimension), *_SETTINGS)


def twin_key(rec: dict[str, Any], columns: tuple[str, ...]) -> tuple[Hashable, ...]:
    """The values of ``columns`` in a summary row, NaN (an empty CSV field) read as None:
    two rows with the same key are twins."""
    return tuple(
        None if isinstance(v := rec.get(c), float) and math.isnan(v) else v for c in columns
    )


def number(v: Any) -> float | None:
    """A stored value as a number; None for missing, NaN, text and booleans."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f
