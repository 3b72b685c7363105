"""Memory per connection as a slope: the arithmetic, the divisor, the kernel's figures.

No server is started here (``test_runner``'s idle cells run the staged readings for
real); the RSS readings are made up, so each figure is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pushbench import metrics, scenario
from pushbench.metrics import RssPoint, memory_figures, skmem_bytes, sockstat_tcp_mem_bytes
from pushbench.runner.cell import stage_size, worker_spec
from pushbench.runner.memory import MemoryProbe, RssReading, rss_points
from pushbench.schema.worker import WorkerSpec

IDLE = 30_000_000
FIRST = 958_000  # what the first connections set up once
MARGINAL = 45_000  # what each connection adds


def _rss(connected: int) -> int:
    return IDLE + FIRST + MARGINAL * connected


def test_slope_and_first_connection_cost_from_two_readings() -> None:
    got = memory_figures(IDLE, [RssPoint(25, _rss(25)), RssPoint(50, _rss(50))])
    assert got is not None
    assert got.marginal_per_conn == pytest.approx(MARGINAL)
    assert got.first_conn == pytest.approx(FIRST)
    assert got.connected == 50
    # the old single quotient: set-up spread over 50 connections
    assert got.growth_per_conn == pytest.approx(MARGINAL + FIRST / 50)


def test_the_slope_is_a_least_squares_fit_over_every_reading() -> None:
    points = [
        RssPoint(500, _rss(500) + 4096),
        RssPoint(1000, _rss(1000)),
        RssPoint(2000, _rss(2000)),
    ]
    got = memory_figures(IDLE, points)
    assert got is not None
    xs, ys = [500, 1000, 2000], [p.rss_bytes for p in points]
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    assert got.marginal_per_conn == pytest.approx(slope)
    assert got.first_conn == pytest.approx(_rss(500) + 4096 - IDLE - slope * 500)


def test_one_reading_gives_no_slope_only_growth() -> None:
    got = memory_figures(IDLE, [RssPoint(50, _rss(50))])
    assert got is not None
    assert got.marginal_per_conn is None and got.first_conn is None
    assert got.growth_per_conn == pytest.approx((FIRST + 50 * MARGINAL) / 50)
    assert memory_figures(IDLE, []) is None


def test_readings_count_the_connections_the_workers_had_open() -> None:
    """Worker 0 was asked for 50 and had 40 open (10 connect failures); its first stage
    had 20 connected; worker 1 opened all of its 30."""
    readings = [
        RssReading(_rss(20), workers_up=0, partial=20),
        RssReading(_rss(40), workers_up=1),
        RssReading(_rss(70), workers_up=2),
    ]
    assert rss_points(readings, [40, 30]) == [
        RssPoint(20, _rss(20)),
        RssPoint(40, _rss(40)),
        RssPoint(70, _rss(70)),
    ]
    probe = MemoryProbe(pid=0, port=None, idle_rss=IDLE, readings=readings)
    probe.kernel_up = metrics.SocketMemory(70 * 1000, 70, "ss")
    cols = probe.columns([40, 30])
    assert cols["mem_conns_open"] == 70  # not the 80 configured
    assert cols["mem_marginal_bytes_per_conn"] == pytest.approx(MARGINAL)
    assert cols["mem_first_conn_bytes"] == pytest.approx(FIRST)
    assert cols["kernel_sock_bytes_per_conn"] == pytest.approx(1000)
    assert cols["kernel_sock_load_bytes_per_conn"] is None
    assert cols["kernel_sock_source"] == "ss"


TINY = """
name = "tiny"
stacks = "aiohttp"
transports = ["ws"]
subscribers = 50
rate = 50
duration_s = 2
repeats = 1
"""


def _cell(tmp_path: Path) -> scenario.Cell:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return scenario.load(path).cells()[0]


def test_the_rows_memory_columns_divide_by_connections_open(tmp_path: Path) -> None:
    cell = _cell(tmp_path)  # 50 subscribers configured
    summary = metrics.summarize(metrics.new_histogram())
    row = metrics.cell_row(
        cell,
        0,
        latency=summary,
        latency_uncorrected=summary,
        delivery=metrics.Delivery(1, 0, *(np.zeros(0, dtype=np.int64) for _ in range(5))),
        throughput=metrics.Throughput(2.0, 0.0, 0.0, 0.0),
        overhead=metrics.Overhead(
            server_rss_bytes=40_000_000, server_rss_growth_bytes=4_000_000, conns_open=40
        ),
    )
    assert row["server_rss_growth_bytes_per_conn"] == 100_000
    assert row["server_rss_bytes_per_conn"] == 1_000_000


def test_the_first_asyncio_worker_stops_half_way(tmp_path: Path) -> None:
    cell = _cell(tmp_path)
    assert [stage_size(cell, k, n) for k, n in ((0, 50), (1, 50), (0, 1))] == [25, 0, 0]
    spec = worker_spec(cell, "http://127.0.0.1:1", 50, 0, False, tmp_path / "s.json", 25)
    assert WorkerSpec.from_dict(spec.to_dict()).stage_connections == 25
    with pytest.raises(ValueError, match="stage_connections"):
        WorkerSpec(
            transport="ws", base_url="http://127.0.0.1:1", connections=2, stage_connections=2
        )


SS = """\
0      0          127.0.0.1:38393    127.0.0.1:49638
\t skmem:(r5832,rb131072,t0,tb3939840,f2360,w0,o0,bl0,d0)
0      0          127.0.0.1:38393    127.0.0.1:49640
\t skmem:(r0,rb131072,t1280,tb2626560,f2816,w1280,o0,bl0,d0)
"""


def test_skmem_sums_what_tcp_charges_per_socket() -> None:
    got = skmem_bytes(SS)
    assert got.sockets == 2
    assert got.bytes == (5832 + 2360 + 0) + (0 + 2816 + 1280)  # r + f + w; not rb/tb limits
    assert got.source == "ss"
    assert skmem_bytes("").bytes == 0


SOCKSTAT = """\
sockets: used 212
TCP: inuse 104 orphan 0 tw 3 alloc 110 mem 37
UDP: inuse 1 mem 2
UDPLITE: inuse 0
"""


def test_sockstat_tcp_pages() -> None:
    got = sockstat_tcp_mem_bytes(SOCKSTAT, 4096)
    assert got is not None
    assert got.bytes == 37 * 4096 and got.sockets == 104 and got.source == "sockstat"
    assert sockstat_tcp_mem_bytes("sockets: used 1\n", 4096) is None
    assert sockstat_tcp_mem_bytes("TCP: inuse 3 orphan 0\n", 4096) is None


def test_a_line_below_idle_gives_no_first_connection_cost() -> None:
    """RSS that grows faster per connection at higher counts (2 KB each for the first 500,
    then 24 KB each): the fitted line runs below the idle reading, so the fixed cost is not
    separable and is left empty rather than read as negative memory."""
    first = IDLE + 500 * 2_000
    points = [RssPoint(500, first), RssPoint(5_000, first + 4_500 * 24_000)]
    got = memory_figures(IDLE, points)
    assert got is not None and got.marginal_per_conn == pytest.approx(24_000)
    assert got.first_conn is None
