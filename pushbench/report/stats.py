"""The statistics ``pushbench compare`` decides with: pure functions, no scipy, no randomness.

One figure of one cell is measured ``n_a`` times in run A and ``n_b`` times in
run B (its repeats). Whether B differs from A is a two-sample question with 3–5
values per side, asked of dozens of figures at once. The choices, and why:

- **Student's t on the logarithms** (:func:`ratio_test`). Benchmark noise is
  multiplicative (a slow repeat is slow by a factor), so the test compares the
  mean log values, and the change is the ratio of geometric means B ÷ A with a
  t interval. The variance is pooled over both runs' repeats (the *within-run
  spread*, ``n_a + n_b − 2`` degrees of freedom): with 2–5 values a side,
  Welch's per-side variances would leave ~1–4 degrees of freedom and no power.
- **Not a rank or permutation test.** Those are exact but can only be as small
  as one arrangement in C(n_a + n_b, n_a): 1 in 20 one-sided (0.1 two-sided)
  for 3 + 3, 2/252 ≈ 0.008 for 5 + 5. Corrected for 55 figures the bar is
  0.05 / 55 ≈ 0.0009, which no rank test reaches below 7 repeats a side — every
  figure would be undecidable. The t test uses the *size* of the difference
  against the spread, so a change far beyond the noise is detectable with few
  repeats; its price is the assumption of roughly log-normal repeats (an
  outlying repeat widens the spread, making the test more cautious, not less).
- **A practical margin** (:data:`MIN_CHANGE`, 2 %): the null hypothesis is
  "B is within ±2 % of A", so exact counters (bytes per message) that move by
  rounding never count; and a **noise floor** (:data:`NOISE_FLOOR`, 0.5 %):
  repeats that read exactly alike (tick-quantised CPU, counters) have zero
  sample spread, which is not zero noise.
- **Holm's step-down correction** (:func:`holm`) for the number of figures
  compared: it bounds the family-wise error — the chance that *any* of the
  figures is called changed when none changed — at α, which is what
  ``--fail-on-worse`` in CI needs (Benjamini–Hochberg bounds only the expected
  share of false calls among the calls, and loosens when many figures do
  change, so a real improvement elsewhere would make false "worse" calls
  likelier).
- **The detectable change** (:meth:`RatioTest.detectable`): the smallest true
  change the test catches with :data:`POWER` (80 %) at the measured spread,
  these repeats and the per-figure level (α ÷ figures: the bar Holm sets for a
  lone change).

Everything is deterministic (t distribution from the regularised incomplete
beta function), so a rerun of ``compare`` prints the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "ALPHA",
    "MIN_CHANGE",
    "NOISE_FLOOR",
    "POWER",
    "RatioTest",
    "detectable_ncp",
    "holm",
    "power",
    "ratio_test",
    "repeats_needed",
    "t_quantile",
    "t_two_sided",
]

ALPHA = 0.05  # family-wise error rate of one comparison
MIN_CHANGE = 0.02  # changes within ±2 % are "no change" by definition
NOISE_FLOOR = 0.005  # the smallest repeat-to-repeat spread assumed (relative sd)
POWER = 0.8  # the detectable change is caught this often


# --- the t distribution ------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided(t: float, df: int) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


@lru_cache(maxsize=1024)
def t_quantile(p: float, df: int) -> float:
    """The t ≥ 0 with P(|T| ≥ t) = ``p`` (two-sided; one-sided q is ``t_quantile(2q, df)``)."""
    if p >= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) > p:
        lo, hi = hi, hi * 2.0
        if hi > 1e15:
            return math.inf
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_two_sided(mid, df) > p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2.0


def power(ncp: float, alpha: float, df: int) -> float:
    """P(T′ > t₁₋α/₂) for T′ noncentral t with ``df`` and noncentrality ``ncp`` (the far
    tail left out): the chance the test catches a true change ``ncp`` standard errors
    beyond the margin. T′ = (Z + ncp) ÷ √(χ²_df ÷ df), integrated over χ² numerically
    (x = u², so the density is smooth at 0)."""
    tc = t_quantile(alpha, df)
    u = np.linspace(0.0, math.sqrt(df + 60.0 * math.sqrt(df) + 80.0), 4001)[1:]
    log_pdf = (df - 1) * np.log(u) - u * u / 2 - (df / 2 - 1) * math.log(2) - math.lgamma(df / 2)
    z = ncp - tc * u / math.sqrt(df)  # P(Z > tc·√(x/df) − ncp) = Φ(ncp − tc·√(x/df))
    phi = 0.5 * np.vectorize(math.erfc)(-z / math.sqrt(2))
    return float(np.trapezoid(phi * np.exp(log_pdf), u))


@lru_cache(maxsize=256)
def detectable_ncp(alpha: float, df: int, target: float = POWER) -> float:
    """The noncentrality (standard errors beyond the margin) caught with ``target`` power
    at two-sided level ``alpha``: exact, where t₁₋α/₂ + t_power underestimates it by
    ~10 % at 4 degrees of freedom and α = 0.05 ÷ 55."""
    lo, hi = 0.0, t_quantile(alpha, df) + 10.0
    while power(hi, alpha, df) < target:
        lo, hi = hi, hi * 2.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if power(mid, alpha, df) < target else (lo, mid)
    return (lo + hi) / 2.0


# --- the test ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RatioTest:
    """B against A for one figure: the difference of means on the test scale and its error.

    On the log scale (all values positive, the usual case) ``diff`` is
    ln(geometric mean B ÷ geometric mean A) and ``ratio`` its exponential. With a
    zero or negative value the test runs on the values ÷ their largest magnitude
    (``base``) and ``ratio`` is mean B ÷ mean A. ``se`` is the pooled within-run
    spread (never below the noise floor) × √(1/n_a + 1/n_b); ``df`` = n_a + n_b − 2,
    and the test is undecidable when that is 0 (one repeat a side: no spread).
    """

    n_a: int
    n_b: int
    diff: float
    se: float
    df: int
    margin: float  # on the test scale
    log_scale: bool
    mean_a: float  # linear scale only: mean of A on the test scale, for the ratio

    @property
    def decidable(self) -> bool:
        return self.df >= 1

    @property
    def spread(self) -> float:
        """The pooled within-run standard deviation used (relative; log scale ≈ fraction)."""
        return self.se / math.sqrt(1.0 / self.n_a + 1.0 / self.n_b)

    @property
    def t(self) -> float:
        """(|diff| − margin) ÷ se: how far beyond the ±margin band, in standard errors."""
        excess = abs(self.diff) - self.margin
        if self.se == 0.0:
            return math.copysign(math.inf, excess) if excess else 0.0
        return excess / self.se

    @property
    def p(self) -> float:
        """Two-sided p of "B is within ±margin of A" (1 when the change is inside the band)."""
        if not self.decidable:
            return math.nan
        return 1.0 if self.t <= 0 else min(1.0, t_two_sided(self.t, self.df))

    @property
    def ratio(self) -> float:
        return self._ratio(self.diff)

    def _ratio(self, diff: float) -> float:
        if self.log_scale:
            return math.exp(diff)
        if self.mean_a == 0.0:
            return 1.0 if diff == 0.0 else math.copysign(math.inf, diff)
        return 1.0 + diff / abs(self.mean_a)

    def interval(self, alpha: float = ALPHA) -> tuple[float, float]:
        """The 1 − ``alpha`` confidence interval of ``ratio`` ((nan, nan) when undecidable)."""
        if not self.decidable:
            return (math.nan, math.nan)
        h = t_quantile(alpha, self.df) * self.se
        return (self._ratio(self.diff - h), self._ratio(self.diff + h))

    def detectable(self, alpha: float = ALPHA, power: float = POWER) -> float:
        """The smallest true change (B ÷ A − 1, upwards) caught with ``power`` at level
        ``alpha``: margin + :func:`detectable_ncp` × se on the test scale, the measured
        spread taken as the true one (inf when undecidable)."""
        if not self.decidable:
            return math.inf
        reach = self.margin + detectable_ncp(alpha, self.df, power) * self.se
        return self._ratio(reach) - 1.0 if self.log_scale or self.mean_a else math.inf


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def ratio_test(
    a: Sequence[float],
    b: Sequence[float],
    margin: float = MIN_CHANGE,
    floor: float = NOISE_FLOOR,
) -> RatioTest:
    """Test whether ``b``'s values differ from ``a``'s by more than ±``margin`` (relative).

    Both must be non-empty. The module doc says why this test and not another.
    """
    if not a or not b:
        raise ValueError("ratio_test needs at least one value on each side")
    log_scale = min(min(a), min(b)) > 0
    if log_scale:
        xa, xb = [math.log(v) for v in a], [math.log(v) for v in b]
        band = math.log1p(margin)
    else:
        scale = max(abs(v) for v in (*a, *b)) or 1.0
        xa, xb = [v / scale for v in a], [v / scale for v in b]
        band = margin * abs(_mean(xa)) if any(xa) else margin
    ma, mb = _mean(xa), _mean(xb)
    df = len(xa) + len(xb) - 2
    ss = math.fsum((x - ma) ** 2 for x in xa) + math.fsum((x - mb) ** 2 for x in xb)
    sd = max(math.sqrt(ss / df), floor) if df else floor
    se = sd * math.sqrt(1.0 / len(xa) + 1.0 / len(xb))
    return RatioTest(len(xa), len(xb), mb - ma, se, df, band, log_scale, ma)


MOST_REPEATS = 100  # :func:`repeats_needed` looks no further


def _caught(test: RatioTest, n: int, alpha: float, power: float) -> bool:
    """Whether ``n`` repeats a side catch ``test``'s difference with ``power`` at ``alpha``."""
    se = test.spread * math.sqrt(2.0 / n)
    excess = abs(test.diff) - test.margin
    return excess / se >= detectable_ncp(alpha, 2 * n - 2, power)


def repeats_needed(
    test: RatioTest, alpha: float = ALPHA, power: float = POWER, most: int = MOST_REPEATS
) -> int | None:
    """The repeats a side with which a true difference of ``test.diff`` would be told from
    noise with ``power`` at level ``alpha``, the measured spread taken as the true one:
    the fewest ``n`` whose standard error puts the difference beyond the margin by
    :func:`detectable_ncp`. None when the difference is inside the ±margin band (no number
    of repeats separates it), the test has no spread, or more than ``most`` are needed."""
    if not test.decidable or abs(test.diff) <= test.margin:
        return None
    if not _caught(test, most, alpha, power):
        return None
    lo, hi = 1, most  # not caught at lo (one repeat: no spread), caught at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _caught(test, mid, alpha, power) else (mid, hi)
    return hi


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (reject where ≤ α).

    The i-th smallest p is multiplied by (m − i + 1), kept monotone and capped at 1,
    so rejecting every adjusted p ≤ α keeps the family-wise error ≤ α.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
