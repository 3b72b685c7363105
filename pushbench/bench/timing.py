"""The timing loop shared by the benchmarks: calibrate, warm up, time repeats, GC paused.

Kept apart from any case so every case is timed the same way (pyperf's discipline): a
:class:`Timing` is raw data, ``repeats_ns[i]`` the nanoseconds of ``iterations`` calls;
deriving per-frame figures from it is the caller's business.

Why a quick run used to disagree with a full one (1.2 µs against 0.63 µs for the same
decode): its samples were short and its warm-up a fraction of one sample, so the first
cases of a fresh process were timed while caches, the allocator's pools and the CPU's
clock were still cold, and a loop count calibrated on cold calls was too short once they
warmed. Now, whatever the sample length:

1. :func:`calibrate` picks the loop count: doubling until a batch takes a tenth of the
   target, then scaling, and it returns only once a sample of that count *lasted* the
   target (``min_time``);
2. :func:`warm_up` runs whole samples of that count, discarded, for at least the warm-up
   time (:data:`WARMUP_TIME_S`, the same in quick and full runs) and until two in a row
   agree within :data:`WARM_TOLERANCE`, or :data:`WARMUP_MAX_FACTOR` times the warm-up
   time has passed;
3. :func:`calibrate` again from the warm count (warm calls are faster: a sample must
   still last the target);
4. the timed repeats.

The clock is a parameter (``time.perf_counter_ns`` by default), so the logic is tested
with a fake one.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "WARMUP_MAX_FACTOR",
    "WARMUP_SAMPLES",
    "WARMUP_TIME_S",
    "WARM_TOLERANCE",
    "Clock",
    "Timing",
    "calibrate",
    "measure",
    "warm_up",
    "warmup_time",
]

Clock = Callable[[], int]
#: Warm-up per case, quick or full (shorter only when ``WARMUP_SAMPLES`` samples are).
WARMUP_TIME_S = 0.1
#: …unless this many samples take less (a run with tiny samples, such as a smoke test).
WARMUP_SAMPLES = 5
#: Two consecutive warm-up samples this close (relative) mean the calls are warm.
WARM_TOLERANCE = 0.05
#: Warming stops after this many times the warm-up time, warm or not (a noisy machine).
WARMUP_MAX_FACTOR = 4
#: Calibration aims this much above the target, so a slightly faster sample still lasts it.
CALIBRATE_MARGIN = 1.1
MAX_ITERATIONS = 1 << 30


@dataclass(frozen=True)
class Timing:
    """Raw result of :func:`measure`: ``repeats_ns[i]`` is ``iterations`` calls;
    ``warmup_ns``: the discarded warm-up samples (not always of ``iterations`` calls:
    the count is raised after them if warm calls got faster); ``target_ns``: the length
    a sample was calibrated to last."""

    iterations: int
    repeats_ns: tuple[int, ...]
    warmup_ns: tuple[int, ...] = ()
    target_ns: int = 0


def _time_calls(
    call: Callable[[], object], iterations: int, clock: Clock = time.perf_counter_ns
) -> int:
    """Nanoseconds for ``iterations`` calls, with the cyclic GC paused.

    Why pause the GC: decoders allocate thousands of container objects (frame
    tuples, lists) per call, which trigger generation-0 collections at points
    that depend on the harness's heap rather than on the codec; their cost
    lands on whichever case happens to run then and makes repeats noisy. The
    outputs hold no reference cycles, so reference counting frees them all
    anyway and memory stays flat. (A server pays GC too, but that cost depends
    on the application's heap, not on the codec.)
    """
    loop = range(iterations)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        for _ in loop:
            call()
        return clock() - start
    finally:
        if was_enabled:
            gc.enable()


def calibrate(
    call: Callable[[], object],
    target_ns: int,
    *,
    start: int = 1,
    clock: Clock = time.perf_counter_ns,
) -> tuple[int, list[int]]:
    """The loop count for samples of ≥ ``target_ns``, and the samples it took to find it
    (the last one lasted the target, unless the count hit its cap). From ``start``: a
    batch under a tenth of the target doubles the count, a longer one scales it to the
    target with :data:`CALIBRATE_MARGIN`."""
    iterations = max(1, start)
    taken: list[int] = []
    while True:
        elapsed = _time_calls(call, iterations, clock)
        taken.append(elapsed)
        if elapsed >= target_ns or iterations >= MAX_ITERATIONS:
            return iterations, taken
        if elapsed < target_ns // 10:
            bigger = iterations * 2
        else:
            bigger = math.ceil(iterations * target_ns * CALIBRATE_MARGIN / max(elapsed, 1))
        iterations = min(MAX_ITERATIONS, max(iterations + 1, bigger))


def warmup_time(min_time: float) -> float:
    """Seconds of warm-up for samples of ``min_time``: :data:`WARMUP_TIME_S`, or
    :data:`WARMUP_SAMPLES` samples if those are shorter."""
    return min(WARMUP_TIME_S, WARMUP_SAMPLES * min_time)


def warm_up(
    call: Callable[[], object],
    iterations: int,
    warm_ns: int,
    *,
    clock: Clock = time.perf_counter_ns,
) -> list[int]:
    """Discarded samples of ``iterations`` calls: for ≥ ``warm_ns`` in all, and on until
    two in a row agree within :data:`WARM_TOLERANCE` (or :data:`WARMUP_MAX_FACTOR` ×
    ``warm_ns``); at least two samples."""
    samples: list[int] = []
    spent = 0
    while True:
        samples.append(_time_calls(call, iterations, clock))
        spent += samples[-1]
        if len(samples) >= 2 and spent >= warm_ns:
            a, b = samples[-2], samples[-1]
            if abs(a - b) <= WARM_TOLERANCE * max(a, b, 1):
                return samples
        if len(samples) >= 2 and spent >= WARMUP_MAX_FACTOR * warm_ns:
            return samples


def measure(
    call: Callable[[], object],
    *,
    repeats: int,
    min_time: float,
    warmup_s: float | None = None,
    clock: Clock = time.perf_counter_ns,
) -> Timing:
    """Calibrate, warm up, re-calibrate, then time ``repeats`` samples of ≥ ``min_time``
    seconds each (see the module's doc). ``warmup_s``: the warm-up (default
    :func:`warmup_time`)."""
    target_ns = max(1, int(min_time * 1e9))
    warm_ns = int((warmup_time(min_time) if warmup_s is None else warmup_s) * 1e9)
    iterations, _ = calibrate(call, target_ns, clock=clock)
    warm = warm_up(call, iterations, warm_ns, clock=clock)
    iterations, more = calibrate(call, target_ns, start=iterations, clock=clock)
    out = []
    for _ in range(repeats):
        gc.collect()  # start each repeat from a clean heap
        out.append(_time_calls(call, iterations, clock))
    return Timing(iterations, tuple(out), tuple(warm + more), target_ns)
