"""One metric over a cell's repeats: the median and how far the repeats stray from it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RepeatStats", "repeat_stats"]


@dataclass(frozen=True)
class RepeatStats:
    """One metric over repeats: the median and how far the repeats stray from it.

    ``rel_spread`` = max |x − median| ÷ |median| ("medians within ±10 %" is
    ``rel_spread ≤ 0.10``); ``rel_range`` = (max − min) ÷ |median|.
    """

    n: int
    median: float
    min: float
    max: float
    rel_spread: float
    rel_range: float

    def within(self, tolerance: float) -> bool:
        return self.rel_spread <= tolerance


def repeat_stats(values: Iterable[float | None]) -> RepeatStats | None:
    """Median and relative spread, ignoring missing (``None``/NaN) values; ``None`` if none."""
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not xs:
        return None
    med = statistics.median(xs)
    lo, hi = min(xs), max(xs)
    if med == 0:
        spread = 0.0 if lo == hi == 0 else math.inf
        return RepeatStats(len(xs), med, lo, hi, spread, spread)
    return RepeatStats(
        len(xs), med, lo, hi, max(abs(x - med) for x in xs) / abs(med), (hi - lo) / abs(med)
    )
