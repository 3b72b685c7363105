"""100,000 connections on one box (issue 18 item 2): the pieces, checked small.

A short raw cell of 3,000 WebSocket subscribers with ``connections_per_source = 1000`` must
reach the server from three source addresses (read from the kernel's socket table while
it runs), paced and with its scale columns filled; the open-file helper must raise a low
limit (the hard one too when it may); the scale columns are computed from a synthetic run.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pushbench import metrics, runner, scenario
from pushbench.fdlimit import may_raise_hard
from pushbench.procs import Started
from pushbench.report import scale as report_scale
from pushbench.runner import scale
from pushbench.schema.worker import WorkerResult, WorkerSpec

SCALE_CELL = """
name = "scale-check"
stacks = "raw"
transports = "ws"
subscribers = 3000
connections_per_source = 1000
connect_rate = 3000
rate = 1
heartbeat_s = 1
duration_s = 2
warmup_s = 0.5
repeats = 1
client_processes = 1
"""


def _peers(port: int) -> Counter[str]:
    """Remote addresses of the established TCP sockets whose local port is ``port``, with
    how many each."""
    peers: Counter[str] = Counter()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "01" and local == f"0100007F:{port:04X}":  # 127.0.0.1:port
            raw = bytes.fromhex(remote.split(":")[0])[::-1]  # little-endian IPv4
            peers[".".join(str(b) for b in raw)] += 1
    return peers


class PeerWatch:
    """Samples the server's peers while a cell runs (the hook gets the started server)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()  # the most connections seen per address
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def started(self, server: Started) -> None:
        match = re.search(r":(\d+)\b", server.ready_line.rsplit(" ", 1)[-1])
        assert match, server.ready_line
        port = int(match.group(1))

        def watch() -> None:
            while not self.done.wait(0.2):
                self.seen |= _peers(port)  # per address, the larger count

        self.thread = threading.Thread(target=watch, daemon=True)
        self.thread.start()


@pytest.mark.timeout(60)
def test_a_cell_spreads_its_connections_over_source_addresses(tmp_path: Path) -> None:
    path = tmp_path / "scale.toml"
    path.write_text(SCALE_CELL)
    watch = PeerWatch()
    options = runner.RunOptions(
        out=tmp_path / "out", progress=False, on_server_started=watch.started
    )
    try:
        result = runner.run_scenario(scenario.load(path), options)
    finally:
        watch.done.set()
        if watch.thread is not None:
            watch.thread.join()
    df = pd.read_csv(result.run_dir / "cells.csv")
    row = df.iloc[0]
    assert row["status"] == "ok", row["reason"]
    # connection k from address k mod 3 (127.0.0.1: the runner's control requests only)
    # (the table is the whole namespace's: a few other sockets may share the port number)
    assert all(watch.seen[f"127.0.0.{k}"] >= 1000 for k in (2, 3, 4)), watch.seen
    assert watch.seen["127.0.0.5"] == 0 and watch.seen["127.0.0.1"] < 1000
    assert row["client_source_addresses"] == 3
    assert row["mem_conns_open"] == 3000
    # Paced at 3,000/s: slots 1/3,000 s apart, so the ramp cannot be faster than that.
    assert 0 < row["connect_rate_per_s"] <= 3000 * 3000 / 2999
    assert row["fanout_last_p50_us"] >= row["lat_p50_us"] * 0.99  # the last receipt, later
    assert np.isnan(row["heartbeat_cpu_ns_per_conn_s"])  # a cell that publishes
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["servers"]["raw"]["open_files"].startswith("open files: soft ")
    assert "raised_by_server" in json.dumps(meta)


def _limits_after(soft: int, hard: int, wanted: int) -> dict[str, Any]:
    """raise_nofile(wanted) in a child started with RLIMIT_NOFILE (soft, hard)."""
    code = (
        "import dataclasses, json; from pushbench.fdlimit import raise_nofile; "
        f"print(json.dumps(dataclasses.asdict(raise_nofile({wanted}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_the_open_file_limit_is_raised_in_process() -> None:
    got = _limits_after(256, 2048, 1500)
    assert (got["soft_before"], got["soft"], got["hard"]) == (256, 1500, 2048)
    past_hard = _limits_after(256, 1024, 5000)
    assert past_hard["soft_before"] == 256 and past_hard["hard_before"] == 1024
    if may_raise_hard():  # CAP_SYS_RESOURCE: the hard limit is raised with it
        assert (past_hard["soft"], past_hard["hard"]) == (5000, 5000)
    else:  # as far as the hard limit, and it says it fell short
        assert (past_hard["soft"], past_hard["hard"]) == (1024, 1024)


def test_source_addresses_past_connections_per_source() -> None:
    def cell(**changes: Any) -> scenario.Cell:
        keys: dict[str, Any] = {"name": "s", "stacks": "raw", "transports": "ws", "rate": 0}
        text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in (keys | changes).items())
        return scenario.loads(text).cells()[0]

    assert scale.source_addresses(cell(subscribers=12_000)) == ()
    assert len(scale.source_addresses(cell(subscribers=12_001))) == 2
    nine = scale.source_addresses(cell(subscribers=100_000))  # ⌈100,000 ÷ 12,000⌉
    assert nine == tuple(f"127.0.0.{k}" for k in range(2, 11))
    five = scale.source_addresses(cell(subscribers=100_000, connections_per_source=20_000))
    assert five == tuple(f"127.0.0.{k}" for k in range(2, 7))
    too_many = scale.unsupported(cell(subscribers=100_000))
    assert too_many == "" or "open files" in too_many  # where the hard limit is too low
    refused = scale.unsupported(cell(subscribers=30_000, transports="ws-aiohttp"))
    assert "source addresses" in refused
    spec = WorkerSpec(transport="ws", base_url="http://127.0.0.1:1", source_addresses=five)
    assert WorkerSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert [spec.source_for(k) for k in (0, 1, 5, 7)] == [five[0], five[1], five[0], five[2]]


def _result(connected: int, ramp_ns: int) -> WorkerResult:
    return WorkerResult(
        complete=True,
        reason="completed",
        transport="ws",
        connections=connected,
        connected=connected,
        connect_failures=0,
        ready_ns=0,
        warmup_end_ns=0,
        end_ns=1,
        bytes_source="tcp_info",
        messages=0,
        capacity=0,
        overflow=0,
        parse_errors=0,
        slow_parses=0,
        cpu_user_s_run=0.0,
        cpu_sys_s_run=0.0,
        max_loop_lag_ns=0,
        totals={},
        per_connection=(),
        ramp_ns=ramp_ns,
    )


def test_scale_columns_from_a_synthetic_run() -> None:
    text = 'name = "s"\nstacks = "raw"\ntransports = "ws"\nsubscribers = 1000\n'
    idle, busy = (
        scenario.loads(text + f"rate = {r}\nduration_s = 10\nrepeats = 1\n").cells()[0]
        for r in (0, 1)
    )
    results = [_result(1000, 1_000_000_000), _result(1000, 500_000_000)]
    # two messages scheduled at 0 and 1 s, three subscribers each: last receipts 30 and 50 µs
    seq = np.array([1, 1, 1, 2, 2, 2], dtype=np.int64)
    sched = np.array([0, 0, 0, 10**9, 10**9, 10**9], dtype=np.int64)
    lat = np.array([10_000, 30_000, 20_000, 50_000, 5_000, 7_000], dtype=np.int64)
    receipts = metrics.Receipts(
        np.array([0, 1, 2, 0, 1, 2], dtype=np.uint32), seq, sched, sched, sched + lat
    )
    cols = scale.scale_columns(idle, results, receipts, (0, None), 0.3, 1000)
    assert cols["connect_rate_per_s"] == pytest.approx(2000 / 1.5)
    assert cols["heartbeat_cpu_ns_per_conn_s"] == pytest.approx(0.3e9 / (1000 * 10))
    assert cols["client_source_addresses"] == 1
    assert (cols["fanout_last_p50_us"], cols["fanout_last_max_us"]) == (40.0, 50.0)
    busy_cols = scale.scale_columns(busy, results, receipts, (10**9, None), 0.3, 1000)
    assert busy_cols["heartbeat_cpu_ns_per_conn_s"] is None  # it published
    assert busy_cols["fanout_last_max_us"] == 50.0  # only the message of the window


def test_the_guide_answers_from_the_scale_cells() -> None:
    rows = [
        {"stack": "raw", "transport": "ws", "subscribers": 100_000, "rate_msgs_per_s": 0.0,
         "status": "ok", "mem_marginal_bytes_per_conn": 6758.4,
         "kernel_sock_bytes_per_conn": 2048.0, "connect_rate_per_s": 4990.0,
         "heartbeat_cpu_ns_per_conn_s": 812.0},
        {"stack": "raw", "transport": "ws", "subscribers": 100_000, "rate_msgs_per_s": 0.2,
         "status": "ok", "connect_rate_per_s": 4990.0, "lat_p50_us": 150_000.0,
         "lat_p99_us": 290_000.0, "lat_max_us": 301_000.0},
        {"stack": "aiohttp", "transport": "ws", "subscribers": 10_000, "rate_msgs_per_s": 0.0,
         "status": "ok", "mem_marginal_bytes_per_conn": 30_720.0},
        {"stack": "aiohttp", "transport": "ws", "subscribers": 30_000, "rate_msgs_per_s": 0.0,
         "status": "failed", "reason": "worker0: 1,204 connections never up"},
        {"stack": "aiohttp", "transport": "ws", "subscribers": 1000, "rate_msgs_per_s": 0.0,
         "status": "ok"},
    ]  # fmt: skip
    lines = report_scale.scale_lines(pd.DataFrame(rows))
    assert lines == [
        "At scale, aiohttp ws: held 10,000; 30.0 KiB user per connection; stopped at 30,000 "
        "(failed: worker0: 1,204 connections never up).",
        "At scale, raw ws: held 100,000; 6.6 KiB user + 2.0 KiB kernel per connection; "
        "connected 4,990/s; idle CPU 812 ns per connection-second; one message to all: "
        "p50/p99/max 150.0/290.0/301.0 ms.",
    ]
    assert report_scale.scale_lines(pd.DataFrame(rows[-1:])) == []  # no scale cell
