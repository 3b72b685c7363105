"""HdrHistogram interval logs: the ``hist/<cell>-r<k>.hlog`` files, written and read by ``hdrh``.

A repeat's latency is stored in the HdrHistogram log format (version 1.2: the format of
HdrHistogram's ``HistogramLogWriter``, jHiccup and the tools built on them), written with
``hdrh.log.HistogramLogWriter`` and read back with ``hdrh.log.HistogramLogReader``, so
HistogramLogAnalyzer, hdr-plot and ``HistogramLogProcessor`` open the files as they are::

    # pushbench latency histograms: HdrHistogram interval log, ...   (comments)
    #[Histogram log format version 1.2]
    #[StartTime: 1764121032.108 (seconds since epoch), 2025-11-26 01:37:12.108000+00:00]
    #[BaseTime: 1764121032.108000 (seconds since epoch)]
    "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
    Tag=corrected,0.000000,1.000000,14167.000000,HISTFAAAA...
    Tag=uncorrected,0.000000,1.000000,13983.000000,HISTFAAAA...
    Tag=corrected,1.000000,0.500000,...

StartTime and BaseTime are the measured window's start (wall clock); each line is one
interval of :data:`INTERVAL_S` seconds (the last one shorter) holding the messages
*scheduled* in it, once per tag: ``corrected`` (``recv − sched``) and ``uncorrected``
(``recv − pub``). Values are µs with the parameters of :func:`.latency.new_histogram`;
``Interval_Max`` is in µs too (max value unit ratio 1: pass ``-outputValueUnitRatio 1000``
to the Java tools for ms). The intervals of a tag add up exactly (counts are added) to the
window's histogram that ``cells.csv``'s figures come from.

Files of runs made before this format (``<name> <base64>`` per line, one histogram per
name over the whole window) are still read: :func:`read_hlog` recognises their header.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader, HistogramLogWriter

from pushbench.results import atomic_write_text

from .latency import (
    HIST_HIGHEST_US,
    HIST_LOWEST_US,
    HIST_SIGNIFICANT_FIGURES,
    decode_histogram,
    histogram_of,
    merge_histograms,
    new_histogram,
    to_us,
)
from .receipts import Receipts

__all__ = [
    "INTERVAL_S",
    "TAGS",
    "HistogramLog",
    "Interval",
    "latency_log",
    "load_histograms",
    "read_hlog",
    "save_histograms",
    "write_hlog",
]

#: Length of one interval histogram of a run's log, in seconds.
INTERVAL_S = 1.0
#: The tags of a run's log: corrected (from the scheduled time) and uncorrected latency.
TAGS: tuple[str, str] = ("corrected", "uncorrected")

_HEADER = (
    " pushbench latency histograms: HdrHistogram interval log, values in us "
    f"(lowest={HIST_LOWEST_US} highest={HIST_HIGHEST_US} "
    f"significant_figures={HIST_SIGNIFICANT_FIGURES}), Interval_Max in us"
)
_TAG_HELP = (
    " Tag=corrected: recv - sched (no coordinated omission); Tag=uncorrected: recv - pub;"
    " by scheduled time"
)
#: First line of the files written before the HdrHistogram log format.
_LEGACY_HEADER = "# pushbench latency histograms: one per line"


@dataclass(frozen=True)
class Interval:
    """One line of a log: ``tag``'s histogram over ``[start_s, start_s + length_s)``.

    ``start_s`` counts from the log's start time. Files in the old format have
    no times: their intervals have ``start_s = length_s = 0``.
    """

    tag: str
    start_s: float
    length_s: float
    histogram: HdrHistogram


@dataclass(frozen=True)
class HistogramLog:
    """An HdrHistogram log: its start time (seconds since the epoch) and its intervals."""

    start_time_s: float
    intervals: tuple[Interval, ...]
    legacy: bool = False  # read from the old ``<name> <base64>`` format

    def tags(self) -> tuple[str, ...]:
        """The tags present, in order of first appearance."""
        return tuple(dict.fromkeys(iv.tag for iv in self.intervals))

    def merged(self) -> dict[str, HdrHistogram]:
        """Per tag, every interval added up (exact): the whole window's histogram."""
        return {
            tag: merge_histograms(iv.histogram for iv in self.intervals if iv.tag == tag)
            for tag in self.tags()
        }


def _check_tag(tag: str) -> None:
    if not tag or any(ch.isspace() or ch == "," for ch in tag):
        raise ValueError(f"histogram tags must be non-empty without spaces or commas: {tag!r}")


def write_hlog(path: Path | str, log: HistogramLog, *, comment: str = "") -> None:
    """Write ``log`` with ``hdrh``'s ``HistogramLogWriter``, atomically.

    ``comment`` (one line) is written as a comment after pushbench's own header.

    hdrh's writer has no tags, so ``Tag=<tag>,`` is written before each of its
    interval lines (the Java format). Its ``output_start_time`` fails on a
    millisecond time (``datetime.fromtimestamp(ms)``, ``iso_format``), so the
    StartTime line is written as the comment it is. Each histogram is stamped
    with its interval (ms since the base time), which the writer reads.
    """
    for iv in log.intervals:
        _check_tag(iv.tag)
    start_ms = round(log.start_time_s * 1000)  # StartTime has ms resolution: BaseTime too
    when = datetime.fromtimestamp(start_ms / 1000, tz=UTC).isoformat(" ")
    out = io.StringIO()
    writer = HistogramLogWriter(out)
    writer.output_comment(_HEADER)
    writer.output_comment(_TAG_HELP)
    if comment:
        writer.output_comment(" " + " ".join(comment.split()))
    writer.output_log_format_version()
    writer.output_comment(f"[StartTime: {start_ms / 1000:.3f} (seconds since epoch), {when}]")
    writer.output_base_time(start_ms)
    writer.output_legend()
    for iv in log.intervals:
        iv.histogram.set_start_time_stamp(round(iv.start_s * 1000, 6))
        iv.histogram.set_end_time_stamp(round((iv.start_s + iv.length_s) * 1000, 6))
        out.write(f"Tag={iv.tag},")
        writer.output_interval_histogram(iv.histogram, max_value_unit_ratio=1.0)
    atomic_write_text(path, out.getvalue())


def read_hlog(path: Path | str) -> HistogramLog:
    """Read a log with ``hdrh``'s ``HistogramLogReader`` (or a file in the old format).

    Lines without a tag (logs from other tools) get the tag ``""``.
    """
    with open(path, encoding="ascii") as f:
        first = f.readline()
    if first.startswith(_LEGACY_HEADER):
        return _read_legacy(Path(path))
    reader = HistogramLogReader(str(path), new_histogram())
    try:
        hists = []
        while (hist := reader.get_next_interval_histogram()) is not None:
            hists.append(hist)
        start = float(reader.get_start_time_sec())
    finally:
        reader.close()
    intervals = tuple(
        Interval(
            tag=str(h.get_tag() or ""),
            start_s=round(h.get_start_time_stamp() / 1000 - start, 6),
            length_s=round((h.get_end_time_stamp() - h.get_start_time_stamp()) / 1000, 6),
            histogram=h,
        )
        for h in hists
    )
    return HistogramLog(start, intervals)


def _read_legacy(path: Path) -> HistogramLog:
    """The old ``<name> <HdrHistogram V2 base64>`` lines: one whole-window histogram per name."""
    intervals = []
    for line in path.read_text(encoding="ascii").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, blob = line.partition(" ")
            intervals.append(Interval(name, 0.0, 0.0, decode_histogram(blob)))
    return HistogramLog(0.0, tuple(intervals), legacy=True)


def save_histograms(
    path: Path | str,
    hists: Mapping[str, HdrHistogram],
    *,
    start_time_s: float = 0.0,
    length_s: float = 0.0,
) -> None:
    """Write named histograms as a log of one interval per name (the name is the tag)."""
    intervals = tuple(Interval(name, 0.0, length_s, h) for name, h in hists.items())
    write_hlog(path, HistogramLog(start_time_s, intervals))


def load_histograms(path: Path | str) -> dict[str, HdrHistogram]:
    """Per tag, the whole log's histogram (:meth:`HistogramLog.merged` of :func:`read_hlog`)."""
    return read_hlog(path).merged()


def latency_log(
    receipts: Receipts,
    start_ns: int,
    end_ns: int,
    *,
    start_time_s: float,
    interval_s: float = INTERVAL_S,
) -> HistogramLog:
    """Corrected and uncorrected latency per ``interval_s`` of the window, as a log.

    Messages count in the interval of their scheduled time (as the window and
    the series do); every interval is written, empty ones too, so the log covers
    the window without gaps. ``start_time_s`` is the window start on the wall clock.
    Values are made and clamped as in :func:`.latency.latency_histograms`, so the
    intervals of a tag merge into exactly that function's histogram.
    """
    step = int(interval_s * 1e9)
    if end_ns <= start_ns or step <= 0:
        raise ValueError("the window and the interval must have a positive length")
    r = receipts.window(start_ns, end_ns)
    count = -(-(end_ns - start_ns) // step)
    which = (r.sched_ns - start_ns) // step
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(count + 1))
    values = {
        TAGS[0]: to_us(r.recv_ns - r.sched_ns)[0][order],
        TAGS[1]: to_us(r.recv_ns - r.pub_ns)[0][order],
    }
    intervals = []
    for i in range(count):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        t0, t1 = i * step, min((i + 1) * step, end_ns - start_ns)
        for tag in TAGS:
            intervals.append(
                Interval(tag, t0 / 1e9, (t1 - t0) / 1e9, histogram_of(values[tag][lo:hi]))
            )
    return HistogramLog(start_time_s, tuple(intervals))
