"""The saturation search: from measured rates to the highest one meeting an SLO.

Pure bisection on (rate, delivered fraction, p99) points; the runner measures
the probes it proposes and the report reruns it on stored medians. The p99 is
the one over every expected message with the lost ones infinitely late
(``lat_all_p99_us``, :func:`~.latency.latency_all_expected`): a point losing
more than 1 % fails the SLO whatever its received messages' p99, and whatever
``min_delivered_fraction`` allows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RatePoint", "Saturation", "meets_slo", "saturation_search"]


@dataclass(frozen=True)
class RatePoint:
    """One measured rate: offered msgs/s, delivered fraction, and the p99 corrected latency
    (µs) over every expected message, lost ones as ``math.inf``."""

    offered_per_s: float
    delivered_fraction: float
    p99_us: float


def meets_slo(point: RatePoint, *, slo_p99_us: float, min_delivered_fraction: float) -> bool:
    """Delivered enough, and p99 within the bound (an infinite p99 never is)."""
    return (
        point.delivered_fraction >= min_delivered_fraction
        and point.p99_us <= slo_p99_us
        and math.isfinite(point.p99_us)
    )


@dataclass(frozen=True)
class Saturation:
    """Where the SLO stops holding, and what rate to measure next.

    ``max_rate``: the highest rate meeting the SLO below every failing rate
    (conservative); ``highest_passing``: the highest rate meeting it at all
    (differs when noise makes the results non-monotonic, see ``monotonic``);
    ``lowest_failing``: the lowest rate above ``max_rate`` that failed;
    ``next_rate``: the next probe, or ``None`` once the bracket is within
    ``tolerance`` (or the limits are reached).
    """

    max_rate: float | None
    highest_passing: float | None
    lowest_failing: float | None
    next_rate: float | None
    monotonic: bool


def saturation_search(
    points: Iterable[RatePoint],
    *,
    slo_p99_us: float,
    min_delivered_fraction: float = 0.99,
    tolerance: float = 0.05,
    growth: float = 2.0,
    scale: str = "log",
    min_rate: float = 1.0,
    max_rate: float = 1_000_000.0,
) -> Saturation:
    """Bisection on measured rates: the highest rate meeting the SLO, and the next probe.

    With no failure yet the next probe is ``growth`` × the best rate; with no
    pass yet, the lowest failing rate ÷ ``growth``; otherwise the geometric
    (``scale="log"``) or arithmetic mean of the bracket, rounded to 3
    significant digits. The search is over when the bracket is within
    ``tolerance`` (relative), when rounding cannot split it any more, or when
    the next probe would leave ``[min_rate, max_rate]``.
    """
    if scale not in ("log", "linear"):
        raise ValueError(f"scale must be 'log' or 'linear', not {scale!r}")
    pts = sorted(points, key=lambda p: p.offered_per_s)
    if not pts:
        raise ValueError("no measured rates")
    slo = {"slo_p99_us": slo_p99_us, "min_delivered_fraction": min_delivered_fraction}
    passing = [p.offered_per_s for p in pts if meets_slo(p, **slo)]
    failing = [p.offered_per_s for p in pts if not meets_slo(p, **slo)]
    lowest_failing = failing[0] if failing else None
    below = [r for r in passing if lowest_failing is None or r < lowest_failing]
    best = below[-1] if below else None

    nxt: float | None
    if best is None:
        assert lowest_failing is not None
        nxt = lowest_failing / growth
    elif lowest_failing is None:
        nxt = best * growth
    elif lowest_failing <= best * (1 + tolerance):
        nxt = None  # converged
    elif scale == "log":
        nxt = math.sqrt(best * lowest_failing)
    else:
        nxt = (best + lowest_failing) / 2
    if nxt is not None:
        nxt = float(f"{nxt:.3g}")
        inside = (best is None or nxt > best) and (lowest_failing is None or nxt < lowest_failing)
        if not inside or not min_rate <= nxt <= max_rate:
            nxt = None  # rounding met a measured rate, or the probe is out of bounds
    highest = passing[-1] if passing else None
    return Saturation(best, highest, lowest_failing, nxt, monotonic=best == highest)
