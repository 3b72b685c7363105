"""The statistics of ``pushbench compare`` (:mod:`pushbench.report.stats`), checked on their own.

The t distribution against closed forms and textbook quantiles; the test's verdict edges
as a table (identical samples, a clear 2× shift, a shift within the noise, exact counters,
one repeat a side); the detectable change against simulation (a true change of that size
is caught about 4 times in 5); and the point of the correction: 55 figures of pure noise,
compared over many seeded trials, are flagged in at most α of the trials with Holm's
correction, where uncorrected tests flag something in most trials.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pushbench.report import stats

FIGURES = 55  # the default run's headline figures: 11 cells × 5


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (12.7062047, 1, 0.05),  # textbook two-sided 5 % quantiles
        (4.3026527, 2, 0.05),
        (2.7764451, 4, 0.05),
        (2.3060041, 8, 0.05),
        (1.959964, 10**7, 0.05),  # → the normal distribution
        (3.0, 1, 1 - 2 / math.pi * math.atan(3.0)),  # Cauchy, closed form
        (3.0, 2, 1 - 3.0 / math.sqrt(2 + 9.0)),  # df = 2, closed form
        (40.0, 2, 1 - 40.0 / math.sqrt(2 + 1600.0)),
        (0.0, 4, 1.0),
        (math.inf, 4, 0.0),
    ],
)
def test_t_distribution(t: float, df: int, p: float) -> None:
    assert stats.t_two_sided(t, df) == pytest.approx(p, rel=1e-5, abs=1e-12)
    if 0 < p < 1:
        assert stats.t_quantile(p, df) == pytest.approx(t, rel=1e-5)


@pytest.mark.parametrize(
    ("raw", "adjusted"),
    [
        ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),  # (m − rank + 1) × p, kept monotone
        ([0.5, 0.9], [1.0, 1.0]),  # capped at 1
        ([0.001] * 4, [0.004] * 4),
        ([], []),
    ],
)
def test_holm(raw: list[float], adjusted: list[float]) -> None:
    assert stats.holm(raw) == pytest.approx(adjusted)


def _noisy(rng: np.random.Generator, n: int, sd: float, factor: float = 1.0) -> list[float]:
    return list(1000.0 * factor * np.exp(rng.normal(0.0, sd, n)))


_RNG_CASES = np.random.default_rng(11)
_NOISE5 = _noisy(_RNG_CASES, 5, 0.10)
_NOISE3 = _noisy(_RNG_CASES, 3, 0.10)


@pytest.mark.parametrize(
    ("case", "a", "b", "family", "changed"),
    [
        ("identical samples", [100.0, 103.0, 98.0], [100.0, 103.0, 98.0], 1, False),
        ("identical constants", [5.0, 5.0, 5.0], [5.0, 5.0, 5.0], 1, False),
        (
            "clear 2× shift, 5 repeats, ±10 % noise, among 55 figures",
            _NOISE5,
            [2 * x for x in _NOISE5[::-1]],
            FIGURES,
            True,
        ),
        ("2× shift, 3 repeats, ±10 % noise, alone", _NOISE3, [2 * x for x in _NOISE3], 1, True),
        ("+5 % shift within ±10 % noise", _NOISE3, [1.05 * x for x in _NOISE3[::-1]], 1, False),
        ("exact counter moved by rounding", [174.38, 174.38], [174.40, 174.40], 1, False),
        ("exact counter moved 5 %", [100.0, 100.0, 100.0], [105.0, 105.0, 105.0], 1, True),
        ("overlapping repeats", [100.0, 110.0, 200.0], [150.0, 160.0, 170.0], 1, False),
        ("zero values: linear scale", [0.0, 1.0, 0.0], [0.0, 1.0, 1.0], 1, False),
    ],
)
def test_verdict_table(
    case: str, a: list[float], b: list[float], family: int, changed: bool
) -> None:
    """``changed``: the p-value clears Holm's bar for a lone change in a family of ``family``."""
    test = stats.ratio_test(a, b)
    assert test.decidable
    assert (test.p <= stats.ALPHA / family) is changed, (case, test)
    lo, hi = test.interval(stats.ALPHA / family)
    assert lo <= test.ratio <= hi
    if changed:  # the interval then lies beyond the ±2 % band
        assert lo > 1 + stats.MIN_CHANGE or hi < 1 - stats.MIN_CHANGE


def test_one_repeat_a_side_is_undecidable() -> None:
    test = stats.ratio_test([100.0], [1000.0])
    assert not test.decidable and math.isnan(test.p)
    assert test.detectable() == math.inf and all(map(math.isnan, test.interval()))
    with pytest.raises(ValueError):
        stats.ratio_test([], [1.0])


def _holm_flags(rng: np.random.Generator, n: int, sd: float, margin: float) -> tuple[int, int]:
    """One trial: (figures flagged with Holm, flagged uncorrected) among FIGURES of pure noise."""
    ps = [
        stats.ratio_test(_noisy(rng, n, sd), _noisy(rng, n, sd), margin=margin).p
        for _ in range(FIGURES)
    ]
    return (
        sum(p <= stats.ALPHA for p in stats.holm(ps)),
        sum(p <= stats.ALPHA for p in ps),
    )


@pytest.mark.parametrize(("n", "margin"), [(3, 0.0), (3, stats.MIN_CHANGE), (5, 0.0)])
def test_correction_keeps_false_alarms_at_or_below_alpha(n: int, margin: float) -> None:
    """55 figures from one distribution, 600 seeded trials: with Holm, the share of trials
    flagging anything stays ≤ α (plus two Monte-Carlo standard errors when the margin is
    0, where the test is exact); uncorrected, most trials flag something."""
    rng = np.random.default_rng(2024 + n)
    trials = 600
    runs = [_holm_flags(rng, n, 0.05, margin) for _ in range(trials)]
    any_holm = sum(h > 0 for h, _ in runs) / trials
    any_raw = sum(r > 0 for _, r in runs) / trials
    share_raw = sum(r for _, r in runs) / (trials * FIGURES)
    allowance = 2 * math.sqrt(stats.ALPHA * (1 - stats.ALPHA) / trials) if margin == 0 else 0.0
    assert any_holm <= stats.ALPHA + allowance
    assert share_raw <= stats.ALPHA + 0.01  # each figure's p-value is calibrated (or cautious)
    if margin == 0:
        assert share_raw == pytest.approx(stats.ALPHA, abs=0.01)
        assert any_raw > 0.9  # ≈ 1 − 0.95⁵⁵: without the correction, nearly every trial
    assert any_raw > 3 * any_holm


@pytest.mark.parametrize(("n", "sd"), [(3, 0.05), (5, 0.10)])
def test_detectable_change_is_caught_four_times_in_five(n: int, sd: float) -> None:
    """A true change of the stated detectable size is caught ≈ 80 % of the time at α ÷ 55;
    half that size far less often. The spread is the run's own, so it is read off each
    trial's test (as compare does) and the size taken at the true spread."""
    rng = np.random.default_rng(7 + n)
    level = stats.ALPHA / FIGURES
    probe = stats.ratio_test(_noisy(rng, n, sd), _noisy(rng, n, sd))
    mde_at_true_sd = stats.RatioTest(
        n, n, 0.0, sd * math.sqrt(2 / n), 2 * n - 2, probe.margin, True, 0.0
    ).detectable(level)
    caught = {}
    for label, size in (("mde", mde_at_true_sd), ("half", mde_at_true_sd / 2)):
        hits = 0
        for _ in range(800):
            a, b = _noisy(rng, n, sd), _noisy(rng, n, sd, 1 + size)
            hits += stats.ratio_test(a, b).p <= level
        caught[label] = hits / 800
    assert caught["mde"] == pytest.approx(stats.POWER, abs=0.1)
    assert caught["half"] < 0.4


def test_rerun_gives_the_same_numbers() -> None:
    """No randomness: the same values give the same p, interval and detectable change."""
    a, b = [310.0, 298.0, 305.0], [330.0, 341.0, 325.0]
    one, two = stats.ratio_test(a, b), stats.ratio_test(list(a), list(b))
    assert (one.p, one.interval(0.001), one.detectable(0.001)) == (
        two.p,
        two.interval(0.001),
        two.detectable(0.001),
    )
