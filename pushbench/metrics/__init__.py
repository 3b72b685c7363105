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
  is exact: the merge equals one histogram of all the values. Each repeat's
  histograms are stored as an HdrHistogram interval log (one histogram per
  second and tag, ``corrected``/``uncorrected``), written and read by ``hdrh``.
- **Delivery** accounting is per connection from ``seq`` against the range the
  server published in the window: delivered, lost, duplicated, out of order.
- **All expected** latency ranks every expected message, a lost one as
  infinitely late (wrk2's honesty): p99 is ``inf`` once more than 1 % is lost;
  the saturation search's SLO judges this p99.
- Throughput, a down-sampled latency-over-time series, the saturation search,
  repeat statistics and the flat result row (:func:`cell_row`, :data:`COLUMNS`).

One module per responsibility, every public name re-exported here
(``from pushbench import metrics; metrics.delivery(...)``): :mod:`.receipts`
(the arrays), :mod:`.latency` (histograms, summaries, the series),
:mod:`.hlog` (the ``.hlog`` files: HdrHistogram interval logs), :mod:`.delivery`
(delivery and throughput), :mod:`.saturation` (the SLO search), :mod:`.repeats`
(spread over repeats), :mod:`.wire` (bytes on the wire from TCP payload and segment
counts), :mod:`.memory` (memory per connection as a slope, kernel socket memory), :mod:`.soak`
(the soak's resumes, drift and log errors) and
:mod:`.row` (the ``cells.csv`` row; its columns live in
:mod:`pushbench.schema.cells`).
"""

from __future__ import annotations

from .delivery import (
    Delivery,
    Throughput,
    delivery,
    first_arrivals,
    merge_deliveries,
    throughput,
)
from .hlog import (
    INTERVAL_S,
    TAGS,
    HistogramLog,
    Interval,
    latency_log,
    load_histograms,
    read_hlog,
    save_histograms,
    write_hlog,
)
from .latency import (
    HIST_HIGHEST_US,
    HIST_LOWEST_US,
    HIST_SIGNIFICANT_FIGURES,
    PERCENTILES,
    TAIL_PERCENTILES,
    LatencyHistograms,
    LatencySummary,
    Series,
    TailSummary,
    decode_histogram,
    encode_histogram,
    histogram_of,
    latency_all_expected,
    latency_histograms,
    latency_series,
    merge_histograms,
    new_histogram,
    record,
    summarize,
    to_us,
)
from .memory import (
    MemoryFigures,
    RssPoint,
    SocketMemory,
    least_squares_slope,
    memory_figures,
    skmem_bytes,
    sockstat_tcp_mem_bytes,
)
from .receipts import Receipts
from .repeats import RepeatStats, repeat_stats
from .row import COLUMNS, STALL_US, Overhead, cell_row, loop_stalls
from .saturation import RatePoint, Saturation, meets_slo, saturation_search
from .soak import ResumeCheck, count_error_lines, quantiles_ms, resume_check, slope_per_min
from .wire import HEADER_BYTES_PER_SEGMENT, wire_bytes

__all__ = [
    "COLUMNS",
    "HEADER_BYTES_PER_SEGMENT",
    "HIST_HIGHEST_US",
    "HIST_LOWEST_US",
    "HIST_SIGNIFICANT_FIGURES",
    "INTERVAL_S",
    "PERCENTILES",
    "STALL_US",
    "TAGS",
    "TAIL_PERCENTILES",
    "Delivery",
    "HistogramLog",
    "Interval",
    "LatencyHistograms",
    "LatencySummary",
    "MemoryFigures",
    "Overhead",
    "RatePoint",
    "Receipts",
    "RepeatStats",
    "ResumeCheck",
    "RssPoint",
    "Saturation",
    "Series",
    "SocketMemory",
    "TailSummary",
    "Throughput",
    "cell_row",
    "count_error_lines",
    "decode_histogram",
    "delivery",
    "encode_histogram",
    "first_arrivals",
    "histogram_of",
    "latency_all_expected",
    "latency_histograms",
    "latency_log",
    "latency_series",
    "least_squares_slope",
    "load_histograms",
    "loop_stalls",
    "meets_slo",
    "memory_figures",
    "merge_deliveries",
    "merge_histograms",
    "new_histogram",
    "quantiles_ms",
    "read_hlog",
    "record",
    "repeat_stats",
    "resume_check",
    "saturation_search",
    "save_histograms",
    "skmem_bytes",
    "slope_per_min",
    "sockstat_tcp_mem_bytes",
    "summarize",
    "throughput",
    "to_us",
    "wire_bytes",
    "write_hlog",
]
