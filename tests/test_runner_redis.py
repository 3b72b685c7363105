"""The runner with the Redis hub: expected seqs come from the hub, every cell gets its own
Redis server and key prefix, and that server's CPU is reported beside the server's.

The end-to-end test runs one tiny cell twice in a row (a few seconds) with the runner's own
redis-server. Without redis-server it skips, unless the environment variable CI is set:
then it fails, so CI cannot pass vacuously (as in ``tests/test_hub_redis.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pushbench import metrics, procs, runner, scenario
from pushbench.hub import Hub
from pushbench.procs import ProcSample
from pushbench.runner import rows, server
from pushbench.runner.options import CellFailed
from pushbench.schema.cells import ALL_COLUMNS, EXTRA_COLUMNS
from pushbench.servers import serve
from pushbench.ticker import Ticker

TINY_REDIS = """
name = "tiny-redis"
stacks = "aiohttp"
transports = "ws"
hub = "redis"
subscribers = 2
rate = 50
payload_size = 32
duration_s = 1.5
warmup_s = 0.5
repeats = 2
client_processes = 1
"""


def _cell(text: str = TINY_REDIS) -> scenario.Cell:
    return scenario.loads(text, source="tiny-redis.toml").cells()[0]


def _no_receipts() -> metrics.Receipts:
    return metrics.Receipts(np.zeros(0, np.uint32), *(np.zeros(0, np.int64) for _ in range(4)))


def _need_redis_server() -> None:
    """Skip without redis-server; fail instead when CI is set."""
    if server.redis_server() is None:
        why = "redis-server is not installed (make system-deps)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)


# --- the expected range comes from the hub ------------------------------------------


def test_ticker_reports_the_seqs_the_hub_gave() -> None:
    """A hub that numbered messages before the ticker ran (Redis keeps its counter):
    the ticker's status says which seqs its own messages got."""

    async def go() -> dict[str, Any]:
        hub = Hub()
        for _ in range(5):
            await hub.publish("t", "earlier")
        ticker = Ticker(hub, "t", rate=10_000, count=3)
        ticker.start()
        for _ in range(200):
            if not ticker.running and ticker.sent:
                break
            await asyncio.sleep(0.01)
        return ticker.status()

    status = asyncio.run(go())
    assert (status["sent"], status["first_seq"], status["last_seq"]) == (3, 6, 8)


def _ticker_stats(first_seq: int, count: int, **extra: Any) -> dict[str, Any]:
    ticker = {"start_ns": 10**12, "count": count, "sent": count, "first_seq": first_seq}
    ticker["last_seq"] = first_seq + count - 1
    ticker.update(extra)
    return {"ticker": ticker}


def test_expected_range_is_offset_by_the_hubs_first_seq() -> None:
    """Message i of the ticker has seq first_seq + i: a hub that starts at 1001 shifts
    the expected range by 1000 (today's "seq i + 1" counted all of it lost)."""
    cell = _cell()
    count = round(cell.rate * (cell.warmup_s + cell.duration_s))  # 100
    empty = _no_receipts()
    _, lo1, hi1, _ = rows.measured_window(cell, _ticker_stats(1, count), None, empty)
    _, lo, hi, _ = rows.measured_window(cell, _ticker_stats(1001, count), None, empty)
    assert (lo1, hi1) == (26, 100)  # 0.5 s of warm-up at 50 msgs/s: messages 25..99
    assert (lo, hi) == (lo1 + 1000, hi1 + 1000)


def test_expected_range_without_first_seq_numbers_from_one() -> None:
    """An external server's ticker that reports no seqs is taken to number from 1."""
    cell = _cell()
    stats = {"ticker": {"start_ns": 10**12, "count": 100}}
    empty = _no_receipts()
    assert rows.measured_window(cell, stats, None, empty)[1:3] == (26, 100)


def test_gapped_ticker_seqs_fail_the_cell() -> None:
    """Seqs not consecutive: another publisher shared the topic, the window is unknown."""
    with pytest.raises(CellFailed, match="not consecutive"):
        rows.ticker_seq0({"first_seq": 10, "last_seq": 30, "sent": 10})


# --- the Redis server and the key prefix ----------------------------------------------


def test_missing_redis_server_skips_naming_make_system_deps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "redis_server", lambda: None)
    reason = server.unsupported_by_stack(_cell())
    assert "redis-server" in reason and "make system-deps" in reason
    memory = _cell(TINY_REDIS.replace('hub = "redis"', 'hub = "memory"'))
    assert server.unsupported_by_stack(memory) == ""


def test_every_start_gets_a_fresh_prefix_and_serve_takes_it() -> None:
    cell = _cell()
    a, b = server.redis_prefix(cell), server.redis_prefix(cell)
    assert a != b and a.startswith(f"pushbench:{cell.cell_id}:")
    argv = server.serve_argv(cell, "redis://127.0.0.1:1/0", a)
    assert argv[argv.index("--redis-url") + 1] == "redis://127.0.0.1:1/0"
    assert argv[argv.index("--redis-prefix") + 1] == a
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    args = parser.parse_args(["--hub", "redis", "--redis-prefix", a])
    hub = serve._make_hub(args)
    assert getattr(hub, "prefix", None) == a
    default = serve._make_hub(parser.parse_args(["--hub", "redis"]))
    assert getattr(default, "prefix", None) == "pushbench:"


def test_redis_argv_has_no_persistence_and_loopback_only(tmp_path: Path) -> None:
    argv = server.redis_argv("/usr/bin/redis-server", 6390, tmp_path)
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs["--save"] == "" and pairs["--appendonly"] == "no"
    assert pairs["--bind"] == "127.0.0.1" and pairs["--port"] == "6390"
    assert pairs["--dir"] == str(tmp_path)


def test_broker_cpu_per_message() -> None:
    row = {"msgs_delivered": 200}
    start, end = ProcSample(1.0, 0, 0), ProcSample(1.02, 0, 0)
    assert rows.with_broker_cpu(row, start, end)["broker_cpu_us_per_msg"] == pytest.approx(100)
    assert rows.with_broker_cpu(row, None, None)["broker_cpu_us_per_msg"] is None
    assert rows.with_broker_cpu({"msgs_delivered": 0}, start, end)["broker_cpu_us_per_msg"] is None
    # appended after the columns older runs have, so their header stays a prefix
    assert ALL_COLUMNS.index("broker_cpu_us_per_msg") > ALL_COLUMNS.index("history_gap_msgs")
    assert "µs" in EXTRA_COLUMNS["broker_cpu_us_per_msg"].unit


# --- end to end ----------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_two_redis_cells_in_a_row_deliver_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tiny Redis cell, twice in a row: both deliver 100 %, the Redis server's CPU is
    in the row, and every Redis server the runner started is gone afterwards (by pid)."""
    _need_redis_server()
    started: list[procs.Started] = []
    real_start = procs.ProcessGroup.start

    def spy(self: procs.ProcessGroup, name: str, argv: Any, **kw: Any) -> procs.Started:
        entry = real_start(self, name, argv, **kw)
        started.append(entry)
        return entry

    monkeypatch.setattr(procs.ProcessGroup, "start", spy)
    path = tmp_path / "tiny-redis.toml"
    path.write_text(TINY_REDIS)
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    df = pd.read_csv(result.run_dir / "cells.csv")
    assert list(df["status"]) == ["ok", "ok"], list(df["reason"])
    assert (df["msgs_expected"] == 2 * 75).all()  # 50 msgs/s × 1.5 s × 2 subscribers
    assert (df["msgs_lost"] == 0).all() and (df["delivered_fraction"] == 1).all()
    assert df["broker_cpu_us_per_msg"].notna().all() and (df["broker_cpu_us_per_msg"] >= 0).all()
    brokers = [s for s in started if s.name == "redis"]
    servers = [s for s in started if s.name == "server"]
    assert len(brokers) == 2 and len(servers) == 2
    assert set(brokers[0].cpus) == set(servers[0].cpus)  # pinned with the server
    prefixes = [s.proc.args[s.proc.args.index("--redis-prefix") + 1] for s in servers]
    assert prefixes[0] != prefixes[1]
    for b in brokers:
        assert b.proc.returncode is not None
        assert not Path(f"/proc/{b.pid}").exists(), f"redis-server pid {b.pid} still there"
