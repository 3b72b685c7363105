"""The benchmarks' timing loop: calibration and warm-up, checked with a fake clock.

No real timing here: a fake CPU whose calls cost a known number of nanoseconds (cold
calls more, until they have warmed) drives the clock, so what the loop chose is known
exactly and no figure depends on the machine.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pushbench.bench import timing
from pushbench.bench.codec import DEFAULT_MIN_TIME, QUICK_MIN_TIME


class FakeCpu:
    """A clock that only calls advance: call n costs ``cost(n)`` ns (by default the first
    ``cold_calls`` cost ``cold_ns`` each, later ones ``warm_ns``)."""

    def __init__(
        self,
        warm_ns: int,
        cold_ns: int | None = None,
        cold_calls: int = 0,
        cost: Callable[[int], int] | None = None,
    ) -> None:
        self.now = 0
        self.calls = 0
        cold = warm_ns if cold_ns is None else cold_ns
        self.cost = cost or (lambda n: cold if n < cold_calls else warm_ns)

    def clock(self) -> int:
        return self.now

    def call(self) -> None:
        self.now += self.cost(self.calls)
        self.calls += 1


def test_calibration_makes_a_sample_last_the_target() -> None:
    cpu = FakeCpu(warm_ns=1_300)
    target = 20_000_000
    iterations, taken = timing.calibrate(cpu.call, target, clock=cpu.clock)
    assert taken[-1] >= target  # the chosen count was seen to last the target
    assert iterations * 1_300 >= target
    assert iterations * 1_300 <= 2 * target  # not wildly longer than asked
    assert all(t < target for t in taken[:-1])


def test_calibration_from_a_cold_count_raises_it_once_calls_are_faster() -> None:
    cpu = FakeCpu(warm_ns=1_000)
    target = 10_000_000
    # 1,000 calls lasted the target when they cost 10 µs; now they cost 1 µs
    iterations, taken = timing.calibrate(cpu.call, target, start=1_000, clock=cpu.clock)
    assert taken[0] == 1_000_000 and taken[-1] >= target
    assert iterations >= 10_000


def test_warm_up_runs_until_two_samples_agree_after_the_warm_up_time() -> None:
    # calls get faster over the first 50,000 (3 µs → 1 µs), then stay at 1 µs
    cpu = FakeCpu(0, cost=lambda n: 1_000 + 2_000 * max(0, 50_000 - n) // 50_000)
    samples = timing.warm_up(cpu.call, 10_000, warm_ns=50_000_000, clock=cpu.clock)
    assert sum(samples) > 50_000_000  # past the warm-up time: the calls were still changing
    assert cpu.calls >= 60_000  # until two samples of warm calls
    assert samples[-1] == samples[-2] == 10_000_000


def test_warm_up_ends_at_its_cap_when_samples_never_agree() -> None:
    cpu = FakeCpu(0, cost=lambda n: 1_000_000 * (1 + 2 * (n % 2)))  # 1 ms, 3 ms, 1 ms, …
    got = timing.warm_up(cpu.call, 1, warm_ns=10_000_000, clock=cpu.clock)
    assert timing.WARMUP_MAX_FACTOR * 10_000_000 <= sum(got) <= 43_000_000


def test_measure_times_only_warm_calls_in_samples_of_the_target() -> None:
    """Cold calls (the first 50 ms of a fresh process) cost 10×: the loop count found on
    them would make warm samples 10× too short, and a short warm-up would time them."""
    cpu = FakeCpu(warm_ns=1_000, cold_ns=10_000, cold_calls=5_000)
    got = timing.measure(cpu.call, repeats=3, min_time=QUICK_MIN_TIME, clock=cpu.clock)
    target = int(QUICK_MIN_TIME * 1e9)
    assert got.target_ns == target
    assert got.warmup_ns  # discarded samples, kept for the record
    assert got.repeats_ns == (got.iterations * 1_000,) * 3  # warm calls only
    assert all(ns >= target for ns in got.repeats_ns)


def test_quick_and_full_runs_warm_up_alike() -> None:
    assert timing.warmup_time(QUICK_MIN_TIME) == timing.warmup_time(DEFAULT_MIN_TIME)
    assert timing.warmup_time(QUICK_MIN_TIME) == pytest.approx(timing.WARMUP_TIME_S)
    assert timing.warmup_time(0.002) == pytest.approx(timing.WARMUP_SAMPLES * 0.002)  # tests
