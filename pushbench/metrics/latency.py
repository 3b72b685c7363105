"""Latency from receipts: HDR histograms, their summaries and files, and latency over time.

Latency goes into HDR histograms in whole **microseconds** (1 µs … 60 s, 3
significant digits: resolution 1 µs below ~2 ms, ≤ 0.1 % above), from the
maintained ``hdrhistogram`` package. *Corrected* latency is ``recv − sched``
(what a user sees, publisher lateness included: no coordinated omission);
*uncorrected* is ``recv − pub``. Messages scheduled before the measured window
(warm-up) or after it are left out by ``sched_ns``. Values are rounded to the
nearest µs; negative ones (clock granularity) count as 0 and ones above 60 s
as 60 s, and both are counted so nothing disappears.

*All expected* latency (:func:`latency_all_expected`, wrk2's honesty) ranks
every message the window expected, per connection: a received one by the
corrected latency of its first arrival, a lost one as infinitely late. A
percentile whose rank falls among the lost is ``+inf``: with more than 1 %
lost, p99 is ``inf``; with none lost (and no duplicates) each percentile equals
the received one.

Merging histograms of several client processes adds their counts, which is
exact: the merge equals one histogram of all the values. The files holding them
are HdrHistogram interval logs (:mod:`.hlog`). The series is a down-sampled
latency over the window, for the plots over time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from numpy.typing import NDArray

from .delivery import Delivery, first_arrivals
from .receipts import Int64s, Receipts

__all__ = [
    "HIST_HIGHEST_US",
    "HIST_LOWEST_US",
    "HIST_SIGNIFICANT_FIGURES",
    "PERCENTILES",
    "TAIL_PERCENTILES",
    "LatencyHistograms",
    "LatencySummary",
    "Series",
    "TailSummary",
    "decode_histogram",
    "encode_histogram",
    "histogram_of",
    "latency_all_expected",
    "latency_histograms",
    "latency_series",
    "merge_histograms",
    "new_histogram",
    "record",
    "summarize",
    "to_us",
]

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000  # 60 s
HIST_SIGNIFICANT_FIGURES = 3
#: Reported percentiles → the suffix of their column names (lat_p50_us, …).
PERCENTILES: dict[float, str] = {50.0: "p50", 90.0: "p90", 99.0: "p99", 99.9: "p999"}


# --- histograms ------------------------------------------------------------


def new_histogram() -> HdrHistogram:
    """An empty latency histogram: 1 µs … 60 s, 3 significant digits."""
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGNIFICANT_FIGURES)


def _counts(hist: HdrHistogram) -> NDArray[np.uint64]:
    """The histogram's counts array as a writable numpy view (no copy)."""
    return np.ctypeslib.as_array(hist.counts)


def _bucket_index(hist: HdrHistogram, values: Int64s) -> Int64s:
    """HdrHistogram's ``_get_bucket_index``, vectorized (values ≥ 0, < 2**53).

    ``bit_length(v | mask)`` comes from ``frexp``, exact for integers below 2**53.
    """
    bits = np.frexp((values | int(hist.sub_bucket_mask)).astype(np.float64))[1].astype(np.int64)
    return bits - int(hist.unit_magnitude) - (int(hist.sub_bucket_half_count_magnitude) + 1)


def _counts_index(hist: HdrHistogram, values: Int64s) -> Int64s:
    """HdrHistogram's ``_counts_index_for``, vectorized (values ≥ 0, < 2**53)."""
    unit = int(hist.unit_magnitude)
    half_mag = int(hist.sub_bucket_half_count_magnitude)
    bucket = _bucket_index(hist, values)
    sub_bucket = values >> (bucket + unit)
    return ((bucket + 1) << half_mag) + sub_bucket - int(hist.sub_bucket_half_count)


def _mean(hist: HdrHistogram) -> float:
    """``HdrHistogram.get_mean_value``, vectorized (the library walks every bucket in Python).

    Each count stands for the middle of its bucket, as in HdrHistogram.
    """
    counts = _counts(hist)
    idx = np.flatnonzero(counts)
    if not len(idx):
        return 0.0
    unit = int(hist.unit_magnitude)
    half_mag = int(hist.sub_bucket_half_count_magnitude)
    half = int(hist.sub_bucket_half_count)
    # value_from_index: the lowest value of each bucket
    bucket = (idx >> half_mag) - 1
    sub_bucket = (idx & (half - 1)) + half
    first = bucket < 0
    sub_bucket[first] -= half
    bucket[first] = 0
    lowest = sub_bucket << (bucket + unit)
    # size of the range of equivalent values at that value
    size_bucket = _bucket_index(hist, lowest)
    size_bucket += (lowest >> (size_bucket + unit)) >= int(hist.sub_bucket_count)
    middle = lowest + ((np.int64(1) << (unit + size_bucket)) >> 1)
    weights = counts[idx].astype(np.float64)
    return float(np.dot(weights, middle.astype(np.float64)) / weights.sum())


def to_us(delta_ns: Int64s) -> tuple[Int64s, int, int]:
    """Nanosecond latencies → whole µs in the histogram's range, and how many were clamped.

    Returns ``(values_us, below_zero, above_max)``: rounded to the nearest µs,
    negatives set to 0 and values past 60 s set to 60 s.
    """
    us = (np.asarray(delta_ns, dtype=np.int64) + 500) // 1000
    below = int(np.count_nonzero(us < 0))
    above = int(np.count_nonzero(us > HIST_HIGHEST_US))
    return np.clip(us, 0, HIST_HIGHEST_US), below, above


def record(hist: HdrHistogram, values_us: Int64s) -> None:
    """Add integer µs values to ``hist``; same result as ``record_value`` per value, fast.

    ``values_us`` must already be within the histogram's range (see :func:`to_us`).
    """
    values = np.asarray(values_us, dtype=np.int64)
    if not len(values):
        return
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi > hist.highest_trackable_value:
        raise ValueError(f"values outside 0..{hist.highest_trackable_value}: {lo}..{hi}")
    counts = _counts(hist)
    idx = _counts_index(hist, values)
    counts += np.bincount(idx, minlength=len(counts)).astype(np.uint64)
    hist.total_count += len(values)
    hist.min_value = min(hist.min_value, lo)
    hist.max_value = max(hist.max_value, hi)


def histogram_of(values_us: Int64s) -> HdrHistogram:
    """A new histogram holding ``values_us``."""
    hist = new_histogram()
    record(hist, values_us)
    return hist


def _same_layout(a: HdrHistogram, b: HdrHistogram) -> bool:
    return bool(
        a.lowest_trackable_value == b.lowest_trackable_value
        and a.highest_trackable_value == b.highest_trackable_value
        and a.significant_figures == b.significant_figures
        and a.counts_len == b.counts_len
    )


def merge_histograms(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    """One histogram holding every count of ``hists`` (exact: counts are added).

    Done on the counts arrays rather than with ``HdrHistogram.add``, which
    resets the minimum when the target is empty.
    """
    out = new_histogram()
    counts = _counts(out)
    for h in hists:
        if not _same_layout(out, h):
            raise ValueError("histograms with different ranges or precision cannot be merged")
        if not h.total_count:
            continue
        counts += _counts(h)
        out.min_value = min(out.min_value, h.min_value)
        out.max_value = max(out.max_value, h.max_value)
    out.total_count = int(counts.sum())
    return out


def encode_histogram(hist: HdrHistogram) -> str:
    """HdrHistogram V2 compressed, base64 (interoperable with HdrHistogram tools)."""
    encoded = hist.encode()
    return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)


def decode_histogram(text: str) -> HdrHistogram:
    """Inverse of :func:`encode_histogram`."""
    return HdrHistogram.decode(text.strip())


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of one histogram in µs (``None`` when it is empty).

    Percentiles are HDR values: the highest value equivalent to the recorded
    one, so at most 0.1 % above the exact order statistic. ``below_zero`` and
    ``above_max`` count the clamped samples (see :func:`to_us`).
    """

    count: int
    p50_us: int | None
    p90_us: int | None
    p99_us: int | None
    p999_us: int | None
    max_us: int | None
    mean_us: float | None
    below_zero: int = 0
    above_max: int = 0


def summarize(hist: HdrHistogram, *, below_zero: int = 0, above_max: int = 0) -> LatencySummary:
    """p50, p90, p99, p99.9, max, mean and count of ``hist``."""
    if not hist.total_count:
        return LatencySummary(0, None, None, None, None, None, None, below_zero, above_max)
    pct = hist.get_percentile_to_value_dict(list(PERCENTILES))
    return LatencySummary(
        count=int(hist.total_count),
        p50_us=int(pct[50.0]),
        p90_us=int(pct[90.0]),
        p99_us=int(pct[99.0]),
        p999_us=int(pct[99.9]),
        max_us=int(hist.get_max_value()),
        mean_us=_mean(hist),
        below_zero=below_zero,
        above_max=above_max,
    )


@dataclass(frozen=True)
class LatencyHistograms:
    """Corrected and uncorrected histograms of one set of receipts, with their clamp counts."""

    corrected: HdrHistogram
    uncorrected: HdrHistogram
    corrected_clamped: tuple[int, int] = (0, 0)  # (below_zero, above_max)
    uncorrected_clamped: tuple[int, int] = (0, 0)

    def summaries(self) -> tuple[LatencySummary, LatencySummary]:
        """(corrected, uncorrected) summaries."""
        c, u = self.corrected_clamped, self.uncorrected_clamped
        return (
            summarize(self.corrected, below_zero=c[0], above_max=c[1]),
            summarize(self.uncorrected, below_zero=u[0], above_max=u[1]),
        )


def latency_histograms(
    receipts: Receipts, start_ns: int, end_ns: int | None = None
) -> LatencyHistograms:
    """Histograms of ``recv − sched`` and ``recv − pub`` for messages scheduled in the window.

    Every receipt in the window counts, duplicates included (they are also
    counted by :func:`delivery`).
    """
    r = receipts.window(start_ns, end_ns)
    corrected, *c_clamped = to_us(r.recv_ns - r.sched_ns)
    uncorrected, *u_clamped = to_us(r.recv_ns - r.pub_ns)
    return LatencyHistograms(
        histogram_of(corrected),
        histogram_of(uncorrected),
        (c_clamped[0], c_clamped[1]),
        (u_clamped[0], u_clamped[1]),
    )


@dataclass(frozen=True)
class TailSummary:
    """Corrected latency over *every expected* message, lost ones counted as infinitely late.

    ``expected`` messages (per connection, as :class:`~.delivery.Delivery` counts them),
    ``lost`` of them never received. Each percentile is the value of rank
    ⌊q/100 · expected + ½⌋ (HdrHistogram's rank rule) among all expected messages
    sorted by latency, lost last: ``math.inf`` when that rank is past the received
    ones, else the HDR value of the received latency at that rank. ``max_us`` is
    ``inf`` as soon as one message is lost. All ``None`` when nothing was expected.
    """

    expected: int
    lost: int
    p50_us: float | None
    p99_us: float | None
    p999_us: float | None
    max_us: float | None

    def columns(self) -> dict[str, float | None]:
        """The ``cells.csv`` columns it fills: ``lat_all_p50_us`` … ``lat_all_max_us``."""
        return {
            "lat_all_p50_us": self.p50_us,
            "lat_all_p99_us": self.p99_us,
            "lat_all_p999_us": self.p999_us,
            "lat_all_max_us": self.max_us,
        }


#: The percentiles of :class:`TailSummary` (its fields ``p50_us``, ``p99_us``, ``p999_us``).
TAIL_PERCENTILES: dict[float, str] = {50.0: "p50", 99.0: "p99", 99.9: "p999"}


def latency_all_expected(receipts: Receipts, delivery: Delivery) -> TailSummary:
    """Percentiles of the corrected latency over every message ``delivery`` expected.

    A received message counts once, by its first arrival on its connection
    (duplicates are left out, as :func:`~.delivery.delivery` counts it delivered
    once); an expected message never received counts as ``+inf``.
    """
    expected = delivery.expected
    if not expected:
        return TailSummary(0, 0, None, None, None, None)
    first = first_arrivals(receipts, delivery.first_seq, delivery.last_seq)
    values, _, _ = to_us(first.recv_ns - first.sched_ns)
    hist = histogram_of(values)
    received = int(hist.total_count)
    lost = expected - received
    cumulative = np.cumsum(_counts(hist))

    def at(q: float) -> float:
        rank = max(1, int(q * expected / 100 + 0.5))
        if rank > received:
            return math.inf
        index = int(np.searchsorted(cumulative, rank))
        return float(hist.get_highest_equivalent_value(hist.get_value_from_index(index)))

    pct = {name: at(q) for q, name in TAIL_PERCENTILES.items()}
    return TailSummary(
        expected,
        lost,
        pct["p50"],
        pct["p99"],
        pct["p999"],
        math.inf if lost else float(hist.get_max_value()),
    )


# --- latency over time -----------------------------------------------------


@dataclass(frozen=True)
class Series:
    """Corrected latency over time, down-sampled: one point per non-empty time bucket.

    ``t_s`` is the bucket start in seconds since the window start (by
    scheduled time, so a server stall shows where it happened).
    """

    bucket_s: float
    t_s: NDArray[np.float64]
    count: Int64s
    p50_us: NDArray[np.float64]
    max_us: NDArray[np.float64]

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket_s": self.bucket_s,
            "t_s": self.t_s.tolist(),
            "count": self.count.tolist(),
            "p50_us": self.p50_us.tolist(),
            "max_us": self.max_us.tolist(),
        }


def latency_series(
    receipts: Receipts, start_ns: int, end_ns: int | None = None, *, max_points: int = 2000
) -> Series:
    """At most ``max_points`` buckets over the window, each with its median and max latency."""
    if max_points < 1:
        raise ValueError("max_points must be ≥ 1")
    r = receipts.window(start_ns, end_ns)
    if not len(r):
        empty = np.zeros(0)
        return Series(0.0, empty, np.zeros(0, dtype=np.int64), empty, empty)
    end = end_ns if end_ns is not None else int(r.sched_ns.max()) + 1
    width = max(1, math.ceil((end - start_ns) / max_points))
    bucket = (r.sched_ns - start_ns) // width
    lat = (r.recv_ns - r.sched_ns) / 1000.0
    order = np.lexsort((lat, bucket))
    bucket, lat = bucket[order], lat[order]
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    count = np.diff(np.concatenate((starts, [len(bucket)])))
    median = (lat[starts + (count - 1) // 2] + lat[starts + count // 2]) / 2
    return Series(width / 1e9, bucket[starts] * width / 1e9, count, median, lat[starts + count - 1])
