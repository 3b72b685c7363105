"""A worker's live status file, kept cheap: the harness must not disturb what it measures.

Every second a worker rewrites a small JSON file (``spec.status_path``) for the runner's
progress line: ``t_ns``, ``messages`` so far and ``p99_us``, the corrected latency p99 of
the last second's receipts. The worker has one event loop, so whatever computes that p99
delays every message arriving meanwhile. ``np.percentile`` over one second of receipts
blocks it for ~3 ms (up to 7 ms) at 300,000 receipts/s; here the receipts go into a
log-linear histogram instead, a slice of new rows at a time (:data:`STEP_S`, vectorised,
nothing on the receive path), and the p99 is read from the bucket counts: ≤ 0.2 ms per
step at that rate, the whole second about 1 ms.

The histogram is HDR's layout at 3 significant digits: :data:`SUB_BITS` = 10 gives 1,024
buckets per power of two, so a bucket spans at most 2⁻¹⁰ (< 0.1 %) of its values and the
p99 reported (its bucket's upper edge, as HdrHistogram's ``value_at_percentile`` gives) is
at most 0.1 % above the exact order statistic, never below it. A value's bucket is read
off its float64 bits (exponent and top mantissa bits): one conversion and one shift per
value, no logarithm.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "STATUS_INTERVAL_S",
    "STATUS_JS",
    "STEPS_PER_STATUS",
    "STEP_S",
    "SUB_BITS",
    "LatencyWindow",
    "bucket_of",
    "write_status",
]

STATUS_INTERVAL_S = 1.0  # the status file is rewritten this often
STEPS_PER_STATUS = 10  # new receipts go into the histogram this many times per status
STEP_S = STATUS_INTERVAL_S / STEPS_PER_STATUS
SUB_BITS = 10  # buckets per power of two = 2**SUB_BITS: < 0.1 % wide, HDR's 3 digits
_SHIFT = 52 - SUB_BITS  # float64: 52 mantissa bits; keep the exponent and the top SUB_BITS
_LOWEST_NS = 1.0  # latencies ≤ 0 (clock granularity) count as 1 ns
_HIGHEST_NS = float(2**40)  # ~18 min; anything later counts here
_BASE = 1023 << SUB_BITS  # the bucket of 1.0 (float64 exponent bias 1023)
BUCKETS = (41 << SUB_BITS) + 1  # 1 ns … 2**40 ns, inclusive


#: The browser page's side of the live status: the scheduled → received latencies (µs) of
#: its receipts from row ``f`` on, reduced in the page to this module's bucket counts
#: (``{bucket: count}``, the buckets of :func:`bucket_of`; tests/test_clients.py checks it),
#: so DevTools carries a few hundred numbers a second rather than one per message and
#: :mod:`pushbench.clients.browser_worker` merges counts instead of sorting latencies.
STATUS_JS = f"""f => {{
  const a = pushbench.latencies(f);
  const h = {{}};
  for (const us of a.lat_us) {{
    const x = Math.min(Math.max(us * 1000, 1), 2 ** 40);
    let e = Math.floor(Math.log2(x));
    if (2 ** e > x) e -= 1; else if (2 ** (e + 1) <= x) e += 1;
    const b = e * {1 << SUB_BITS} + Math.floor((x / 2 ** e - 1) * {1 << SUB_BITS});
    h[b] = (h[b] || 0) + 1;
  }}
  return {{ n: a.n, messages: a.messages, buckets: h }};
}}"""


def bucket_of(latency_ns: float) -> int:
    """The bucket of one latency (the scalar twin of :meth:`LatencyWindow.add`)."""
    x = min(max(float(latency_ns), _LOWEST_NS), _HIGHEST_NS)
    mantissa, exponent = math.frexp(x)  # x = mantissa * 2**exponent, 0.5 ≤ mantissa < 1
    return ((exponent - 1) << SUB_BITS) + int((mantissa * 2 - 1) * (1 << SUB_BITS))


def _upper_edge_ns(bucket: int) -> float:
    """The lowest value above bucket ``bucket`` (its exclusive upper edge)."""
    bits = np.array([(bucket + _BASE + 1) << _SHIFT], dtype=np.int64)
    return float(bits.view(np.float64)[0])


class LatencyWindow:
    """Corrected latencies (received − scheduled) since the last :meth:`take`, as bucket
    counts; :meth:`add` takes whole slices of the recorder's arrays."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = np.empty(BUCKETS, dtype=np.int64)
        self.counts.fill(0)  # pages mapped now, not at the first add in the run
        self.total = 0

    @classmethod
    def warmed(cls) -> LatencyWindow:
        """A new window whose code paths have run once (numpy's first calls are slow):
        built before a run starts, so no first-call cost lands in it."""
        window = cls()
        window.add(np.ones(1, np.int64), np.zeros(1, np.int64))
        window.take(99.0)
        return window

    def add(self, recv_ns: npt.NDArray[np.int64], sched_ns: npt.NDArray[np.int64]) -> None:
        """Count the latencies of these rows (vectorised: a few passes over the slice)."""
        if not len(recv_ns):
            return
        lat = (recv_ns - sched_ns).astype(np.float64)  # int64 first: exact at any uptime
        np.clip(lat, _LOWEST_NS, _HIGHEST_NS, out=lat)
        idx = lat.view(np.int64)  # in place from here: no more temporaries
        idx >>= _SHIFT
        idx -= _BASE
        self.counts += np.bincount(idx, minlength=BUCKETS)
        self.total += len(lat)

    def add_counts(self, buckets: Mapping[str, int] | Mapping[int, int]) -> None:
        """Add counts already bucketed elsewhere (the browser page: ``{bucket: count}``)."""
        for bucket, count in buckets.items():
            b = min(max(int(bucket), 0), BUCKETS - 1)
            self.counts[b] += int(count)
            self.total += int(count)

    def percentile_us(self, q: float) -> float | None:
        """The ``q``-th percentile in µs (None when empty): the upper edge of the bucket
        holding the value of rank ⌈q/100 · total⌉, ≤ 0.1 % above the exact value."""
        if not self.total:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.total))
        bucket = int(np.searchsorted(np.cumsum(self.counts), rank))
        return _upper_edge_ns(bucket) / 1e3

    def take(self, q: float) -> float | None:
        """:meth:`percentile_us`, then start the next window empty."""
        value = self.percentile_us(q)
        if self.total:
            self.counts.fill(0)
            self.total = 0
        return value


def write_status(path: Path, body: Mapping[str, Any]) -> None:
    """Rewrite the status file atomically (a temporary file, then rename); a failure is
    ignored: the display must never end a run."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(dict(body)))
        os.replace(tmp, path)
