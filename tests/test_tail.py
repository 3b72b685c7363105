"""The tail is not hidden: late messages are waited for, lost ones count as infinitely late.

- the drain after the window waits for the window's last message at every connection
  (the workers' status files say how far each has got), until all went quiet, or a cap;
  a cell whose last messages arrive 0.8 s after the window counts them delivered;
- percentiles over *all expected* messages, lost ones infinitely late (``lat_all_*``);
- the saturation search's SLO judges that p99, so 2 % loss fails however fast the rest;
- the server's slow-consumer drops land in the cell's row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from pushbench import cli, metrics, scenario
from pushbench.clients.common import clock
from pushbench.clients.status import LatencyWindow
from pushbench.clients.worker import ArrivalFront, Worker
from pushbench.contract import Envelope, encode
from pushbench.hub import Hub
from pushbench.metrics import Receipts
from pushbench.procs import ProcSample, Started
from pushbench.report.load import load_run
from pushbench.runner import drain
from pushbench.runner.options import DRAIN_CAP_S, DRAIN_S
from pushbench.runner.rows import WorkerRun, compute
from pushbench.runner.saturation import _point
from pushbench.schema.worker import WorkerResult, WorkerSpec
from pushbench.service import PushService

S = 1_000_000_000  # ns


def _cell(tmp_path: Path, extra: str = "", transport: str = "ws") -> scenario.Cell:
    path = tmp_path / "c.toml"
    path.write_text(
        f'name = "c"\nstacks = "aiohttp"\ntransports = ["{transport}"]\nsubscribers = 2\n'
        f"rate = 50\npayload_size = 32\nduration_s = 2\nwarmup_s = 0.5\n{extra}"
    )
    return scenario.load(path).cells()[0]


# --- percentiles over every expected message -------------------------------------------


def _receipts(latency_us: np.ndarray, conns: int = 2, drop: int = 0) -> Receipts:
    """Seqs 1..n on each of ``conns`` connections with these latencies; the ``drop``
    highest-latency receipts removed (lost)."""
    n = len(latency_us) // conns
    seq = np.repeat(np.arange(1, n + 1), conns)
    conn = np.tile(np.arange(conns), n)
    sched = seq * 10_000_000
    recv = sched + latency_us.astype(np.int64) * 1000
    keep = np.argsort(latency_us, kind="stable")[: len(seq) - drop]
    keep.sort()
    return Receipts.of(
        conn=conn[keep], seq=seq[keep], sched_ns=sched[keep], pub_ns=sched[keep], recv_ns=recv[keep]
    )


def _tail(r: Receipts, n: int, conns: int = 2) -> metrics.TailSummary:
    d = metrics.delivery(r.conn, r.seq, first_seq=1, last_seq=n, connections=conns)
    return metrics.latency_all_expected(r, d)


def test_with_nothing_lost_the_all_expected_percentiles_are_the_received_ones() -> None:
    lat = np.random.default_rng(1).integers(100, 50_000, 2000)
    r = _receipts(lat)
    received, _ = metrics.latency_histograms(r, 0).summaries()
    tail = _tail(r, 1000)
    assert (tail.expected, tail.lost) == (2000, 0)
    assert tail.p50_us == received.p50_us and tail.p99_us == received.p99_us
    assert tail.p999_us == received.p999_us and tail.max_us == received.max_us


@pytest.mark.parametrize(
    ("lost", "p99_inf", "p999_inf"),
    [(0, False, False), (2, False, False), (3, False, True), (20, False, True), (21, True, True)],
)
def test_p99_is_infinite_once_more_than_one_percent_is_lost(
    lost: int, p99_inf: bool, p999_inf: bool
) -> None:
    lat = np.random.default_rng(2).integers(100, 50_000, 2000)
    tail = _tail(_receipts(lat, drop=lost), 1000)
    assert tail.lost == lost
    assert math.isinf(cast(float, tail.p99_us)) == p99_inf
    assert math.isinf(cast(float, tail.p999_us)) == p999_inf
    assert math.isinf(cast(float, tail.max_us)) == (lost > 0)
    assert math.isfinite(cast(float, tail.p50_us))


def test_a_duplicate_counts_once_by_its_first_arrival_and_idle_is_empty() -> None:
    r = Receipts.of(
        conn=[0, 0, 0],
        seq=[1, 2, 1],
        sched_ns=[0, 10, 0],
        pub_ns=[0, 10, 0],
        recv_ns=[5000, 7000, 900_000_000],
    )
    tail = _tail(r, 2, conns=1)
    assert (tail.expected, tail.lost, tail.max_us) == (2, 0, 7.0)  # not 900 ms
    idle = metrics.latency_all_expected(
        r, metrics.delivery([], [], first_seq=1, last_seq=0, connections=1)
    )
    assert idle.p99_us is None and idle.columns()["lat_all_max_us"] is None


def test_the_saturation_slo_fails_a_point_with_two_percent_lost() -> None:
    """The received p99 (2 ms) meets a 5 ms SLO and 98 % meets a 95 % delivery bound: only
    the p99 over every expected message (∞ with 2 % lost) fails it."""
    row = {
        "status": "ok",
        "delivered_fraction": 0.98,
        "lat_p99_us": 2000.0,
        "lat_all_p99_us": math.inf,
    }
    point = _point(100.0, [row])
    slo = {"slo_p99_us": 5000.0, "min_delivered_fraction": 0.95}
    assert not metrics.meets_slo(point, **slo)
    assert metrics.meets_slo(_point(100.0, [row | {"lat_all_p99_us": 2000.0}]), **slo)
    found = metrics.saturation_search([point], slo_p99_us=5000.0, min_delivered_fraction=0.95)
    assert found.max_rate is None and found.lowest_failing == 100.0


# --- the drain ----------------------------------------------------------------------------


def _reading(floor: int | None, last: int | None, receiving: bool) -> drain.Reading:
    return drain.Reading(0, floor, last, receiving, True)


def test_the_drain_waits_for_the_last_message_at_every_connection() -> None:
    p = drain.DrainPlan(end_ns=100 * S, target_ns=99 * S, quiet_s=0.5, cap_s=5.0)
    one_late = [_reading(99 * S, 100 * S, False), _reading(98 * S, 100 * S + S // 2, True)]
    # 0.8 s after the window, one connection still lacks the last message, its worker busy
    assert drain.verdict(p, one_late, 100 * S + 8 * S // 10) is None
    both = [_reading(99 * S, 100 * S, False), _reading(99 * S, 100 * S + 8 * S // 10, False)]
    assert drain.verdict(p, both, 100 * S + 9 * S // 10) == "delivered"
    assert drain.verdict(p, [None, *both], 100 * S + S // 10) is None  # no status yet


def test_the_drain_ends_when_all_went_quiet_or_at_the_cap() -> None:
    p = drain.DrainPlan(end_ns=100 * S, target_ns=99 * S, quiet_s=1.5, cap_s=5.0)
    quiet = [_reading(98 * S, 100 * S + S // 5, False)]
    assert drain.verdict(p, quiet, 100 * S + 16 * S // 10) is None  # 1.4 s since the last
    assert drain.verdict(p, quiet, 100 * S + 17 * S // 10) == "quiet"
    busy = [_reading(98 * S, 100 * S + S // 5, True)]
    assert drain.verdict(p, busy, 104 * S) is None
    assert drain.verdict(p, busy, 105 * S) == "cap"
    # a worker without drain fields (browser, Locust): quiet from the window's end
    unknown = [drain.Reading(0, None, None, False, False)]
    assert drain.verdict(p, unknown, 101 * S) is None
    assert drain.verdict(p, unknown, 101 * S + S // 2) == "quiet"
    assert drain.verdict(drain.DrainPlan(0, None, 0.5, 5.0, expects=False), [], 0) == "none"


def test_the_drain_bounds_follow_the_poll_interval(tmp_path: Path) -> None:
    short = _cell(tmp_path, "poll_interval_s = 1.0\n", "shortpoll")
    assert drain.quiet_s(short) == pytest.approx(1.0 + DRAIN_S)
    assert drain.quiet_s(_cell(tmp_path)) == DRAIN_S
    assert drain.cap_s(_cell(tmp_path)) == DRAIN_CAP_S
    slow = _cell(tmp_path, "poll_interval_s = 8.0\n", "shortpoll")
    assert drain.cap_s(slow) == pytest.approx(8.0 + DRAIN_S)


def test_the_drain_target_is_the_windows_last_scheduled_message(tmp_path: Path) -> None:
    cell = _cell(tmp_path)
    p = drain.plan(cell, 7 * S, {"ticker": {"start_ns": 5 * S, "count": 125}})
    assert p.target_ns == 5 * S + 124 * (S // 50)  # message 124 (from 0) of 50 msgs/s
    chat = _cell(tmp_path, "publishers = 1\n")
    assert drain.plan(chat, 7 * S, {}).target_ns == 7 * S + int(drain.CHAT_SLACK_S * S)
    idle = _cell(tmp_path, "").with_rate(0.0)
    assert drain.verdict(drain.plan(idle, 7 * S, {}), [], 7 * S) == "none"


def test_a_status_file_reports_each_connections_front(tmp_path: Path) -> None:
    front = ArrivalFront(first_conn=10, connections=3)
    assert front.status(0, None, False)["sched_floor_ns"] is None  # nobody has anything
    conn = np.array([10, 11, 12, 11], dtype=np.uint32)
    front.add(conn, np.array([5, 9, 7, 8]), np.array([50, 90, 70, 95]))
    body = front.status(4, 12.5, True)
    assert body["sched_floor_ns"] == 5 and body["recv_last_ns"] == 95 and body["receiving"]
    path = tmp_path / "w.status.json"
    path.write_text(json.dumps(body))
    assert drain.read_status(path) == drain.Reading(body["t_ns"], 5, 95, True, True)
    path.write_text(json.dumps({"t_ns": 1, "messages": 3, "p99_us": None}))
    assert drain.read_status(path) == drain.Reading(1, None, None, False, False)
    assert drain.read_status(tmp_path / "missing.json") is None


# --- end to end: late messages are delivered, not lost -----------------------------------

LATE = """
name = "late"
stacks = "aiohttp"
transports = "ws"
subscribers = 2
rate = 20
payload_size = 32
duration_s = 1.5
warmup_s = 0.3
repeats = 1
client_processes = 1

[[cells]]
checks = { delay_ms = 800 }

[[cells]]
transports = "shortpoll"
poll_interval_s = 1.0
subscribers = 4
"""


@pytest.mark.timeout(90)
def test_messages_arriving_after_the_window_count_delivered(tmp_path: Path) -> None:
    """Every message reaches the clients 0.8 s after it was sent (a server delay), and a
    short poll every second brings the window's last messages up to 1 s after it: the
    drain waits for them (the fixed 0.5 s drain counted them lost)."""
    path = tmp_path / "late.toml"
    path.write_text(LATE)
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    df = pd.read_csv(run_dir / "cells.csv").set_index("transport")
    assert (df["status"] == "ok").all(), df["reason"].tolist()
    assert (df["msgs_lost"] == 0).all() and (df["msgs_delivered"] == df["msgs_expected"]).all()
    assert (df["drain_end"] == "delivered").all(), df["drain_end"].tolist()
    assert df.loc["ws", "drain_s"] >= 0.7  # it waited for the delayed ones
    assert df.loc["ws", "lat_p50_us"] >= 800_000
    assert (df["lat_all_p99_us"] == df["lat_p99_us"]).all()  # nothing lost: the same
    assert (df["drain_s"] < DRAIN_CAP_S).all()
    assert (df["slow_consumers_dropped"] == 0).all()
    loaded = load_run(run_dir).cells  # the report's loader: text stays text
    assert list(loaded["drain_end"]) == ["delivered", "delivered"]


# --- slow consumers ------------------------------------------------------------------------


def _row_with(tmp_path: Path, stats: dict[str, Any]) -> dict[str, Any]:
    """The runner's row of a two-connection ticker cell that received everything, with
    the server's ``/stats`` ``stats`` (plus the ticker)."""
    cell = _cell(tmp_path)
    count = round(cell.rate * (cell.warmup_s + cell.duration_s))
    start, interval = 10**12, int(1e9 / cell.rate)
    seq = np.repeat(np.arange(1, count + 1), 2)
    sched = start + (seq - 1) * interval
    out = tmp_path / "worker0"
    np.savez(
        out.with_name("worker0.npz"),
        conn=np.tile([0, 1], count),
        seq=seq,
        sched_ns=sched,
        pub_ns=sched,
        recv_ns=sched + 1_000_000,
    )
    totals = dict.fromkeys(
        (
            "connects",
            "reconnects",
            "handshake_bytes_out",
            "bytes_out",
            "handshake_bytes_in",
            "requests",
            "errors",
        ),
        0,
    )
    totals |= {"bytes_in": 100, "messages": 2 * count, "connect_ns_mean": 1, "connect_ns_max": 1}
    result = WorkerResult(
        complete=True,
        reason="",
        transport="ws",
        connections=2,
        connected=2,
        connect_failures=0,
        ready_ns=start - S,
        warmup_end_ns=start,
        end_ns=start + 3 * S,
        bytes_source="tcp_info",
        messages=2 * count,
        capacity=10_000,
        overflow=0,
        parse_errors=0,
        slow_parses=0,
        cpu_user_s_run=0.1,
        cpu_sys_s_run=0.0,
        max_loop_lag_ns=1,
        totals=totals,
        per_connection=({"connect_ns": 1}, {"connect_ns": 1}),
    )
    out.with_name("worker0.json").write_text(json.dumps(result.to_dict()))
    stats = stats | {"ticker": {"start_ns": start, "count": count}}
    worker = WorkerRun(Started("worker0", cast(Any, None), (1,)), out, 2)
    sample = ProcSample(1.0, 1, 0)
    return compute(
        cell, 0, "c0", tmp_path, [worker], stats, sample, sample, None, None, ("delivered", 0.25)
    )


def test_the_servers_slow_consumer_drops_are_in_the_row(tmp_path: Path) -> None:
    async def dropped_one() -> dict[str, Any]:
        hub = Hub(queue_limit=10)
        hub.subscribe("t")  # never reads
        for i in range(20):
            await hub.publish("t", str(i))
        body: dict[str, Any] = json.loads(PushService(hub).stats_body())
        return body

    row = _row_with(tmp_path, asyncio.run(dropped_one()))
    assert row["slow_consumers_dropped"] == 1
    assert (row["drain_end"], row["drain_s"]) == ("delivered", 0.25)
    assert row["lat_all_p99_us"] == row["lat_p99_us"] and row["msgs_lost"] == 0
    assert _row_with(tmp_path, {})["slow_consumers_dropped"] is None  # not reported


def test_a_worker_writes_its_status_as_soon_as_it_goes_quiet(tmp_path: Path) -> None:
    """Within a few 0.1 s steps of its last receipt (not at the next whole second), the
    worker's status says it went quiet and how far each connection got."""
    path = tmp_path / "w.status.json"
    spec = WorkerSpec(
        transport="ws",
        base_url="http://127.0.0.1:1",
        connections=2,
        first_conn=4,
        capacity=100,
        status_path=str(path),
    )

    async def main() -> None:
        worker = Worker(spec)
        task = asyncio.ensure_future(worker._report_status(path, LatencyWindow()))
        await asyncio.sleep(0.05)
        now = clock()
        for conn, seq in ((4, 1), (5, 1), (4, 2)):
            env = Envelope("bench", seq, now - 10_000_000 + seq, now - 10_000_000, "x")
            worker.recorder.record(conn, encode(env), now)
        await asyncio.sleep(0.4)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    body = json.loads(path.read_text())
    assert body["receiving"] is False and body["messages"] == 3
    reading = drain.read_status(path)
    assert reading is not None and reading.known and reading.recv_last_ns is not None
    assert reading.sched_floor_ns == reading.recv_last_ns - 10_000_000 + 1  # conn 5: seq 1
