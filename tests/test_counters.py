"""Nothing the harness dropped reads as loss: every worker counter and the server's history
evictions are read, and a repeat the harness could not record whole is failed.

A WebSocket chat cell (4 subscribers, 2 publishers, 4,000 msg/s) once overflowed its receipt
arrays: 8,542 receipts dropped, never read by the runner, shown as 3,593 "lost" messages.
Here: the recorder's capacity covers what a cell's connections can receive (publishers and
drain included), and an overflow, unreadable input, a connection never up or messages
evicted from the server's history fail the repeat with the count in the reason.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from pushbench import scenario
from pushbench.hub import Hub
from pushbench.procs import Pinning, ProcSample, Started
from pushbench.runner import drain
from pushbench.runner.cell import plan_workers, start_order, worker_spec
from pushbench.runner.counters import COUNTER_COLUMNS
from pushbench.runner.options import CellFailed
from pushbench.runner.rows import WorkerRun, compute
from pushbench.schema.cells import EXTRA_COLUMNS
from pushbench.schema.worker import REQUIRED_TOTALS, WorkerResult
from pushbench.service import PushService

S = 1_000_000_000


def _cell(tmp_path: Path, body: str) -> scenario.Cell:
    path = tmp_path / "c.toml"
    path.write_text(f'name = "c"\nstacks = "aiohttp"\npayload_size = 32\n{body}')
    (cell,) = scenario.load(path).cells()
    return cell


def _ticker_cell(tmp_path: Path, transport: str = "ws") -> scenario.Cell:
    return _cell(
        tmp_path,
        f'transports = ["{transport}"]\nsubscribers = 2\nrate = 50\nduration_s = 2\n'
        "warmup_s = 0.5\n",
    )


def _result(count: int, **changes: Any) -> WorkerResult:
    """A two-connection worker that recorded ``count`` messages on each connection."""
    totals: dict[str, int] = dict.fromkeys(REQUIRED_TOTALS, 0)
    totals |= {"messages": 2 * count, "bytes_in": 100, "connect_ns_mean": 1, "connect_ns_max": 1}
    totals |= {"missed_polls": 3, "publish_errors": 0}
    fields: dict[str, Any] = {
        "complete": True,
        "reason": "completed",
        "transport": "ws",
        "connections": 2,
        "connected": 2,
        "connect_failures": 0,
        "ready_ns": 10**12 - S,
        "warmup_end_ns": 10**12,
        "end_ns": 10**12 + 3 * S,
        "bytes_source": "tcp_info",
        "messages": 2 * count,
        "capacity": 10_000,
        "overflow": 0,
        "parse_errors": 0,
        "slow_parses": 0,
        "cpu_user_s_run": 0.1,
        "cpu_sys_s_run": 0.0,
        "max_loop_lag_ns": 1,
        "totals": totals,
        "per_connection": ({"connect_ns": 1}, {"connect_ns": 1}),
    }
    fields.update(changes)
    return WorkerResult(**fields)


def _compute(
    tmp_path: Path,
    cell: scenario.Cell,
    stats: dict[str, Any],
    drop_last: int = 0,
    **changes: Any,
) -> dict[str, Any]:
    """The runner's row of a two-connection ticker cell whose worker recorded every
    message but the last ``drop_last`` (per connection), with ``changes`` to its output."""
    count = round(cell.rate * (cell.warmup_s + cell.duration_s))
    start, interval = 10**12, int(1e9 / cell.rate)
    recorded = count - drop_last
    seq = np.repeat(np.arange(1, recorded + 1), 2)
    sched = start + (seq - 1) * interval
    out = tmp_path / "worker0"
    np.savez(
        out.with_name("worker0.npz"),
        conn=np.tile([0, 1], recorded),
        seq=seq,
        sched_ns=sched,
        pub_ns=sched,
        recv_ns=sched + 1_000_000,
    )
    result = _result(recorded, **changes)
    out.with_name("worker0.json").write_text(json.dumps(result.to_dict()))
    stats = stats | {"ticker": {"start_ns": start, "count": count}}
    worker = WorkerRun(Started("worker0", cast(Any, None), (1,)), out, 2)
    sample = ProcSample(1.0, 1, 0)
    return compute(cell, 0, "c0", tmp_path, [worker], stats, sample, sample, None, None, None)


# --- the recorder's overflow --------------------------------------------------------------


def test_an_overflowing_recorder_fails_the_repeat_instead_of_counting_loss(
    tmp_path: Path,
) -> None:
    """The arrays were full for the last 20 messages of each connection: they were received,
    so the repeat is failed with the overflow, not measured as 40 lost messages."""
    cell = _ticker_cell(tmp_path)
    assert _compute(tmp_path, cell, {}, drop_last=20)["msgs_lost"] == 40  # a real loss: lost
    with pytest.raises(CellFailed, match=r"worker0's receipt recorder overflowed: 40 received"):
        _compute(tmp_path, cell, {}, drop_last=20, overflow=40)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"parse_errors": 3}, r"worker0 could not read 3 inputs \(parse_errors"),
        (
            {
                "connected": 1,
                "per_connection": ({"connect_ns": 1}, {"connect_ns": -1, "last_error": "refused"}),
            },
            r"1 of 2 connections never connected \(last error: refused\)",
        ),
    ],
)
def test_input_the_worker_could_not_record_fails_the_repeat(
    tmp_path: Path, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(CellFailed, match=reason):
        _compute(tmp_path, _ticker_cell(tmp_path), {}, **changes)


def test_every_other_counter_is_in_the_row(tmp_path: Path) -> None:
    """Counters that measure the run as it was land in their columns; one a worker kind
    does not count is empty (None), never 0."""
    assert set(COUNTER_COLUMNS) <= set(EXTRA_COLUMNS)
    cell = _ticker_cell(tmp_path, "shortpoll")
    row = _compute(tmp_path, cell, {}, connect_failures=1, slow_parses=7)
    assert row["status"] == "ok" and row["msgs_lost"] == 0
    assert (row["connect_failures"], row["slow_parses"], row["missed_polls"]) == (1, 7, 3)
    assert row["publish_errors"] is None  # a ticker cell: nobody publishes
    assert row["recorder_fill_max"] == pytest.approx(2 * 125 / 10_000)
    totals = dict.fromkeys(REQUIRED_TOTALS, 0) | {"messages": 250, "bytes_in": 1}
    assert _compute(tmp_path, cell, {}, totals=totals)["missed_polls"] is None  # not counted


# --- the server's history -----------------------------------------------------------------


def _stats_after_an_eviction() -> dict[str, Any]:
    """A server whose history of 5 held 16..20 when a poller asked for what followed 2."""

    async def evicted() -> dict[str, Any]:
        hub = Hub(history=5)
        for i in range(20):
            await hub.publish("t", str(i))
        assert [item.seq for item in hub.since("t", 2)] == [16, 17, 18, 19, 20]
        body: dict[str, Any] = json.loads(PushService(hub).stats_body())
        return body

    return asyncio.run(evicted())


def test_history_evictions_in_stats_fail_the_repeat(tmp_path: Path) -> None:
    stats = _stats_after_an_eviction()
    assert (stats["history"], stats["history_gap_messages"]) == (5, 13)  # 3..15
    cell = _ticker_cell(tmp_path, "shortpoll")
    with pytest.raises(CellFailed, match=r"evicted 13 messages from its history \(size 5\)"):
        _compute(tmp_path, cell, stats)
    row = _compute(tmp_path, cell, stats | {"history_gap_messages": 0})
    assert (row["status"], row["history_gap_msgs"]) == ("ok", 0)


# --- the recorder's capacity --------------------------------------------------------------


def test_a_chat_cells_recorders_hold_everything_it_can_receive(tmp_path: Path) -> None:
    """4 subscribers of whom 2 publish, 4,000 msg/s in total: every connection (a publisher
    too: it receives its own messages) gets the topic's 4,000 msg/s from its publishers'
    connect through the warm-up, the window and the whole drain until they are stopped."""
    cell = _cell(
        tmp_path,
        'transports = ["ws"]\nsubscribers = 4\npublishers = 2\nrate = 4000\n'
        "duration_s = 10\nwarmup_s = 2\n",
    )
    plan = plan_workers(cell, Pinning((0,), (1, 2), (0, 1, 2), ""))
    assert sorted(plan) == [(2, False), (2, True)]
    assert [plan[k][1] for k in start_order(plan)] == [False, True]  # publishers start last
    span = cell.warmup_s + cell.duration_s + drain.cap_s(cell)
    first = 0
    for conns, publishes in plan:
        spec = worker_spec(cell, "http://127.0.0.1:1", conns, first, publishes, tmp_path / "s")
        assert spec.capacity >= cell.rate * span * conns * 1.1  # 2 conns: ≥ 149,600
        first += conns


def test_a_ticker_cells_capacity_covers_its_ticker(tmp_path: Path) -> None:
    cell = _ticker_cell(tmp_path)
    spec = worker_spec(cell, "http://127.0.0.1:1", 2, 0, False, tmp_path / "s")
    assert spec.capacity >= cell.rate * (cell.warmup_s + cell.duration_s) * 2 * 1.1
