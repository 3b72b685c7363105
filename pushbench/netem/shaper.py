"""When each chunk of one direction of a relayed connection may leave: the delay model.

A pure function of arrival times, chunk sizes and a seeded random generator (no I/O),
so its rules are tested without sockets:

- **bandwidth cap**: a token bucket of ``burst_bytes`` filled at ``rate_bytes_per_s``,
  written as GCRA (a theoretical arrival time ``tat``): a chunk of ``n`` bytes may leave
  once the bucket holds ``n`` tokens, so a long burst leaves at the capped rate;
- **delay and jitter**: then it is held ``delay_ms`` ± a uniform ``jitter_ms``;
- **order**: never before the previous chunk of the same direction (a TCP byte stream
  cannot be reordered; with jitter this adds a small positive bias, which calibration
  measures);
- **stall**: a chunk that would leave inside the stall window waits for its end.
"""

from __future__ import annotations

import random

from .profiles import Direction

__all__ = ["Shaper"]


class Shaper:
    """Release times for one direction of one connection (times in seconds, any clock)."""

    def __init__(
        self,
        direction: Direction,
        rng: random.Random,
        *,
        stall: tuple[float, float] | None = None,
    ) -> None:
        self.direction = direction
        self._rng = rng
        self._tat = float("-inf")  # GCRA theoretical arrival time (bucket state)
        self._last = float("-inf")  # release time of the previous chunk
        self._stall = stall  # (start, end) in the same clock, or None

    def release_at(self, now: float, size: int) -> float:
        """The time a chunk of ``size`` bytes that arrived at ``now`` may be written on."""
        d = self.direction
        t = now
        if d.rate_bytes_per_s > 0:
            self._tat = max(self._tat, now) + size / d.rate_bytes_per_s
            t = max(now, self._tat - d.burst_bytes / d.rate_bytes_per_s)
        delay_ms = d.delay_ms
        if d.jitter_ms:
            delay_ms += self._rng.uniform(-d.jitter_ms, d.jitter_ms)
        t += delay_ms / 1000.0
        if self._stall is not None and self._stall[0] <= t < self._stall[1]:
            t = self._stall[1]
        t = max(t, self._last)
        self._last = t
        return t
