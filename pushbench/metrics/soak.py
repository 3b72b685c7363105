"""The soak's figures (issue 17 item 6): delivery across resumes, drift, errors in the log.

- **Resumes** (:func:`resume_check`): in a churn cell every subscriber is subscribed
  from the ticker's first message to its last — it connects before the ticker starts,
  leaves only once it has a position to resume from (:mod:`pushbench.churn`) and comes
  back with ``since=`` it — so the messages it must have received are exactly the hub's
  seq range of the ticker, ``first_seq..last_seq``, the ones published while it was away
  included (the server replays them from its history). Per subscriber, a seq of that
  range never received is *lost* (a resume that skipped), one received twice a
  *duplicate* (a resume that repeated); counted exactly by :func:`~.delivery.delivery`
  over the whole run, warm-up included, not only the measured window.
- **Drift** (:func:`slope_per_min`): the least-squares slope of the server's RSS and of
  its open file descriptors over the window's samples, per minute (the fit of
  :func:`~.memory.least_squares_slope`): a leak shows as a slope that does not vanish.
- **Reconnect times** (:func:`quantiles_ms`): each reconnect's TCP connect → handshake.
- **Errors in the log** (:func:`count_error_lines`): lines of the server's log that
  report an error (a traceback, an ``ERROR``/``CRITICAL`` record, aiohttp's "Error
  handling request").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .delivery import delivery
from .memory import least_squares_slope

__all__ = [
    "ERROR_LINE",
    "ResumeCheck",
    "count_error_lines",
    "quantiles_ms",
    "resume_check",
    "slope_per_min",
]

#: A line of a server's log that reports an error.
ERROR_LINE = re.compile(
    r"Traceback \(most recent call last\)|\bERROR\b|\bCRITICAL\b|Error handling request"
)
NS_PER_MIN = 60e9


@dataclass(frozen=True)
class ResumeCheck:
    """Delivery of the hub's seqs ``first_seq..last_seq`` to every subscriber, all
    resumes included: ``expected`` (range × subscribers), ``lost`` (never received),
    ``duplicated`` (received more than once), ``outside`` (seqs outside the range)."""

    first_seq: int
    last_seq: int
    subscribers: int
    expected: int
    lost: int
    duplicated: int
    outside: int


def resume_check(
    conn: ArrayLike, seq: ArrayLike, *, first_seq: int, last_seq: int, subscribers: int
) -> ResumeCheck:
    """Count every subscriber's receipts (``conn``, ``seq``, arrival order) against the
    hub's seq range of the run (see the module docstring)."""
    d = delivery(conn, seq, first_seq=first_seq, last_seq=last_seq, connections=subscribers)
    return ResumeCheck(
        first_seq,
        last_seq,
        subscribers,
        d.expected,
        d.total("lost"),
        d.total("duplicated"),
        d.total("outside"),
    )


def slope_per_min(t_ns: Sequence[int], values: Sequence[float]) -> float | None:
    """Least-squares slope of ``values`` over time (``t_ns``: CLOCK_MONOTONIC ns), per
    minute; None with fewer than two distinct times."""
    return least_squares_slope([t / NS_PER_MIN for t in t_ns], [float(v) for v in values])


def quantiles_ms(durations_ns: Sequence[int]) -> tuple[float, float, float] | None:
    """(median, p99, max) of ``durations_ns`` in milliseconds; None when there is none."""
    if not durations_ns:
        return None
    ms = np.asarray(durations_ns, dtype=np.float64) / 1e6
    p50, p99 = np.percentile(ms, [50.0, 99.0])
    return float(p50), float(p99), float(ms.max())


def count_error_lines(text: str) -> int:
    """Lines of ``text`` (a server log) that report an error (:data:`ERROR_LINE`)."""
    return sum(1 for line in text.splitlines() if ERROR_LINE.search(line))
