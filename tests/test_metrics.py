"""Metrics are exact where they can be and within HDR precision where they cannot.

Histograms are compared with numpy order statistics, merges with one histogram
of all values, delivery counts with a plain-Python reference, and the
saturation search with a synthetic system whose knee is known.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushbench import metrics, scenario
from pushbench.metrics import RatePoint, Receipts

MS = 1_000_000  # ns
SMALL = settings(max_examples=40, deadline=None)

latency_values = st.lists(
    st.one_of(
        st.integers(0, 3000),  # the exact range (1 µs resolution)
        st.integers(0, metrics.HIST_HIGHEST_US),
    ),
    max_size=200,
)


# --- histograms ------------------------------------------------------------


@SMALL
@given(latency_values)
def test_vectorized_record_equals_record_value(values: list[int]) -> None:
    ours = metrics.histogram_of(np.array(values, dtype=np.int64))
    theirs = metrics.new_histogram()
    for v in values:
        assert theirs.record_value(v)
    assert ours.equals(theirs)
    assert metrics.encode_histogram(ours) == metrics.encode_histogram(theirs)
    summary = metrics.summarize(ours)  # our vectorized mean is the library's mean
    assert summary.mean_us == (
        pytest.approx(theirs.get_mean_value(), rel=1e-12) if values else None
    )
    assert summary.max_us == (theirs.get_max_value() if values else None)


@pytest.mark.parametrize("seed", [1, 2])
def test_percentiles_match_numpy_within_hdr_precision(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [rng.integers(50, 2000, 20_000), rng.lognormal(8, 1.5, 30_000).astype(np.int64)]
    )
    values = np.clip(values, 0, metrics.HIST_HIGHEST_US)
    hist = metrics.histogram_of(values)
    summary = metrics.summarize(hist)
    ordered = np.sort(values)
    n = len(values)
    for pct, name in metrics.PERCENTILES.items():
        got = getattr(summary, f"{name}_us")
        rank = max(1, int(pct * n / 100 + 0.5))  # HdrHistogram's rank rule
        exact = int(ordered[rank - 1])
        assert hist.get_lowest_equivalent_value(got) <= exact <= got
        assert got - exact <= exact / 1024  # 3 significant digits
        # and against numpy's own percentile (neighbouring order statistics)
        assert got == pytest.approx(np.percentile(values, pct), rel=0.01)
    assert ordered[-1] <= summary.max_us <= ordered[-1] * (1 + 1 / 1024)
    assert summary.mean_us == pytest.approx(values.mean(), rel=1e-3)
    assert summary.count == n


@SMALL
@given(
    st.lists(st.integers(0, 10**7), min_size=1, max_size=300),
    st.integers(0, 300),
    st.integers(1, 3),
)
def test_all_expected_percentiles_rank_the_lost_as_infinitely_late(
    latencies: list[int], lost: int, conns: int
) -> None:
    """Each percentile over every expected message is the order statistic of rank
    ⌊q/100 · expected + ½⌋ of the received latencies followed by ``lost`` infinities
    (HDR values: at most 0.1 % above the exact one)."""
    n = len(latencies)
    per_conn = -(-(n + lost) // conns)  # expected per connection: everything fits
    slots = np.arange(per_conn * conns)[: n + lost]
    received = slots[:n]  # the first n (connection, seq) slots arrived, the rest are lost
    conn, seq = received % conns, received // conns + 1
    sched = seq * 1_000_000
    r = Receipts.of(
        conn=conn,
        seq=seq,
        sched_ns=sched,
        pub_ns=sched,
        recv_ns=sched + np.asarray(latencies) * 1000,
    )
    d = metrics.delivery(conn, seq, first_seq=1, last_seq=per_conn, connections=conns)
    tail = metrics.latency_all_expected(r, d)
    expected = per_conn * conns
    assert (tail.expected, tail.lost) == (expected, expected - n)
    ordered = sorted(latencies) + [math.inf] * (expected - n)
    for q, name in metrics.TAIL_PERCENTILES.items():
        got = getattr(tail, f"{name}_us")
        exact = ordered[max(1, int(q * expected / 100 + 0.5)) - 1]
        if math.isinf(exact):
            assert math.isinf(got)
        else:
            assert exact <= got <= exact + exact / 1024 + 1
    assert tail.max_us == (math.inf if expected > n else pytest.approx(max(latencies), rel=1e-3))


@SMALL
@given(st.lists(latency_values, min_size=1, max_size=5))
def test_merge_is_exact(parts: list[list[int]]) -> None:
    arrays = [np.array(p, dtype=np.int64) for p in parts]
    merged = metrics.merge_histograms(metrics.histogram_of(a) for a in arrays)
    whole = metrics.histogram_of(np.concatenate(arrays))
    assert metrics.summarize(merged) == metrics.summarize(whole)
    assert metrics.encode_histogram(merged) == metrics.encode_histogram(whole)
    # decoding what a worker stored and merging that is just as exact
    decoded = [
        metrics.decode_histogram(metrics.encode_histogram(metrics.histogram_of(a))) for a in arrays
    ]
    assert metrics.summarize(metrics.merge_histograms(decoded)) == metrics.summarize(whole)


def test_merge_refuses_a_different_layout() -> None:
    from hdrh.histogram import HdrHistogram

    with pytest.raises(ValueError, match="cannot be merged"):
        metrics.merge_histograms([HdrHistogram(1, 1000, 2)])


def test_save_and_load_histograms(tmp_path: Path) -> None:
    hists = {
        "corrected": metrics.histogram_of(np.arange(1, 5000, dtype=np.int64)),
        "empty": metrics.new_histogram(),
    }
    path = tmp_path / "cell.hlog"
    metrics.save_histograms(path, hists)
    assert path.read_text().startswith("# pushbench latency histograms")
    loaded = metrics.load_histograms(path)
    assert list(loaded) == ["corrected", "empty"]
    assert metrics.summarize(loaded["corrected"]) == metrics.summarize(hists["corrected"])
    assert metrics.summarize(loaded["empty"]).count == 0
    # an HdrHistogram log: hdrh's own reader finds one interval per name, tagged with it
    from hdrh.log import HistogramLogReader

    reader = HistogramLogReader(str(path), metrics.new_histogram())
    tagged = [reader.get_next_interval_histogram() for _ in range(3)]
    reader.close()
    assert [h.get_tag() for h in tagged[:2]] == ["corrected", "empty"] and tagged[2] is None
    assert metrics.summarize(tagged[0]) == metrics.summarize(hists["corrected"])
    with pytest.raises(ValueError, match="without spaces"):
        metrics.save_histograms(path, {"a b": metrics.new_histogram()})


def test_to_us_rounds_and_counts_what_it_clamps() -> None:
    us, below, above = metrics.to_us(np.array([-2000, 499, 500, 1499, 61_000_000_000]))
    assert us.tolist() == [0, 0, 1, 1, metrics.HIST_HIGHEST_US]
    assert (below, above) == (1, 1)


def test_empty_summary_is_none() -> None:
    s = metrics.summarize(metrics.new_histogram())
    assert (s.count, s.p99_us, s.max_us, s.mean_us) == (0, None, None, None)


# --- warm-up exclusion -----------------------------------------------------


def make_receipts(n: int, *, start: int = 0, interval: int = MS, latency: int = 2 * MS) -> Receipts:
    sched = start + np.arange(n, dtype=np.int64) * interval
    return Receipts.of(
        conn=np.zeros(n),
        seq=np.arange(1, n + 1),
        sched_ns=sched,
        pub_ns=sched + latency // 2,
        recv_ns=sched + latency,
    )


def test_warmup_and_tail_are_excluded_by_schedule() -> None:
    warm = make_receipts(100, latency=900 * MS)  # a terrible warm-up, 0 … 99 ms
    measured = make_receipts(1000, start=100 * MS)  # 2 ms each, scheduled 100 … 1099 ms
    r = Receipts.of(
        **{
            k: np.concatenate([getattr(warm, k), getattr(measured, k)])
            for k in ("conn", "seq", "sched_ns", "pub_ns", "recv_ns")
        }
    )
    corrected, uncorrected = metrics.latency_histograms(r, 100 * MS).summaries()
    assert corrected.count == 1000
    assert corrected.max_us == corrected.p50_us == 2000
    assert uncorrected.max_us == 1000
    only_first = metrics.latency_histograms(r, 100 * MS, 600 * MS).summaries()[0]
    assert only_first.count == 500


# --- delivery --------------------------------------------------------------


def reference_delivery(
    conn: list[int], seq: list[int], first: int, last: int, n: int
) -> dict[str, list[int]]:
    out = {k: [0] * n for k in ("delivered", "lost", "duplicated", "out_of_order", "outside")}
    seen: list[set[int]] = [set() for _ in range(n)]
    highest = [-math.inf] * n
    for c, s in zip(conn, seq, strict=True):
        if not first <= s <= last:
            out["outside"][c] += 1
        elif s in seen[c]:
            out["duplicated"][c] += 1
        else:
            seen[c].add(s)
            out["delivered"][c] += 1
            out["out_of_order"][c] += s < highest[c]
            highest[c] = max(highest[c], s)
    out["lost"] = [max(0, last - first + 1) - d for d in out["delivered"]]
    return out


def test_one_percent_drop_is_exactly_one_percent() -> None:
    kept = [s for s in range(1, 1001) if s % 100]  # server drops every 100th of 1000
    conns = 3
    d = metrics.delivery(
        np.repeat(np.arange(conns), len(kept)),
        np.tile(kept, conns),
        first_seq=1,
        last_seq=1000,
        connections=conns,
    )
    assert d.lost.tolist() == [10, 10, 10]
    assert d.total("lost") / d.expected == 0.01
    assert d.delivered_fraction == 0.99
    assert d.total("duplicated") == d.total("out_of_order") == 0


def test_duplicates_out_of_order_and_outside() -> None:
    d = metrics.delivery(
        [0, 0, 0, 0, 0, 0, 1, 1],
        [1, 3, 2, 3, 5, 0, 2, 1],
        first_seq=1,
        last_seq=4,
        connections=3,
    )
    assert d.delivered.tolist() == [3, 2, 0]
    assert d.lost.tolist() == [1, 2, 4]
    assert d.duplicated.tolist() == [1, 0, 0]
    assert d.out_of_order.tolist() == [1, 1, 0]
    assert d.outside.tolist() == [2, 0, 0]


@SMALL
@given(
    st.integers(1, 4).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 12)), max_size=60),
            st.integers(0, 5),
            st.integers(-1, 10),
        )
    )
)
def test_delivery_matches_reference(case: tuple[int, list[tuple[int, int]], int, int]) -> None:
    n, pairs, first, last = case
    conn = [c for c, _ in pairs]
    seq = [s for _, s in pairs]
    d = metrics.delivery(
        np.array(conn, dtype=np.uint32),
        np.array(seq),
        first_seq=first,
        last_seq=last,
        connections=n,
    )
    want = reference_delivery(conn, seq, first, last, n)
    for name, values in want.items():
        assert getattr(d, name).tolist() == values, name


def test_delivery_rejects_unknown_connections() -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        metrics.delivery([2], [1], first_seq=1, last_seq=1, connections=2)


def test_merge_deliveries_and_throughput() -> None:
    a = metrics.delivery([0, 1], [1, 1], first_seq=1, last_seq=2, connections=2)
    b = metrics.delivery([0], [2], first_seq=1, last_seq=2, connections=1)
    d = metrics.merge_deliveries([a, b])
    assert (d.connections, d.expected, d.total("delivered"), d.total("lost")) == (3, 6, 3, 3)
    t = metrics.throughput(d, duration_s=0.5)
    assert (t.offered_msgs_per_s, t.offered_deliveries_per_s, t.delivered_msgs_per_s) == (4, 12, 6)
    with pytest.raises(ValueError, match="different seq ranges"):
        metrics.merge_deliveries(
            [a, metrics.delivery([], [], first_seq=1, last_seq=3, connections=1)]
        )
    idle = metrics.delivery([], [], first_seq=1, last_seq=0, connections=5)
    assert idle.expected == 0 and idle.delivered_fraction is None


# --- latency over time -----------------------------------------------------


def test_series_is_downsampled_exactly_and_shows_a_pause() -> None:
    n = 10_000  # 10 s at 1 kHz, 1 ms latency, and a 200 ms stall at t = 5 s
    r = make_receipts(n, latency=MS)
    stalled = (r.sched_ns >= 5000 * MS) & (r.sched_ns < 5200 * MS)
    recv = r.recv_ns.copy()
    recv[stalled] = 5200 * MS + MS
    r = Receipts(r.conn, r.seq, r.sched_ns, r.pub_ns, recv)
    s = metrics.latency_series(r, 0, 10_000 * MS, max_points=500)
    assert len(s.t_s) == 500 and s.bucket_s == pytest.approx(0.02)
    assert s.count.sum() == n
    worst = int(np.argmax(s.max_us))
    assert s.t_s[worst] == pytest.approx(5.0) and s.max_us[worst] == pytest.approx(201_000)
    assert np.median(s.p50_us) == pytest.approx(1000)
    # per-bucket p50/max equal the brute-force values
    lat = (recv - r.sched_ns) / 1000
    for i in (0, worst, 499):
        in_bucket = lat[
            (r.sched_ns >= s.t_s[i] * 1e9 - 1) & (r.sched_ns < (s.t_s[i] + s.bucket_s) * 1e9 - 1)
        ]
        assert s.p50_us[i] == np.median(in_bucket) and s.max_us[i] == in_bucket.max()
    assert metrics.latency_series(r, 20_000 * MS).t_s.size == 0


# --- saturation search -----------------------------------------------------


def synthetic(rate: float, knee: float = 4321.0) -> RatePoint:
    """p99 5 ms up to the knee, then it explodes and messages are lost."""
    if rate <= knee:
        return RatePoint(rate, 1.0, 5000.0)
    return RatePoint(rate, 0.9, 500_000.0)


def test_saturation_bisection_finds_the_knee() -> None:
    points = [synthetic(r) for r in (100, 1000, 10_000)]
    for _ in range(20):
        sat = metrics.saturation_search(points, slo_p99_us=50_000, tolerance=0.02)
        if sat.next_rate is None:
            break
        points.append(synthetic(sat.next_rate))
    assert sat.max_rate is not None and sat.lowest_failing is not None
    assert sat.max_rate <= 4321 < sat.lowest_failing <= sat.max_rate * 1.02 + 10
    assert sat.monotonic and len(points) < 15


def test_saturation_edges() -> None:
    fail = metrics.saturation_search([synthetic(8000)], slo_p99_us=50_000)
    assert (fail.max_rate, fail.lowest_failing, fail.next_rate) == (None, 8000, 4000)
    good = metrics.saturation_search([synthetic(1000)], slo_p99_us=50_000)
    assert (good.max_rate, good.next_rate) == (1000, 2000)
    capped = metrics.saturation_search([synthetic(1000)], slo_p99_us=50_000, max_rate=1500)
    assert capped.next_rate is None
    # a pass above a failure is noise: reported, but the answer stays conservative
    noisy = [RatePoint(100, 1, 10), RatePoint(200, 0.5, 10), RatePoint(400, 1, 10)]
    sat = metrics.saturation_search(noisy, slo_p99_us=50_000, scale="linear")
    assert (sat.max_rate, sat.highest_passing, sat.monotonic, sat.next_rate) == (
        100,
        400,
        False,
        150,
    )
    # p99 over the SLO fails just as loss does
    assert not metrics.meets_slo(
        RatePoint(1, 1.0, 60_000), slo_p99_us=50_000, min_delivered_fraction=0.99
    )
    with pytest.raises(ValueError):
        metrics.saturation_search([], slo_p99_us=1)


# --- repeats and rows ------------------------------------------------------


def test_repeat_stats() -> None:
    s = metrics.repeat_stats([100, 95, 108, None, float("nan")])
    assert s is not None
    assert (s.n, s.median, s.min, s.max) == (3, 100, 95, 108)
    assert s.rel_spread == pytest.approx(0.08) and s.rel_range == pytest.approx(0.13)
    assert s.within(0.10) and not s.within(0.05)
    assert metrics.repeat_stats([None]) is None
    zero = metrics.repeat_stats([0, 0])
    assert zero is not None and zero.rel_spread == 0


def test_cell_row_has_every_documented_column() -> None:
    cell = scenario.load("selfcheck").cells()[3]  # drop every 100th
    kept = [s for s in range(1, 2001) if s % 100]
    d = metrics.delivery(np.zeros(len(kept)), kept, first_seq=1, last_seq=2000, connections=1)
    hist = metrics.histogram_of(np.full(len(kept), 800, dtype=np.int64))
    lat = metrics.summarize(hist)
    row = metrics.cell_row(
        cell,
        0,
        latency=lat,
        latency_uncorrected=lat,
        delivery=d,
        throughput=metrics.throughput(d, cell.duration_s),
        overhead=metrics.Overhead(
            server_cpu_s=0.99,
            server_rss_bytes=10_000_000,
            bytes_in=198_000,
            handshake_bytes_in=200,
            handshake_bytes_out=300,
        ),
    )
    assert list(row) == list(metrics.COLUMNS)
    assert row["cell_id"] == "aiohttp-ws-sub10-rate200-p100-drop100"
    assert (row["msgs_lost"], row["delivered_fraction"], row["check_drop_every"]) == (20, 0.99, 100)
    assert row["lat_p99_us"] == 800
    assert row["server_cpu_us_per_msg"] == pytest.approx(500)
    assert row["bytes_in_per_msg"] == pytest.approx(100)
    assert row["server_rss_bytes_per_conn"] == 1_000_000
    assert row["handshake_bytes_per_conn"] == 50
    assert row["bytes_out_per_msg"] is None  # not measured stays empty, never 0


def test_receipts_load_and_clamped_samples_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "out.npz"
    np.savez(
        path,
        conn=np.array([0, 0, 1], dtype=np.uint32),
        seq=np.array([1, 2, 1]),
        sched_ns=np.array([0, 10, 0]),
        pub_ns=np.array([0, 10, 0]),
        recv_ns=np.array([-5000, 61_000_000_010, 3000]),  # early, far too late, 3 µs
    )
    r = Receipts.load(path)
    assert len(r) == 3 and r.conn.dtype == np.uint32
    corrected = metrics.latency_histograms(r, 0).summaries()[0]
    assert (corrected.count, corrected.below_zero, corrected.above_max) == (3, 1, 1)
    with pytest.raises(ValueError, match="differ in length"):
        Receipts.of(conn=[0], seq=[], sched_ns=[], pub_ns=[], recv_ns=[])
