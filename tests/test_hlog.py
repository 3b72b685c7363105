"""``hist/*.hlog`` are HdrHistogram interval logs that ``hdrh`` writes and reads back.

- A log of synthetic receipts (several intervals, an empty one, clamped values)
  comes back through ``hdrh.log.HistogramLogReader`` itself with every interval's
  tag, times, counts and percentiles; its intervals merge into exactly the
  window's histogram that ``cells.csv``'s figures come from.
- A real tiny run's logs: read by ``HistogramLogReader``, one interval per second
  and tag, and the report's figures from them (percentiles, max, mean, the
  percentile curve) equal those of the window's histogram recomputed from the
  run's receipts — the figures the old format gave.
- The stored fixture run (converted from the old format by
  ``tests/fixtures/make_fixture.py``) gives its ``cells.csv`` figures back, and a
  file in the old format is still read, with the same figures.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hdrh.log import HistogramLogReader

from pushbench import cli, metrics
from pushbench.report.load import load_run
from pushbench.report.plots_latency import _percentile_curve

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RUN = FIXTURES / "report-run"
LEGACY = FIXTURES / "legacy-hlog" / "aiohttp-ws-sub4-rate50-p64-hb1s-r0.hlog"
S = 1_000_000_000
PCTS = [0.0, 10.0, 50.0, 90.0, 99.0, 99.9, 100.0]


def _receipts(seed: int = 7) -> tuple[metrics.Receipts, int, int]:
    """3,000 receipts over a 3.5 s window, none in its third second, some out of range."""
    rng = np.random.default_rng(seed)
    start = 5 * S
    sched = np.sort(rng.integers(start - S // 2, start + int(3.8 * S), 3000))
    sched = sched[(sched < start + 2 * S) | (sched >= start + 3 * S)]  # an empty interval
    pub = sched + rng.integers(0, 300_000, len(sched))
    recv = pub + rng.lognormal(14, 1.5, len(sched)).astype(np.int64)
    inside = np.flatnonzero((sched >= start) & (sched < start + 35 * S // 10))
    early, late = inside[:3], inside[-3:]
    recv[early] = sched[early] - 5_000  # before the schedule: clamped to 0
    recv[late] = sched[late] + 70 * S  # past 60 s: clamped to 60 s
    n = len(sched)
    conn = np.zeros(n, dtype=np.int64)
    return (
        metrics.Receipts(conn, np.arange(1, n + 1), sched, pub, recv),
        start,
        start + 35 * S // 10,
    )


def _counts(hist: Any) -> Any:
    return np.ctypeslib.as_array(hist.counts)


def _same(a: Any, b: Any) -> None:
    """Same counts, total, percentiles, max, mean."""
    assert np.array_equal(_counts(a), _counts(b))
    assert a.get_total_count() == b.get_total_count()
    assert a.get_percentile_to_value_dict(PCTS) == b.get_percentile_to_value_dict(PCTS)
    assert a.get_max_value() == b.get_max_value()
    assert metrics.summarize(a) == metrics.summarize(b)


def _read_all(path: Path) -> list[Any]:
    """Every interval histogram of ``path``, read by hdrh's own reader."""
    reader = HistogramLogReader(str(path), metrics.new_histogram())
    out = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        out.append(hist)
    reader.close()
    return out


def test_a_log_round_trips_through_hdrh_reader(tmp_path: Path) -> None:
    r, lo, hi = _receipts()
    log = metrics.latency_log(r, lo, hi, start_time_s=1_764_000_000.25)
    path = tmp_path / "cell-r0.hlog"
    metrics.write_hlog(path, log)

    text = path.read_text()
    assert "#[Histogram log format version 1.2]" in text
    assert "#[StartTime: 1764000000.250 (seconds since epoch), 2025-11-24 " in text
    assert "#[BaseTime: 1764000000.250000 (seconds since epoch)]" in text
    assert (
        '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"' in text
    )
    lines = [line for line in text.splitlines() if not line.startswith(("#", '"'))]
    assert all(re.fullmatch(r"Tag=(un)?corrected,[\d.]+,[\d.]+,[\d.]+,HISTF\S+", x) for x in lines)

    back = _read_all(path)
    # 4 intervals (1, 1, 1, 0.5 s) × 2 tags, in time order, the empty third second included
    assert [h.get_tag() for h in back] == ["corrected", "uncorrected"] * 4
    assert len(back) == len(log.intervals)
    for hist, iv in zip(back, log.intervals, strict=True):
        assert hist.get_tag() == iv.tag
        assert hist.get_start_time_stamp() == pytest.approx((1_764_000_000.25 + iv.start_s) * 1e3)
        length_ms = hist.get_end_time_stamp() - hist.get_start_time_stamp()
        assert length_ms == pytest.approx(iv.length_s * 1e3, abs=1e-3)
        _same(hist, iv.histogram)
    assert [iv.length_s for iv in log.intervals[::2]] == [1.0, 1.0, 1.0, 0.5]
    assert log.intervals[4].histogram.get_total_count() == 0  # the empty second is written

    # read_hlog (what the report uses) gives the same, with times relative to StartTime
    ours = metrics.read_hlog(path)
    assert not ours.legacy and ours.start_time_s == pytest.approx(1_764_000_000.25)
    assert ours.tags() == metrics.TAGS
    assert [(iv.tag, iv.start_s, iv.length_s) for iv in ours.intervals] == [
        (iv.tag, iv.start_s, iv.length_s) for iv in log.intervals
    ]


def test_intervals_merge_into_the_window_histogram() -> None:
    r, lo, hi = _receipts(11)
    whole = metrics.latency_histograms(r, lo, hi)
    merged = metrics.latency_log(r, lo, hi, start_time_s=0.0).merged()
    assert list(merged) == ["corrected", "uncorrected"]
    assert whole.corrected_clamped == whole.uncorrected_clamped == (3, 3)  # clamps included
    for tag in metrics.TAGS:
        _same(merged[tag], getattr(whole, tag))
        assert metrics.encode_histogram(merged[tag]) == metrics.encode_histogram(
            getattr(whole, tag)
        )


def test_hdrh_reader_adds_the_intervals_up_too(tmp_path: Path) -> None:
    """HdrHistogram's own way of totalling a log (add_next_interval_histogram) agrees."""
    r, lo, hi = _receipts(3)
    path = tmp_path / "c.hlog"
    metrics.write_hlog(path, metrics.latency_log(r, lo, hi, start_time_s=1e9))
    total = metrics.new_histogram()
    reader = HistogramLogReader(str(path), total)
    while reader.add_next_interval_histogram() is not None:
        pass
    reader.close()
    whole = metrics.latency_histograms(r, lo, hi)
    both = metrics.merge_histograms([whole.corrected, whole.uncorrected])
    assert np.array_equal(_counts(total), _counts(both))
    assert total.get_percentile_to_value_dict(PCTS) == both.get_percentile_to_value_dict(PCTS)


def test_log_parameters_are_checked(tmp_path: Path) -> None:
    r, lo, _ = _receipts()
    with pytest.raises(ValueError, match="positive length"):
        metrics.latency_log(r, lo, lo, start_time_s=0.0)
    bad = metrics.HistogramLog(0.0, (metrics.Interval("a,b", 0.0, 1.0, metrics.new_histogram()),))
    with pytest.raises(ValueError, match="without spaces or commas"):
        metrics.write_hlog(tmp_path / "x.hlog", bad)


# --- a real tiny run -------------------------------------------------------------

TINY = """
name = "tiny-hlog"
stacks = "aiohttp"
transports = ["ws"]
subscribers = 2
rate = 50
payload_size = 32
duration_s = 2
warmup_s = 0.5
repeats = 1
client_processes = 1
"""


def _window_histograms(run_dir: Path, row: Any) -> metrics.LatencyHistograms:
    """The window's histograms recomputed from the run's receipts, as the old format held.

    The ticker schedules message ``seq`` at ``start + (seq − 1) / rate``: its start
    comes back from any receipt, the window is the warm-up later for ``duration_s``.
    """
    name = f"{row['cell_id']}-r{row['repeat']}"
    parts = [metrics.Receipts.load(p) for p in sorted((run_dir / "work" / name).glob("*.npz"))]
    r = metrics.Receipts(
        *(
            np.concatenate([getattr(p, k) for p in parts])
            for k in ("conn", "seq", "sched_ns", "pub_ns", "recv_ns")
        )
    )
    interval = int(1e9 / float(row["rate_msgs_per_s"]))
    start = int(np.min(r.sched_ns - (r.seq - 1) * interval))
    lo = start + int(float(row["warmup_s"]) * 1e9)
    return metrics.latency_histograms(r, lo, lo + int(float(row["duration_s"]) * 1e9))


@pytest.mark.timeout(90)
def test_a_tiny_run_writes_hdrh_logs_and_the_figures_are_unchanged(tmp_path: Path) -> None:
    scen = tmp_path / "tiny.toml"
    scen.write_text(TINY)
    out = tmp_path / "results"
    assert cli.main(["run", str(scen), "--out", str(out), "--no-progress"]) == 0
    run = load_run(out / "latest")
    rows = run.ok.to_dict("records")
    assert rows
    for row in rows:
        cell, repeat = row["cell_id"], int(row["repeat"])
        path = run.path / "hist" / f"{cell}-r{repeat}.hlog"
        back = _read_all(path)  # the issue: HistogramLogReader returned None at once
        assert [h.get_tag() for h in back] == ["corrected", "uncorrected"] * 2  # 2 s window
        assert sum(h.get_total_count() for h in back[::2]) == row["lat_count"]

        log = run.histogram_log(cell, repeat)
        assert log is not None and not log.legacy
        assert abs(log.start_time_s - run.path.stat().st_mtime) < 3600  # a wall-clock time
        hists = run.histograms(cell, repeat)
        assert hists is not None
        old = _window_histograms(run.path, row)
        _same(hists["corrected"], old.corrected)
        _same(hists["uncorrected"], old.uncorrected)
        assert _percentile_curve(run.histogram(cell)) == _percentile_curve(old.corrected)
        _matches_row(hists, row)


def _matches_row(hists: dict[str, Any], row: dict[str, Any]) -> None:
    """The histograms give back the figures of the repeat's ``cells.csv`` row."""
    c = metrics.summarize(hists["corrected"])
    u = metrics.summarize(hists["uncorrected"])
    assert (c.count, c.p50_us, c.p90_us, c.p99_us, c.p999_us, c.max_us) == (
        row["lat_count"],
        row["lat_p50_us"],
        row["lat_p90_us"],
        row["lat_p99_us"],
        row["lat_p999_us"],
        row["lat_max_us"],
    )
    # cells.csv writes µs to 0.1 (pushbench.schema.cells): the mean agrees to that precision,
    # half a step at most (a mean of 383.55 written 383.6 is 0.05 off plus float error)
    assert c.mean_us == pytest.approx(row["lat_mean_us"], abs=0.05 + 1e-9)
    assert (u.p50_us, u.p99_us, u.max_us) == (
        row["ulat_p50_us"],
        row["ulat_p99_us"],
        row["ulat_max_us"],
    )


# --- the stored fixture run and old-format files -----------------------------------


def test_the_fixture_logs_give_back_their_cells_csv_figures() -> None:
    run = load_run(RUN)
    rows = run.ok.to_dict("records")
    assert len(rows) >= 20
    for row in rows:
        log = run.histogram_log(row["cell_id"], int(row["repeat"]))
        assert log is not None and not log.legacy  # converted: HdrHistogram logs
        assert _read_all(run.path / "hist" / f"{row['cell_id']}-r{int(row['repeat'])}.hlog")
        hists = run.histograms(row["cell_id"], int(row["repeat"]))
        assert hists is not None
        _matches_row(hists, row)


def test_old_format_files_are_still_read() -> None:
    """Runs on users' disks keep their report: the old format gives the same figures."""
    assert LEGACY.read_text().startswith("# pushbench latency histograms: one per line")
    old = metrics.read_hlog(LEGACY)
    assert old.legacy and old.tags() == metrics.TAGS
    new = metrics.read_hlog(RUN / "hist" / LEGACY.name)
    for tag, hist in old.merged().items():
        _same(hist, new.merged()[tag])
    assert _percentile_curve(old.merged()["corrected"]) == _percentile_curve(
        new.merged()["corrected"]
    )
    cells = pd.read_csv(RUN / "cells.csv")
    row = cells[(cells["cell_id"] + "-r" + cells["repeat"].astype(str)) == LEGACY.stem]
    _matches_row(old.merged(), row.iloc[0].to_dict())
    assert not math.isnan(row.iloc[0]["lat_p99_us"])
