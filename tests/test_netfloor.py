"""The kernel's loopback floor (pushbench.netfloor, runner.kernel, report.kernel): a real
probe over loopback counts every segment and costs CPU on both sides; a run measures it at
its cells' loads and each row of a probed load carries it; the report reads it back."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pushbench import netfloor, runner, scenario
from pushbench.report import kernel as report_kernel
from pushbench.report.load import load_run
from pushbench.runner import kernel, orchestrate
from pushbench.runner.rows import bare_row
from pushbench.scenario import floorplan

SMALL: dict[str, Any] = {"connections": 4, "rate": 100, "segment": 64, "seconds": 0.2}


def _counted(floor: netfloor.KernelFloor) -> None:
    ticks = floor.sent // floor.connections
    assert floor.sent == ticks * floor.connections and 15 <= ticks <= 25  # 100/s for 0.2 s
    assert floor.received == floor.sent  # every segment read back, whole
    assert floor.send_ns > 0 and floor.recv_ns > 0
    assert 0 < floor.sender_cpu_fraction < 1


def test_a_probe_counts_every_segment_and_charges_both_sides() -> None:
    floor = netfloor.probe(**SMALL)
    _counted(floor)
    assert floor.compiled == (netfloor._fanout is not None and netfloor._drain is not None)
    assert floor.server_cpu is None and floor.client_cpu is None  # nothing pinned


def test_without_the_compiled_loops_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netfloor, "_fanout", None)
    monkeypatch.setattr(netfloor, "_drain", None)
    floor = netfloor.probe(**SMALL)
    _counted(floor)
    assert floor.compiled is False
    assert "Python loops (upper bounds)" in floor.line()


def test_measure_runs_it_in_a_process_of_its_own_and_reads_the_record() -> None:
    floor = netfloor.measure(0, None, **SMALL)
    _counted(floor)
    assert floor.server_cpu == 0 and floor.client_cpu is None
    assert netfloor.KernelFloor.from_dict(json.loads(json.dumps(floor.as_dict()))) == floor


@pytest.mark.parametrize("bad", [{"connections": 0}, {"rate": 0}, {"seconds": 0.0}])
def test_bad_parameters_are_refused_before_anything_starts(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        netfloor.measure(None, None, **{**SMALL, **bad})


def test_the_command_prints_the_floor_or_a_clear_error() -> None:
    argv = [sys.executable, "-m", "pushbench.cli", "net-floor"]
    small = ["--connections=2", "--rate=50", "--seconds=0.2", "--segment=32"]
    done = subprocess.run([*argv, *small], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("loopback TCP floor: 32 B segments, 2 connections × 50/s")
    bad = subprocess.run([*argv, "--rate=0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--rate" in bad.stdout


def test_the_compiled_drain_reads_until_its_deadline_and_drops_closed_sockets() -> None:
    drain = pytest.importorskip("pushbench._netfloor").drain
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    a.sendall(b"x" * 100)
    a.sendall(b"y" * 50)
    c.close()  # d reads end of stream: dropped, not spun on
    nbytes, reads, wakeups = drain([b.fileno(), d.fileno()], 0.1)
    assert nbytes == 150 and 1 <= reads <= 2 and wakeups >= 1
    with pytest.raises(ValueError):
        drain([-1], 0.1)
    for s in (a, b, d):
        s.close()


# --- the run: which loads, which rows -----------------------------------------------------


def _cell(subscribers: int, rate: float, net: str = "loopback") -> scenario.Cell:
    parsed = scenario.loads(
        f'name = "t"\nstacks = "aiohttp"\ntransports = "ws"\nsubscribers = {subscribers}\n'
        f'rate = {rate}\nnet = "{net}"\n'
    )
    return parsed.cells()[0]


def test_the_run_probes_its_pushing_loads_most_common_first() -> None:
    cells = [_cell(50, 200), _cell(10, 1000), _cell(50, 200), _cell(5000, 0), _cell(2000, 10)]
    assert floorplan.floor_loads(cells) == [
        (50, 200),
        (10, 1000),
    ]  # idle and 2,000-connection cells not
    assert floorplan.floor_loads([_cell(50, 200, "wan")]) == []  # behind the relay: not loopback
    many = [_cell(n, 100) for n in range(1, 8)]
    assert len(floorplan.floor_loads(many)) == floorplan.MAX_LOADS
    per_load = floorplan.PROBE_S + floorplan.PROBE_OVERHEAD_S
    assert floorplan.floor_seconds(cells) == 2 * 2 * per_load  # 2 loads, before and after


def test_rows_of_a_probed_load_carry_its_floor() -> None:
    floors = [
        {
            "connections": 50,
            "rate": 200,
            "sent": 10,
            "received": 10,
            "send_ns": 9876.54,
            "recv_ns": 6543.21,
            "when": "start",
        },
        {
            "connections": 50,
            "rate": 200,
            "sent": 10,
            "received": 10,
            "send_ns": 11876.54,
            "recv_ns": 7543.21,
            "when": "end",
        },
        {"connections": 10, "rate": 1000, "error": "the receiver did not start", "when": "end"},
    ]
    rows: list[dict[str, Any]] = [
        {"subscribers": 50, "rate_msgs_per_s": 200.0},
        {"subscribers": 10, "rate_msgs_per_s": 1000.0},
        {"subscribers": 50, "rate_msgs_per_s": 400.0},
    ]
    kernel.annotate(rows, floors)
    # the mean of the run's start and end
    assert rows[0]["kernel_floor_send_ns"] == 10877 and rows[0]["kernel_floor_recv_ns"] == 7043
    assert "kernel_floor_send_ns" not in rows[1] and "kernel_floor_send_ns" not in rows[2]


TINY = """
name = "tiny"
stacks = "aiohttp"
transports = ["ws", "sse"]
subscribers = 3
rate = 50
payload_size = 32
duration_s = 2
warmup_s = 0.5
repeats = 2
client_processes = 1
"""


def _fake_run_one(cell: scenario.Cell, repeat: int, *args: Any) -> dict[str, Any]:
    row = bare_row(cell, repeat, "ok", "")
    row.update(
        delivered_fraction=1.0,
        lat_p50_us=200.0,
        lat_p99_us=400.0,
        server_cpu_us_per_msg=12.0,
        delivered_msgs_per_client_cpu_s=125_000.0,  # 8 µs per message
        harness_bound=False,
    )
    return row


def test_a_run_measures_the_floor_first_and_its_report_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orchestrate, "run_one", _fake_run_one)
    monkeypatch.setattr(kernel, "PROBE_S", 0.2)
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    options = runner.RunOptions(out=tmp_path / "r", progress=False, kernel_floor=True)
    result = runner.run_scenario(scenario.load(path), options, seed=1)
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    start, end = meta["kernel_floor"]  # one load, 3 connections × 50/s, before and after
    assert (start["when"], end["when"]) == ("start", "end")
    for floor in (start, end):
        assert (floor["connections"], floor["rate"], floor["seconds"]) == (3, 50, 0.2)
        assert floor["received"] == floor["sent"] > 0
    send = round((start["send_ns"] + end["send_ns"]) / 2)
    cells = pd.read_csv(result.run_dir / "cells.csv")
    assert (cells["kernel_floor_send_ns"] == send).all()
    assert (cells["kernel_floor_recv_ns"] == round((start["recv_ns"] + end["recv_ns"]) / 2)).all()
    blocks = report_kernel.blocks(load_run(result.run_dir))
    floors_table, cells_table = (b for b in blocks if hasattr(b, "rows"))
    assert [r[:2] for r in floors_table.rows] == [("3 × 50/s", "start"), ("3 × 50/s", "end")]
    by_cell = {r[0]: r for r in cells_table.rows}
    assert set(by_cell) == {"aiohttp-ws-sub3-rate50-p32", "aiohttp-sse-sub3-rate50-p32"}
    row = by_cell["aiohttp-ws-sub3-rate50-p32"]
    assert row[1] == "12.00" and row[3] == "8.00" and row[5] == "0.67"
    assert row[2] == f"{12.0 / (send / 1000):.2f}×"


def test_a_run_without_the_probe_has_no_floor_and_the_report_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orchestrate, "run_one", _fake_run_one)
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    options = runner.RunOptions(out=tmp_path / "r", progress=False)
    result = runner.run_scenario(scenario.load(path), options, seed=1)
    assert "kernel_floor" not in json.loads((result.run_dir / "metadata.json").read_text())
    (missing,) = report_kernel.blocks(load_run(result.run_dir))
    assert "pushbench net-floor" in getattr(missing, "text", "")
