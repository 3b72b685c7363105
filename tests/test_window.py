"""Client CPU and per-message ratios over the measured window (issue 11, items 3 and 5).

The runner signals its workers when the measured window starts and ends; each reads its
CPU and counters then. These tests check, from synthetic worker outputs through the
runner's own row computation, that a client pegged only inside the window is flagged and
one busy only outside it is not, that workers sharing a client core add up, and that
requests, bytes and messages per client CPU second divide numbers of one span; then, in
tiny real runs, that a short-poll cell's requests per message is what the schedule makes
it and that a chat cell's HTTP publishes are metered.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from pushbench import cli, scenario
from pushbench.clients import locust_worker
from pushbench.clients.proctree import TreeWindow, tree_cpu
from pushbench.clients.worker import Worker, write_outputs
from pushbench.procs import Started
from pushbench.runner.rows import WorkerRun, compute
from pushbench.runner.saturation import saturated_side
from pushbench.runner.window import ClientWorker, client_load, worker_load
from pushbench.schema.worker import REQUIRED_TOTALS, WindowMark, WorkerResult, WorkerSpec

S = 1_000_000_000  # ns
T0 = 5_000 * S  # the ticker's start (CLOCK_MONOTONIC)
RATE = 50
WARMUP_S, DURATION_S = 0.5, 2.0
COUNT = round(RATE * (WARMUP_S + DURATION_S))  # messages the ticker publishes

CELL = """
name = "window"
stacks = "aiohttp"
transports = "shortpoll"
subscribers = 2
rate = 50
poll_interval_s = 0.1
payload_size = 32
duration_s = 2
warmup_s = 0.5
repeats = 1
"""


def _cell(tmp_path: Path) -> Any:
    path = tmp_path / "window.toml"
    path.write_text(CELL)
    return scenario.load(path).cells()[0]


def _receipts(conns: list[int]) -> dict[str, np.ndarray[Any, Any]]:
    """Every message the ticker published, received 1 ms after its schedule on each conn."""
    i = np.arange(COUNT, dtype=np.int64)
    sched = T0 + i * (S // RATE)
    n = len(conns)
    return {
        "conn": np.repeat(np.array(conns, dtype=np.uint32), COUNT),
        "seq": np.tile(i + 1, n),
        "sched_ns": np.tile(sched, n),
        "pub_ns": np.tile(sched, n),
        "recv_ns": np.tile(sched + 1_000_000, n),
    }


def _result(
    connections: int,
    cpu_run_s: float,
    window_cpu_s: float | None,
    *,
    run_requests: int,
    window_requests: int,
) -> WorkerResult:
    """A worker that ran from 0.3 s before the ticker to 1.3 s after its last message
    (ready → SIGTERM: 3.8 s), marked at the window's edges (T0 + 0.5 s, T0 + 2.5 s)."""
    messages = COUNT * connections
    window_messages = RATE * int(DURATION_S) * connections
    totals = dict.fromkeys(REQUIRED_TOTALS, 0)
    totals.update(messages=messages, requests=run_requests, bytes_in=messages * 150)
    raw: dict[str, Any] = {k: 0 for k in WorkerResult.required()}
    raw.update(
        complete=False,
        reason="SIGTERM",
        transport="shortpoll",
        connections=connections,
        connected=connections,
        ready_ns=T0 - int(0.3 * S),
        warmup_end_ns=T0 + int(0.2 * S),
        end_ns=T0 + int(3.5 * S),
        bytes_source="tcp_info",
        messages=messages,
        cpu_user_s_run=cpu_run_s,
        cpu_sys_s_run=0.0,
        totals=totals,
        per_connection=[],
    )
    if window_cpu_s is not None:
        start = WindowMark(T0 + S // 2, 0.2, 0.05, 30, 7, 700, 4_500)
        end = WindowMark(
            T0 + int(2.5 * S),
            0.2 + window_cpu_s,
            0.05,
            30 + window_messages,
            7 + window_requests,
            700 + 14 * window_requests,
            4_500 + 140 * window_messages,
        )
        raw.update(window_start=start.to_dict(), window_end=end.to_dict())
    return WorkerResult.from_dict(raw)


def _row(tmp_path: Path, workers: list[tuple[tuple[int, ...], list[int], WorkerResult]]) -> Any:
    """The runner's row of a cell whose workers left these outputs."""
    runs = []
    for k, (cpus, conns, result) in enumerate(workers):
        out = tmp_path / f"worker{k}"
        write_outputs(out, _receipts(conns), result)
        started = Started(f"worker{k}", cast(Any, None), cpus)
        runs.append(WorkerRun(started, out, len(conns)))
    stats = {"ticker": {"start_ns": T0, "count": COUNT}}
    return compute(_cell(tmp_path), 0, "window-r0", tmp_path, runs, stats, None, None)


# --- item 3: harness-bound over the window, per core -----------------------------------------


def test_a_client_pegged_only_in_the_window_is_flagged(tmp_path: Path) -> None:
    """1.9 CPU s in the 2 s window, 3.0 s over the 3.8 s from ready to SIGTERM: over the
    run it reads 79 %, over the window 95 %."""
    result = _result(2, 3.0, 1.9, run_requests=76, window_requests=40)
    row = _row(tmp_path, [((1,), [0, 1], result)])
    assert row["client_core_busy_max"] == pytest.approx(0.95)
    assert row["client_cpu_fraction_max"] == pytest.approx(0.95)
    assert row["harness_bound"] is True
    assert row["client_cpu_s"] == pytest.approx(1.9)


def test_a_client_busy_only_outside_the_window_is_not(tmp_path: Path) -> None:
    """3.6 CPU s over the run (95 %: connecting, draining), 0.2 s in the window (10 %)."""
    result = _result(2, 3.6, 0.2, run_requests=76, window_requests=40)
    row = _row(tmp_path, [((1,), [0, 1], result)])
    assert row["client_core_busy_max"] == pytest.approx(0.1)
    assert row["harness_bound"] is False


def test_workers_sharing_a_core_add_up(tmp_path: Path) -> None:
    """Two workers at 50 % each on one client CPU are one busy core; on two CPUs, not."""
    half = _result(1, 1.9, 1.0, run_requests=38, window_requests=20)
    shared = _row(tmp_path / "one", [((1,), [0], half), ((1,), [1], half)])
    assert shared["client_cpu_fraction_max"] == pytest.approx(0.5)
    assert shared["client_core_busy_max"] == pytest.approx(1.0)
    assert shared["harness_bound"] is True
    apart = _row(tmp_path / "two", [((1,), [0], half), ((2,), [1], half)])
    assert apart["client_core_busy_max"] == pytest.approx(0.5)
    assert apart["harness_bound"] is False


def test_saturated_side_reads_the_core_figure() -> None:
    """The search's ``client`` side is a client core ≥ 90 % busy, as ``harness_bound``."""
    row = {"status": "ok", "server_cpu_fraction": 0.3, "harness_bound": False}
    assert saturated_side([row | {"client_core_busy_max": 0.95}]) == "client"
    assert saturated_side([row | {"client_core_busy_max": 0.5}]) == "neither"
    busy_server = row | {"server_cpu_fraction": 0.97, "client_core_busy_max": 0.92}
    assert saturated_side([busy_server]) == "both"
    assert saturated_side([row | {"client_core_busy_max": None, "harness_bound": True}]) == "client"


# --- item 5: numerator and denominator over one span -----------------------------------------


def test_ratios_divide_counts_of_the_window(tmp_path: Path) -> None:
    """Short poll at 10 polls/s per subscriber, 50 msgs/s: 0.2 requests per message in the
    window; the whole run's 76 requests against the window's 200 messages read 0.38, and
    its 76 against its 250 messages 0.304. Messages per CPU second: the window's 200
    messages ÷ its 1.9 CPU s, not ÷ the run's 3.0."""
    result = _result(2, 3.0, 1.9, run_requests=76, window_requests=40)
    row = _row(tmp_path, [((1,), [0, 1], result)])
    assert row["msgs_delivered"] == 200
    assert row["requests_per_msg"] == pytest.approx(0.2)
    assert row["bytes_in_per_msg"] == pytest.approx(140.0)
    assert row["bytes_out_per_msg"] == pytest.approx(14 * 0.2)
    assert row["delivered_msgs_per_client_cpu_s"] == pytest.approx(200 / 1.9)
    assert row["bytes_per_conn_per_s"] == pytest.approx((200 * 140 + 40 * 14) / (2 * 2.0))


def test_an_unmarked_worker_keeps_both_sides_on_its_run() -> None:
    """No marks (a worker stopped before the window): the run's counts ÷ the run's
    messages, CPU over ready → end."""
    result = _result(2, 1.9, None, run_requests=76, window_requests=40)
    load = worker_load(result, np.zeros(0, dtype=np.int64))
    assert not load.window and load.seconds == pytest.approx(3.8)
    assert load.shares["requests"].count == 76 and load.shares["requests"].messages == 250


def test_a_mark_without_counters_counts_messages_from_the_receipts() -> None:
    """Locust's and the browser's marks carry CPU only: the window's messages come from
    the receipts, the counters stay paired with the whole run's messages."""
    result = _result(2, 3.0, 1.9, run_requests=76, window_requests=40)
    assert result.window_start is not None and result.window_end is not None
    cpu_only = {
        "window_start": WindowMark(result.window_start.t_ns, 0.25, 0.0).to_dict(),
        "window_end": WindowMark(result.window_end.t_ns, 2.15, 0.0).to_dict(),
    }
    bare = WorkerResult.from_dict(result.to_dict() | cpu_only)
    recv = _receipts([0, 1])["recv_ns"]
    load = client_load([ClientWorker((1,), 2, bare, recv)])
    assert load.workers[0].messages == 200  # recv in [T0 + 0.5 s, T0 + 2.5 s)
    assert load.msgs_per_cpu_s() == pytest.approx(200 / 1.9)
    assert load.per_msg("requests") == pytest.approx(76 / 250)
    assert load.harness_bound


# --- what each worker kind reads at a mark -------------------------------------------------


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_asyncio_worker_marks_its_cpu_and_summed_counters() -> None:
    """Only between ready and the end of the run; the first mark of an edge counts; the
    bytes of open sockets are read (TCP_INFO) a hundred connections per loop turn."""

    async def main() -> None:
        worker = Worker(WorkerSpec("shortpoll", "http://127.0.0.1:1", connections=250))
        worker.mark_window("start")
        assert worker.marks == {}  # not ready yet
        worker.ready_ns = 1
        worker.stats[0].messages, worker.stats[1].messages = 3, 4
        worker.stats[1].requests, worker.stats[249].bytes_in = 2, 500
        worker.mark_window("start")
        await asyncio.wait(worker.mark_tasks)  # the bytes: read right after the signal
        _burn(0.05)
        worker.stats[0].messages += 10
        worker.stats[0].bytes_out += 70
        worker.mark_window("end")
        worker.mark_window("end")  # a second signal: ignored
        assert len(worker.mark_tasks) == 2
        await asyncio.wait(worker.mark_tasks)
        a, b = worker.marks["start"], worker.marks["end"]
        assert (a.messages, a.requests, a.bytes_in, a.bytes_out) == (7, 2, 500, 0)
        assert (b.messages, b.bytes_out) == (17, 70)
        assert b.t_ns > a.t_ns and b.cpu_s - a.cpu_s >= 0.04
        worker.ended = True
        worker.marks.clear()
        worker.mark_window("start")
        assert worker.marks == {}  # the run is over

    asyncio.run(main())


def test_the_locust_and_browser_workers_mark_their_process_cpu() -> None:
    """CPU since ready of the processes they drive (here: this one), no counters."""
    spec = WorkerSpec("sse", "http://127.0.0.1:1")
    run = locust_worker.LocustRun(spec, Path("unused"))
    run.procs.append(
        cast(Any, SimpleNamespace(role="local", popen=SimpleNamespace(pid=os.getpid())))
    )
    run.mark_window("start")
    assert run.marks == {}  # not ready yet
    run.ready_cpu = run._cpu()
    tree = TreeWindow(os.getpid(), 1, tree_cpu(os.getpid()), None)
    run.mark_window("start")
    tree_start = tree.mark(at_end=False)
    _burn(0.1)
    run.mark_window("end")
    tree_end = tree.mark(at_end=True)
    for a, b in ((run.marks["start"], run.marks["end"]), (tree_start, tree_end)):
        assert b.cpu_s - a.cpu_s >= 0.05  # process CPU clocks, ns
        assert a.messages is None and b.requests is None and b.bytes_in is None


# --- tiny real runs --------------------------------------------------------------------------


def _run(tmp_path: Path, text: str) -> tuple[pd.DataFrame, Path]:
    path = tmp_path / "s.toml"
    path.write_text(text)
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress", "--no-report"]) == 0
    run_dir = next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())
    return pd.read_csv(run_dir / "cells.csv"), run_dir


@pytest.mark.timeout(60)
def test_short_poll_requests_per_message_follow_its_schedule(tmp_path: Path) -> None:
    """One poll per 0.1 s per subscriber, 50 msgs/s: 10 / 50 = 0.2 requests per message
    (counted from ready to SIGTERM it read ≈ 0.26: the idle polls before the ticker and
    in the drain); messages per client CPU second and the core's load are the worker's
    own window marks."""
    df, run_dir = _run(tmp_path, CELL)
    row = df.iloc[0]
    assert row["status"] == "ok", row["reason"]
    assert row["requests_per_msg"] == pytest.approx(1 / (RATE * 0.1), abs=0.015)
    out = json.loads((run_dir / "work" / f"{row['cell_id']}-r0" / "worker0.json").read_text())
    a, b = WindowMark.from_dict(out["window_start"]), WindowMark.from_dict(out["window_end"])
    assert (b.t_ns - a.t_ns) / S == pytest.approx(DURATION_S, abs=0.05)
    assert b.messages is not None and a.messages is not None
    cpu = b.cpu_s - a.cpu_s
    assert row["client_cpu_s"] == pytest.approx(cpu, rel=1e-4)
    assert row["delivered_msgs_per_client_cpu_s"] == pytest.approx(
        (b.messages - a.messages) / cpu, rel=1e-4
    )
    assert row["client_core_busy_max"] == pytest.approx(cpu / ((b.t_ns - a.t_ns) / S), rel=1e-4)


CHAT_SSE = """
name = "chat-sse"
stacks = "aiohttp"
transports = "sse"
subscribers = 3
publishers = 1
rate = 50
payload_size = 40
duration_s = 1.5
warmup_s = 0.3
repeats = 1
"""


@pytest.mark.timeout(60)
def test_http_chat_publishes_are_metered(tmp_path: Path) -> None:
    """An SSE subscriber sends nothing after its request: the bytes out of an SSE chat
    cell are its publisher's POSTs (head + payload ≥ 100 B each, one per message
    delivered to 3 subscribers), once the publish connection is metered."""
    df, _ = _run(tmp_path, CHAT_SSE)
    row = df.iloc[0]
    assert row["status"] == "ok", row["reason"]
    assert row["bytes_out_per_msg"] > 100 / 3
    assert row["bytes_source"] == "tcp_info"
