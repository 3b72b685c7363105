"""From receipt arrays to the numbers a report shows: pure functions, no I/O but save/load.

Input is what each client worker writes (``docs/runner-design.md``): per
received message ``conn``, ``seq``, ``sched_ns``, ``pub_ns``, ``recv_ns``
(CLOCK_MONOTONIC nanoseconds, comparable across processes on one host).

- **Latency** goes into HDR histograms in whole **microseconds** (1 µs … 60 s,
  3 significant digits: resolution 1 µs below ~2 ms, ≤ 0.1 % above), from the
  maintained ``hdrhistogram`` package. *Corrected* latency is ``recv − sched``
  (what a user sees, publisher lateness included: no coordinated omission);
  *uncorrected* is ``recv − pub``. Messages scheduled before the measured
  window (warm-up) or after it are left out by ``sched_ns``. Values are
  rounded to the nearest µs; negative ones (clock granularity) count as 0 and
  ones above 60 s as 60 s, and both are counted so nothing disappears.
- **Merging** histograms of several client processes adds their counts, which
  is exact: the merge equals one histogram of all the values. Histograms are
  stored as HdrHistogram V2 base64 strings (``encode()``), one per line.
- **Delivery** accounting is per connection from ``seq`` against the range the
  server published in the window: delivered, lost, duplicated, out of order.
- Throughput, a down-sampled latency-over-time series, the saturation search,
  repeat statistics and the flat result row (:func:`cell_row`, :data:`COLUMNS`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from hdrh.histogram import HdrHistogram
from numpy.typing import ArrayLike, NDArray

from .results import atomic_write_text

if TYPE_CHECKING:
    from .scenario import Cell

__all__ = [
    "COLUMNS",
    "HIST_HIGHEST_US",
    "HIST_LOWEST_US",
    "HIST_SIGNIFICANT_FIGURES",
    "PERCENTILES",
    "Delivery",
    "LatencyHistograms",
    "LatencySummary",
    "Overhead",
    "RatePoint",
    "Receipts",
    "RepeatStats",
    "Saturation",
    "Series",
    "Throughput",
    "cell_row",
    "decode_histogram",
    "delivery",
    "encode_histogram",
    "histogram_of",
    "latency_histograms",
    "latency_series",
    "load_histograms",
    "meets_slo",
    "merge_deliveries",
    "merge_histograms",
    "new_histogram",
    "record",
    "repeat_stats",
    "saturation_search",
    "save_histograms",
    "summarize",
    "throughput",
    "to_us",
]

Int64s = NDArray[np.int64]

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000  # 60 s
HIST_SIGNIFICANT_FIGURES = 3
#: Reported percentiles → the suffix of their column names (lat_p50_us, …).
PERCENTILES: dict[float, str] = {50.0: "p50", 90.0: "p90", 99.0: "p99", 99.9: "p999"}


# --- receipts --------------------------------------------------------------


@dataclass(frozen=True)
class Receipts:
    """One worker's receive log: parallel arrays, one entry per received message."""

    conn: NDArray[np.uint32]
    seq: Int64s
    sched_ns: Int64s
    pub_ns: Int64s
    recv_ns: Int64s

    def __post_init__(self) -> None:
        n = len(self.conn)
        if any(len(a) != n for a in (self.seq, self.sched_ns, self.pub_ns, self.recv_ns)):
            raise ValueError("receipt arrays differ in length")

    def __len__(self) -> int:
        return len(self.conn)

    @classmethod
    def of(cls, **arrays: Any) -> Receipts:
        """From any array-likes (lists in tests), cast to the stored dtypes."""
        return cls(
            np.asarray(arrays["conn"], dtype=np.uint32),
            *(
                np.asarray(arrays[k], dtype=np.int64)
                for k in ("seq", "sched_ns", "pub_ns", "recv_ns")
            ),
        )

    @classmethod
    def load(cls, path: Path | str) -> Receipts:
        """Read a worker's ``OUT.npz``."""
        with np.load(path) as data:
            return cls.of(**{k: data[k] for k in ("conn", "seq", "sched_ns", "pub_ns", "recv_ns")})

    def window(self, start_ns: int, end_ns: int | None = None) -> Receipts:
        """Receipts of messages *scheduled* in ``[start_ns, end_ns)`` (warm-up excluded)."""
        keep = self.sched_ns >= start_ns
        if end_ns is not None:
            keep &= self.sched_ns < end_ns
        return Receipts(
            self.conn[keep],
            self.seq[keep],
            self.sched_ns[keep],
            self.pub_ns[keep],
            self.recv_ns[keep],
        )


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


_HLOG_HEADER = (
    "# pushbench latency histograms: one per line, '<name> <HdrHistogram V2 base64>'\n"
    f"# unit=us lowest={HIST_LOWEST_US} highest={HIST_HIGHEST_US} "
    f"significant_figures={HIST_SIGNIFICANT_FIGURES}\n"
)


def save_histograms(path: Path | str, hists: Mapping[str, HdrHistogram]) -> None:
    """Write named histograms to a ``.hlog``-like text file, atomically."""
    lines = []
    for name, hist in hists.items():
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"histogram names must be non-empty without spaces: {name!r}")
        lines.append(f"{name} {encode_histogram(hist)}\n")
    atomic_write_text(path, _HLOG_HEADER + "".join(lines))


def load_histograms(path: Path | str) -> dict[str, HdrHistogram]:
    """Read a file written by :func:`save_histograms`."""
    out: dict[str, HdrHistogram] = {}
    for line in Path(path).read_text(encoding="ascii").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, blob = line.partition(" ")
            out[name] = decode_histogram(blob)
    return out


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


# --- delivery --------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """Per-connection delivery of the sequence numbers ``first_seq..last_seq``.

    ``delivered``: distinct expected seqs received; ``lost``: expected, never
    received; ``duplicated``: receptions beyond the first of a seq;
    ``out_of_order``: first receptions of a seq after a higher seq had arrived
    on that connection; ``outside``: receptions of seqs outside the range
    (warm-up or after the window; ignored by the other counts).
    """

    first_seq: int
    last_seq: int
    delivered: Int64s
    lost: Int64s
    duplicated: Int64s
    out_of_order: Int64s
    outside: Int64s

    @property
    def connections(self) -> int:
        return len(self.delivered)

    @property
    def expected_per_connection(self) -> int:
        return max(0, self.last_seq - self.first_seq + 1)

    @property
    def expected(self) -> int:
        return self.expected_per_connection * self.connections

    def total(self, name: str) -> int:
        """Sum over connections of ``delivered``, ``lost``, ``duplicated``, … ."""
        return int(np.sum(getattr(self, name)))

    @property
    def delivered_fraction(self) -> float | None:
        """Delivered ÷ expected; ``None`` when nothing was expected (idle cells)."""
        return self.total("delivered") / self.expected if self.expected else None


def delivery(
    conn: ArrayLike, seq: ArrayLike, *, first_seq: int, last_seq: int, connections: int
) -> Delivery:
    """Exact delivery accounting of one worker's receipts (``conn`` in ``0..connections-1``).

    Arrival order is array order, which is the receive path's order; every
    connection is expected to receive every seq in ``[first_seq, last_seq]``.
    """
    conns = np.asarray(conn, dtype=np.int64)
    seqs = np.asarray(seq, dtype=np.int64)
    if len(conns) != len(seqs):
        raise ValueError("conn and seq differ in length")
    if len(conns) and (conns.min() < 0 or conns.max() >= connections):
        raise ValueError(f"connection ids must be in 0..{connections - 1}")
    inside = (seqs >= first_seq) & (seqs <= last_seq)
    outside = np.bincount(conns[~inside], minlength=connections)
    span = max(0, last_seq - first_seq + 1)
    # A stable sort by connection keeps each connection's arrival order.
    order = np.argsort(conns[inside], kind="stable")
    c = conns[inside][order]
    # One key per (connection, seq), increasing with the connection, so a running
    # maximum over the whole array never leaks from one connection into the next.
    key = c * (span + 1) + (seqs[inside][order] - first_seq)
    received = np.bincount(c, minlength=connections)
    first_seen = np.zeros(len(key), dtype=bool)
    first_seen[np.unique(key, return_index=True)[1]] = True  # first occurrence of each key
    delivered = np.bincount(c[first_seen], minlength=connections)
    prior_max = np.maximum.accumulate(np.concatenate(([-1], key)))[:-1]
    late = first_seen & (key < prior_max)
    return Delivery(
        first_seq=first_seq,
        last_seq=last_seq,
        delivered=delivered,
        lost=span - delivered,
        duplicated=received - delivered,
        out_of_order=np.bincount(c[late], minlength=connections),
        outside=outside,
    )


def merge_deliveries(parts: Sequence[Delivery]) -> Delivery:
    """The connections of several workers side by side (same expected range)."""
    if not parts:
        raise ValueError("nothing to merge")
    if len({(p.first_seq, p.last_seq) for p in parts}) != 1:
        raise ValueError("deliveries of different seq ranges cannot be merged")

    def cat(name: str) -> Int64s:
        return np.concatenate([getattr(p, name) for p in parts])

    return Delivery(
        parts[0].first_seq,
        parts[0].last_seq,
        cat("delivered"),
        cat("lost"),
        cat("duplicated"),
        cat("out_of_order"),
        cat("outside"),
    )


@dataclass(frozen=True)
class Throughput:
    """Rates over the measured window, in messages per second.

    ``offered_msgs_per_s``: published into the topic; ``offered_deliveries_per_s``:
    that × connections (what the server must write); ``delivered_msgs_per_s``:
    distinct messages the clients actually received, all connections together.
    """

    duration_s: float
    offered_msgs_per_s: float
    offered_deliveries_per_s: float
    delivered_msgs_per_s: float


def throughput(d: Delivery, duration_s: float) -> Throughput:
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    return Throughput(
        duration_s,
        d.expected_per_connection / duration_s,
        d.expected / duration_s,
        d.total("delivered") / duration_s,
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


# --- saturation search -----------------------------------------------------


@dataclass(frozen=True)
class RatePoint:
    """One measured rate: offered msgs/s, delivered fraction, p99 corrected latency (µs)."""

    offered_per_s: float
    delivered_fraction: float
    p99_us: float


def meets_slo(point: RatePoint, *, slo_p99_us: float, min_delivered_fraction: float) -> bool:
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


# --- repeats ---------------------------------------------------------------


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


# --- result rows -----------------------------------------------------------


@dataclass(frozen=True)
class Overhead:
    """Costs measured around the cell (all optional): server and client counters, /proc."""

    server_cpu_s: float | None = None
    server_rss_bytes: int | None = None
    #: server RSS once every connection is up minus before the first one connected
    server_rss_growth_bytes: int | None = None
    client_cpu_s: float | None = None
    bytes_in: int | None = None  # client-side, after the handshakes
    bytes_out: int | None = None
    handshake_bytes_in: int | None = None
    handshake_bytes_out: int | None = None
    bytes_source: str | None = None  # "tcp_info" or "socket"
    connect_p50_us: float | None = None
    requests: int | None = None  # HTTP requests (polling)
    errors: int = 0
    reconnects: int = 0
    client_max_loop_lag_us: float | None = None


#: Every column of a cell row, in order → what it holds (units are in the names).
COLUMNS: dict[str, str] = {
    "scenario": "scenario name",
    "cell_id": "stable cell id (stack-transport-sub…-rate…-p…)",
    "repeat": "repeat index, from 0",
    "stack": "server stack",
    "transport": "client transport (ws, ws-aiohttp, sse, longpoll, shortpoll)",
    "ws_client": "WebSocket client (light, aiohttp); empty for other transports",
    "client": "who receives: python (pushbench.clients.worker), browser (Chromium), locust",
    "subscribers": "connections receiving",
    "publishers": "connections also publishing (0: server ticker)",
    "rate_msgs_per_s": "configured publish rate into the topic",
    "payload_bytes": "payload size",
    "hub": "hub backend",
    "loop": "event loop",
    "poll_interval_s": "short-poll interval",
    "poll_timeout_s": "long-poll timeout",
    "heartbeat_s": "WebSocket ping / SSE comment interval",
    "duration_s": "measured window",
    "warmup_s": "warm-up before the window",
    "check_delay_ms": "self-check: injected delay per message",
    "check_pause_ms": "self-check: one server stall",
    "check_drop_every": "self-check: every Nth message dropped (0: off)",
    "lat_count": "latency samples (receipts in the window, duplicates included)",
    "lat_p50_us": "corrected latency (recv − scheduled) median",
    "lat_p90_us": "corrected latency p90",
    "lat_p99_us": "corrected latency p99",
    "lat_p999_us": "corrected latency p99.9",
    "lat_max_us": "corrected latency max",
    "lat_mean_us": "corrected latency mean",
    "lat_clamped": "corrected samples clamped to 0 or 60 s",
    "ulat_p50_us": "uncorrected latency (recv − published) median",
    "ulat_p99_us": "uncorrected latency p99",
    "ulat_max_us": "uncorrected latency max",
    "msgs_expected": "messages published in the window × connections",
    "msgs_delivered": "distinct messages received (all connections)",
    "msgs_lost": "expected but never received",
    "msgs_duplicated": "receptions beyond the first of a message",
    "msgs_out_of_order": "messages received after a later one",
    "delivered_fraction": "msgs_delivered ÷ msgs_expected (empty when idle)",
    "offered_msgs_per_s": "messages published per second in the window",
    "offered_deliveries_per_s": "offered_msgs_per_s × connections",
    "delivered_msgs_per_s": "msgs_delivered per second",
    "server_cpu_s": "server process CPU (user + sys) in the window",
    "server_cpu_us_per_msg": "server CPU per delivered message",
    "server_rss_bytes": "server resident memory at the end",
    "server_rss_bytes_per_conn": "server_rss_bytes ÷ subscribers",
    "server_rss_growth_bytes_per_conn": "memory per connection: server RSS growth from before "
    "the first connection to all connected, ÷ subscribers",
    "server_cpu_fraction": "server_cpu_s ÷ duration_s (1.0 = one core busy)",
    "client_cpu_s": "client processes CPU (user + sys)",
    "delivered_msgs_per_client_cpu_s": "delivered messages per second of client CPU "
    "(what one load-generator core can receive)",
    "bytes_in_per_msg": "bytes received by clients per delivered message",
    "bytes_out_per_msg": "bytes sent by clients per delivered message",
    "handshake_bytes_per_conn": "handshake bytes (both directions) per connection",
    "bytes_source": "how bytes were counted (tcp_info, socket)",
    "connect_p50_us": "median connect time (TCP connect → ready)",
    "requests_per_msg": "HTTP requests per delivered message (polling)",
    "errors": "client errors",
    "reconnects": "client reconnects",
    "client_max_loop_lag_us": "longest stall of a client's own event loop",
}


def _per(total: float | None, n: int | float) -> float | None:
    return None if total is None or not n else total / n


def cell_row(
    cell: Cell,
    repeat: int,
    *,
    latency: LatencySummary,
    latency_uncorrected: LatencySummary,
    delivery: Delivery,
    throughput: Throughput,
    overhead: Overhead | None = None,
) -> dict[str, Any]:
    """One flat row per cell × repeat with the columns of :data:`COLUMNS`, in order."""
    o = overhead or Overhead()
    delivered = delivery.total("delivered")
    handshake = (
        None
        if o.handshake_bytes_in is None or o.handshake_bytes_out is None
        else o.handshake_bytes_in + o.handshake_bytes_out
    )
    row: dict[str, Any] = {
        "scenario": cell.scenario,
        "cell_id": cell.cell_id,
        "repeat": repeat,
        "stack": cell.stack,
        "transport": cell.transport,
        "ws_client": cell.ws_client,
        "client": cell.client,
        "subscribers": cell.subscribers,
        "publishers": cell.publishers,
        "rate_msgs_per_s": cell.rate,
        "payload_bytes": cell.payload_size,
        "hub": cell.hub,
        "loop": cell.loop,
        "poll_interval_s": cell.poll_interval_s,
        "poll_timeout_s": cell.poll_timeout_s,
        "heartbeat_s": cell.heartbeat_s,
        "duration_s": cell.duration_s,
        "warmup_s": cell.warmup_s,
        "check_delay_ms": cell.checks.delay_ms,
        "check_pause_ms": cell.checks.pause_ms,
        "check_drop_every": cell.checks.drop_every,
        "lat_count": latency.count,
        "lat_p50_us": latency.p50_us,
        "lat_p90_us": latency.p90_us,
        "lat_p99_us": latency.p99_us,
        "lat_p999_us": latency.p999_us,
        "lat_max_us": latency.max_us,
        "lat_mean_us": latency.mean_us,
        "lat_clamped": latency.below_zero + latency.above_max,
        "ulat_p50_us": latency_uncorrected.p50_us,
        "ulat_p99_us": latency_uncorrected.p99_us,
        "ulat_max_us": latency_uncorrected.max_us,
        "msgs_expected": delivery.expected,
        "msgs_delivered": delivered,
        "msgs_lost": delivery.total("lost"),
        "msgs_duplicated": delivery.total("duplicated"),
        "msgs_out_of_order": delivery.total("out_of_order"),
        "delivered_fraction": delivery.delivered_fraction,
        "offered_msgs_per_s": throughput.offered_msgs_per_s,
        "offered_deliveries_per_s": throughput.offered_deliveries_per_s,
        "delivered_msgs_per_s": throughput.delivered_msgs_per_s,
        "server_cpu_s": o.server_cpu_s,
        "server_cpu_us_per_msg": _per(
            None if o.server_cpu_s is None else o.server_cpu_s * 1e6, delivered
        ),
        "server_rss_bytes": o.server_rss_bytes,
        "server_rss_bytes_per_conn": _per(o.server_rss_bytes, cell.subscribers),
        "server_rss_growth_bytes_per_conn": _per(o.server_rss_growth_bytes, cell.subscribers),
        "server_cpu_fraction": _per(o.server_cpu_s, cell.duration_s),
        "client_cpu_s": o.client_cpu_s,
        "delivered_msgs_per_client_cpu_s": (delivered / o.client_cpu_s if o.client_cpu_s else None),
        "bytes_in_per_msg": _per(o.bytes_in, delivered),
        "bytes_out_per_msg": _per(o.bytes_out, delivered),
        "handshake_bytes_per_conn": _per(handshake, cell.subscribers),
        "bytes_source": o.bytes_source,
        "connect_p50_us": o.connect_p50_us,
        "requests_per_msg": _per(o.requests, delivered),
        "errors": o.errors,
        "reconnects": o.reconnects,
        "client_max_loop_lag_us": o.client_max_loop_lag_us,
    }
    assert list(row) == list(COLUMNS), "cell_row and COLUMNS disagree"
    return row
