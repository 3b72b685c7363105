"""The timing loop shared by the benchmarks: calibrate, warm up, time repeats, GC paused.

Kept apart from any case so every case is timed the same way (the
pytest-benchmark / pyperformance discipline): a :class:`Timing` is raw data,
``repeats_ns[i]`` the nanoseconds of ``iterations`` calls; deriving per-frame
figures from it is the caller's business.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Timing", "measure"]


@dataclass(frozen=True)
class Timing:
    """Raw result of :func:`measure`: ``repeats_ns[i]`` is ``iterations`` calls."""

    iterations: int
    repeats_ns: tuple[int, ...]


def _time_calls(call: Callable[[], object], iterations: int) -> int:
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
        start = time.perf_counter_ns()
        for _ in loop:
            call()
        return time.perf_counter_ns() - start
    finally:
        if was_enabled:
            gc.enable()


def measure(call: Callable[[], object], *, repeats: int, min_time: float) -> Timing:
    """Calibrate, warm up, then time ``repeats`` repeats of ≥ ``min_time`` seconds.

    Calibration doubles the iteration count until a batch takes a fifth of
    ``min_time``, then scales it to ``min_time``; a warm-up of half that many
    calls follows (caches, branch predictors, allocator pools and CPU clock
    settle), and is discarded.
    """
    min_ns = max(1, int(min_time * 1e9))
    iterations = 1
    while True:
        elapsed = _time_calls(call, iterations)
        if elapsed >= min_ns // 5 or iterations >= 1 << 30:
            break
        iterations *= 2
    iterations = max(1, math.ceil(iterations * min_ns / max(elapsed, 1)))
    _time_calls(call, max(1, iterations // 2))
    out = []
    for _ in range(repeats):
        gc.collect()  # start each repeat from a clean heap
        out.append(_time_calls(call, iterations))
    return Timing(iterations, tuple(out))
