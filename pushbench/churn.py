"""Connection churn (issue 17 item 6, the soak): subscribers that leave and come back.

A cell with ``churn`` makes every asyncio client connection repeatedly hold its
connection for a random time in ``[hold_min_s, hold_max_s]``, close it itself (a
WebSocket Close 1000, the end of an SSE stream or of a keep-alive poll connection),
stay away for a random time in ``[0, gap_max_s]``, and connect again resuming from
the last message it received (``since=``, ``Last-Event-ID``, the poll cursor) — the
way real subscribers come and go. The times are drawn from a generator seeded by
``seed`` and the connection id (:meth:`Churn.rng`), so a run's churn is reproducible.

A connection leaves only once it has a position to resume from (a message received,
or a poll cursor): a subscriber that left before its first message would come back
with nothing to resume from and lose what was published while it was away, which is
not the server's fault. So every subscriber of a ticker cell is subscribed from the
ticker's first message on, and the soak counts it lost or duplicated against the
hub's whole seq range (:mod:`pushbench.metrics.soak`).

Written in a scenario as ``churn = { hold_s = [1, 5], gap_s = 0.5, seed = 1 }``
(:meth:`Churn.from_table`); ``gap_s`` and ``seed`` are optional (0).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TABLE_FORM", "Churn"]

#: The scenario form, for error messages.
TABLE_FORM = "a table { hold_s = [min, max], gap_s = max seconds away, seed = N }"
_KEYS = ("hold_s", "gap_s", "seed")


def _num(x: float) -> str:
    x = round(float(x), 6)
    return str(int(x)) if x.is_integer() else f"{x:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Churn:
    """Hold each connection ``hold_min_s..hold_max_s``, stay away ``0..gap_max_s``."""

    hold_min_s: float
    hold_max_s: float
    gap_max_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        values = (self.hold_min_s, self.hold_max_s, self.gap_max_s)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise ValueError("churn times must be finite numbers")
        if not 0 < self.hold_min_s <= self.hold_max_s:
            raise ValueError("churn hold_s must be [min, max] with 0 < min <= max")
        if self.gap_max_s < 0:
            raise ValueError("churn gap_s must be >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError("churn seed must be an integer >= 0")

    def rng(self, conn_id: int) -> random.Random:
        """Connection ``conn_id``'s own generator: the same draws in every run."""
        return random.Random(self.seed * 1_000_003 + conn_id)

    def hold(self, rng: random.Random) -> float:
        return rng.uniform(self.hold_min_s, self.hold_max_s)

    def gap(self, rng: random.Random) -> float:
        return rng.uniform(0.0, self.gap_max_s) if self.gap_max_s else 0.0

    def id_part(self) -> str:
        """The cell id's part, e.g. ``churn1-5s-gap500ms-seed1``."""
        part = f"churn{_num(self.hold_min_s)}-{_num(self.hold_max_s)}s"
        if self.gap_max_s:
            part += f"-gap{_num(self.gap_max_s * 1000)}ms"
        if self.seed:
            part += f"-seed{self.seed}"
        return part

    def describe(self) -> str:
        """For cells.csv and the report: ``hold 1-5 s, away <= 0.5 s, seed 1``."""
        text = f"hold {_num(self.hold_min_s)}-{_num(self.hold_max_s)} s"
        return f"{text}, away <= {_num(self.gap_max_s)} s, seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Churn:
        """From :meth:`to_dict` (the worker spec)."""
        return cls(**raw)

    @classmethod
    def from_table(cls, table: Any) -> Churn:
        """The scenario's ``{ hold_s = [min, max], gap_s = s, seed = N }``; ValueError."""
        if not isinstance(table, Mapping):
            raise ValueError(f"churn must be {TABLE_FORM}")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown or "hold_s" not in table:
            raise ValueError(f"churn must be {TABLE_FORM} (unknown or missing keys)")
        hold = table["hold_s"]
        if not isinstance(hold, list) or len(hold) != 2:
            raise ValueError("churn hold_s must be [min, max]")
        numbers = [*hold, table.get("gap_s", 0.0)]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in numbers):
            raise ValueError("churn hold_s and gap_s must be numbers")
        return cls(float(hold[0]), float(hold[1]), float(numbers[2]), table.get("seed", 0))
