"""Several server processes on one port (issue 18 item 2, h44): ``servers = N`` with
``via = "direct"`` runs N ``pushbench serve --reuse-port`` processes sharing one port
with SO_REUSEPORT; end to end with the runner, plus the runner's open-file arithmetic.

The runner test needs nats-server (``make system-deps``) for its fan-out cell: without it
the test is skipped with the reason, unless CI is set, when it fails.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pandas as pd
import pytest

from pushbench import runner, scenario
from pushbench.runner import sharedport
from pushbench.runner.nats import NATS_MISSING, nats_server
from pushbench.scenario import ScenarioError

CELLS = """
name = "tiny-sharedport"
stacks = "raw"
transports = "ws"
subscribers = 400
connections_per_source = 200
client_processes = 2
servers = 2
hub = "nats"
rate = 5
payload_size = 32
duration_s = 1
warmup_s = 0.4
repeats = 1
"""


@pytest.mark.timeout(120)
def test_two_raw_processes_on_one_port_share_the_subscribers(tmp_path: Path) -> None:
    """400 WebSockets from 2 client processes over 2 source addresses, onto 2 raw processes
    listening on one port: the kernel gave both some, and every message the ticker
    published on node 0 reached every subscriber on both (through NATS)."""
    if nats_server() is None:
        if os.environ.get("CI"):
            pytest.fail(f"{NATS_MISSING}; CI is set, so this is a failure", pytrace=False)
        pytest.skip(NATS_MISSING)
    path = tmp_path / "tiny-sharedport.toml"
    path.write_text(CELLS)
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    df = pd.read_csv(result.run_dir / "cells.csv")
    row = df.iloc[0]
    assert row["status"] == "ok", row["reason"]
    assert row["servers"] == 2 and row["via"] == "direct"
    assert row["client_source_addresses"] == 2
    conns = [int(x) for x in row["node_connections"].split(";")]
    sent = [int(x) for x in row["node_msgs_delivered"].split(";")]
    assert sum(conns) == 400 and min(conns) > 0, conns  # both nodes got connections
    assert min(sent) > 0, sent  # and pushed the messages to theirs
    assert row["delivered_fraction"] == 1 and row["msgs_lost"] == 0
    assert row["server_max_connections"] == 1000  # ⌈400 × 1.1 ÷ 2⌉ + 100, at least 1,000
    assert row["server_open_files"] > 0
    assert row["mem_conns_open"] == 400  # the memory probe read both nodes


BASE = 'name = "s"\nstacks = "raw"\ntransports = "ws"\nservers = 2\n'


def test_idle_cells_on_one_port_may_keep_the_memory_hub() -> None:
    idle = scenario.loads(BASE + "rate = 0\n").cells()[0]
    assert idle.servers == 2 and idle.hub == "memory" and idle.via == "direct"
    with pytest.raises(ScenarioError, match="hub = 'memory'"):
        scenario.loads(BASE + "rate = 1\n")
    with pytest.raises(ScenarioError, match="reuse_port"):  # the Node server cannot share
        scenario.loads(BASE.replace('"raw"', '"node-ws"') + "rate = 0\n")


def test_each_node_gets_its_share_and_the_clients_stay_under_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cells = scenario.loads(
        BASE + 'subscribers = 100000\nrate = 0\nclient_processes = 4\nvia = ["direct"]\n'
    ).cells()
    cell = cells[0]
    monkeypatch.setattr(sharedport, "may_raise_hard", lambda: False)
    monkeypatch.setattr(resource, "getrlimit", lambda _r: (20_000, 20_000))
    assert sharedport.node_max_connections(cell) == 55_100  # ⌈100,000 × 1.1 ÷ 2⌉ + 100
    assert sharedport.servers_needed(100_000) == 6
    assert sharedport.servers_needed(10_000) == 1
    assert sharedport.min_client_processes(100_000) == 11  # 2 descriptors a connection
    why = sharedport.client_refusal(cell, [(25_000, False)] * 4)
    assert "client_processes" in why and "11" in why
    assert sharedport.client_refusal(cell, [(100_000 // 11 + 1, False)] * 11) == ""
